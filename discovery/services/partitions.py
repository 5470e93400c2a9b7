"""Readings partitioned by time on PostgreSQL: a partition per day (or week), made ahead.

The readings table is declaratively range-partitioned on ``timestamp`` (migration 0010).
A DEFAULT partition catches a reading for a time without its partition, so a cycle never
fails for that; making the missing partition later moves those rows out of the default
first (PostgreSQL refuses to attach a range the default partition holds rows of).
Uniqueness per (point, timestamp) holds in every partition, the partition key being
part of it, so a retried cycle still stores nothing twice.

Dropping a partition is how old raw data leaves (milliseconds, against a DELETE that
rewrites and vacuums): see ``discovery.services.retention``. SQLite keeps a plain table
and none of this applies there. Plain SQL only: the migration calls these functions too.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import connection, transaction

TABLE = "discovery_bacnetreading"
DEFAULT_PARTITION = f"{TABLE}_default"
LEGACY_TABLE = f"{TABLE}_legacy"
_BOUND = re.compile(r"FROM \('([^']+)'\) TO \('([^']+)'\)")


@dataclass(frozen=True)
class Partition:
    name: str
    start: datetime
    end: datetime


def is_partitioned() -> bool:
    """True on PostgreSQL once migration 0010 turned the readings into a partitioned table."""
    if connection.vendor != "postgresql":
        return False
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT c.relkind FROM pg_class c WHERE c.oid = to_regclass(%s)",
            [TABLE],
        )
        row = cursor.fetchone()
    return bool(row) and row[0] == "p"


def partition_days() -> int:
    """Days per partition: 1 (day) or 7 (week), from ``BACNET_READINGS_PARTITION``."""
    return 7 if settings.BACNET_READINGS_PARTITION == "week" else 1


def period_start(moment: datetime, days: int) -> datetime:
    """The start (UTC midnight; Monday for weeks) of the partition ``moment`` falls in."""
    day = moment.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    if days == 7:
        day -= timedelta(days=day.weekday())
    return day


def _parse(bound: str) -> datetime:
    text = bound if re.search(r"[+-]\d\d:\d\d$", bound) else bound + ":00"
    return datetime.fromisoformat(text).astimezone(UTC)


def partitions() -> list[Partition]:
    """The range partitions of the readings table, oldest first (not the default one)."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT c.relname, pg_get_expr(c.relpartbound, c.oid) FROM pg_inherits i "
            "JOIN pg_class c ON c.oid = i.inhrelid WHERE i.inhparent = to_regclass(%s)",
            [TABLE],
        )
        rows = cursor.fetchall()
    found = []
    for name, bound in rows:
        match = _BOUND.search(bound or "")
        if match:
            found.append(Partition(name, _parse(match.group(1)), _parse(match.group(2))))
    return sorted(found, key=lambda p: p.start)


def _ranges(start: datetime, end: datetime, days: int) -> Iterator[tuple[datetime, datetime]]:
    lower = period_start(start, days)
    while lower < end:
        yield lower, lower + timedelta(days=days)
        lower += timedelta(days=days)


def create_partition(start: datetime, end: datetime) -> str:
    """Make the partition [start, end), taking over the rows the default partition holds
    for that range, in one transaction."""
    name = f"{TABLE}_p{start:%Y%m%d}"
    with transaction.atomic(), connection.cursor() as cursor:
        # Names come from dates; bounds are parameters rendered by the driver.
        cursor.execute(
            f"CREATE TABLE {name} (LIKE {TABLE} INCLUDING DEFAULTS INCLUDING CONSTRAINTS)"
        )
        cursor.execute(
            f"WITH moved AS (DELETE FROM {DEFAULT_PARTITION} "  # noqa: S608
            "WHERE timestamp >= %s AND timestamp < %s RETURNING *) "
            f"INSERT INTO {name} SELECT * FROM moved",
            [start, end],
        )
        cursor.execute(
            f"ALTER TABLE {TABLE} ATTACH PARTITION {name} FOR VALUES FROM (%s) TO (%s)",
            [start, end],
        )
    return name


def ensure_partitions(start: datetime, end: datetime, days: int | None = None) -> list[str]:
    """Partitions covering [start, end) where none exists yet. A range that overlaps an
    existing partition (made with another size) is left to it and the default."""
    days = days or partition_days()
    existing = partitions()
    created = []
    for lower, upper in _ranges(start, end, days):
        if any(p.start < upper and lower < p.end for p in existing):
            continue
        created.append(create_partition(lower, upper))
    return created


def ensure_ahead(now: datetime, ahead_days: int | None = None) -> list[str]:
    """Today's partition and those of the next ``ahead_days`` days (the scheduled task)."""
    ahead = settings.BACNET_READINGS_PARTITIONS_AHEAD_DAYS if ahead_days is None else ahead_days
    today = period_start(now, 1)
    return ensure_partitions(today, today + timedelta(days=ahead + 1))


def create_partitioned_table(cursor: Any) -> None:
    """Rename the plain table to ``…_legacy`` and create the partitioned one in its place,
    with the same columns, constraint and index names (Django's state does not change).
    Idempotent: does nothing once the table is partitioned."""
    cursor.execute("SELECT relkind FROM pg_class WHERE oid = to_regclass(%s)", [TABLE])
    row = cursor.fetchone()
    if row and row[0] == "p":
        return
    cursor.execute(f"ALTER TABLE {TABLE} RENAME TO {LEGACY_TABLE}")
    cursor.execute(
        f"ALTER TABLE {LEGACY_TABLE} RENAME CONSTRAINT {TABLE}_unique_point_time "
        f"TO {LEGACY_TABLE}_unique_point_time"
    )
    cursor.execute(f"ALTER INDEX discovery_reading_time RENAME TO {LEGACY_TABLE}_time")
    cursor.execute(
        f"ALTER TABLE {LEGACY_TABLE} RENAME CONSTRAINT {TABLE}_pkey TO {LEGACY_TABLE}_pkey"
    )
    cursor.execute(f"CREATE SEQUENCE {TABLE}_part_id_seq AS bigint")
    cursor.execute(
        f"SELECT setval('{TABLE}_part_id_seq', "  # noqa: S608
        f"COALESCE((SELECT max(id) FROM {LEGACY_TABLE}), 0) + 1, false)"
    )
    # The primary key must hold the partition key: (id, timestamp). Ids still come from
    # one sequence, so they stay unique; Django reads and writes the table as before.
    cursor.execute(
        f"""CREATE TABLE {TABLE} (
            id bigint NOT NULL DEFAULT nextval('{TABLE}_part_id_seq'),
            timestamp timestamp with time zone NOT NULL,
            value double precision NULL,
            value_text varchar(255) NOT NULL,
            status_flags smallint NULL CHECK (status_flags >= 0),
            point_id bigint NOT NULL REFERENCES discovery_bacnetpoint (id)
                DEFERRABLE INITIALLY DEFERRED,
            CONSTRAINT {TABLE}_pkey PRIMARY KEY (id, timestamp),
            CONSTRAINT {TABLE}_unique_point_time UNIQUE (point_id, timestamp)
        ) PARTITION BY RANGE (timestamp)"""
    )
    cursor.execute(f"ALTER SEQUENCE {TABLE}_part_id_seq OWNED BY {TABLE}.id")
    # A btree on time as before: the readings API pages all points in time order, which
    # an ordered scan of each partition's btree serves (a BRIN index could not).
    cursor.execute(f"CREATE INDEX discovery_reading_time ON {TABLE} (timestamp)")
    cursor.execute(f"CREATE TABLE {DEFAULT_PARTITION} PARTITION OF {TABLE} DEFAULT")


def create_plain_table(cursor: Any) -> None:
    """The reverse of ``create_partitioned_table``: every reading copied into one plain
    table as before migration 0010 (for going back; a big table takes a while)."""
    cursor.execute("SELECT relkind FROM pg_class WHERE oid = to_regclass(%s)", [TABLE])
    row = cursor.fetchone()
    if not row or row[0] != "p":
        return
    plain = f"{TABLE}_plain"
    cursor.execute(
        f"""CREATE TABLE {plain} (
            id bigint GENERATED BY DEFAULT AS IDENTITY,
            timestamp timestamp with time zone NOT NULL,
            value double precision NULL,
            value_text varchar(255) NOT NULL,
            status_flags smallint NULL CHECK (status_flags >= 0),
            point_id bigint NOT NULL REFERENCES discovery_bacnetpoint (id)
                DEFERRABLE INITIALLY DEFERRED
        )"""
    )
    cursor.execute(
        f"INSERT INTO {plain} (id, timestamp, value, value_text, status_flags, point_id) "  # noqa: S608
        f"SELECT id, timestamp, value, value_text, status_flags, point_id FROM {TABLE}"
    )
    # The copied rows' deferred foreign-key checks must run before the table changes.
    cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
    cursor.execute(f"DROP TABLE {TABLE} CASCADE")
    cursor.execute(f"DROP TABLE IF EXISTS {LEGACY_TABLE}")
    cursor.execute(f"ALTER TABLE {plain} RENAME TO {TABLE}")
    cursor.execute(f"ALTER TABLE {TABLE} ADD CONSTRAINT {TABLE}_pkey PRIMARY KEY (id)")
    cursor.execute(
        f"ALTER TABLE {TABLE} ADD CONSTRAINT {TABLE}_unique_point_time UNIQUE (point_id, timestamp)"
    )
    cursor.execute(f"CREATE INDEX discovery_reading_time ON {TABLE} (timestamp)")
    cursor.execute(
        f"SELECT setval(pg_get_serial_sequence('{TABLE}', 'id'), "  # noqa: S608
        f"COALESCE((SELECT max(id) FROM {TABLE}), 0) + 1, false)"
    )


def move_legacy_batch(batch_size: int) -> int:
    """Move up to ``batch_size`` of the oldest legacy rows into the partitioned table, in
    one transaction: an interruption loses nothing and the next run goes on from there.
    Returns the rows moved (0: the legacy table is empty or gone)."""
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("SELECT to_regclass(%s)", [LEGACY_TABLE])
        if cursor.fetchone()[0] is None:
            return 0
        cursor.execute(
            f"WITH moved AS (DELETE FROM {LEGACY_TABLE} WHERE id IN "  # noqa: S608
            f"(SELECT id FROM {LEGACY_TABLE} ORDER BY id LIMIT %s) RETURNING *), "
            f"kept AS (INSERT INTO {TABLE} "
            "(id, timestamp, value, value_text, status_flags, point_id) "
            "SELECT id, timestamp, value, value_text, status_flags, point_id FROM moved "
            "ON CONFLICT DO NOTHING) SELECT count(*) FROM moved",
            [batch_size],
        )
        return int(cursor.fetchone()[0])


def migrate_legacy(batch_size: int = 50_000, max_batches: int | None = None) -> int:
    """Move the rows of the pre-partitioning table into partitions, batch by batch, and
    drop the emptied legacy table. Resumable: run it again after an interruption.
    ``max_batches`` stops early (tests, or an operator spreading the work). Returns the
    rows moved by this call."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT to_regclass(%s)", [LEGACY_TABLE])
        if cursor.fetchone()[0] is None:
            return 0
        cursor.execute(f"SELECT min(timestamp), max(timestamp) FROM {LEGACY_TABLE}")  # noqa: S608
        oldest, newest = cursor.fetchone()
    if oldest is not None:
        # Partitions first, so the moved rows do not all pile into the default one.
        ensure_partitions(oldest, newest + timedelta(microseconds=1))
    moved = batches = 0
    while max_batches is None or batches < max_batches:
        count = move_legacy_batch(batch_size)
        moved += count
        batches += 1
        if count < batch_size:
            with connection.cursor() as cursor:
                cursor.execute(f"SELECT 1 FROM {LEGACY_TABLE} LIMIT 1")  # noqa: S608
                if cursor.fetchone() is None:
                    cursor.execute(f"DROP TABLE {LEGACY_TABLE}")
            break
    return moved
