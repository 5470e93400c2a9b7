"""Chart buckets and range statistics are time-weighted: a value holds from its reading
until the next one, at most the point's hold limit; a bucket with no reading shows the
value held into it. Expected figures are worked out by hand. Both databases (the SQL is
per vendor): run with and without ``BACNET_TEST_SERVERS=none``."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from django.db import connection

from discovery.api.trends import downsample
from discovery.models import BACnetReading
from discovery.services.time_weighted import hold_limit, point_buckets
from tests.web.factories import PointFactory

pytestmark = pytest.mark.django_db

T0 = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)
NOW = T0 + timedelta(days=30)


def add(point, minutes: float, value: float | None, text: str = "") -> None:
    BACnetReading.objects.create(
        point=point, timestamp=T0 + timedelta(minutes=minutes), value=value, value_text=text
    )


@pytest.fixture
def store_on_change_point(settings):
    """Deadband 0.5, heartbeat 15 min, read every minute: hold limit 15 + 2 x 1 min."""
    settings.BACNET_COLLECT_INTERVAL_S = 60
    point = PointFactory(deadband=0.5, heartbeat_minutes=15)
    for minute, value in [(0, 20.0), (7, 21.0), (22, 21.0), (25, 23.0), (50, 19.0)]:
        add(point, minute, value)
    return point


def test_the_hold_limit_follows_the_heartbeat_and_the_poll_period(settings):
    settings.BACNET_COLLECT_INTERVAL_S = 60
    settings.BACNET_HOLD_MAX_S = 7200
    settings.BACNET_STORE_RULES = {"binary-input": {"heartbeat_minutes": 30}}
    assert hold_limit(PointFactory(heartbeat_minutes=15).pk) == 15 * 60 + 2 * 60
    assert hold_limit(PointFactory().pk) == 2 * 60  # every reading stored: two polls
    assert hold_limit(PointFactory(poll_interval_s=300).pk) == 2 * 300
    assert hold_limit(PointFactory(object_type="binary-input").pk) == 30 * 60 + 2 * 60
    # Nothing is stored while the value stands still: held up to the maximum.
    assert hold_limit(PointFactory(deadband=0.5).pk) == 7200
    assert hold_limit(PointFactory(keeping="cov").pk) == 7200
    settings.BACNET_COV_CHECK_S = 900  # polled when unheard this long
    assert hold_limit(PointFactory(keeping="cov-check").pk) == 900 + 2 * 60


def test_chart_buckets_are_time_weighted_with_held_values_and_the_hold_limit(
    store_on_change_point,
):
    """GIVEN readings at 0, 7, 22, 25 and 50 min (20, 21, 21, 23, 19) and a hold limit of
    17 min WHEN the hour is cut into four buckets of 15 min THEN
    - [0, 15): 20 for 7 min, 21 for 8: 308/15, two readings;
    - [15, 30): 21 held in for 7 min, 21 for 3, 23 for 5: 325/15, two readings;
    - [30, 45): 23 held from 25 until the hold limit ends it at 42: 23, no reading,
      12 min covered;
    - [45, 60): 19 from 50 to the end: 19, 10 min covered."""
    data = downsample(store_on_change_point.pk, T0, T0 + timedelta(hours=1), 4, now=NOW)
    assert data["bucket_seconds"] == 900
    assert data["avg"] == pytest.approx([308 / 15, 325 / 15, 23.0, 19.0])
    assert data["min"] == [20.0, 21.0, 23.0, 19.0]
    assert data["max"] == [21.0, 23.0, 23.0, 19.0]
    assert data["count"] == [2, 2, 0, 1]
    assert data["hold_seconds"] == 17 * 60
    summary = data["summary"]
    assert summary["covered_seconds"] == pytest.approx(52 * 60)
    assert summary["time_average"] == pytest.approx((308 + 325 + 23 * 12 + 19 * 10) / 52)
    assert (summary["minimum"], summary["maximum"], summary["readings"]) == (19.0, 23.0, 5)


def test_a_bucket_with_no_reading_shows_the_value_held_into_it(store_on_change_point):
    """The range starts at 30 min: 23 (read at 25) holds in until 42, then 19 from 50."""
    start = T0 + timedelta(minutes=30)
    data = downsample(store_on_change_point.pk, start, start + timedelta(minutes=30), 1, now=NOW)
    # One reading in the range, one bucket: the raw readings, led by the held value.
    assert data["bucket_seconds"] == 0.0
    assert data["t"] == [start.timestamp(), (T0 + timedelta(minutes=50)).timestamp()]
    assert data["avg"] == [23.0, 19.0]
    assert data["count"] == [0, 1]
    assert data["summary"]["time_average"] == pytest.approx((23 * 12 + 19 * 10) / 22)
    rows = point_buckets(
        connection.cursor(),
        store_on_change_point.pk,
        start,
        start + timedelta(minutes=15),
        start.timestamp(),
        300,
        hold_limit(store_on_change_point.pk),
        NOW,
    )
    # Three 5-min buckets, each all 23 (held), none beyond 42 min.
    assert [(b, avg, n, covered) for b, _, avg, _, _, n, covered in rows] == [
        (0, 23.0, 0, 300.0),
        (1, 23.0, 0, 300.0),
        (2, 23.0, 0, 120.0),
    ]


def test_a_value_is_not_held_past_now_nor_past_a_reading_without_a_number(settings):
    settings.BACNET_HOLD_MAX_S = 86400
    point = PointFactory(keeping="cov")
    add(point, 0, 10.0)
    add(point, 10, None, text="no number")  # ends the 10 at 10 min
    add(point, 20, 30.0)
    now = T0 + timedelta(minutes=40)
    data = downsample(point.pk, T0, T0 + timedelta(hours=1), 1, now=now)
    summary = data["summary"]
    assert summary["covered_seconds"] == pytest.approx(30 * 60)  # 0-10 and 20-40
    assert summary["time_average"] == pytest.approx((10 * 10 + 30 * 20) / 30)


def test_regular_polls_give_the_plain_average():
    point = PointFactory()
    BACnetReading.objects.bulk_create(
        BACnetReading(point=point, timestamp=T0 + timedelta(minutes=i), value=float(i % 7))
        for i in range(120)
    )
    data = downsample(point.pk, T0, T0 + timedelta(hours=2), 4, now=NOW)
    for bucket in range(4):
        values = [float(i % 7) for i in range(bucket * 30, bucket * 30 + 30)]
        assert data["avg"][bucket] == pytest.approx(sum(values) / 30)
        assert data["count"][bucket] == 30


@pytest.mark.postgres
def test_the_hourly_statistics_path_equals_the_readings(settings):
    """GIVEN a change-of-value point with irregular readings over 10 days, rolled up for
    the first 6 WHEN a chart of buckets of hours is drawn THEN each bucket equals the
    same buckets computed from the readings alone (held values and hold limit included)."""
    from discovery.services.rollups import roll_up

    settings.BACNET_HOLD_MAX_S = 5 * 3600
    point = PointFactory(keeping="cov")
    minute, i = 0.0, 0
    readings = []
    while minute < 10 * 1440:
        readings.append(
            BACnetReading(
                point=point, timestamp=T0 + timedelta(minutes=minute), value=float(i * 7 % 13)
            )
        )
        # Bursts and long quiet spells, some longer than the hold limit.
        minute += [1, 3, 47, 2, 190, 11, 400, 5][i % 8]
        i += 1
    BACnetReading.objects.bulk_create(readings)
    roll_up("hour", T0, T0 + timedelta(days=6))
    end = T0 + timedelta(days=10)
    data = downsample(point.pk, T0, end, 40, now=NOW)
    width = data["bucket_seconds"]
    assert width == 6 * 3600
    expected = point_buckets(
        connection.cursor(), point.pk, T0, end, T0.timestamp(), width, hold_limit(point.pk), NOW
    )
    assert len(data["avg"]) == len(expected)
    for got, want in zip(
        zip(data["avg"], data["min"], data["max"], data["count"], strict=True),
        expected,
        strict=True,
    ):
        assert got[0] == pytest.approx(want[2])
        assert got[1:] == (want[3], want[4], want[5])


def test_the_api_and_the_point_page_say_their_statistics_are_time_weighted(
    api, logged_in, store_on_change_point
):
    from discovery.services.rollups import roll_up

    point = store_on_change_point
    query = {"start": T0.isoformat(), "end": (T0 + timedelta(hours=1)).isoformat()}
    body = api.get(f"/api/points/{point.pk}/trend/", {**query, "buckets": 4}).json()
    assert body["hold_seconds"] == 17 * 60
    assert body["summary"]["time_average"] == pytest.approx(1099 / 52)
    roll_up("hour", T0, T0 + timedelta(hours=2))
    two_hours = {**query, "end": (T0 + timedelta(hours=2)).isoformat()}
    page = logged_in.get(f"/points/{point.pk}/", two_hours).content.decode()
    assert "Time-weighted average" in page and "Mean of readings" in page
    # 09:00 has no reading, only 19 held from 08:50 until 09:07: shown as held.
    assert ">held<" in page
