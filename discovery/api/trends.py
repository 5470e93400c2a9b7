"""Trend data for charts, downsampled in SQL so that a year of minute data draws fast.

When the range holds at most ``buckets`` readings they come back as they are (led by the
value held into the range). Otherwise the range is cut into ``buckets`` equal slices and
the database returns one row per slice that a value covers (time-weighted average,
minimum, maximum, count and mean time): a bounded envelope whatever the range, computed
by one query over the (point, timestamp) index (``time_weighted.point_buckets``: see
``downsample`` for how long a value holds).

With buckets an hour wide or wider (a week or more) on PostgreSQL, the whole hours the
rollup has already summarised come from the hourly statistics (one row per hour instead
of sixty readings) and only the edges from the readings: a year's chart went from
415 ms to about 16 ms (bench/RESULTS.md, pages). Each hour's ``time_average`` weighs
the seconds it covers (``covered_s``), so the buckets equal those from the readings.

Where raw readings are gone (``BACNET_RETENTION_RAW_DAYS``), a range reaching back
before the retention's cutoff is always drawn from the hourly statistics (buckets of an
hour or more) and the response says so (``raw_since``, ``note``).
"""

from __future__ import annotations

import math
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import connection
from django.utils import timezone

from discovery.models import BACnetHourlyStat, BACnetPoint, BACnetReading
from discovery.services.time_weighted import (
    hold_limit,
    merge_buckets,
    point_buckets,
    sql_functions,
    summarise,
)
from discovery.units import unit_symbol

DEFAULT_BUCKETS = 1000
MAX_BUCKETS = 5000


def _column(field_name: str) -> str:
    column = getattr(BACnetReading._meta.get_field(field_name), "column", None)
    assert isinstance(column, str), field_name
    return column


def retention_note(start: datetime, now: datetime | None = None) -> tuple[datetime | None, str]:
    """(the raw cutoff, a sentence for the page) when [start, …) reaches back before the
    raw readings' retention; (None, "") otherwise."""
    from discovery.services.retention import raw_cutoff

    cutoff = raw_cutoff(now)
    if cutoff is None or start >= cutoff:
        return None, ""
    if connection.vendor != "postgresql":
        # The chart reads the statistics on PostgreSQL only (see downsample).
        return cutoff, (
            f"Raw readings are kept {settings.BACNET_RETENTION_RAW_DAYS} days: there are "
            f"none before {cutoff:%Y-%m-%d %H:%M} UTC (see the statistics below)."
        )
    return cutoff, (
        f"Raw readings are kept {settings.BACNET_RETENTION_RAW_DAYS} days: before "
        f"{cutoff:%Y-%m-%d %H:%M} UTC this shows the hourly statistics."
    )


def _raw_readings(
    cursor: Any, point_id: int, start: datetime, end: datetime, hold: float, limit: int
) -> tuple[list[tuple[float, float]], float | None]:
    """Up to ``limit`` readings of the range as they are, and the value held into its
    start from the last reading before it (None if none within the hold limit)."""
    epoch, _, _ = sql_functions()
    quote = connection.ops.quote_name
    table = quote(BACnetReading._meta.db_table)
    time_col, value_col, point_col = (quote(_column(n)) for n in ("timestamp", "value", "point"))
    t = epoch.format(col=time_col)
    adapt = connection.ops.adapt_datetimefield_value
    # One round trip: the readings (kind 1), then the value held into the range (kind 0).
    # Every identifier comes from the model, every value is a parameter.
    cursor.execute(
        f"SELECT 1, t, v FROM (SELECT {t} AS t, {value_col} AS v FROM {table} "  # noqa: S608
        f"WHERE {point_col} = %s AND {time_col} >= %s AND {time_col} < %s "
        f"AND {value_col} IS NOT NULL ORDER BY {time_col} LIMIT %s) AS inside "
        f"UNION ALL SELECT 0, NULL, v FROM (SELECT {value_col} AS v FROM {table} "
        f"WHERE {point_col} = %s AND {time_col} < %s AND {time_col} >= %s "
        f"ORDER BY {time_col} DESC LIMIT 1) AS held",
        [
            point_id, adapt(start), adapt(end), limit,
            point_id, adapt(start), adapt(start - timedelta(seconds=hold)),
        ],
    )  # fmt: skip
    rows = cursor.fetchall()
    raw = sorted((t, v) for kind, t, v in rows if kind == 1)
    before = [v for kind, _, v in rows if kind == 0]
    return raw, (before[0] if before else None)


def downsample(
    point_id: int, start: datetime, end: datetime, buckets: int, now: datetime | None = None
) -> dict[str, Any]:
    """Bucketed readings of one point in [start, end): lists ready for the chart.

    Time-weighted (``discovery.services.time_weighted``): a reading's value holds until
    the next reading, for at most the point's hold limit (its heartbeat or poll period
    plus two polls, or ``BACNET_HOLD_MAX_S`` for change-of-value and deadband-only
    points: store on change and COV store nothing while the value stands still), and
    never past now. A bucket's average weighs each value by the seconds it held there,
    the value held into the bucket from the last reading before it included; a bucket
    with no reading but a held value shows that value (count 0), as a step chart
    expects; minimum and maximum include the held value. ``summary`` is the same over
    the whole range."""
    buckets = max(1, min(int(buckets), MAX_BUCKETS))
    now = now or timezone.now()
    raw_since, note = retention_note(start)
    start_s, end_s = start.timestamp(), end.timestamp()
    width = max((end_s - start_s) / buckets, 1e-3)
    hold = hold_limit(point_id)
    with connection.cursor() as cursor:
        # Few readings (a short range, a new point): send them as they are.
        raw: list[Any]
        raw, held = _raw_readings(cursor, point_id, start, end, hold, buckets + 1)
        if raw_since is not None and connection.vendor == "postgresql":
            # Part of the range survives only as statistics: hours from them, the rest
            # (after the cutoff) from the readings.
            width = max(math.ceil(width / 3600), 1) * 3600
            rows = _buckets_from_hourly_stats(cursor, point_id, start, end, width, hold, now)
            raw = [None] * (buckets + 1)  # reported as buckets, not raw readings
        elif len(raw) <= buckets:
            # The summary still weighs by time, over one bucket the range wide.
            span = max(end_s - start_s, 1e-3)
            whole = point_buckets(cursor, point_id, start, end, start_s, span, hold, now)
            summary = summarise(whole)
            rows = [(None, t, v, v, v, 1) for t, v in raw]
            if held is not None and now > start:
                rows.insert(0, (None, start_s, held, held, held, 0))
        elif width >= 3600 and connection.vendor == "postgresql":
            # Whole hours per bucket, from the start's hour: each summarised hour then
            # falls inside one bucket, as its readings would.
            width = math.ceil(width / 3600) * 3600
            rows = _buckets_from_hourly_stats(cursor, point_id, start, end, width, hold, now)
        else:
            rows = point_buckets(cursor, point_id, start, end, start_s, width, hold, now)
    if len(raw) > buckets:
        summary = summarise(rows)
    return {
        "start": start.isoformat(),
        "end": end.isoformat(),
        "bucket_seconds": 0.0 if len(raw) <= buckets else width,
        "max_buckets": buckets,
        "t": [round(row[1], 3) for row in rows],
        "avg": [row[2] for row in rows],
        "min": [row[3] for row in rows],
        "max": [row[4] for row in rows],
        "count": [row[5] for row in rows],
        "hold_seconds": hold,
        "summary": summary.as_dict(),
        "raw_since": raw_since.isoformat() if raw_since else None,
        "note": note,
    }


def state_names(point: BACnetPoint) -> tuple[list[str], int]:
    """The names of a binary or multi-state point's states and the value of the first
    (binary values count from 0, multi-state values from 1); ([], 0) for other points."""
    texts = [str(text) for text in point.state_texts or []]
    if point.object_type.startswith("binary"):
        return (texts[:2] if len(texts) >= 2 else ["inactive", "active"]), 0
    if point.object_type.startswith("multi-state"):
        return texts, 1
    return [], 0


def trend_point(point: BACnetPoint) -> dict[str, Any]:
    """What a chart needs to know of its point: label, units as engineers write them
    (and the BACnet name), and for binary and multi-state points the state names, which
    are drawn as steps."""
    states, first_state = state_names(point)
    stateful = point.object_type.startswith(("binary", "multi-state"))
    return {
        "id": point.pk,
        "label": f"{point.device.name or point.device.device_instance}: {point.name or point}",
        "units": unit_symbol(point.units),
        "units_name": point.units,
        "object_type": point.object_type,
        "drawn_as": "steps" if stateful else "line",
        "states": states,
        "first_state": first_state,
    }


_HOUR = timedelta(hours=1)


def _next_hour(moment: datetime) -> datetime:
    floor = moment.replace(minute=0, second=0, microsecond=0)
    return floor if floor == moment else floor + _HOUR


def _buckets_from_hourly_stats(
    cursor: Any,
    point_id: int,
    start: datetime,
    end: datetime,
    width: float,
    hold: float,
    now: datetime,
) -> list[tuple]:
    """(bucket, mean time, time-weighted average, min, max, count, seconds covered) rows,
    like ``point_buckets``, with the summarised whole hours read from ``BACnetHourlyStat``
    (PostgreSQL): each hour's ``time_average`` weighted by the seconds it covers."""
    stats = connection.ops.quote_name(BACnetHourlyStat._meta.db_table)
    cursor.execute(
        f"SELECT min(bucket_start), max(bucket_start) FROM {stats} "  # noqa: S608
        "WHERE point_id = %s AND bucket_start >= %s AND bucket_start + interval '1 hour' <= %s",
        [point_id, _next_hour(start), end],
    )
    first, last = cursor.fetchone()
    # Hours from the statistics, [covered_from, covered_to); readings before and after.
    covered_from = first or end
    covered_to = last + _HOUR if last is not None else end
    origin = start.replace(minute=0, second=0, microsecond=0).timestamp()
    cursor.execute(
        f"""
        SELECT b, SUM(mid * c) / SUM(c), SUM(av * c) / SUM(c), MIN(minimum), MAX(maximum),
               SUM(count), SUM(c)
        FROM (
            SELECT CAST(FLOOR((date_part('epoch', bucket_start) - %s) / %s) AS INTEGER) AS b,
                   date_part('epoch', bucket_start) + COALESCE(covered_s, 3600) / 2 AS mid,
                   COALESCE(time_average, average) AS av, minimum, maximum, count,
                   COALESCE(covered_s, 3600) AS c
            FROM {stats}
            WHERE point_id = %s AND bucket_start >= %s AND bucket_start < %s
        ) AS hours
        GROUP BY b
        """,  # noqa: S608
        [origin, width, point_id, covered_from, covered_to],
    )
    parts = cursor.fetchall()
    for lo, hi in ((start, covered_from), (covered_to, end)):
        if lo < hi:
            parts += point_buckets(cursor, point_id, lo, hi, origin, width, hold, now)
    return merge_buckets(parts)
