"""Synthetic devices, points and readings for the database-only parts.

Readings are generated inside PostgreSQL (``generate_series``): ten million rows are
loaded in about a minute without crossing the Python boundary row by row."""

from __future__ import annotations

from datetime import datetime, timedelta

from django.db import connection
from django.utils import timezone

from bench.common import analyze
from discovery.models import BACnetDevice, BACnetPoint, BACnetReading

OBJECT_TYPES = ["analog-input", "analog-value", "binary-input", "multi-state-value"]


def make_devices(count: int, points_per_device: int, first_instance: int = 1001) -> list[int]:
    """``count`` online devices with ``points_per_device`` points each. Returns point ids
    in (device, object) order."""
    now = timezone.now()
    devices = BACnetDevice.objects.bulk_create(
        [
            BACnetDevice(
                device_instance=first_instance + k,
                address=f"127.0.0.1:{40000 + k % 20000}",
                name=f"Bench device {first_instance + k}",
                vendor_id=999,
                vendor_name="Bench",
                model_name="BENCH-1",
                max_apdu_length=1476,
                segmentation="segmented-both",
                last_seen=now,
                first_seen=now,
            )
            for k in range(count)
        ],
        batch_size=1000,
    )
    points = []
    for device in devices:
        for k in range(points_per_device):
            object_type = OBJECT_TYPES[k % len(OBJECT_TYPES)]
            points.append(
                BACnetPoint(
                    device=device,
                    object_type=object_type,
                    object_instance=k + 1,
                    name=f"{object_type} {k + 1}",
                    units="degrees-celsius" if object_type.startswith("analog") else "",
                    last_value=20.0,
                    last_read_at=now,
                )
            )
    created = BACnetPoint.objects.bulk_create(points, batch_size=5000)
    analyze(BACnetDevice, BACnetPoint)
    return [p.pk for p in created]


def fill_readings(point_ids: list[int], per_point: int, end: datetime, step: timedelta) -> int:
    """``per_point`` readings for each point, ``step`` apart, the last one just before
    ``end``; values vary smoothly with a little noise. Returns the rows written."""
    if not point_ids or per_point <= 0:
        return 0
    first = end - step * per_point
    table = connection.ops.quote_name(BACnetReading._meta.db_table)
    with connection.cursor() as cursor:
        cursor.execute(
            f"""
            INSERT INTO {table} (point_id, timestamp, value, value_text, status_flags)
            SELECT p, %s::timestamptz + s * make_interval(secs => %s),
                   20 + 5 * sin(s / 60.0 + p) + random(), '', 0
            FROM unnest(%s::bigint[]) AS p, generate_series(0, %s - 1) AS s
            """,
            [first, step.total_seconds(), point_ids, per_point],
        )
        written = cursor.rowcount
    analyze(BACnetReading)
    return written
