"""Rollups: hourly and daily statistics over N readings, and the incremental last hour.

The product is ``discovery.services.rollups`` (one ``INSERT ... SELECT ... GROUP BY ...
ON CONFLICT DO UPDATE`` per run). The baseline is the obvious Python loop over the same
readings (fetch, aggregate in a dict, upsert the buckets), run on the first tenth of
the time span and scaled to all N readings."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from django.db import transaction
from django.utils import timezone

from bench.common import (
    Options,
    PartResult,
    Row,
    Stat,
    clear_all_data,
    log,
    repeat,
    seconds_stat,
    thousands,
    truncate,
)
from bench.data import fill_readings, make_devices
from discovery.models import BACnetDailyStat, BACnetHourlyStat, BACnetPoint, BACnetReading
from discovery.services.rollups import calculate_hourly_stats, roll_up

TITLE = "Rollups: hourly and daily statistics"
POINTS = 1000
STEP = timedelta(minutes=1)
FULL_READINGS = 10_000_000
DEFAULT_READINGS = 1_000_000
HOURLY_TARGET_S = 10.0  # at 10 M readings; scaled linearly for smaller runs
INCREMENTAL_TARGET_S = 1.0
SLICE = 10  # the Python loop runs over 1/SLICE of the readings


def _data(total: int) -> tuple[int, datetime, datetime]:
    """POINTS points with total/POINTS one-minute readings each, ending now. Reuses
    the data of an earlier run of the same size. Returns (rows, first, end)."""
    per_point = total // POINTS
    have_points = BACnetPoint.objects.count()
    have = BACnetReading.objects.count() if have_points == POINTS else -1
    if have == per_point * POINTS:
        first = BACnetReading.objects.order_by("timestamp").values_list("timestamp", flat=True)[0]
        last = BACnetReading.objects.order_by("-timestamp").values_list("timestamp", flat=True)[0]
        log(f"rollups: reusing {have:,} readings")
        return have, first, last + STEP
    log(f"rollups: generating {per_point * POINTS:,} readings")
    clear_all_data()
    point_ids = make_devices(POINTS // 100, 100)
    end = timezone.now().replace(second=0, microsecond=0)
    rows = fill_readings(point_ids, per_point, end, STEP)
    return rows, end - STEP * per_point, end


def python_rollup(start: datetime, end: datetime) -> int:
    """Hourly buckets of [start, end) computed in Python, upserted like the product."""
    buckets: dict[tuple[int, datetime], list[float]] = {}
    rows = (
        BACnetReading.objects.filter(timestamp__gte=start, timestamp__lt=end, value__isnull=False)
        .values_list("point_id", "timestamp", "value")
        .iterator(chunk_size=20_000)
    )
    for point_id, moment, value in rows:
        if value is None:  # excluded by the query; says so to the type checker
            continue
        key = (point_id, moment.astimezone(UTC).replace(minute=0, second=0, microsecond=0))
        bucket = buckets.get(key)
        if bucket is None:
            buckets[key] = [value, value, value, 1]
        else:
            if value < bucket[0]:
                bucket[0] = value
            if value > bucket[1]:
                bucket[1] = value
            bucket[2] += value
            bucket[3] += 1
    stats = [
        BACnetHourlyStat(
            point_id=point_id,
            bucket_start=bucket_start,
            minimum=low,
            maximum=high,
            average=total / count,
            count=count,
        )
        for (point_id, bucket_start), (low, high, total, count) in buckets.items()
    ]
    with transaction.atomic():
        BACnetHourlyStat.objects.bulk_create(
            stats,
            batch_size=5000,
            update_conflicts=True,
            unique_fields=["point", "bucket_start"],
            update_fields=["minimum", "maximum", "average", "count"],
        )
    return len(stats)


def run(options: Options) -> PartResult:
    result = PartResult("rollups", TITLE)
    total = FULL_READINGS if options.full else DEFAULT_READINGS
    runs = options.repeats(3)
    rows, first, end = _data(total)
    size = f"{thousands(rows)} readings ({POINTS:,} points x {rows // POINTS:,} minutes)"
    scale = total / FULL_READINGS
    hourly_target = HOURLY_TARGET_S * scale

    log("rollups: Python loop on a slice")
    slice_end = first + (end - first) / SLICE
    slice_rows = BACnetReading.objects.filter(timestamp__lt=slice_end).count()
    python = repeat(
        lambda: python_rollup(first, slice_end), runs, before=lambda: truncate(BACnetHourlyStat)
    )
    python_scaled = Stat([s * rows / slice_rows for s, _ in python])

    log("rollups: full hourly")
    hourly = repeat(lambda: roll_up("hour"), runs, before=lambda: truncate(BACnetHourlyStat))
    hourly_buckets = hourly[-1][1]
    log("rollups: hourly rerun over existing buckets")
    rerun = repeat(lambda: roll_up("hour"), runs)
    log("rollups: full daily")
    daily = repeat(lambda: roll_up("day"), runs, before=lambda: truncate(BACnetDailyStat))
    log("rollups: incremental")
    last_hour = repeat(lambda: calculate_hourly_stats(lookback_hours=1, now=end), max(runs, 5))
    scheduled = repeat(lambda: calculate_hourly_stats(now=end), max(runs, 5))

    target_text = f"<= {hourly_target:.3g} s" + (
        "" if scale == 1 else f" (10 s at 10 M, scaled x{scale:g})"
    )
    python_name = f"Python loop on {thousands(slice_rows)} readings, scaled"
    result.rows += [
        Row(
            "hourly rollup, all readings (first run)",
            f"{size}; {hourly_buckets:,} buckets",
            "s",
            seconds_stat(hourly),
            python_name,
            python_scaled,
            target_text,
            seconds_stat(hourly).median <= hourly_target,
        ),
        Row(
            "hourly rollup, all readings (rerun: every bucket updated)",
            size,
            "s",
            seconds_stat(rerun),
            python_name,
            python_scaled,
            target_text,
            seconds_stat(rerun).median <= hourly_target,
        ),
        Row(
            "daily rollup, all readings",
            size,
            "s",
            seconds_stat(daily),
        ),
        Row(
            "incremental: last hour (lookback_hours=1)",
            f"{POINTS:,} points, {thousands(rows)} readings in the table",
            "s",
            seconds_stat(last_hour),
            target=f"<= {INCREMENTAL_TARGET_S:g} s",
            met=seconds_stat(last_hour).median <= INCREMENTAL_TARGET_S,
        ),
        Row(
            "incremental: the scheduled run (lookback_hours=3)",
            f"{POINTS:,} points, {thousands(rows)} readings in the table",
            "s",
            seconds_stat(scheduled),
            target=f"<= {INCREMENTAL_TARGET_S:g} s",
            met=seconds_stat(scheduled).median <= INCREMENTAL_TARGET_S,
        ),
    ]
    result.notes.append(
        f"Readings: one a minute per point, ending at the time of the run. The Python loop "
        f"fetches (point, time, value) of the first 1/{SLICE} of the span with a server-side "
        "cursor, aggregates per (point, hour) in a dict and upserts with bulk_create; its "
        "time is multiplied by N / slice rows."
    )
    return result
