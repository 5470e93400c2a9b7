"""Small helpers that turn models into what the templates show, so that templates
display values instead of computing them."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.core.paginator import Page, Paginator
from django.db.models import Count, Q, QuerySet
from django.http import HttpRequest

from discovery.api.serializers import status_flag_names
from discovery.models import BACnetDevice, BACnetPoint, BACnetTask


def format_value(value: float | None, text: str = "") -> str:
    if text:
        return text
    if value is None:
        return ""
    return f"{value:.6g}"


@dataclass
class PointRow:
    point: BACnetPoint
    value: str
    flags: list[str]
    read_at: datetime | None


def point_rows(points: QuerySet[BACnetPoint]) -> list[PointRow]:
    return [
        PointRow(
            point=point,
            value=format_value(point.last_value, point.last_value_text),
            flags=status_flag_names(point.last_status_flags),
            read_at=point.last_read_at,
        )
        for point in points
    ]


def device_properties(device: BACnetDevice) -> list[tuple[str, Any]]:
    """Label and value of each property worth showing; empty ones are left out."""
    rows: list[tuple[str, Any]] = [
        ("Device instance", device.device_instance),
        ("Address", device.address),
        ("Network number", device.network_number),
        ("Vendor", device.vendor_name),
        ("Vendor id", device.vendor_id),
        ("Model", device.model_name),
        ("Firmware revision", device.firmware_revision),
        ("Application software", device.application_software_version),
        ("Description", device.description),
        ("Location", device.location),
        ("Protocol revision", device.protocol_revision),
        ("Max APDU length", device.max_apdu_length),
        ("Segmentation", device.get_segmentation_display() if device.segmentation else ""),
        ("ReadPropertyMultiple", "supported" if device.supports_rpm else "not supported"),
        ("State", device.state),
        (
            "Conflict",
            f"also claimed by {', '.join(device.conflict_addresses)} (not read)"
            if device.conflict_addresses
            else "",
        ),
        (
            "Earlier addresses",
            ", ".join(f"{h['address']} (until {h['until'][:19]})" for h in device.address_history),
        ),
        ("First seen", device.first_seen),
        ("Last seen", device.last_seen),
        ("Last error", device.last_error),
    ]
    return [(label, value) for label, value in rows if value not in ("", None)]


def device_counts() -> dict[str, int]:
    return BACnetDevice.objects.aggregate(
        total=Count("id"),
        online=Count("id", filter=Q(is_online=True, in_fault=False)),
        fault=Count("id", filter=Q(is_online=True, in_fault=True)),
        offline=Count("id", filter=Q(is_online=False)),
    )


def last_collection() -> datetime | None:
    return (
        BACnetTask.objects.filter(kind=BACnetTask.Kind.COLLECT, status=BACnetTask.Status.COMPLETED)
        .order_by("-completed_at")
        .values_list("completed_at", flat=True)
        .first()
    )


def paginate(request: HttpRequest, items: QuerySet, per_page: int) -> Page:
    return Paginator(items, per_page).get_page(request.GET.get("page"))


def query_without_page(request: HttpRequest) -> str:
    """The current filters (the non-empty ones) as a query string, for links."""
    query = request.GET.copy()
    query.pop("page", None)
    for key in [key for key, values in query.lists() if not any(values)]:
        del query[key]
    return query.urlencode()
