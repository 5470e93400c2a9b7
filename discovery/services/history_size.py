"""How big the readings history is, and how fast it grows, without counting the big table.

Rows and bytes come from the catalog (PostgreSQL's own estimate, ``reltuples``, and
``pg_total_relation_size`` over the partitions); rows per day, per point and per device
come from the daily statistics, whose ``count`` is the day's numeric readings (text-only
readings are not in them). Bytes per point are its rows times the table's bytes per
reading. Counting 100 million rows on each page load is what this avoids.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.db import connection
from django.db.models import Sum
from django.utils import timezone

from discovery.models import BACnetDailyStat, BACnetReading
from discovery.services import partitions


def table_size() -> tuple[int, int | None]:
    """(rows, bytes) of the readings table with its indexes; rows estimated on
    PostgreSQL, counted on SQLite (where bytes are not known: None)."""
    if connection.vendor != "postgresql":
        return BACnetReading.objects.count(), None
    table = BACnetReading._meta.db_table
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT COALESCE(sum(GREATEST(c.reltuples, 0)), 0), "
            "COALESCE(sum(pg_total_relation_size(c.oid)), 0) FROM pg_class c "
            "WHERE c.oid = to_regclass(%s) OR c.oid IN "
            "(SELECT inhrelid FROM pg_inherits WHERE inhparent = to_regclass(%s))",
            [table, table],
        )
        rows, size = cursor.fetchone()
    return int(rows), int(size)


def history_size(days: int = 14, top: int = 20) -> dict[str, Any]:
    """The readings history: total rows and bytes, rows per day over the last ``days``
    days, and the ``top`` points and devices by rows over those days."""
    rows, size = table_size()
    per_reading = (size / rows) if size and rows else None
    since = timezone.now() - timedelta(days=days)
    recent = BACnetDailyStat.objects.filter(bucket_start__gte=since)
    per_day = list(
        recent.values("bucket_start").annotate(rows=Sum("count")).order_by("bucket_start")
    )
    growth = sum(d["rows"] for d in per_day) / max(len(per_day), 1)

    def with_bytes(entries: list[dict[str, Any]]) -> list[dict[str, Any]]:
        for entry in entries:
            entry["bytes"] = round(entry["rows"] * per_reading) if per_reading else None
        return entries

    points = recent.values("point_id", "point__name", "point__device__device_instance")
    devices = recent.values("point__device__device_instance", "point__device__name")
    return {
        "rows": rows,
        "bytes": size,
        "bytes_per_reading": round(per_reading, 1) if per_reading else None,
        "partitioned": partitions.is_partitioned(),
        "partitions": len(partitions.partitions()) if partitions.is_partitioned() else 0,
        "days": days,
        "rows_per_day": round(growth),
        "bytes_per_day": round(growth * per_reading) if per_reading else None,
        "per_day": with_bytes(
            [{"day": d["bucket_start"].date().isoformat(), "rows": d["rows"]} for d in per_day]
        ),
        "points": with_bytes(
            [
                {
                    "point": p["point_id"],
                    "name": p["point__name"],
                    "device_instance": p["point__device__device_instance"],
                    "rows": p["rows"],
                }
                for p in points.annotate(rows=Sum("count")).order_by("-rows")[:top]
            ]
        ),
        "devices": with_bytes(
            [
                {
                    "device_instance": d["point__device__device_instance"],
                    "name": d["point__device__name"],
                    "rows": d["rows"],
                }
                for d in devices.annotate(rows=Sum("count")).order_by("-rows")[:top]
            ]
        ),
    }
