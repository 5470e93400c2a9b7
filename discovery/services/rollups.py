"""Hourly and daily statistics, computed by the database and upserted.

One ``INSERT … SELECT … GROUP BY … ON CONFLICT DO UPDATE`` per run: the database groups
the readings of whole buckets (no Python loop over readings), and the upsert makes a
rerun or an overlapping window change nothing. Each run recomputes every bucket that
touches its window from all of that bucket's readings, so readings that arrive late
are counted by the next run whose window covers their bucket.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Literal

from django.db import connection, transaction
from django.db.models.functions import Trunc
from django.utils import timezone

from discovery.models import BACnetDailyStat, BACnetHourlyStat, BACnetReading

Period = Literal["hour", "day"]
STAT_MODELS: dict[str, type[BACnetHourlyStat] | type[BACnetDailyStat]] = {
    "hour": BACnetHourlyStat,
    "day": BACnetDailyStat,
}
BUCKET = {"hour": timedelta(hours=1), "day": timedelta(days=1)}
_EPOCH_SQL = {
    "postgresql": "EXTRACT(EPOCH FROM {col})::float8",
    # SQLite keeps datetimes as UTC text; julianday() reads it.
    "sqlite": "((julianday({col}) - 2440587.5) * 86400.0)",
}


def bucket_floor(moment: datetime, period: Period) -> datetime:
    """The start of the (UTC) bucket that ``moment`` falls in."""
    moment = moment.astimezone(UTC)
    if period == "hour":
        return moment.replace(minute=0, second=0, microsecond=0)
    return moment.replace(hour=0, minute=0, second=0, microsecond=0)


def roll_up(period: Period, start: datetime | None = None, end: datetime | None = None) -> int:
    """Upsert the statistics of every ``period`` bucket overlapping [start, end).

    Without ``start``, all readings. Returns the number of buckets written."""
    model = STAT_MODELS[period]
    readings = BACnetReading.objects.filter(value__isnull=False)
    if start is not None:
        readings = readings.filter(timestamp__gte=bucket_floor(start, period))
    if end is not None:
        last = bucket_floor(end, period)
        if last < end:
            last += BUCKET[period]
        readings = readings.filter(timestamp__lt=last)
    rows = (
        readings.annotate(bucket=Trunc("timestamp", period, tzinfo=UTC))
        .values_list("point_id", "bucket", "value", "timestamp")
        .order_by()
    )
    select_sql, params = rows.query.sql_with_params()
    table = connection.ops.quote_name(model._meta.db_table)
    epoch = _EPOCH_SQL.get(connection.vendor, _EPOCH_SQL["postgresql"])
    t, bucket = epoch.format(col="r.timestamp"), epoch.format(col="r.bucket")
    # Each reading holds until the next one in its bucket, the last until the bucket's
    # end: the time-weighted average of irregular (COV) readings.
    weighted = (
        f"SELECT r.point_id, r.bucket, r.value, COALESCE(LEAD({t}) OVER "  # noqa: S608
        f"(PARTITION BY r.point_id, r.bucket ORDER BY r.timestamp), {bucket} + %s) - {t} AS w "
        f"FROM ({select_sql}) AS r"
    )
    # Only the table name and ORM-compiled SQL are interpolated; values are params.
    # SQLite needs the WHERE to parse INSERT … SELECT … ON CONFLICT unambiguously.
    sql = (
        f"INSERT INTO {table} (point_id, bucket_start, minimum, maximum, average, count, "  # noqa: S608
        "time_average) "
        "SELECT point_id, bucket, MIN(value), MAX(value), AVG(value), COUNT(value), "
        "SUM(value * w) / NULLIF(SUM(w), 0) "
        f"FROM ({weighted}) AS weighted WHERE TRUE GROUP BY point_id, bucket "
        "ON CONFLICT (point_id, bucket_start) DO UPDATE SET "
        "minimum = excluded.minimum, maximum = excluded.maximum, "
        "average = excluded.average, count = excluded.count, "
        "time_average = excluded.time_average"
    )
    with transaction.atomic(), connection.cursor() as cursor:
        # The bucket length comes first: the SELECT list precedes the inner query.
        cursor.execute(sql, [BUCKET[period].total_seconds(), *params])
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
