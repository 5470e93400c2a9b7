"""Versions of product functions measured beside the product (not used by it).

- ``store_readings_orm``: the cycle store before the COPY path (``bulk_create`` plus
  ``bulk_update``), so that each run records what the change gained. ``bulk_update``
  spends most of its time in Python, building and compiling a ``Case(When(pk=...))`` per
  row and field: 3.4 s of 3.7 s for 5,000 points, whatever its batch size.
- ``points_fillfactor``: the points table at another fillfactor for one measure.
- ``discover_and_enumerate_overlapped``: enumeration started by each I-Am instead of
  after the quiet window (a proposal for the client and ``discover_and_store``).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Iterable, Iterator
from datetime import datetime
from typing import Any

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

# The product's points table is at 50 (migration 0004); 100 is PostgreSQL's default.
DEFAULT_FILLFACTOR = 100


def store_readings_orm(
    results: Iterable[DeviceReadResult],
    points_by_key: dict[tuple[int, str, int], int],
    timestamp: datetime,
    state_texts: dict[int, list[str]] | None = None,
) -> StoredReadings:
    """``store_readings`` as it was before the COPY path (commit 26a9e5a): readings
    with ``bulk_create``, latest values with ``bulk_update``. Kept to measure the gain.

    ``points_by_key`` maps (device instance, object type, instance) to point ids.
    Readings are inserted with ``ignore_conflicts`` on (point, timestamp): storing the
    same cycle again (at-least-once delivery) adds nothing."""
    summary = StoredReadings()
    readings: list[BACnetReading] = []
    point_updates: list[BACnetPoint] = []
    online: list[int] = []
    offline: dict[int, str] = {}
    now = timezone.now()
    for result in results:
        # The client gives every unread point the device's error, so a device that did
        # not answer at all still has values: none of them is a reading.
        if result.error and all(value.error for value in result.values):
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
                point_updates.append(
                    BACnetPoint(id=point_id, last_error=clean_text(value.error), last_read_at=now)
                )
                continue
            number = clean_number(value.value)
            named = state_text(value.object_type, number, (state_texts or {}).get(point_id, ()))
            text = _clean_for(BACnetReading, "value_text", named or value.text)
            if number is None and value.value is not None and not text:
                text = str(value.value)
            readings.append(
                BACnetReading(
                    point_id=point_id,
                    timestamp=timestamp,
                    value=number,
                    value_text=text,
                    status_flags=value.status_flags,
                )
            )
            point_updates.append(
                BACnetPoint(
                    id=point_id,
                    last_value=number,
                    last_value_text=text,
                    last_status_flags=value.status_flags,
                    last_read_at=now,
                    last_error="",
                )
            )
    with transaction.atomic():
        BACnetReading.objects.bulk_create(readings, batch_size=5000, ignore_conflicts=True)
        summary.readings = len(readings)
        ok = [p for p in point_updates if not p.last_error]
        failed = [p for p in point_updates if p.last_error]
        BACnetPoint.objects.bulk_update(
            ok,
            ["last_value", "last_value_text", "last_status_flags", "last_read_at", "last_error"],
            batch_size=1000,
        )
        BACnetPoint.objects.bulk_update(failed, ["last_error", "last_read_at"], batch_size=1000)
        if online:
            answered = BACnetDevice.objects.filter(device_instance__in=online)
            answered.update(last_seen=now)
            # Only an offline reason is cleared: a duplicate-instance note stays.
            answered.filter(is_online=False).update(is_online=True, last_error="")
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


async def discover_and_enumerate_overlapped(client: Any) -> int:
    """Global Who-Is, each device enumerated as soon as its I-Am arrives (at most
    ``read_concurrency`` at once), instead of after the quiet window: the window then
    overlaps the enumeration. Same quiet window and the client's own per-device
    enumeration (``enumerate_one``); nothing stored. Returns devices enumerated.

    A proposal for ``BACnetClient.discover`` / ``enumerate_devices`` and
    ``discover_and_store``, runs on the client's loop."""
    from bacpypes3.apdu import WhoIsRequest
    from bacpypes3.pdu import GlobalBroadcast

    from discovery.bacnet_types import DiscoveredDevice

    loop = asyncio.get_running_loop()
    limit = asyncio.Semaphore(max(1, client.config.read_concurrency))
    quiet_s = client.config.discovery_quiet_s
    own = client.local_address
    tasks: dict[int, asyncio.Task[Any]] = {}
    last = [time.monotonic()]

    async def enumerate_one(device: DiscoveredDevice) -> Any:
        async with limit:
            return await client.enumerate_one(device)

    def listener(iam: Any) -> None:
        if iam.address == own or iam.instance in tasks:
            return
        last[0] = iam.at
        device = DiscoveredDevice(
            instance=iam.instance,
            address=iam.address,
            network_number=iam.network_number,
            vendor_id=iam.vendor_id,
            max_apdu=iam.max_apdu,
            segmentation=iam.segmentation,
        )
        tasks[iam.instance] = loop.create_task(enumerate_one(device))

    with client.i_am_listener(listener):
        client.application.request(WhoIsRequest(destination=GlobalBroadcast()))
        while (left := last[0] + quiet_s - time.monotonic()) > 0:
            await asyncio.sleep(left)
    results = await asyncio.gather(*tasks.values())
    return sum(1 for r in results if not r.error)
