"""Trend data is downsampled in the database: a bounded number of chart points for any
range, exact readings for short ranges."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import pytest
from django.db import connection

from discovery.api.trends import MAX_BUCKETS, downsample
from discovery.models import BACnetReading
from tests.web.factories import PointFactory

# On SQLite too (the embedded default); the year of data needs generate_series.
pytestmark = pytest.mark.django_db

START = datetime(2026, 1, 1, tzinfo=UTC)


def add_readings(point, count: int, every: timedelta) -> None:
    BACnetReading.objects.bulk_create(
        BACnetReading(point=point, timestamp=START + i * every, value=float(i % 100))
        for i in range(count)
    )


def test_it_returns_raw_readings_when_the_range_is_short():
    point = PointFactory()
    add_readings(point, 60, timedelta(minutes=1))
    data = downsample(point.pk, START, START + timedelta(hours=1), 1000)
    assert len(data["t"]) == 60
    assert data["avg"][:3] == [0.0, 1.0, 2.0]
    assert data["t"][0] == START.timestamp()
    assert data["count"] == [1] * 60


def test_it_bounds_the_number_of_points_and_keeps_the_envelope():
    point = PointFactory()
    add_readings(point, 20_000, timedelta(seconds=30))
    end = START + timedelta(seconds=30 * 20_000)
    data = downsample(point.pk, START, end, 200)
    assert 0 < len(data["t"]) <= 200
    assert min(data["min"]) == 0.0
    assert max(data["max"]) == 99.0
    assert sum(data["count"]) == 20_000
    assert data["t"] == sorted(data["t"])


def test_it_caps_the_number_of_buckets_asked_for():
    point = PointFactory()
    data = downsample(point.pk, START, START + timedelta(days=1), 10**9)
    assert data["max_buckets"] == MAX_BUCKETS
    assert data["t"] == []


def test_it_leaves_out_readings_outside_the_range_and_of_other_points():
    point, other = PointFactory(), PointFactory()
    add_readings(point, 10, timedelta(hours=1))
    add_readings(other, 10, timedelta(hours=1))
    data = downsample(point.pk, START + timedelta(hours=2), START + timedelta(hours=5), 100)
    assert sum(data["count"]) == 3


@pytest.mark.slow
@pytest.mark.postgres
def test_it_draws_a_year_of_minute_data_from_a_bounded_reply(api):
    point = PointFactory()
    with connection.cursor() as cursor:
        cursor.execute(
            f"""
            INSERT INTO {BACnetReading._meta.db_table} (point_id, timestamp, value, value_text)
            SELECT %s, ts, sin(extract(epoch FROM ts) / 86400.0) * 10 + 20, ''
            FROM generate_series(%s::timestamptz, %s::timestamptz - interval '1 minute',
                                 interval '1 minute') AS ts
            """,  # noqa: S608
            [point.pk, START, START + timedelta(days=365)],
        )
    began = time.monotonic()
    response = api.get(
        f"/api/points/{point.pk}/trend/",
        {"start": START.isoformat(), "end": (START + timedelta(days=365)).isoformat()},
    )
    elapsed = time.monotonic() - began
    assert response.status_code == 200
    body = response.json()
    assert 0 < len(body["t"]) <= 1000
    assert sum(body["count"]) == 365 * 24 * 60
    # A generous limit: the point is that it is one aggregate query, not 525,600 rows.
    assert elapsed < 30


@pytest.mark.postgres
def test_long_ranges_read_summarised_hours_from_the_hourly_stats_with_the_same_result():
    """GIVEN 30 days of readings, hourly statistics for the first 20 days only
    WHEN a 30-day chart is asked for (buckets of hours)
    THEN each bucket equals what its readings give: stats for the summarised hours,
    readings for the rest, nothing lost or counted twice."""
    from discovery.services.rollups import roll_up

    point = PointFactory()
    every = timedelta(minutes=10)
    add_readings(point, 30 * 24 * 6, every)
    roll_up("hour", START, START + timedelta(days=20))
    end = START + timedelta(days=30)
    data = downsample(point.pk, START, end, 100)
    # Whole hours per bucket, so that each summarised hour falls inside one bucket.
    assert data["bucket_seconds"] % 3600 == 0 and data["bucket_seconds"] >= 30 * 86400 / 100

    width = data["bucket_seconds"]
    expected: dict[int, list[float]] = {}
    for i in range(30 * 24 * 6):
        expected.setdefault(int((i * every).total_seconds() // width), []).append(float(i % 100))
    assert sum(data["count"]) == 30 * 24 * 6
    assert len(data["avg"]) == len(expected)
    for bucket, (avg, low, high, count) in enumerate(
        zip(data["avg"], data["min"], data["max"], data["count"], strict=True)
    ):
        values = expected[bucket]
        assert (low, high, count) == (min(values), max(values), len(values))
        assert avg == pytest.approx(sum(values) / len(values))


@pytest.mark.skipif(connection.vendor != "postgresql", reason="statistics path: PostgreSQL")
def test_it_draws_from_the_statistics_where_raw_readings_are_gone_and_says_so(settings):
    """GIVEN two days of minute readings rolled up, and the first day's raw readings
    deleted by retention WHEN the chart asks for both days THEN the first day comes from
    the hourly statistics, the second from the readings, and the reply says so."""
    from discovery.services.rollups import roll_up

    point = PointFactory()
    add_readings(point, 2 * 1440, timedelta(minutes=1))
    roll_up("hour")
    second_day = START + timedelta(days=1)
    BACnetReading.objects.filter(timestamp__lt=second_day).delete()
    settings.BACNET_RETENTION_RAW_DAYS = (datetime.now(UTC) - second_day).days
    data = downsample(point.pk, START, START + timedelta(days=2), 1000)
    assert sum(data["count"]) == 2 * 1440  # every minute counted, half through the stats
    assert min(data["t"]) < second_day.timestamp()
    assert data["raw_since"] is not None and "hourly statistics" in data["note"]
    settings.BACNET_RETENTION_RAW_DAYS = 0
    assert downsample(point.pk, START, START + timedelta(days=2), 1000)["note"] == ""
