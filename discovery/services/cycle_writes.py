"""One collection cycle's values into the database in bulk: readings inserted once per
(point, timestamp), each point's latest value or error updated. No BACnet here; the
values arrive cleaned by ``storage.store_readings``."""

from __future__ import annotations

import io
from collections.abc import Collection, Sequence
from datetime import datetime

from django.db import connection

from discovery.models import BACnetPoint, BACnetReading

_COPY_ESCAPES = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"})


def _copy_field(value: object) -> str:
    """One field in COPY's text format."""
    if value is None:
        return "\\N"
    if isinstance(value, float):
        return repr(value)
    return str(value).translate(_COPY_ESCAPES)


def lock_points_in_order(point_ids: Collection[int]) -> None:
    """Lock these points' rows in id order for the rest of the transaction. Writers that
    touch several points in one transaction (a COV flush of many 0.1 s steps, a
    subscription renewal, a cycle) take them in one order: no deadlock between them.
    NO KEY UPDATE: new readings and alarms (foreign keys to the point) still go in."""
    if point_ids:
        rows = BACnetPoint.objects.select_for_update(no_key=True).filter(pk__in=point_ids)
        list(rows.order_by("pk").values_list("pk", flat=True))


def write_cycle_postgresql(
    values: Sequence[tuple[int, float | None, str, int | None]],
    errors: Sequence[tuple[int, str]],
    timestamp: datetime,
    now: datetime,
    unchanged: Collection[int] | None = None,
) -> None:
    """The cycle goes to PostgreSQL once (COPY into a temporary table) and the database
    fans it out: readings with INSERT ... SELECT (still ON CONFLICT DO NOTHING), latest
    values with one UPDATE ... FROM. 34-41x the rows/s of bulk_create + bulk_update, whose
    time went to Python building one CASE WHEN expression per row and field
    (bench/RESULTS.md, ingest).

    ``unchanged``: points whose reading only updates the latest value (store on change);
    None: every reading is stored and the last stored one is not tracked."""
    skip = unchanged or ()
    buffer = io.StringIO()
    for point_id, number, text, flags in values:
        keep = "f" if point_id in skip else "t"
        buffer.write(
            f"{point_id}\t{_copy_field(number)}\t{_copy_field(text)}\t{_copy_field(flags)}"
            f"\t\\N\t{keep}\n"
        )
    for point_id, error in errors:
        buffer.write(f"{point_id}\t\\N\t\\N\t\\N\t{_copy_field(error)}\tf\n")
    buffer.seek(0)
    quote = connection.ops.quote_name
    readings = quote(BACnetReading._meta.db_table)
    points = quote(BACnetPoint._meta.db_table)
    with connection.cursor() as cursor:
        # Dropped at commit; dropped first too, for a caller's outer transaction
        # (several cycles stored in one transaction).
        cursor.execute("DROP TABLE IF EXISTS discovery_cycle_stage")
        cursor.execute(
            "CREATE TEMP TABLE discovery_cycle_stage (point_id bigint, value float8, "
            "value_text text, status_flags integer, error text, keep boolean) ON COMMIT DROP"
        )
        cursor.cursor.copy_expert(
            "COPY discovery_cycle_stage (point_id, value, value_text, status_flags, error, "
            "keep) FROM STDIN",
            buffer,
        )
        # Table names come from the models; every value is a parameter.
        cursor.execute(
            f"INSERT INTO {readings} (point_id, timestamp, value, value_text, status_flags) "  # noqa: S608
            "SELECT point_id, %s, value, value_text, status_flags FROM discovery_cycle_stage "
            "WHERE error IS NULL AND keep ON CONFLICT (point_id, timestamp) DO NOTHING",
            [timestamp],
        )
        # The points' rows in id order first: the COV keeper's threads and a cycle write
        # the same points at once, and UPDATE ... FROM locks in join order, which differs
        # between statements (a deadlock, seen between a COV flush and a renewal).
        cursor.execute(
            f"SELECT 1 FROM {points} WHERE id IN (SELECT point_id FROM discovery_cycle_stage) "  # noqa: S608
            "ORDER BY id FOR NO KEY UPDATE"
        )
        if unchanged is not None:
            cursor.execute(
                f"UPDATE {points} AS p SET stored_value = s.value, "  # noqa: S608
                "stored_value_text = s.value_text, stored_status_flags = s.status_flags, "
                "stored_at = %s FROM discovery_cycle_stage AS s "
                "WHERE p.id = s.point_id AND s.error IS NULL AND s.keep",
                [timestamp],
            )
        cursor.execute(
            f"UPDATE {points} AS p SET last_value = s.value, last_value_text = s.value_text, "  # noqa: S608
            "last_status_flags = s.status_flags, last_read_at = %s, last_error = '' "
            "FROM discovery_cycle_stage AS s WHERE p.id = s.point_id AND s.error IS NULL",
            [now],
        )
        if errors:
            cursor.execute(
                f"UPDATE {points} AS p SET last_error = s.error, last_read_at = %s "  # noqa: S608
                "FROM discovery_cycle_stage AS s WHERE p.id = s.point_id AND s.error IS NOT NULL",
                [now],
            )


def write_cycle_portable(
    values: Sequence[tuple[int, float | None, str, int | None]],
    errors: Sequence[tuple[int, str]],
    timestamp: datetime,
    now: datetime,
    unchanged: Collection[int] | None = None,
) -> None:
    """SQLite (the embedded mode): bulk insert, and one prepared UPDATE run per point
    (executemany), which SQLite does fast; bulk_update's CASE WHEN does not scale."""
    skip = unchanged or ()
    kept = [v for v in values if v[0] not in skip]
    BACnetReading.objects.bulk_create(
        [
            BACnetReading(
                point_id=point_id,
                timestamp=timestamp,
                value=number,
                value_text=text,
                status_flags=flags,
            )
            for point_id, number, text, flags in kept
        ],
        batch_size=5000,
        ignore_conflicts=True,
    )
    table = connection.ops.quote_name(BACnetPoint._meta.db_table)
    adapt = connection.ops.adapt_datetimefield_value
    read_at = adapt(now)
    with connection.cursor() as cursor:
        cursor.executemany(
            f"UPDATE {table} SET last_value = %s, last_value_text = %s, "  # noqa: S608
            "last_status_flags = %s, last_read_at = %s, last_error = '' WHERE id = %s",
            [(number, text, flags, read_at, point_id) for point_id, number, text, flags in values],
        )
        cursor.executemany(
            f"UPDATE {table} SET last_error = %s, last_read_at = %s WHERE id = %s",  # noqa: S608
            [(error, read_at, point_id) for point_id, error in errors],
        )
        if unchanged is not None:
            stored_at = adapt(timestamp)
            cursor.executemany(
                f"UPDATE {table} SET stored_value = %s, stored_value_text = %s, "  # noqa: S608
                "stored_status_flags = %s, stored_at = %s WHERE id = %s",
                [(number, text, flags, stored_at, pk) for pk, number, text, flags in kept],
            )
