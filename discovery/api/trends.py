"""Trend data for charts, downsampled in SQL so that a year of minute data draws fast.

When the range holds at most ``buckets`` readings they come back as they are. Otherwise
the range is cut into ``buckets`` equal slices and the database returns one row per slice
that holds readings (average, minimum, maximum, count and the mean time of its
readings): a bounded envelope whatever the range, computed by one aggregate query over
the (point, timestamp) index.

With buckets an hour wide or wider (a week or more) on PostgreSQL, the whole hours the
rollup has already summarised come from the hourly statistics (one row per hour instead
of sixty readings) and only the edges from the readings: a year's chart went from
415 ms to about 16 ms (bench/RESULTS.md, pages). Averages are weighted by each hour's
count, so they equal the averages over the readings.

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

from discovery.models import BACnetHourlyStat, BACnetPoint, BACnetReading
from discovery.units import unit_symbol

DEFAULT_BUCKETS = 1000
MAX_BUCKETS = 5000

# Seconds since the epoch of the reading's time, per database.
_EPOCH_SQL = {
    "postgresql": "EXTRACT(EPOCH FROM {col})::float8",
    # SQLite keeps aware datetimes as UTC text; julianday() reads it.
    "sqlite": "((julianday({col}) - 2440587.5) * 86400.0)",
}


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


def downsample(point_id: int, start: datetime, end: datetime, buckets: int) -> dict[str, Any]:
    """Bucketed readings of one point in [start, end): lists ready for the chart."""
    buckets = max(1, min(int(buckets), MAX_BUCKETS))
    raw_since, note = retention_note(start)
    start_s, end_s = start.timestamp(), end.timestamp()
    width = max((end_s - start_s) / buckets, 1e-3)
    meta = BACnetReading._meta
    quote = connection.ops.quote_name
    table = quote(meta.db_table)
    time_col = quote(_column("timestamp"))
    value_col = quote(_column("value"))
    point_col = quote(_column("point"))
    epoch = _EPOCH_SQL.get(connection.vendor, _EPOCH_SQL["postgresql"]).format(col=time_col)
    # Every identifier above comes from the model, every value is a parameter.
    sql = f"""
        SELECT CAST(FLOOR(({epoch} - %s) / %s) AS INTEGER) AS bucket,
               AVG({epoch}), AVG({value_col}), MIN({value_col}), MAX({value_col}), COUNT(*)
        FROM {table}
        WHERE {point_col} = %s AND {time_col} >= %s AND {time_col} < %s
              AND {value_col} IS NOT NULL
        GROUP BY bucket
        ORDER BY bucket
    """  # noqa: S608
    adapt = connection.ops.adapt_datetimefield_value
    params = [point_id, adapt(start), adapt(end)]
    raw_sql = f"""
        SELECT {epoch}, {value_col}
        FROM {table}
        WHERE {point_col} = %s AND {time_col} >= %s AND {time_col} < %s
              AND {value_col} IS NOT NULL
        ORDER BY {time_col}
        LIMIT %s
    """  # noqa: S608
    with connection.cursor() as cursor:
        # Few readings (a short range, a new point): send them as they are.
        cursor.execute(raw_sql, [*params, buckets + 1])
        raw = cursor.fetchall()
        if raw_since is not None and connection.vendor == "postgresql":
            # Part of the range survives only as statistics: hours from them, the rest
            # (after the cutoff) from the readings.
            width = max(math.ceil(width / 3600), 1) * 3600
            rows = _buckets_from_hourly_stats(cursor, point_id, start, end, width)
            raw = [None] * (buckets + 1)  # reported as buckets, not raw readings
        elif len(raw) <= buckets:
            rows = [(None, t, v, v, v, 1) for t, v in raw]
        elif width >= 3600 and connection.vendor == "postgresql":
            # Whole hours per bucket, from the start's hour: each summarised hour then
            # falls inside one bucket, as its readings would.
            width = math.ceil(width / 3600) * 3600
            rows = _buckets_from_hourly_stats(cursor, point_id, start, end, width)
        else:
            cursor.execute(sql, [start_s, width, *params])
            rows = cursor.fetchall()
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
    cursor: Any, point_id: int, start: datetime, end: datetime, width: float
) -> list[tuple]:
    """(bucket, mean time, average, min, max, count) rows, like the readings query, with
    the summarised whole hours read from ``BACnetHourlyStat`` (PostgreSQL)."""
    stats = connection.ops.quote_name(BACnetHourlyStat._meta.db_table)
    readings = connection.ops.quote_name(BACnetReading._meta.db_table)
    cursor.execute(
        f"SELECT min(bucket_start), max(bucket_start) FROM {stats} "  # noqa: S608
        "WHERE point_id = %s AND bucket_start >= %s AND bucket_start + interval '1 hour' <= %s",
        [point_id, _next_hour(start), end],
    )
    first, last = cursor.fetchone()
    # Hours from the statistics, [covered_from, covered_to); readings before and after.
    covered_from = first or end
    covered_to = last + _HOUR if last is not None else end
    cursor.execute(
        f"""
        WITH parts AS (
            SELECT EXTRACT(EPOCH FROM bucket_start)::float8 + 1800 AS t, count AS n,
                   average * count AS total, minimum AS low, maximum AS high
            FROM {stats}
            WHERE point_id = %s AND bucket_start >= %s AND bucket_start < %s
            UNION ALL
            SELECT EXTRACT(EPOCH FROM timestamp)::float8, 1, value, value, value
            FROM {readings}
            WHERE point_id = %s AND value IS NOT NULL AND (
                (timestamp >= %s AND timestamp < %s) OR (timestamp >= %s AND timestamp < %s)
            )
        )
        SELECT CAST(FLOOR((t - %s) / %s) AS INTEGER) AS bucket,
               SUM(t * n) / SUM(n), SUM(total) / SUM(n), MIN(low), MAX(high), SUM(n)
        FROM parts GROUP BY bucket ORDER BY bucket
        """,  # noqa: S608
        [
            point_id, covered_from, covered_to,
            point_id, start, covered_from, covered_to, end,
            start.replace(minute=0, second=0, microsecond=0).timestamp(), width,
        ],
    )  # fmt: skip
    return cursor.fetchall()
