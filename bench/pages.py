"""Pages and API: server time of the device list (1,000 devices) and of a point's chart
and readings (500,000 readings), with their query counts.

Server time is the Django test client's request in process, logged in (middleware,
view, queries, template or serializer; no network). The baseline replays the SQL the
same request ran, straight on a database cursor: the same queries without the app.
N+1 check: each request is also made in a variant that returns fewer rows; the query
count must not change with the number of rows."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import partial

from django.contrib.auth import get_user_model
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from bench.common import (
    Options,
    PartResult,
    Row,
    clear_all_data,
    log,
    repeat,
    seconds_stat,
)
from bench.data import fill_readings, make_devices
from discovery.models import BACnetPoint
from discovery.services.rollups import roll_up

TITLE = "Pages and API: server time and query counts"
DEVICES = 1000
POINTS_PER_DEVICE = 50
READINGS = 500_000
TARGET_S = 0.2


@dataclass
class Page:
    name: str
    url: str
    fewer_rows_url: str  # the same request returning fewer rows (N+1 check)


def _pages(point_id: int, middle: str) -> list[Page]:
    readings = f"/api/readings/?point={point_id}"
    trend = f"/api/points/{point_id}/trend/"
    return [
        Page("dashboard (device list, page 1 of 10)", "/", "/?q=Bench+device+1001"),
        Page(
            "device table fragment, last page",
            "/fragments/devices/?page=10",
            "/fragments/devices/?q=Bench+device+2000",
        ),
        Page("API device list, limit 100", "/api/devices/?limit=100", "/api/devices/?limit=5"),
        Page(
            "point page (year)",
            f"/points/{point_id}/?range=year",
            f"/points/{point_id}/?range=hour",
        ),
        Page(
            "point chart data, year",
            f"{trend}?range=year",
            f"{trend}?range=year&buckets=10",
        ),
        Page("point chart data, day", f"{trend}?range=day", f"{trend}?range=day&buckets=500"),
        Page("readings API, oldest first", readings, f"{readings}&page_size=5"),
        Page(
            "readings API, newest first",
            f"{readings}&ordering=-timestamp",
            f"{readings}&ordering=-timestamp&page_size=5",
        ),
        Page(
            "readings API, from the middle",
            f"{readings}&start={middle}",
            f"{readings}&start={middle}&page_size=5",
        ),
    ]


def _setup(charted_points: int) -> tuple[int, str, datetime]:
    """Devices and points; ``charted_points`` points with READINGS readings each (every
    point the same share of the table, as on a site polled every minute)."""
    clear_all_data()
    log(
        f"pages: {DEVICES:,} devices x {POINTS_PER_DEVICE} points, "
        f"{charted_points} x {READINGS:,} readings"
    )
    point_ids = make_devices(DEVICES, POINTS_PER_DEVICE)
    point_id = point_ids[0]
    end = timezone.now().replace(second=0, microsecond=0)
    fill_readings(point_ids[:charted_points], READINGS, end, timedelta(minutes=1))
    roll_up("hour")
    roll_up("day")
    BACnetPoint.objects.filter(pk=point_id).update(last_value=21.5)
    middle = (end - timedelta(minutes=READINGS // 2)).strftime("%Y-%m-%dT%H:%M:%SZ")
    return point_id, middle, end


def _client() -> Client:
    user_model = get_user_model()
    user, _ = user_model.objects.get_or_create(username="bench", defaults={"is_staff": True})
    client = Client()
    client.force_login(user)
    return client


def _get(client: Client, url: str) -> int:
    response = client.get(url)
    if response.status_code != 200:
        raise RuntimeError(f"GET {url} answered {response.status_code}")
    # Streaming responses are not used here; reading content makes rendering complete.
    return len(response.content)


def _replay(statements: list[str]) -> None:
    with connection.cursor() as cursor:
        for sql in statements:
            cursor.execute(sql)
            if cursor.description is not None:
                cursor.fetchall()


def _queries(client: Client, url: str) -> list[str]:
    with CaptureQueriesContext(connection) as captured:
        _get(client, url)
    return [q["sql"] for q in captured.captured_queries]


def run(options: Options) -> PartResult:
    result = PartResult("pages", TITLE)
    runs = options.repeats(9)
    charted = 10 if options.full else 1
    point_id, middle, _ = _setup(charted)
    client = _client()
    for page in _pages(point_id, middle):
        log(f"pages: {page.name}")
        server = repeat(partial(_get, client, page.url), runs, warmup=2)
        statements = _queries(client, page.url)
        fewer = _queries(client, page.fewer_rows_url)
        # Session and user lookups are the app's too, but they are replayed: the
        # baseline is every statement the request sent.
        raw = repeat(partial(_replay, statements), runs, warmup=1)
        server_stat = seconds_stat(server)
        constant = len(statements) == len(fewer)
        result.rows.append(
            Row(
                page.name,
                f"{len(statements)} queries ({len(fewer)} with fewer rows); "
                f"{server[-1][1] / 1024:.0f} kB",
                "s",
                server_stat,
                "its SQL replayed raw",
                seconds_stat(raw),
                f"<= {TARGET_S * 1000:.0f} ms, query count independent of rows",
                server_stat.median <= TARGET_S and constant,
            )
        )
    result.notes.append(
        f"Data: {DEVICES:,} devices with {POINTS_PER_DEVICE} points each "
        f"({DEVICES * POINTS_PER_DEVICE:,} points); {charted} point(s) with {READINGS:,} "
        "one-minute readings each, ending now (about a year), so the charted point is "
        f"1/{charted} of the readings table, and their hourly and daily statistics. "
        "Logged-in Django test client, DEBUG off, cached templates; two warm-up requests "
        "before the timed ones."
    )
    result.notes.append(
        "Query counts: the first figure is the request as timed, the one in brackets the "
        "same request returning fewer rows (a search, a smaller page or fewer buckets); "
        "equal counts mean no query per row."
    )
    return result
