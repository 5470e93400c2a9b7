"""Writing what the BACnet client found into the database. No BACnet here.

Everything a device sends is untrusted: strings are cleaned (PostgreSQL rejects NUL
bytes; lone surrogates cannot be encoded) and cut to their column's length. Writes are
idempotent: rediscovery updates rows in place, and readings are unique per (point,
timestamp), so a re-delivered collection cycle stores nothing twice.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.db import connection, models, transaction
from django.db.models import Q
from django.utils import timezone

from discovery.bacnet_types import DeviceEnumeration, DeviceReadResult, DiscoveredDevice, PointInfo
from discovery.models import (
    BACnetDevice,
    BACnetPoint,
    BACnetReading,
    Segmentation,
    default_site_id,
    moved_history,
)
from discovery.services.cycle_writes import write_cycle_portable, write_cycle_postgresql
from discovery.services.store_on_change import unchanged_points

TEXT_LIMIT = 10_000  # for TextFields: a 10 kB device description is kept, not more


def clean_text(value: object, max_length: int | None = None) -> str:
    """A device string made safe to store: no NUL, valid UTF-8, at most ``max_length``."""
    if value is None:
        return ""
    text = str(value).replace("\x00", "")
    text = text.encode("utf-8", "replace").decode("utf-8")  # lone surrogates -> '?'
    limit = max_length or TEXT_LIMIT
    return text[:limit]


def _field_limit(model: type[models.Model], name: str) -> int | None:
    return getattr(model._meta.get_field(name), "max_length", None)


def _clean_for(model: type[models.Model], name: str, value: object) -> str:
    return clean_text(value, _field_limit(model, name))


def clean_number(value: float | None) -> float | None:
    """NaN and infinities are not numbers one can chart or average: keep them as text."""
    if value is None or math.isnan(value) or math.isinf(value):
        return None
    return float(value)


def device_fields(enumeration: DeviceEnumeration) -> dict[str, object]:
    """Column values for a device from its I-Am and (when read) its properties."""
    found = enumeration.device
    fields: dict[str, object] = {
        "address": _clean_for(BACnetDevice, "address", found.address),
        "network_number": found.network_number,
    }
    if found.vendor_id is not None:
        fields["vendor_id"] = found.vendor_id
    if found.max_apdu:
        fields["max_apdu_length"] = found.max_apdu
    if found.segmentation in Segmentation.values:
        fields["segmentation"] = found.segmentation
    props = enumeration.properties
    if props is not None:
        for name in (
            "name",
            "vendor_name",
            "model_name",
            "firmware_revision",
            "application_software_version",
            "description",
            "location",
        ):
            fields[name] = _clean_for(BACnetDevice, name, getattr(props, name))
        if props.vendor_id is not None:
            fields["vendor_id"] = props.vendor_id
        if props.protocol_revision is not None:
            fields["protocol_revision"] = props.protocol_revision
        if props.max_apdu:
            fields["max_apdu_length"] = props.max_apdu
        if props.segmentation in Segmentation.values:
            fields["segmentation"] = props.segmentation
        fields["supports_rpm"] = props.supports_rpm
    return fields


def upsert_device(
    enumeration: DeviceEnumeration, seen_at: datetime, site_id: int | None = None
) -> tuple[BACnetDevice, bool]:
    """Create or update the site's device of one I-Am (plus properties); it answers
    again, and is in fault when its enumeration failed. A new address is kept in its
    history."""
    site_id = site_id or default_site_id()
    fields = device_fields(enumeration)
    fields.update(last_seen=seen_at, is_online=True, in_fault=bool(enumeration.error))
    fields["last_error"] = clean_text(enumeration.error)
    known = (
        BACnetDevice.objects.filter(site_id=site_id, device_instance=enumeration.device.instance)
        .values("address", "address_history")
        .first()
    )
    if known and known["address"] != fields["address"]:
        fields["address_history"] = moved_history(
            known["address_history"], known["address"], "discovery"
        )
    device, created = BACnetDevice.objects.update_or_create(
        site_id=site_id,
        device_instance=enumeration.device.instance,
        defaults=fields,
        create_defaults={**fields, "first_seen": seen_at},
    )
    return device, created


def upsert_points(
    device: BACnetDevice, points: Sequence[PointInfo], complete: bool = True
) -> tuple[int, int]:
    """Insert new points and refresh names, units and texts of known ones, in bulk.

    Returns (created, total). When ``points`` is the device's complete list, points it no
    longer lists are kept (their history matters) and marked missing, so they are not
    polled until they come back; a partial list (an enumeration cut short) marks none."""
    existing = set(device.points.values_list("object_type", "object_instance"))
    rows = [
        BACnetPoint(
            device=device,
            object_type=_clean_for(BACnetPoint, "object_type", p.object_type),
            object_instance=p.instance,
            name=_clean_for(BACnetPoint, "name", p.name),
            description=clean_text(p.description),
            units=_clean_for(BACnetPoint, "units", p.units),
            state_texts=[clean_text(t, 255) for t in p.state_texts],
            missing_since=None,
        )
        for p in points
    ]
    listed = {(r.object_type, r.object_instance) for r in rows}
    with transaction.atomic():
        BACnetPoint.objects.bulk_create(
            rows,
            batch_size=1000,
            update_conflicts=True,
            unique_fields=["device", "object_type", "object_instance"],
            update_fields=["name", "description", "units", "state_texts", "missing_since"],
        )
        gone = existing - listed if complete else set()
        if rows and gone:
            missing = Q()
            for object_type, instance in gone:
                missing |= Q(object_type=object_type, object_instance=instance)
            device.points.filter(missing, missing_since__isnull=True).update(
                missing_since=timezone.now()
            )
    return len(listed - existing), len(rows)


def mark_unseen_offline(now: datetime, after_s: int, site_id: int | None = None) -> int:
    """The site's devices that have not answered for ``after_s`` seconds are offline."""
    cutoff = now - timedelta(seconds=after_s)
    devices = BACnetDevice.objects.filter(site_id=site_id or default_site_id())
    return devices.filter(is_online=True, last_seen__lt=cutoff).update(
        is_online=False,
        in_fault=False,
        last_error="Not seen by discovery or collection since the cutoff.",
    )


def record_conflict(instance: int, addresses: Sequence[str], site_id: int | None = None) -> None:
    """Other addresses claim a device's instance: the device keeps its binding (its
    ``address``); the others are listed on it, added to those already known."""
    device = BACnetDevice.objects.filter(
        site_id=site_id or default_site_id(), device_instance=instance
    ).first()
    if device is None:
        return
    others = [
        _clean_for(BACnetDevice, "address", a)
        for a in addresses
        if a != device.address and a not in device.conflict_addresses
    ]
    if not others:
        return
    device.conflict_addresses = [*device.conflict_addresses, *others]
    device.conflict_since = device.conflict_since or timezone.now()
    device.save(update_fields=["conflict_addresses", "conflict_since"])


def record_duplicates(duplicates: dict[int, list[str]], site_id: int | None = None) -> None:
    """Several addresses claim one instance: keep the binding, list the others, merge nothing."""
    for instance, addresses in duplicates.items():
        record_conflict(instance, addresses, site_id)


def record_move(
    instance: int, found: DiscoveredDevice, how: str, site_id: int | None = None
) -> None:
    """The device answers at a new address now: bind it there, keep the old one in its
    history."""
    device = BACnetDevice.objects.filter(
        site_id=site_id or default_site_id(), device_instance=instance
    ).first()
    if device is None or device.address == found.address:
        return
    device.address_history = moved_history(device.address_history, device.address, how)
    device.address = _clean_for(BACnetDevice, "address", found.address)
    device.network_number = found.network_number
    fields = ["address", "address_history", "network_number"]
    if found.max_apdu:
        device.max_apdu_length = found.max_apdu
        fields.append("max_apdu_length")
    if found.segmentation in Segmentation.values:
        device.segmentation = found.segmentation
        fields.append("segmentation")
    device.save(update_fields=fields)


@dataclass
class StoredReadings:
    readings: int = 0
    point_errors: int = 0
    devices_ok: int = 0
    devices_failed: int = 0


def state_text(object_type: str, value: float | None, texts: Sequence[str]) -> str:
    """The word for a binary or multi-state value ("On", "Cool"), when the device named it.

    Binary values index inactive/active texts from 0; multi-state values count from 1."""
    if value is None or not texts or value != int(value):
        return ""
    index = int(value) - (1 if object_type.startswith("multi-state") else 0)
    if not object_type.startswith(("binary", "multi-state")) or not 0 <= index < len(texts):
        return ""
    return texts[index]


def store_readings(
    results: Iterable[DeviceReadResult],
    points_by_key: dict[tuple[int, str, int], int],
    timestamp: datetime,
    state_texts: dict[int, list[str]] | None = None,
    site_id: int | None = None,
) -> StoredReadings:
    """Store one cycle's values (of one site's devices) in bulk and update each point's
    latest value.

    ``points_by_key`` maps (device instance, object type, instance) to point ids.
    Readings are inserted with ``ON CONFLICT DO NOTHING`` on (point, timestamp): storing
    the same cycle again (at-least-once delivery) adds nothing."""
    summary = StoredReadings()
    site_id = site_id or default_site_id()
    devices = BACnetDevice.objects.filter(site_id=site_id)
    values: list[tuple[int, float | None, str, int | None]] = []
    errors: list[tuple[int, str]] = []
    online: list[int] = []
    failed: dict[int, tuple[str, bool]] = {}
    now = timezone.now()
    results = list(results)
    for result in results:
        if result.moved_to is not None:
            record_move(result.instance, result.moved_to, "collection", site_id)
        if result.conflict:
            record_conflict(result.instance, result.conflict, site_id)
        if result.error:
            # Failed as a whole (silent, stopped in the middle, ...): counted as failed
            # even when some values came back; those are stored all the same.
            summary.devices_failed += 1
            failed[result.instance] = (clean_text(result.error), result.reachable)
        else:
            summary.devices_ok += 1
            online.append(result.instance)
        for value in result.values:
            point_id = points_by_key.get((result.instance, value.object_type, value.instance))
            if point_id is None:
                continue
            if value.error:
                # The client gives every unread point the device's error: not the point's.
                if result.error and value.error == result.error:
                    continue
                summary.point_errors += 1
                errors.append((point_id, clean_text(value.error)))
                continue
            number = clean_number(value.value)
            named = state_text(value.object_type, number, (state_texts or {}).get(point_id, ()))
            text = _clean_for(BACnetReading, "value_text", named or value.text)
            if number is None and value.value is not None and not text:
                text = str(value.value)
            values.append((point_id, number, text, value.status_flags))
    with transaction.atomic():
        # Store on change: the readings within their deadband update the latest value only.
        unchanged = unchanged_points(values, timestamp)
        if connection.vendor == "postgresql":
            write_cycle_postgresql(values, errors, timestamp, now, unchanged)
        else:
            write_cycle_portable(values, errors, timestamp, now, unchanged)
        summary.readings = len(values) - len(unchanged or ())
        if online:
            devices.filter(device_instance__in=online).update(
                last_seen=now, is_online=True, in_fault=False, last_error=""
            )
        for instance, (reason, reachable) in failed.items():
            # Answers Who-Is (or answered part of the cycle) but its reads fail: in
            # fault, seen. Answers nothing at all: offline.
            extra = {"last_seen": now} if reachable else {}
            devices.filter(device_instance=instance).update(
                is_online=reachable, in_fault=reachable, last_error=reason, **extra
            )
    return summary


def discovered_placeholder(device: DiscoveredDevice) -> DeviceEnumeration:
    """An I-Am without properties yet, for storing a device before it is enumerated."""
    return DeviceEnumeration(device=device)
