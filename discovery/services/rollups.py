"""Hourly and daily statistics, computed by the database and upserted.

One ``INSERT … SELECT … GROUP BY … ON CONFLICT DO UPDATE`` per run: the database groups
the readings of whole buckets (no Python loop over readings), and the upsert makes a
rerun or an overlapping window change nothing. Each run recomputes every bucket that
touches its window from all of that bucket's readings, so readings that arrive late
are counted by the next run whose window covers their bucket.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from discovery.models import BACnetDailyStat, BACnetHourlyStat, BACnetPoint, BACnetReading
from discovery.services.time_weighted import (
    CONSTANTS_SQL,
    buckets_sql,
    sql_functions,
    with_hold_limit,
)

Period = Literal["hour", "day"]
STAT_MODELS: dict[str, type[BACnetHourlyStat] | type[BACnetDailyStat]] = {
    "hour": BACnetHourlyStat,
    "day": BACnetDailyStat,
}
BUCKET = {"hour": timedelta(hours=1), "day": timedelta(days=1)}


def bucket_floor(moment: datetime, period: Period) -> datetime:
    """The start of the (UTC) bucket that ``moment`` falls in."""
    moment = moment.astimezone(UTC)
    if period == "hour":
        return moment.replace(minute=0, second=0, microsecond=0)
    return moment.replace(hour=0, minute=0, second=0, microsecond=0)


_FAR_FUTURE = datetime(9999, 1, 1, tzinfo=UTC)
_BUCKET_START_SQL = {
    "postgresql": "to_timestamp(b * k.w)",
    # Django's SQLite text form of an aware datetime (UTC), so the upsert's key matches.
    "sqlite": "strftime('%%Y-%%m-%%d %%H:%%M:%%S', b * k.w, 'unixepoch')",
}


def _holds_sql() -> tuple[str, list[Any]]:
    """Every point's hold limit (``time_weighted.with_hold_limit``), as SQL."""
    points = with_hold_limit(BACnetPoint.objects.order_by())
    holds = points.values_list("pk", "hold_s")  # type: ignore[misc]  # an annotation
    sql, params = holds.query.sql_with_params()
    return sql, list(params)


def roll_up(period: Period, start: datetime | None = None, end: datetime | None = None) -> int:
    """Upsert the statistics of every ``period`` bucket overlapping [start, end).

    Without ``start``, all readings. Returns the number of buckets written.

    Time-weighted (``time_weighted``): each value holds until the next reading or its
    point's hold limit, and the value held into the window from the last reading before
    it counts too, so an hour with no reading but a held value gets a row with count 0
    whose figures are that value. Minimum and maximum include the held value; ``average``
    is the plain mean of the bucket's readings (the held value when there are none);
    ``covered_s`` the seconds a value was known. Nothing holds past now."""
    model = STAT_MODELS[period]
    width = BUCKET[period].total_seconds()
    now = timezone.now()
    lo = bucket_floor(start, period) if start is not None else None
    hi = _FAR_FUTURE  # without ``end``, every reading, even one stamped ahead of now
    if end is not None:
        hi = bucket_floor(end, period)
        hi += BUCKET[period] if hi < end else timedelta(0)
    epoch = sql_functions()[0]
    quote = connection.ops.quote_name
    table, readings = quote(model._meta.db_table), quote(BACnetReading._meta.db_table)
    t = epoch.format(col="r.timestamp")
    adapt = connection.ops.adapt_datetimefield_value
    holds, hold_params = _holds_sql()
    in_window = "r.timestamp < %s" + (" AND r.timestamp >= %s" if lo is not None else "")
    window_params = [adapt(hi)] + ([adapt(lo)] if lo is not None else [])
    source = (
        f"SELECT r.point_id AS p, {t} AS t, r.timestamp AS ts, r.value AS v, 1 AS fresh, "  # noqa: S608
        "h.hold AS hold "
        f"FROM {readings} AS r JOIN holds AS h ON h.p = r.point_id WHERE {in_window}"
    )
    source_params: list[Any] = list(window_params)
    if lo is not None:
        # The reading held into the window: each point's last before it (an index probe
        # per point, no further back than the longest hold).
        source += (
            f" UNION ALL SELECT r.point_id, {t}, r.timestamp, r.value, 0, h.hold FROM holds AS h "  # noqa: S608
            f"JOIN {readings} AS r ON r.point_id = h.p AND r.timestamp = ("
            f"SELECT MAX(r2.timestamp) FROM {readings} AS r2 WHERE r2.point_id = h.p "
            "AND r2.timestamp < %s AND r2.timestamp >= %s)"
        )
        source_params += [adapt(lo), adapt(lo - timedelta(seconds=settings.BACNET_HOLD_MAX_S))]
    _, least, greatest = sql_functions()
    # Where each value ends: the point's next reading, its hold limit or now, whichever
    # comes first; clipped to the window, then cut into buckets (time_weighted).
    segments = f"""
        SELECT p, {greatest}(t, k.lo) AS a, v, e, fresh AS n FROM (
            SELECT s.p, s.t, s.v, s.fresh,
                   {least}({least}(COALESCE(LEAD(s.t) OVER (PARTITION BY s.p ORDER BY s.ts),
                                            CASE WHEN s.t < k.now THEN k.now ELSE k.hi END),
                                   s.t + s.hold), k.hi) AS e
            FROM ({source}) AS s CROSS JOIN k
        ) AS ends CROSS JOIN k
        WHERE v IS NOT NULL AND e > {greatest}(t, k.lo)
    """  # noqa: S608
    bucket_start = _BUCKET_START_SQL.get(connection.vendor, _BUCKET_START_SQL["postgresql"])
    time_average = "SUM(vd) / SUM(d)"
    # Only table names and ORM-compiled SQL are interpolated; values are params.
    # SQLite needs the WHERE to parse INSERT … SELECT … ON CONFLICT unambiguously.
    sql = (
        f"INSERT INTO {table} (point_id, bucket_start, minimum, maximum, average, count, "  # noqa: S608
        "time_average, covered_s) "
        # MATERIALIZED: each point's hold limit once, not once per reading (inlined,
        # PostgreSQL ran its keeping-rule subqueries a million times for 1 M readings).
        f"WITH RECURSIVE holds (p, hold) AS MATERIALIZED ({holds}), {CONSTANTS_SQL}, "
        f"{buckets_sql(segments)} "
        f"SELECT p, {bucket_start}, MIN(low), MAX(high), "
        f"COALESCE(SUM(vsum) / NULLIF(SUM(n), 0), {time_average}), "
        f"SUM(n), {time_average}, SUM(d) "
        "FROM part CROSS JOIN k WHERE d > 0 GROUP BY p, b, k.w "
        "ON CONFLICT (point_id, bucket_start) DO UPDATE SET "
        "minimum = excluded.minimum, maximum = excluded.maximum, "
        "average = excluded.average, count = excluded.count, "
        "time_average = excluded.time_average, covered_s = excluded.covered_s"
    )
    lo_s = lo.timestamp() if lo is not None else 0.0
    params = [*hold_params, lo_s, hi.timestamp(), 0.0, width, now.timestamp(), *source_params]
    with transaction.atomic(), connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            # JIT compiling this query's many expressions took 4.7 s of 11 s for 1 M
            # readings (bench/RESULTS.md, rollups): off for this transaction.
            cursor.execute("SET LOCAL jit = off")
        cursor.execute(sql, params)
        return cursor.rowcount


def _catch_up_start(period: Period, lookback: timedelta, now: datetime) -> datetime | None:
    """Where a scheduled rollup starts: ``lookback`` before now (late readings), or the
    newest bucket already written if that is older (the rollups were down for a while:
    catch up). None when nothing was ever rolled up: everything."""
    newest = (
        STAT_MODELS[period]
        .objects.order_by("-bucket_start")
        .values_list("bucket_start", flat=True)
        .first()
    )
    if newest is None:
        return None
    return min(now - lookback, newest)


def calculate_hourly_stats(lookback_hours: int = 3, now: datetime | None = None) -> int:
    """Recompute the last few hours' buckets (late readings included), and any hours
    missed while the rollups were not running."""
    now = now or timezone.now()
    return roll_up("hour", _catch_up_start("hour", timedelta(hours=lookback_hours), now), now)


def calculate_daily_stats(lookback_days: int = 2, now: datetime | None = None) -> int:
    now = now or timezone.now()
    return roll_up("day", _catch_up_start("day", timedelta(days=lookback_days), now), now)
