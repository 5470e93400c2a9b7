"""Store on change: a reading is stored when it moved beyond the deadband or the
heartbeat is due; the latest value is updated every cycle; no rule stores everything."""

from datetime import UTC, datetime, timedelta

import pytest

from discovery.bacnet_types import DeviceReadResult, PointValue
from discovery.models import BACnetDevice, BACnetPoint, BACnetReading
from discovery.services.storage import store_readings

pytestmark = pytest.mark.django_db

T0 = datetime(2026, 11, 23, 8, 0, tzinfo=UTC)


@pytest.fixture
def device():
    return BACnetDevice.objects.create(device_instance=1001, address="127.0.0.1:47809")


def make_point(device, object_type="analog-input", **fields):
    return BACnetPoint.objects.create(
        device=device, object_type=object_type, object_instance=1, **fields
    )


def cycles(point, values, every=timedelta(minutes=1), flags=None):
    """Store ``values`` one a cycle; returns the stored readings' values."""
    keys = {(1001, point.object_type, 1): point.pk}
    for k, value in enumerate(values):
        result = DeviceReadResult(
            1001, values=[PointValue(point.object_type, 1, value, status_flags=flags)]
        )
        store_readings([result], keys, T0 + k * every)
    return list(
        BACnetReading.objects.filter(point=point)
        .order_by("timestamp")
        .values_list("value", flat=True)
    )


SERIES = [20.0, 20.05, 20.1, 20.3, 20.35, 20.2, 19.9]


def test_it_stores_every_reading_without_a_rule(device):
    assert cycles(make_point(device), SERIES) == SERIES


def test_it_stores_a_reading_only_when_it_moved_beyond_the_absolute_deadband(device):
    point = make_point(device, deadband=0.2)
    # 20.3 is 0.3 from 20.0 (stored); 20.35 and 20.2 within 0.2 of 20.3; 19.9 is 0.4 off.
    assert cycles(point, SERIES) == [20.0, 20.3, 19.9]
    point.refresh_from_db()
    assert point.last_value == 19.9  # the latest value is updated every cycle
    assert point.stored_value == 19.9


def test_it_compares_with_the_last_stored_reading_so_a_slow_drift_is_kept(device):
    point = make_point(device, deadband=0.25)
    assert cycles(point, [20.0, 20.1, 20.2, 20.3, 20.4, 20.5, 20.6]) == [20.0, 20.3, 20.6]


def test_it_uses_a_relative_deadband(device):
    point = make_point(device, deadband_relative=0.05)  # 5 % of the stored value
    assert cycles(point, [100.0, 104.0, 106.0, 108.0, 112.0]) == [100.0, 106.0, 112.0]


def test_it_stores_when_the_heartbeat_is_due_even_without_change(device):
    point = make_point(device, deadband=1.0, heartbeat_minutes=15)
    stored = cycles(point, [20.0] * 31, every=timedelta(minutes=1))
    assert len(stored) == 3  # minutes 0, 15 and 30
    times = list(BACnetReading.objects.values_list("timestamp", flat=True).order_by("timestamp"))
    assert times == [T0, T0 + timedelta(minutes=15), T0 + timedelta(minutes=30)]


def test_it_stores_any_change_of_a_binary_or_multi_state_point(device):
    point = make_point(device, "binary-input", deadband=5.0, heartbeat_minutes=60)
    assert cycles(point, [0.0, 0.0, 1.0, 1.0, 1.0, 0.0]) == [0.0, 1.0, 0.0]


def test_it_follows_the_rule_of_the_object_type_and_the_point_overrides_it(device, settings):
    settings.BACNET_STORE_RULES = {"analog-input": {"deadband": 0.2}}
    assert cycles(make_point(device), SERIES) == [20.0, 20.3, 19.9]
    BACnetReading.objects.all().delete()
    BACnetPoint.objects.all().delete()
    own = make_point(device, deadband=0.0)  # any change, whatever the type's rule says
    assert cycles(own, [1.0, 1.0, 1.1]) == [1.0, 1.1]


def test_it_stores_a_change_of_status_flags(device):
    point = make_point(device, deadband=10.0)
    keys = {(1001, "analog-input", 1): point.pk}
    for k, flags in enumerate([0, 0, 1]):  # in alarm at the third cycle
        result = DeviceReadResult(
            1001, values=[PointValue("analog-input", 1, 5.0, status_flags=flags)]
        )
        store_readings([result], keys, T0 + timedelta(minutes=k))
    assert list(
        BACnetReading.objects.values_list("status_flags", flat=True).order_by("timestamp")
    ) == [0, 1]


def test_it_stores_a_retried_cycle_once_with_a_deadband(device):
    point = make_point(device, deadband=0.2)
    keys = {(1001, "analog-input", 1): point.pk}
    result = DeviceReadResult(1001, values=[PointValue("analog-input", 1, 21.5)])
    store_readings([result], keys, T0)
    store_readings([result], keys, T0)
    assert BACnetReading.objects.count() == 1
