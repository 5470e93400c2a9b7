"""Faster versions of product functions, measured beside them (not used by the product).

``store_readings_copy`` does what ``discovery.services.storage.store_readings`` does,
with the same cleaning and the same result, but sends the cycle to PostgreSQL once with
``COPY`` into a temporary table and lets the database fan it out: readings with
``INSERT ... SELECT ... ON CONFLICT DO NOTHING`` (still idempotent) and the points'
latest values with one ``UPDATE ... FROM`` (``bulk_update`` builds a ``CASE WHEN`` per
field and row instead). PostgreSQL only; the product would keep its ORM path for SQLite.
"""

from __future__ import annotations

import contextlib
import io
from collections.abc import Iterable, Iterator
from datetime import datetime, timedelta

from django.db import connection, transaction
from django.utils import timezone

from discovery.bacnet_types import DeviceReadResult
from discovery.models import BACnetDevice, BACnetPoint, BACnetReading
from discovery.services.storage import (
    StoredReadings,
    _clean_for,
    clean_number,
    clean_text,
    state_text,
)

POINTS_FILLFACTOR = 50

_ESCAPES = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"})


def _copy_text(value: object) -> str:
    """One field in COPY's text format."""
    if value is None:
        return "\\N"
    if isinstance(value, float):
        return repr(value)
    return str(value).translate(_ESCAPES)


def store_readings_copy(
    results: Iterable[DeviceReadResult],
    points_by_key: dict[tuple[int, str, int], int],
    timestamp: datetime,
    state_texts: dict[int, list[str]] | None = None,
) -> StoredReadings:
    summary = StoredReadings()
    online: list[int] = []
    offline: dict[int, str] = {}
    buffer = io.StringIO()
    write = buffer.write
    now = timezone.now()
    for result in results:
        if result.error and not result.values:
            summary.devices_failed += 1
            offline[result.instance] = clean_text(result.error)
            continue
        summary.devices_ok += 1
        online.append(result.instance)
        for value in result.values:
            point_id = points_by_key.get((result.instance, value.object_type, value.instance))
            if point_id is None:
                continue
            if value.error:
                summary.point_errors += 1
                write(f"{point_id}\t\\N\t\\N\t\\N\t{_copy_text(clean_text(value.error))}\n")
                continue
            number = clean_number(value.value)
            named = state_text(value.object_type, number, (state_texts or {}).get(point_id, ()))
            text = _clean_for(BACnetReading, "value_text", named or value.text)
            if number is None and value.value is not None and not text:
                text = str(value.value)
            write(
                f"{point_id}\t{_copy_text(number)}\t{_copy_text(text)}\t"
                f"{_copy_text(value.status_flags)}\t\\N\n"
            )
            summary.readings += 1
    buffer.seek(0)
    q = connection.ops.quote_name
    readings = q(BACnetReading._meta.db_table)
    points = q(BACnetPoint._meta.db_table)
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("DROP TABLE IF EXISTS bench_cycle_stage")
        cursor.execute(
            "CREATE TEMP TABLE bench_cycle_stage (point_id bigint, value float8, "
            "value_text text, status_flags integer, error text) ON COMMIT DROP"
        )
        cursor.cursor.copy_expert(
            "COPY bench_cycle_stage (point_id, value, value_text, status_flags, error) FROM STDIN",
            buffer,
        )
        cursor.execute(
            f"INSERT INTO {readings} (point_id, timestamp, value, value_text, status_flags) "
            "SELECT point_id, %s, value, value_text, status_flags FROM bench_cycle_stage "
            "WHERE error IS NULL ON CONFLICT (point_id, timestamp) DO NOTHING",
            [timestamp],
        )
        cursor.execute(
            f"UPDATE {points} AS p SET last_value = s.value, last_value_text = s.value_text, "
            "last_status_flags = s.status_flags, last_read_at = %s, last_error = '' "
            "FROM bench_cycle_stage AS s WHERE p.id = s.point_id AND s.error IS NULL",
            [now],
        )
        cursor.execute(
            f"UPDATE {points} AS p SET last_error = s.error, last_read_at = %s "
            "FROM bench_cycle_stage AS s WHERE p.id = s.point_id AND s.error IS NOT NULL",
            [now],
        )
        if online:
            BACnetDevice.objects.filter(device_instance__in=online).update(
                is_online=True, last_seen=now, last_error=""
            )
        for instance, reason in offline.items():
            BACnetDevice.objects.filter(device_instance=instance).update(
                is_online=False, last_error=reason
            )
    return summary


@contextlib.contextmanager
def points_fillfactor(percent: int) -> Iterator[None]:
    """The points table rewritten with free space in every page, then as it was.

    Every cycle rewrites each point's latest value. With free space on the page and no
    indexed column changed, PostgreSQL updates the row in place (a HOT update) instead
    of inserting a new version into every index of the table."""
    table = connection.ops.quote_name(BACnetPoint._meta.db_table)
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT option_value FROM pg_options_to_table("
            "(SELECT reloptions FROM pg_class WHERE relname = %s)) "
            "WHERE option_name = 'fillfactor'",
            [BACnetPoint._meta.db_table],
        )
        row = cursor.fetchone()
        cursor.execute(f"ALTER TABLE {table} SET (fillfactor = {int(percent)})")
        cursor.execute(f"VACUUM FULL {table}")
    try:
        yield
    finally:
        with connection.cursor() as cursor:
            if row is None:
                cursor.execute(f"ALTER TABLE {table} RESET (fillfactor)")
            else:
                cursor.execute(f"ALTER TABLE {table} SET (fillfactor = {int(row[0])})")
            cursor.execute(f"VACUUM FULL {table}")


def downsample_from_hourly(
    point_id: int, start: datetime, end: datetime, buckets: int
) -> list[tuple[int, float, float, float, float, int]]:
    """Chart buckets of [start, end) read from the hourly statistics where they exist.

    For buckets an hour wide or wider (a week or more at 1,000 buckets), the whole hours
    that the rollup has already summarised come from ``BACnetHourlyStat`` (one row per
    hour instead of 60 readings), and only the edges (the partial first hour and the
    hours after the last rolled-up one) from the readings. Averages are weighted by
    each hour's count, so they equal the averages over the readings; the time of an
    hour's readings is taken as its middle. Returns (bucket, mean time, average, min,
    max, count) rows like ``discovery.api.trends.downsample``'s query."""
    from discovery.models import BACnetHourlyStat

    start_s, end_s = start.timestamp(), end.timestamp()
    width = max((end_s - start_s) / max(1, buckets), 1e-3)
    q = connection.ops.quote_name
    stats = q(BACnetHourlyStat._meta.db_table)
    readings = q(BACnetReading._meta.db_table)
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT min(bucket_start), max(bucket_start) FROM {stats} "
            "WHERE point_id = %s AND bucket_start >= date_trunc('hour', %s::timestamptz) "
            "AND bucket_start + interval '1 hour' <= %s",
            [point_id, start, end],
        )
        first, last = cursor.fetchone()
        if first is None or first < start:
            # The first hour is partial: start summarising at the next whole hour.
            first = None if first is None else max(first, _next_hour(start))
        covered_from = first or end
        covered_to = (last + _HOUR) if last is not None and first is not None else end
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
            """,
            [
                point_id,
                covered_from,
                covered_to,
                point_id,
                start,
                covered_from,
                covered_to,
                end,
                start_s,
                width,
            ],
        )
        return cursor.fetchall()


_HOUR = timedelta(hours=1)


def _next_hour(moment: datetime) -> datetime:
    floor = moment.replace(minute=0, second=0, microsecond=0)
    return floor if floor == moment else floor + _HOUR
