"""CSV at regular intervals (``?every=``): each point's value held from its last reading,
within its hold limit; the raw export stays the default. Both databases."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime, timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from discovery.csv_export import HEADER, HELD_HEADER
from tests.web.factories import PointFactory, ReadingFactory

pytestmark = pytest.mark.django_db

T0 = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)


def rows_of(response) -> list[list[str]]:
    assert response.status_code == 200, response.content
    return list(csv.reader(io.StringIO(b"".join(response.streaming_content).decode())))


def local(moment: datetime) -> str:
    return timezone.localtime(moment).isoformat()


@pytest.fixture
def point(settings):
    """Store on change, heartbeat 15 min, read every minute: a value holds 17 min.
    Readings: 19 at 07:55 (before the range), 20 at 08:02, 21 at 08:09."""
    settings.BACNET_COLLECT_INTERVAL_S = 60
    point = PointFactory(deadband=0.5, heartbeat_minutes=15, units="degrees-celsius")
    for minute, value in [(-5, 19.0), (2, 20.0), (9, 21.0)]:
        ReadingFactory(point=point, timestamp=T0 + timedelta(minutes=minute), value=value)
    return point


def test_every_exports_held_values_at_regular_intervals(logged_in, point):
    query = {
        "point": point.pk,
        "start": T0.isoformat(),
        "end": (T0 + timedelta(minutes=40)).isoformat(),
        "every": "10m",
    }
    header, *rows = rows_of(logged_in.get(reverse("discovery:export-readings"), query))
    assert header == HELD_HEADER
    value, read_at = HELD_HEADER.index("value"), HELD_HEADER.index("read_at")
    got = [(row[0], row[value], row[read_at]) for row in rows]
    assert got == [
        (local(T0), "19.0", local(T0 - timedelta(minutes=5))),  # held into the range
        (local(T0 + timedelta(minutes=10)), "21.0", local(T0 + timedelta(minutes=9))),
        (local(T0 + timedelta(minutes=20)), "21.0", local(T0 + timedelta(minutes=9))),
        # 08:09 + 17 min = 08:26: past the hold limit, the value is not known.
        (local(T0 + timedelta(minutes=30)), "", ""),
    ]
    assert {row[HELD_HEADER.index("units")] for row in rows} == {"degrees-celsius"}


def test_the_api_exports_the_same_and_the_raw_export_stays_the_default(api, point):
    query = {
        "point": point.pk,
        "start": T0.isoformat(),
        "end": (T0 + timedelta(minutes=20)).isoformat(),
    }
    header, *rows = rows_of(api.get("/api/readings/export/", {**query, "every": "5m"}))
    assert header == HELD_HEADER
    assert [row[6] for row in rows] == ["19.0", "20.0", "21.0", "21.0"]
    header, *rows = rows_of(api.get("/api/readings/export/", query))
    assert header == HEADER
    assert [row[6] for row in rows] == ["20.0", "21.0"]  # the stored readings only


@pytest.mark.parametrize("every", ["soon", "0s", "40d"])
def test_a_bad_every_is_refused_with_400(logged_in, api, point, every):
    query = {"point": point.pk, "every": every}
    assert logged_in.get(reverse("discovery:export-readings"), query).status_code == 400
    assert api.get("/api/readings/export/", query).status_code == 400


def test_a_grid_too_big_is_refused_before_streaming(logged_in, point):
    query = {"point": point.pk, "start": "2000-01-01T00:00:00Z", "every": "1s"}
    response = logged_in.get(reverse("discovery:export-readings"), query)
    assert response.status_code == 400
    assert "choose a longer every" in response.content.decode()
