"""Storage services: idempotent upserts, safe strings, readings stored once."""

import math
from datetime import UTC, datetime

import pytest

from discovery.bacnet_types import (
    DeviceEnumeration,
    DeviceProperties,
    DeviceReadResult,
    DiscoveredDevice,
    PointInfo,
    PointValue,
)
from discovery.models import BACnetDevice, BACnetPoint, BACnetReading
from discovery.services.storage import (
    clean_text,
    mark_unseen_offline,
    store_readings,
    upsert_device,
    upsert_points,
)

pytestmark = pytest.mark.django_db

SEEN = datetime(2026, 11, 23, 10, 0, tzinfo=UTC)
HOSTILE = "<script>alert(1)</script>\x00\u202e" + "x" * 20_000 + "\ud800"


def enumeration(instance=1001, address="127.0.0.1:47809", name="AHU-1", points=()):
    return DeviceEnumeration(
        device=DiscoveredDevice(instance, address, vendor_id=999, max_apdu=1476),
        properties=DeviceProperties(name=name, vendor_name="Acme", segmentation="segmented-both"),
        points=list(points),
    )


def test_it_strips_nul_bytes_and_lone_surrogates_and_cuts_to_length():
    cleaned = clean_text(HOSTILE, 255)
    assert "\x00" not in cleaned
    assert len(cleaned) == 255
    cleaned.encode("utf-8")  # encodable: no lone surrogate left
    assert cleaned.startswith("<script>")  # kept as text; escaping is the page's job


def test_it_stores_a_hostile_name_safely_on_the_real_database():
    device, _ = upsert_device(enumeration(name=HOSTILE), SEEN)
    device.refresh_from_db()
    assert device.name.startswith("<script>alert(1)</script>\u202e")
    assert "\x00" not in device.name and len(device.name) == 255


def test_rediscovery_updates_the_address_and_name_in_place():
    upsert_device(enumeration(address="127.0.0.1:47809", name="old"), SEEN)
    device, created = upsert_device(enumeration(address="127.0.0.1:47999", name="new"), SEEN)
    assert not created
    assert BACnetDevice.objects.count() == 1
    assert (device.address, device.name) == ("127.0.0.1:47999", "new")


def test_points_no_longer_listed_stop_polling_until_they_come_back():
    device, _ = upsert_device(enumeration(), SEEN)
    first = [
        PointInfo("analog-input", 1, "T1", units="degrees-celsius"),
        PointInfo("binary-input", 2),
    ]
    assert upsert_points(device, first) == (2, 2)
    second = [PointInfo("analog-input", 1, "Zone temp", units="degrees-celsius")]
    assert upsert_points(device, second) == (0, 1)
    assert BACnetPoint.objects.get(object_type="analog-input").name == "Zone temp"
    from discovery.services.collection import collection_plan

    assert BACnetPoint.objects.get(object_type="binary-input").missing_since is not None
    assert len(collection_plan()[1]) == 1
    upsert_points(device, first)
    assert BACnetPoint.objects.get(object_type="binary-input").missing_since is None
    assert len(collection_plan()[1]) == 2


def test_devices_not_seen_for_the_cutoff_go_offline():
    upsert_device(enumeration(instance=1), datetime(2026, 11, 23, 9, 0, tzinfo=UTC))
    upsert_device(enumeration(instance=2), SEEN)
    assert mark_unseen_offline(SEEN, after_s=600) == 1
    assert list(
        BACnetDevice.objects.filter(is_online=False).values_list("device_instance", flat=True)
    ) == [1]


def _points():
    device, _ = upsert_device(enumeration(), SEEN)
    upsert_points(device, [PointInfo("analog-input", 1), PointInfo("analog-input", 2)])
    return {(1001, p.object_type, p.object_instance): p.pk for p in BACnetPoint.objects.all()}


def test_the_same_cycle_stored_twice_stores_each_reading_once():
    keys = _points()
    result = DeviceReadResult(
        1001,
        values=[
            PointValue("analog-input", 1, 21.5, status_flags=0),
            PointValue("analog-input", 2, 3.0),
        ],
    )
    store_readings([result], keys, SEEN)
    store_readings([result], keys, SEEN)  # a re-delivered task
    assert BACnetReading.objects.count() == 2
    point = BACnetPoint.objects.get(object_instance=1)
    assert point.last_value == 21.5 and point.last_read_at is not None


def test_nan_and_infinite_values_are_kept_as_text_not_numbers():
    keys = _points()
    result = DeviceReadResult(
        1001,
        values=[PointValue("analog-input", 1, math.nan), PointValue("analog-input", 2, math.inf)],
    )
    store_readings([result], keys, SEEN)
    assert sorted(BACnetReading.objects.values_list("value", "value_text")) == [
        (None, "inf"),
        (None, "nan"),
    ]


def test_a_silent_device_is_marked_offline_with_its_reason_and_others_are_stored():
    keys = _points()
    silent = DeviceReadResult(1001, error="no answer within 4 s", reachable=False)
    store_readings([silent], keys, SEEN)
    device = BACnetDevice.objects.get()
    assert device.state == "offline" and "no answer" in device.last_error
    assert BACnetReading.objects.count() == 0


def test_it_puts_a_device_that_answers_who_is_but_not_reads_in_fault():
    keys = _points()
    summary = store_readings([DeviceReadResult(1001, error="reads time out")], keys, SEEN)
    device = BACnetDevice.objects.get()
    assert (device.state, device.is_online, device.last_error) == ("fault", True, "reads time out")
    assert summary.devices_failed == 1
    store_readings(
        [DeviceReadResult(1001, values=[PointValue("analog-input", 1, 1.0)])], keys, SEEN
    )
    device.refresh_from_db()
    assert (device.state, device.last_error) == ("online", "")


def test_it_counts_a_device_that_died_mid_read_as_failed_and_keeps_what_it_read():
    keys = _points()
    died = "device 1001 at 127.0.0.1:47809: stopped answering"
    result = DeviceReadResult(
        1001,
        error=died,
        reachable=False,
        values=[PointValue("analog-input", 1, 21.5), PointValue("analog-input", 2, error=died)],
    )
    summary = store_readings([result], keys, SEEN)
    assert (summary.devices_ok, summary.devices_failed, summary.readings) == (0, 1, 1)
    assert summary.point_errors == 0  # the device's error, not the point's
    device = BACnetDevice.objects.get()
    assert device.state == "offline" and device.last_error == died


def test_it_rebinds_a_device_that_moved_and_keeps_the_old_address_in_its_history():
    keys = _points()
    moved = DiscoveredDevice(1001, "127.0.0.1:48000", max_apdu=480, segmentation="no-segmentation")
    result = DeviceReadResult(1001, moved_to=moved, values=[PointValue("analog-input", 1, 2.0)])
    store_readings([result], keys, SEEN)
    device = BACnetDevice.objects.get()
    assert (device.address, device.max_apdu_length) == ("127.0.0.1:48000", 480)
    assert [h["address"] for h in device.address_history] == ["127.0.0.1:47809"]
    upsert_device(enumeration(address="127.0.0.1:48001"), SEEN)
    device.refresh_from_db()
    assert [h["address"] for h in device.address_history] == [
        "127.0.0.1:48000",
        "127.0.0.1:47809",
    ]


def test_it_lists_a_conflicting_address_on_the_device_until_a_user_resolves_it():
    keys = _points()
    result = DeviceReadResult(1001, error="conflict", conflict=["127.0.0.1:47809", "127.0.0.1:5"])
    store_readings([result], keys, SEEN)
    device = BACnetDevice.objects.get()
    assert (device.address, device.conflict_addresses) == ("127.0.0.1:47809", ["127.0.0.1:5"])
    store_readings(
        [DeviceReadResult(1001, values=[PointValue("analog-input", 1, 1.0)])], keys, SEEN
    )
    device.refresh_from_db()
    assert device.has_conflict  # a good cycle at the binding does not settle it
    device.resolve_conflict()
    assert not BACnetDevice.objects.get().has_conflict


def test_binary_and_multi_state_readings_carry_the_devices_own_words():
    device, _ = upsert_device(enumeration(), SEEN)
    upsert_points(
        device,
        [
            PointInfo("binary-input", 1, state_texts=["Off", "On"]),
            PointInfo("multi-state-value", 1, state_texts=["Occupied", "Unoccupied", "Standby"]),
        ],
    )
    from discovery.services.collection import collection_plan

    _, keys, texts = collection_plan()
    result = DeviceReadResult(
        1001,
        values=[
            PointValue("binary-input", 1, 1.0, text="active"),
            PointValue("multi-state-value", 1, 3.0),
        ],
    )
    store_readings([result], keys, SEEN, texts)
    assert sorted(BACnetReading.objects.values_list("value_text", flat=True)) == ["On", "Standby"]


def test_reading_texts_with_tabs_backslashes_and_newlines_round_trip():
    keys = _points()
    odd = "a\tb\\c\nd\r=1+1 \u202e"
    result = DeviceReadResult(1001, values=[PointValue("analog-input", 1, None, text=odd)])
    store_readings([result], keys, SEEN)
    assert BACnetReading.objects.get().value_text == odd
    assert BACnetPoint.objects.get(object_instance=1).last_value_text == odd
