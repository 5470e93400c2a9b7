"""Collection: read the present value of every enabled point and store the readings."""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime, timedelta
from typing import Any

from django.db.models import F
from django.utils import timezone

from discovery.bacnet_types import DeviceTarget, PointRef
from discovery.models import BACnetDevice, BACnetPoint, default_site_id
from discovery.services.cov import polled_filter, with_keeping
from discovery.services.storage import store_readings

Progress = Callable[[str], None]
PointKey = tuple[int, str, int]


def _no_progress(message: str) -> None:
    pass


def is_due(
    last_read_at: datetime | None, interval_s: int | None, cycle_at: datetime, grace_s: float
) -> bool:
    """A point with its own poll interval is read when the interval has passed since its
    last read, give or take ``grace_s`` (half a cycle: its last read was stored a moment
    after its cycle's start). Without an interval, every cycle."""
    if not interval_s or last_read_at is None:
        return True
    return last_read_at + timedelta(seconds=interval_s) <= cycle_at + timedelta(seconds=grace_s)


def collection_plan(
    device_instances: Sequence[int] | None = None,
    *,
    site_id: int | None = None,
    cycle_at: datetime | None = None,
    grace_s: float = 0.0,
) -> tuple[list[DeviceTarget], dict[PointKey, int], dict[int, list[str]]]:
    """What to read at a site: one target per device with its enabled points that are due
    at ``cycle_at`` (their own or their device's poll interval; all of them without
    ``cycle_at``), the point ids, and the state texts of the points that have them."""
    points = BACnetPoint.objects.filter(
        device__site_id=site_id or default_site_id(),
        polling_enabled=True,
        missing_since__isnull=True,
    )
    # Points kept by change of value are not polled while subscribed (services.cov).
    points = with_keeping(points).filter(polled_filter(timezone.now()))
    if device_instances:
        points = points.filter(device__device_instance__in=device_instances)
    # Each device's stalest points first: a device that cannot be read completely within
    # its deadline gets the points it missed first next cycle, so no tail is starved.
    rows = points.order_by(
        "device_id", F("last_read_at").asc(nulls_first=True), "object_type", "object_instance"
    ).values_list(
        "id",
        "object_type",
        "object_instance",
        "device__device_instance",
        "device__address",
        "device__max_apdu_length",
        "device__segmentation",
        "device__supports_rpm",
        "device__conflict_addresses",
        "state_texts",
        "last_read_at",
        "poll_interval_s",
        "device__poll_interval_s",
    )
    by_device: dict[int, DeviceTarget] = {}
    refs: dict[int, list[PointRef]] = defaultdict(list)
    keys: dict[PointKey, int] = {}
    texts: dict[int, list[str]] = {}
    for (
        pk,
        object_type,
        instance,
        device,
        address,
        max_apdu,
        segmentation,
        rpm,
        conflict,
        words,
        last_read_at,
        interval,
        device_interval,
    ) in rows:
        if cycle_at is not None and not is_due(
            last_read_at, interval or device_interval, cycle_at, grace_s
        ):
            continue
        if device not in by_device:
            by_device[device] = DeviceTarget(
                instance=device,
                address=address,
                points=refs[device],
                max_apdu=max_apdu,
                segmentation=segmentation or None,
                supports_rpm=rpm,
                conflict_addresses=tuple(conflict or ()),
            )
        refs[device].append(PointRef(object_type, instance))
        keys[(device, object_type, instance)] = pk
        if words:
            texts[pk] = words
    return list(by_device.values()), keys, texts


def collect_and_store(
    client: Any,
    *,
    cycle_at: datetime,
    device_instances: Sequence[int] | None = None,
    progress: Progress = _no_progress,
    site_id: int | None = None,
    due_only: bool = False,
) -> dict[str, Any]:
    """One collection cycle of a site (default: the default site). ``cycle_at`` is the
    readings' timestamp, fixed when the cycle was requested, so that a retried cycle
    stores nothing twice. With ``due_only`` (scheduled cycles), points with a poll interval
    are read only when due; a requested collection reads them all."""
    from discovery.windows import collection_period_s

    started = time.monotonic()
    site_id = site_id or default_site_id()
    grace_s = collection_period_s(site_id) / 2
    targets, keys, texts = collection_plan(
        device_instances,
        site_id=site_id,
        cycle_at=cycle_at if due_only else None,
        grace_s=grace_s,
    )
    progress(f"Reading {len(keys)} points on {len(targets)} devices")
    results = client.read_points(targets)
    read_s = time.monotonic() - started
    stored = store_readings(results, keys, cycle_at, texts, site_id)
    no_rpm = [r.instance for r in results if not r.supports_rpm]
    if no_rpm:
        BACnetDevice.objects.filter(site_id=site_id, device_instance__in=no_rpm).update(
            supports_rpm=False
        )
    return {
        "devices": len(targets),
        "points": len(keys),
        "readings": stored.readings,
        "point_errors": stored.point_errors,
        "devices_ok": stored.devices_ok,
        "devices_failed": stored.devices_failed,
        "device_errors": {str(r.instance): r.error[:300] for r in results if r.error},
        # Devices found again at a new address and read there in this cycle.
        "devices_moved": {
            str(r.instance): r.moved_to.address for r in results if r.moved_to is not None
        },
        # Devices whose instance other addresses claim: read at their binding only.
        "conflicts": conflicts_of((t.instance for t in targets), site_id),
        "cycle_at": cycle_at.isoformat(),
        "read_s": round(read_s, 3),
        "duration_s": round(time.monotonic() - started, 3),
    }


def conflicts_of(instances: Iterable[int], site_id: int) -> dict[str, list[str]]:
    """Instance -> every address claiming it (the binding first), for job summaries."""
    rows = BACnetDevice.objects.filter(
        site_id=site_id, device_instance__in=list(instances)
    ).exclude(conflict_addresses=[])
    return {
        str(instance): [address, *others]
        for instance, address, others in rows.values_list(
            "device_instance", "address", "conflict_addresses"
        )
    }


def read_point_and_store(client: Any, point: BACnetPoint) -> dict[str, Any]:
    """Read one point now (the "read now" button, ``read_point_value``) and store it."""
    device = point.device
    target = DeviceTarget(
        instance=device.device_instance,
        address=device.address,
        points=[PointRef(point.object_type, point.object_instance)],
        max_apdu=device.max_apdu_length,
        segmentation=device.segmentation or None,
        supports_rpm=device.supports_rpm,
        conflict_addresses=tuple(device.conflict_addresses),
    )
    results = client.read_points([target])
    now = timezone.now().replace(microsecond=0)
    key = (device.device_instance, point.object_type, point.object_instance)
    stored = store_readings(
        results, {key: point.pk}, now, {point.pk: point.state_texts}, device.site_id
    )
    point.refresh_from_db()
    return {
        "point": point.pk,
        "value": point.last_value,
        "text": point.last_value_text,
        "status_flags": point.last_status_flags,
        "error": point.last_error,
        "readings": stored.readings,
    }
