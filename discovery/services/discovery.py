"""Discovery and enumeration: find devices, read what they are and what they hold, store it."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

from django.conf import settings
from django.utils import timezone

from discovery.bacnet_types import DeviceEnumeration, DiscoveredDevice, DiscoveryResult
from discovery.models import BACnetDevice, BACnetPoint, Site, default_site_id
from discovery.point_rules import apply_rules
from discovery.product_identity import is_product_device
from discovery.services.storage import (
    mark_unseen_offline,
    record_conflict,
    upsert_device,
    upsert_points,
)

Progress = Callable[[str], None]

# Enumeration passes of one discovery job: a device its deadline cut short goes on from
# where it stopped while it still adds points.
ENUMERATION_PASSES = 3


def _no_progress(message: str) -> None:
    pass


class _Store:
    """Stores each device as its enumeration arrives, and counts."""

    def __init__(self, total: int, progress: Progress, site_id: int) -> None:
        self.site_id = site_id
        # The site's include/exclude rules: the objects they leave out are not stored.
        self.rules = Site.objects.filter(pk=site_id).values_list("point_rules", flat=True).first()
        self.total = total
        self.progress = progress
        self.seen_at = timezone.now()
        self.done = 0
        self.devices_new = 0
        self.points_new = 0
        self.failed: dict[int, str] = {}
        # Cut short by their deadline after adding points: another pass goes on.
        self.resumable: dict[int, DiscoveredDevice] = {}

    def __call__(self, enumeration: DeviceEnumeration) -> None:
        instance = enumeration.device.instance
        name = enumeration.properties.name if enumeration.properties else ""
        if is_product_device(instance, name or ""):
            self.total -= 1  # another installation of the product, by its object name
            return
        device, created = upsert_device(enumeration, self.seen_at, self.site_id)
        self.devices_new += created
        self.failed.pop(instance, None)
        if enumeration.error:
            self.failed[instance] = enumeration.error[:500]
        created_points = 0
        if enumeration.points:
            # An enumeration that failed part way stores the points it read; the next
            # pass (or attempt) reads the objects not stored yet first.
            created_points, _ = upsert_points(
                device,
                apply_rules(enumeration.points, self.rules or {}),
                complete=not (enumeration.error or enumeration.only_new),
            )
            self.points_new += created_points
        if enumeration.cut_short and created_points:
            self.resumable[instance] = enumeration.device
        self.done += 1
        self.progress(f"Enumerated {self.done} of {self.total} devices")

    def enumerate(self, client: Any, devices: list[DiscoveredDevice], passes: int) -> None:
        """Enumerate, then go on with the devices their deadline cut short while they
        still add points (discovery is rare: it may take longer than one deadline)."""
        for index in range(max(1, passes)):
            self.resumable.clear()
            client.enumerate_devices(
                devices,
                on_device=self,
                known=known_objects(devices, self.site_id),
                only_new=index > 0,
            )
            devices = list(self.resumable.values())
            if not devices:
                return
            self.progress(f"Going on with {len(devices)} devices cut short by their deadline")

    def points_total(self, instances: Sequence[int]) -> int:
        return BACnetPoint.objects.filter(
            device__site_id=self.site_id,
            device__device_instance__in=list(instances),
            missing_since__isnull=True,
        ).count()


def discover_and_store(
    client: Any,
    *,
    low: int | None = None,
    high: int | None = None,
    targets: Sequence[str] = (),
    progress: Progress = _no_progress,
    passes: int = ENUMERATION_PASSES,
    site_id: int | None = None,
) -> dict[str, Any]:
    """Who-Is (global, ranged or directed) on the site's network, then enumerate every
    device that answered (devices cut short by their deadline go on, up to ``passes`` in
    all) and store them as the site's (default: the default site).

    Returns the summary kept in the job's result."""
    started = time.monotonic()
    site_id = site_id or default_site_id()
    progress("Sending Who-Is")
    found = client.discover(low=low, high=high, targets=list(targets))
    # The product's own processes answer Who-Is too: they are not building devices.
    found.devices = [d for d in found.devices if not is_product_device(d.instance)]
    found.duplicates = {i: a for i, a in found.duplicates.items() if not is_product_device(i)}
    found.answers = {i: a for i, a in found.answers.items() if not is_product_device(i)}
    progress(f"{len(found.devices)} devices answered; reading their properties and objects")
    bound, conflicts = bindings(found, site_id)
    store = _Store(len(bound), progress, site_id)
    store.enumerate(client, bound, passes)
    for instance, addresses in conflicts.items():
        record_conflict(instance, addresses, site_id)
    went_offline = 0
    if low is None and high is None and not targets:
        # Only a global Who-Is can tell that a device has gone away.
        went_offline = mark_unseen_offline(timezone.now(), settings.BACNET_OFFLINE_AFTER_S, site_id)
    answered = [d.instance for d in found.devices]
    return {
        "devices_found": len(found.devices),
        "devices_new": store.devices_new,
        "points": store.points_total([d.instance for d in bound]),
        "points_new": store.points_new,
        "devices_failed": store.failed,
        "duplicates": {str(k): v for k, v in found.duplicates.items()},
        # Every conflict seen by this run, the binding kept first.
        "conflicts": {
            str(k): [bound_address, *others]
            for k, (bound_address, others) in _conflict_rows(conflicts, site_id).items()
        },
        "devices_offline": went_offline,
        "answered": answered,
        "not_answered": _known_silent(answered, low, high, targets, site_id),
        "discovery_s": round(found.elapsed_s, 3),
        "duration_s": round(time.monotonic() - started, 3),
    }


def known_objects(
    devices: Sequence[DiscoveredDevice], site_id: int
) -> dict[int, frozenset[tuple[str, int]]]:
    """The objects already stored per device instance of the site."""
    rows = BACnetPoint.objects.filter(
        device__site_id=site_id, device__device_instance__in=[d.instance for d in devices]
    ).values_list("device__device_instance", "object_type", "object_instance")
    known: dict[int, set[tuple[str, int]]] = {}
    for instance, object_type, object_instance in rows:
        known.setdefault(instance, set()).add((object_type, object_instance))
    return {instance: frozenset(objects) for instance, objects in known.items()}


def bindings(
    found: DiscoveryResult, site_id: int
) -> tuple[list[DiscoveredDevice], dict[int, list[str]]]:
    """Which answer of each instance to enumerate, and the conflicts to record.

    A known device keeps its binding: when several addresses answer for its instance,
    the one it has; when only a conflicting address answers, nothing (the other device
    is never read into it). A device that answers from one new address has moved."""
    instances = [d.instance for d in found.devices]
    known = {
        instance: (address, set(conflicting))
        for instance, address, conflicting in BACnetDevice.objects.filter(
            site_id=site_id, device_instance__in=instances
        ).values_list("device_instance", "address", "conflict_addresses")
    }
    bound: list[DiscoveredDevice] = []
    conflicts: dict[int, list[str]] = {}
    for first in found.devices:
        answers = found.answers.get(first.instance, [first])
        addresses = [a.address for a in answers]
        if first.instance not in known:
            bound.append(first)
            if len(answers) > 1:
                conflicts[first.instance] = addresses
            continue
        address, conflicting = known[first.instance]
        at_binding = [a for a in answers if a.address == address]
        if at_binding:
            bound.append(at_binding[0])
        elif len(answers) == 1 and first.address not in conflicting:
            bound.append(first)  # moved: upsert_device keeps the old address in history
        if len(answers) > 1 or (not at_binding and first.address in conflicting):
            conflicts[first.instance] = addresses
    return bound, conflicts


def _conflict_rows(
    conflicts: dict[int, list[str]], site_id: int
) -> dict[int, tuple[str, list[str]]]:
    rows = BACnetDevice.objects.filter(
        site_id=site_id, device_instance__in=list(conflicts)
    ).values_list("device_instance", "address", "conflict_addresses")
    return {instance: (address, others) for instance, address, others in rows}


def _known_silent(
    answered: Sequence[int],
    low: int | None,
    high: int | None,
    targets: Sequence[str],
    site_id: int,
) -> list[int]:
    """Known devices this Who-Is asked for that did not answer (none for a directed one:
    it asked addresses, not instances)."""
    if targets:
        return []
    known = BACnetDevice.objects.filter(site_id=site_id).exclude(device_instance__in=list(answered))
    if low is not None and high is not None:
        known = known.filter(device_instance__gte=low, device_instance__lte=high)
    return list(known.order_by("device_instance").values_list("device_instance", flat=True))


def enumerate_and_store(
    client: Any,
    device: BACnetDevice,
    progress: Progress = _no_progress,
    passes: int = ENUMERATION_PASSES,
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
    store = _Store(1, progress, device.site_id or default_site_id())
    store.enumerate(client, [found], passes)
    if store.failed:
        raise EnumerationFailed(store.failed[device.device_instance])
    return {
        "device_instance": device.device_instance,
        "points": store.points_total([device.device_instance]),
        "points_new": store.points_new,
        "duration_s": round(time.monotonic() - started, 3),
    }


class EnumerationFailed(Exception):
    """The device did not let itself be enumerated (the reason is the message)."""
