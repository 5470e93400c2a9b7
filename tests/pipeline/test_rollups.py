"""Rollups are computed by the database and upserted: exact, idempotent, late-proof."""

import statistics
from datetime import UTC, datetime, timedelta

import pytest

from discovery.models import (
    BACnetDailyStat,
    BACnetDevice,
    BACnetHourlyStat,
    BACnetPoint,
    BACnetReading,
)
from discovery.services.rollups import calculate_hourly_stats, roll_up

pytestmark = pytest.mark.django_db

T0 = datetime(2026, 11, 23, 8, 0, tzinfo=UTC)


@pytest.fixture
def point():
    device = BACnetDevice.objects.create(device_instance=1, address="127.0.0.1:47809")
    return BACnetPoint.objects.create(device=device, object_type="analog-input", object_instance=1)


def add(point, minutes, value, text=""):
    BACnetReading.objects.create(
        point=point, timestamp=T0 + timedelta(minutes=minutes), value=value, value_text=text
    )


def test_hourly_stats_match_the_readings_exactly(point):
    values = [float(v * 7 % 13) for v in range(150)]  # 2.5 hours of minute data
    BACnetReading.objects.bulk_create(
        BACnetReading(point=point, timestamp=T0 + timedelta(minutes=i), value=v)
        for i, v in enumerate(values)
    )
    add(point, 151, None, text="no numeric value")  # text-only readings are not counted
    assert roll_up("hour") == 3
    stats = list(BACnetHourlyStat.objects.order_by("bucket_start"))
    assert [s.bucket_start for s in stats] == [T0, T0 + timedelta(hours=1), T0 + timedelta(hours=2)]
    for stat, chunk in zip(stats, [values[:60], values[60:120], values[120:]], strict=True):
        assert (stat.minimum, stat.maximum, stat.count) == (min(chunk), max(chunk), len(chunk))
        assert stat.average == pytest.approx(statistics.fmean(chunk))


def test_a_rerun_changes_nothing_and_a_late_reading_is_picked_up(point):
    for minute, value in [(0, 1.0), (10, 3.0)]:
        add(point, minute, value)
    roll_up("hour")
    roll_up("hour")
    assert BACnetHourlyStat.objects.count() == 1
    add(point, 20, 8.0)  # arrives after the first run
    calculate_hourly_stats(lookback_hours=3, now=T0 + timedelta(minutes=50))
    stat = BACnetHourlyStat.objects.get()
    assert (stat.minimum, stat.maximum, stat.count, stat.average) == (1.0, 8.0, 3, 4.0)


def test_a_window_recomputes_whole_buckets_only_inside_it(point):
    add(point, 5, 1.0)  # 08:05
    add(point, 65, 5.0)  # 09:05
    roll_up("hour", start=T0 + timedelta(minutes=70), end=T0 + timedelta(minutes=80))
    stat = BACnetHourlyStat.objects.get()  # only the 09:00 bucket, and all of it
    assert (stat.bucket_start, stat.count, stat.minimum) == (T0 + timedelta(hours=1), 1, 5.0)


def test_daily_stats_group_by_utc_day(point):
    add(point, 0, 2.0)
    add(point, 60 * 20, 4.0)  # 04:00 the next day
    roll_up("day")
    stats = list(
        BACnetDailyStat.objects.order_by("bucket_start").values_list("bucket_start", "count")
    )
    assert stats == [
        (datetime(2026, 11, 23, tzinfo=UTC), 1),
        (datetime(2026, 11, 24, tzinfo=UTC), 1),
    ]


def test_the_scheduled_rollup_catches_up_on_hours_missed_while_it_was_down(point):
    add(point, 5, 1.0)  # 08:05
    calculate_hourly_stats(now=T0 + timedelta(minutes=30))
    for hour in range(1, 10):  # readings go on, rollups are down for nine hours
        add(point, 60 * hour + 5, float(hour))
    calculate_hourly_stats(lookback_hours=3, now=T0 + timedelta(hours=10))
    assert BACnetHourlyStat.objects.count() == 10  # not only the last three hours


def test_irregular_readings_get_a_time_weighted_average(point):
    """GIVEN change-of-value readings: 20 for 50 minutes, then a burst of three 100s in
    the last ten minutes THEN the plain average says 80, the time-weighted one what the
    point actually was: 20 for 50 minutes and 100 for 10."""
    point.keeping = "cov"  # a value holds until it changes (up to BACNET_HOLD_MAX_S)
    point.save()
    add(point, 0, 20.0)
    for second in (0, 1, 2):
        BACnetReading.objects.create(
            point=point, timestamp=T0 + timedelta(minutes=50, seconds=second), value=100.0
        )
    roll_up("hour", T0, T0 + timedelta(hours=1))
    stat = BACnetHourlyStat.objects.get()
    assert stat.average == pytest.approx(80.0)
    assert stat.time_average == pytest.approx((20 * 50 + 100 * 10) / 60)


def test_regular_polls_have_equal_plain_and_time_weighted_averages(point):
    for minute in range(60):
        add(point, minute, float(minute % 7))
    roll_up("hour")
    # The last reading holds two polls, into the next hour (a row with count 0).
    stat = BACnetHourlyStat.objects.get(bucket_start=T0)
    assert stat.time_average == pytest.approx(stat.average)
