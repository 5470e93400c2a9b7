"""Retention: raw readings leave by whole partitions, and only once their statistics exist;
statistics have their own retention."""

from datetime import UTC, datetime, timedelta

import pytest
from django.db import connection

from discovery.models import (
    BACnetDailyStat,
    BACnetDevice,
    BACnetHourlyStat,
    BACnetPoint,
    BACnetReading,
)
from discovery.services import partitions
from discovery.services.retention import maintain_readings
from discovery.services.rollups import roll_up

pytestmark = [
    pytest.mark.django_db,
    pytest.mark.skipif(connection.vendor != "postgresql", reason="PostgreSQL partitions"),
]

NOW = datetime(2030, 3, 20, 10, 30, tzinfo=UTC)
OLD_DAY = datetime(2030, 3, 1, tzinfo=UTC)  # beyond a 10-day retention
RECENT_DAY = datetime(2030, 3, 19, tzinfo=UTC)


@pytest.fixture
def point():
    device = BACnetDevice.objects.create(device_instance=1001, address="127.0.0.1:47809")
    return BACnetPoint.objects.create(device=device, object_type="analog-input", object_instance=1)


@pytest.fixture
def history(point, settings):
    settings.BACNET_RETENTION_RAW_DAYS = 10
    partitions.ensure_partitions(OLD_DAY, NOW)
    BACnetReading.objects.bulk_create(
        BACnetReading(point=point, timestamp=day + timedelta(hours=h), value=float(h))
        for day in (OLD_DAY, RECENT_DAY)
        for h in range(24)
    )
    return point


def old_partition_exists() -> bool:
    return any(p.start == OLD_DAY for p in partitions.partitions())


def test_it_keeps_everything_by_default(history, settings):
    settings.BACNET_RETENTION_RAW_DAYS = 0
    roll_up("hour"), roll_up("day")
    assert maintain_readings(NOW).dropped == []
    assert old_partition_exists()
    assert BACnetReading.objects.count() == 48


def test_it_keeps_an_old_partition_whose_statistics_do_not_exist_yet(history):
    done = maintain_readings(NOW)
    assert old_partition_exists()
    assert done.kept_for_statistics == [f"{partitions.TABLE}_p20300301"]
    assert BACnetReading.objects.count() == 48


def test_it_drops_an_old_partition_once_its_statistics_exist(history):
    roll_up("hour"), roll_up("day")
    done = maintain_readings(NOW)
    assert f"{partitions.TABLE}_p20300301" in done.dropped
    assert not old_partition_exists()
    assert BACnetReading.objects.filter(timestamp__lt=RECENT_DAY).count() == 0
    assert BACnetReading.objects.count() == 24
    # The statistics stay: the chart draws the old day from them.
    assert BACnetHourlyStat.objects.filter(bucket_start__lt=RECENT_DAY).count() == 24
    assert BACnetDailyStat.objects.filter(bucket_start=OLD_DAY).exists()


def test_it_deletes_statistics_past_their_own_retention(history, settings):
    settings.BACNET_RETENTION_HOURLY_DAYS = 5
    settings.BACNET_RETENTION_DAILY_DAYS = 0  # forever
    roll_up("hour"), roll_up("day")
    maintain_readings(NOW)
    assert not BACnetHourlyStat.objects.filter(bucket_start__lt=RECENT_DAY).exists()
    assert BACnetHourlyStat.objects.filter(bucket_start__gte=RECENT_DAY).count() == 24
    assert BACnetDailyStat.objects.count() == 2
