"""Discovery and enumeration: find devices, read what they are and what they hold, store it."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

from django.conf import settings
from django.utils import timezone

from discovery.bacnet_types import DeviceEnumeration, DiscoveredDevice
from discovery.models import BACnetDevice
from discovery.product_identity import is_product_device
from discovery.services.storage import (
    mark_unseen_offline,
    record_duplicates,
    upsert_device,
    upsert_points,
)

Progress = Callable[[str], None]


def _no_progress(message: str) -> None:
    pass


class _Store:
    """Stores each device as its enumeration arrives, and counts."""

    def __init__(self, total: int, progress: Progress) -> None:
        self.total = total
        self.progress = progress
        self.seen_at = timezone.now()
        self.done = 0
        self.devices_new = 0
        self.points_new = 0
        self.points_total = 0
        self.failed: dict[int, str] = {}

    def __call__(self, enumeration: DeviceEnumeration) -> None:
        name = enumeration.properties.name if enumeration.properties else ""
        if is_product_device(enumeration.device.instance, name or ""):
            self.total -= 1  # another installation of the product, by its object name
            return
        device, created = upsert_device(enumeration, self.seen_at)
        self.devices_new += created
        if enumeration.error:
            self.failed[enumeration.device.instance] = enumeration.error[:500]
        if enumeration.points:
            created_points, total = upsert_points(device, enumeration.points)
            self.points_new += created_points
            self.points_total += total
        self.done += 1
        self.progress(f"Enumerated {self.done} of {self.total} devices")


def discover_and_store(
    client: Any,
    *,
    low: int | None = None,
    high: int | None = None,
    targets: Sequence[str] = (),
    progress: Progress = _no_progress,
) -> dict[str, Any]:
    """Who-Is (global, ranged or directed), then enumerate every device that answered.

    Returns the summary kept in the job's result."""
    started = time.monotonic()
    progress("Sending Who-Is")
    found = client.discover(low=low, high=high, targets=list(targets))
    # The product's own processes answer Who-Is too: they are not building devices.
    found.devices = [d for d in found.devices if not is_product_device(d.instance)]
    found.duplicates = {i: a for i, a in found.duplicates.items() if not is_product_device(i)}
    progress(f"{len(found.devices)} devices answered; reading their properties and objects")
    store = _Store(len(found.devices), progress)
    client.enumerate_devices(found.devices, on_device=store)
    record_duplicates(found.duplicates)
    went_offline = 0
    if low is None and high is None and not targets:
        # Only a global Who-Is can tell that a device has gone away.
        went_offline = mark_unseen_offline(timezone.now(), settings.BACNET_OFFLINE_AFTER_S)
    return {
        "devices_found": len(found.devices),
        "devices_new": store.devices_new,
        "points": store.points_total,
        "points_new": store.points_new,
        "devices_failed": store.failed,
        "duplicates": {str(k): v for k, v in found.duplicates.items()},
        "devices_offline": went_offline,
        "discovery_s": round(found.elapsed_s, 3),
        "duration_s": round(time.monotonic() - started, 3),
    }


def enumerate_and_store(
    client: Any, device: BACnetDevice, progress: Progress = _no_progress
) -> dict[str, Any]:
    """Re-read one known device's properties and object list."""
    started = time.monotonic()
    progress(f"Reading device {device.device_instance}")
    found = DiscoveredDevice(
        instance=device.device_instance,
        address=device.address,
        network_number=device.network_number,
        vendor_id=device.vendor_id,
        max_apdu=device.max_apdu_length,
        segmentation=device.segmentation or None,
    )
    store = _Store(1, progress)
    client.enumerate_devices([found], on_device=store)
    if store.failed:
        raise EnumerationFailed(store.failed[device.device_instance])
    return {
        "device_instance": device.device_instance,
        "points": store.points_total,
        "points_new": store.points_new,
        "duration_s": round(time.monotonic() - started, 3),
    }


class EnumerationFailed(Exception):
    """The device did not let itself be enumerated (the reason is the message)."""
