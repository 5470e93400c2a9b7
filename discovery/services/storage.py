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

from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from discovery.bacnet_types import DeviceEnumeration, DeviceReadResult, DiscoveredDevice, PointInfo
from discovery.models import BACnetDevice, BACnetPoint, BACnetReading, Segmentation

TEXT_LIMIT = 10_000  # for TextFields: a 10 kB device description is kept, not more


def clean_text(value: object, max_length: int | None = None) -> str:
    """A device string made safe to store: no NUL, valid UTF-8, at most ``max_length``."""
    if value is None:
        return ""
    text = str(value).replace("\x00", "")
    text = text.encode("utf-8", "replace").decode("utf-8")  # lone surrogates -> '?'
    limit = max_length or TEXT_LIMIT
    return text[:limit]


def _field_limit(model: type, name: str) -> int | None:
    return model._meta.get_field(name).max_length


def _clean_for(model: type, name: str, value: object) -> str:
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


def upsert_device(enumeration: DeviceEnumeration, seen_at: datetime) -> tuple[BACnetDevice, bool]:
    """Create or update the device of one I-Am (plus properties); it is online again."""
    fields = device_fields(enumeration)
    fields.update(last_seen=seen_at, is_online=True)
    fields["last_error"] = clean_text(enumeration.error)
    device, created = BACnetDevice.objects.update_or_create(
        device_instance=enumeration.device.instance,
        defaults=fields,
        create_defaults={**fields, "first_seen": seen_at},
    )
    return device, created


def upsert_points(device: BACnetDevice, points: Sequence[PointInfo]) -> tuple[int, int]:
    """Insert new points and refresh names, units and texts of known ones, in bulk.

    Returns (created, total). Points the device no longer lists are kept (their history
    matters) and marked missing, so they are not polled until they come back."""
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
        gone = existing - listed
        if rows and gone:
            missing = Q()
            for object_type, instance in gone:
                missing |= Q(object_type=object_type, object_instance=instance)
            device.points.filter(missing, missing_since__isnull=True).update(
                missing_since=timezone.now()
            )
    return len(listed - existing), len(rows)


def mark_unseen_offline(now: datetime, after_s: int) -> int:
    """Devices that have not answered for ``after_s`` seconds are offline."""
    cutoff = now - timedelta(seconds=after_s)
    return BACnetDevice.objects.filter(is_online=True, last_seen__lt=cutoff).update(
        is_online=False, last_error="Not seen by discovery or collection since the cutoff."
    )


def record_duplicates(duplicates: dict[int, list[str]]) -> None:
    """Two addresses claim one instance: keep the row, say so on it, merge nothing."""
    for instance, addresses in duplicates.items():
        note = clean_text(f"Device instance {instance} answered from {', '.join(addresses)}.")
        BACnetDevice.objects.filter(device_instance=instance).update(last_error=note)


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
) -> StoredReadings:
    """Store one cycle's values in bulk and update each point's latest value.

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


def discovered_placeholder(device: DiscoveredDevice) -> DeviceEnumeration:
    """An I-Am without properties yet, for storing a device before it is enumerated."""
    return DeviceEnumeration(device=device)
