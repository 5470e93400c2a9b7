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


def test_an_hour_with_no_reading_gets_the_value_held_into_it(point, settings):
    """GIVEN a change-of-value point: 7 at 08:10, nothing until 9 at 10:30 THEN 09:00 has
    no reading but held 7 all hour (count 0, every figure 7), and 10:00 is 7 for half an
    hour and 9 for the other half (time-weighted 8; its one reading's plain average 9)."""
    settings.BACNET_HOLD_MAX_S = 86400
    point.keeping = "cov"
    point.save()
    add(point, 10, 7.0)
    add(point, 150, 9.0)
    roll_up("hour", T0, T0 + timedelta(hours=3))
    stats = {
        s.bucket_start: (s.count, s.average, s.time_average, s.minimum, s.maximum, s.covered_s)
        for s in BACnetHourlyStat.objects.all()
    }
    assert stats == {
        T0: (1, 7.0, 7.0, 7.0, 7.0, 50 * 60),
        T0 + timedelta(hours=1): (0, 7.0, 7.0, 7.0, 7.0, 3600),
        T0 + timedelta(hours=2): (1, 9.0, pytest.approx(8.0), 7.0, 9.0, 3600),
    }
    # A window of 09:00 alone finds the value held into it from 08:10.
    BACnetHourlyStat.objects.all().delete()
    roll_up("hour", T0 + timedelta(hours=1), T0 + timedelta(hours=2))
    stat = BACnetHourlyStat.objects.get()
    assert (stat.bucket_start, stat.count, stat.time_average) == (T0 + timedelta(hours=1), 0, 7.0)


def test_a_value_holds_no_longer_than_the_points_hold_limit(point, settings):
    """GIVEN a polled point storing every reading (read every minute: hold limit two
    minutes) whose device died after 08:59 THEN 09:00 holds its last value two minutes
    (covered 60 s of it), and no hour after has a row."""
    settings.BACNET_COLLECT_INTERVAL_S = 60
    add(point, 58, 4.0)
    add(point, 59, 6.0)
    roll_up("hour", T0, T0 + timedelta(hours=5))
    stats = list(BACnetHourlyStat.objects.order_by("bucket_start"))
    assert [s.bucket_start for s in stats] == [T0, T0 + timedelta(hours=1)]
    assert (stats[0].time_average, stats[0].covered_s) == (pytest.approx(5.0), 120)
    assert (stats[1].count, stats[1].time_average, stats[1].covered_s) == (0, 6.0, 60)


def test_a_store_on_change_point_gets_exact_time_weighted_hours(point, settings):
    """GIVEN deadband 0.5 and heartbeat 20 min (hold limit 22 min): 10 at 08:00, 12 at
    08:15, 12 at 08:35 (heartbeat), 11 at 08:45 THEN 08:00 = (10x15 + 12x30 + 11x15)/60;
    09:00 has 11 held from 08:45 until 09:07."""
    settings.BACNET_COLLECT_INTERVAL_S = 60
    point.deadband, point.heartbeat_minutes = 0.5, 20
    point.save()
    for minute, value in [(0, 10.0), (15, 12.0), (35, 12.0), (45, 11.0)]:
        add(point, minute, value)
    roll_up("hour", T0, T0 + timedelta(hours=2))
    first, second = BACnetHourlyStat.objects.order_by("bucket_start")
    assert first.time_average == pytest.approx((10 * 15 + 12 * 30 + 11 * 15) / 60)
    assert (first.count, first.average, first.covered_s) == (4, pytest.approx(45 / 4), 3600)
    assert (second.count, second.time_average, second.covered_s) == (0, 11.0, 7 * 60)
    # The daily statistic weighs the same way: 67 minutes covered.
    roll_up("day", T0, T0 + timedelta(hours=2))
    day = BACnetDailyStat.objects.get()
    assert day.time_average == pytest.approx((10 * 15 + 12 * 30 + 11 * 22) / 67)
    assert (day.count, day.covered_s) == (4, 67 * 60)
