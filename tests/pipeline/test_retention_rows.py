"""Retention where rows are deleted, not partitions dropped: SQLite, and the rows the
PostgreSQL default partition caught. Only once their statistics exist."""

from datetime import UTC, datetime, timedelta

import pytest

from discovery.models import BACnetDevice, BACnetPoint, BACnetReading
from discovery.services.retention import drop_old_readings
from discovery.services.rollups import roll_up

pytestmark = pytest.mark.django_db

NOW = datetime(2031, 5, 20, 10, 0, tzinfo=UTC)  # no partitions made for these days


def test_it_deletes_old_rows_only_once_their_statistics_exist(settings):
    settings.BACNET_RETENTION_RAW_DAYS = 10
    device = BACnetDevice.objects.create(device_instance=1001, address="127.0.0.1:47809")
    point = BACnetPoint.objects.create(device=device, object_type="analog-input", object_instance=1)
    for days_ago in (20, 1):
        BACnetReading.objects.create(
            point=point, timestamp=NOW - timedelta(days=days_ago), value=1.0
        )
    assert drop_old_readings(NOW).raw_rows_deleted == 0  # no statistics yet
    assert BACnetReading.objects.count() == 2
    roll_up("hour"), roll_up("day")
    assert drop_old_readings(NOW).raw_rows_deleted == 1
    assert list(BACnetReading.objects.values_list("timestamp", flat=True)) == [
        NOW - timedelta(days=1)
    ]
