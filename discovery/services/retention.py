"""Keeping history within its retention: partitions made ahead, old raw data dropped once
its statistics exist, old statistics deleted.

Run by the scheduled ``maintain_readings`` task on ``default`` (and the database
backend's worker loop). Raw readings leave by whole partitions on PostgreSQL, which is
immediate and leaves no dead rows; SQLite deletes rows.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from discovery.models import BACnetDailyStat, BACnetHourlyStat, BACnetReading
from discovery.services import partitions


@dataclass
class Maintenance:
    created: list[str] = field(default_factory=list)
    dropped: list[str] = field(default_factory=list)
    kept_for_statistics: list[str] = field(default_factory=list)
    raw_rows_deleted: int = 0
    stats_deleted: int = 0


def raw_cutoff(now: datetime | None = None) -> datetime | None:
    """The time before which raw readings are gone (or going); None: all are kept."""
    days = settings.BACNET_RETENTION_RAW_DAYS
    if not days:
        return None
    return (now or timezone.now()) - timedelta(days=days)


def statistics_cover(until: datetime) -> bool:
    """Both rollups have run past ``until``: every bucket before it is written (a rollup
    run recomputes all buckets from the newest one it finds onwards)."""
    for model, width in (
        (BACnetHourlyStat, timedelta(hours=1)),
        (BACnetDailyStat, timedelta(days=1)),
    ):
        newest = (
            model.objects.order_by("-bucket_start").values_list("bucket_start", flat=True).first()
        )
        if newest is None or newest + width < until:
            return False
    return True


def _has_numeric_readings_before(until: datetime) -> bool:
    return BACnetReading.objects.filter(timestamp__lt=until, value__isnull=False).exists()


def drop_old_readings(now: datetime | None = None) -> Maintenance:
    """Drop the raw readings older than the retention, partition by partition, each only
    when the hourly and daily statistics cover it."""
    done = Maintenance()
    cutoff = raw_cutoff(now)
    if cutoff is None:
        return done
    if partitions.is_partitioned():
        for part in partitions.partitions():
            if part.end > cutoff:
                break
            if not statistics_cover(part.end) and _partition_has_numbers(part.name):
                done.kept_for_statistics.append(part.name)
                continue
            with transaction.atomic(), connection.cursor() as cursor:
                # The point foreign key is deferred: checks still pending in a caller's
                # transaction would forbid the drop.
                cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
                cursor.execute(f"DROP TABLE {part.name}")
            done.dropped.append(part.name)
        # Rows the default partition caught, older than the cutoff, go by DELETE below.
    if statistics_cover(cutoff) or not _has_numeric_readings_before(cutoff):
        done.raw_rows_deleted, _ = BACnetReading.objects.filter(timestamp__lt=cutoff).delete()
    return done


def _partition_has_numbers(name: str) -> bool:
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT 1 FROM {name} WHERE value IS NOT NULL LIMIT 1")  # noqa: S608
        return cursor.fetchone() is not None


def delete_old_statistics(now: datetime | None = None) -> int:
    """Hourly and daily statistics older than their own retention."""
    now = now or timezone.now()
    deleted = 0
    for model, days in (
        (BACnetHourlyStat, settings.BACNET_RETENTION_HOURLY_DAYS),
        (BACnetDailyStat, settings.BACNET_RETENTION_DAILY_DAYS),
    ):
        if days:
            count, _ = model.objects.filter(bucket_start__lt=now - timedelta(days=days)).delete()
            deleted += count
    return deleted


def maintain_readings(now: datetime | None = None) -> Maintenance:
    """The scheduled pass: partitions ahead, old raw readings out, old statistics out."""
    now = now or timezone.now()
    created = partitions.ensure_ahead(now) if partitions.is_partitioned() else []
    done = drop_old_readings(now)
    done.created = created
    done.stats_deleted = delete_old_statistics(now)
    return done
