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
from django.db.models import Avg, Count, Max, Min
from django.db.models.functions import Trunc
from django.utils import timezone

from discovery.models import BACnetDailyStat, BACnetHourlyStat, BACnetReading

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
    grouped = (
        readings.annotate(bucket=Trunc("timestamp", period, tzinfo=UTC))
        .values("point_id", "bucket")
        .annotate(
            minimum=Min("value"), maximum=Max("value"), average=Avg("value"), count=Count("value")
        )
        .values_list("point_id", "bucket", "minimum", "maximum", "average", "count")
        .order_by()
    )
    select_sql, params = grouped.query.sql_with_params()
    table = connection.ops.quote_name(model._meta.db_table)
    # Only the table name and the ORM-compiled SELECT are interpolated; values are params.
    # SQLite needs the WHERE to parse INSERT … SELECT … ON CONFLICT unambiguously.
    sql = (
        f"INSERT INTO {table} (point_id, bucket_start, minimum, maximum, average, count) "  # noqa: S608
        f"SELECT * FROM ({select_sql}) AS grouped WHERE TRUE "
        "ON CONFLICT (point_id, bucket_start) DO UPDATE SET "
        "minimum = excluded.minimum, maximum = excluded.maximum, "
        "average = excluded.average, count = excluded.count"
    )
    with transaction.atomic(), connection.cursor() as cursor:
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
