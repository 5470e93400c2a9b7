"""Small helpers that turn models into what the templates show, so that templates
display values instead of computing them."""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.core.paginator import Page, Paginator
from django.db.models import Count, Q, QuerySet
from django.http import HttpRequest
from django.template.defaultfilters import date as format_date
from django.utils import timezone

from discovery.api.serializers import status_flag_names
from discovery.models import BACnetDevice, BACnetPoint, BACnetTask
from discovery.outcomes import job_outcome, outcome_label, summary_line
from discovery.units import unit_symbol

# What the pages show for a value that is no number (a device sent NaN or infinity,
# which storage keeps as text: "nan", "inf", "-inf").
NO_NUMBER = "no number"
_NOT_NUMBERS = {"nan", "-nan", "inf", "+inf", "-inf", "infinity", "-infinity"}


def is_no_number(value: float | None, text: str = "") -> bool:
    if value is not None and (math.isnan(value) or math.isinf(value)):
        return True
    return text.strip().lower() in _NOT_NUMBERS


def format_value(value: float | None, text: str = "") -> str:
    if is_no_number(value, text):
        return NO_NUMBER
    if text:
        return text
    if value is None:
        return ""
    return f"{value:.6g}"


@dataclass
class PointRow:
    point: BACnetPoint
    value: str
    no_number: bool
    units: str  # as engineers write it (°C); the BACnet name is point.units
    flags: list[str]
    read_at: datetime | None


def point_rows(points: Iterable[BACnetPoint]) -> list[PointRow]:
    return [
        PointRow(
            point=point,
            value=format_value(point.last_value, point.last_value_text),
            no_number=is_no_number(point.last_value, point.last_value_text),
            units=unit_symbol(point.units),
            flags=status_flag_names(point.last_status_flags),
            read_at=point.last_read_at,
        )
        for point in points
    ]


@dataclass
class JobRow:
    """A job as the lists show it: outcome badge, summary line, and whether it can still
    be cancelled."""

    job: BACnetTask
    outcome: str
    label: str
    summary: str
    can_cancel: bool


def job_rows(jobs: Iterable[BACnetTask]) -> list[JobRow]:
    return [
        JobRow(
            job=job,
            outcome=job_outcome(job),
            label=outcome_label(job),
            summary=summary_line(job),
            can_cancel=job.status == BACnetTask.Status.PENDING,
        )
        for job in jobs
    ]


# The one date-time format of the product (Django's date syntax): 2026-11-23 11:41:00 CET.
DATE_TIME_FORMAT = "Y-m-d H:i:s T"


def format_when(value: datetime | None) -> str:
    """A time in the site's zone (TIME_ZONE) with the zone's abbreviation; "" for none."""
    if not value:
        return ""
    return format_date(timezone.localtime(value), DATE_TIME_FORMAT)


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
        ("First seen", format_when(device.first_seen)),
        ("Last seen", format_when(device.last_seen)),
        ("Last error", device.last_error),
    ]
    return [(label, value) for label, value in rows if value not in ("", None)]


def device_counts(devices: QuerySet[BACnetDevice] | None = None) -> dict[str, int]:
    """Online, in fault and offline counts of ``devices`` (default: all of them)."""
    devices = BACnetDevice.objects.all() if devices is None else devices
    return devices.aggregate(
        total=Count("id"),
        online=Count("id", filter=Q(is_online=True, in_fault=False)),
        fault=Count("id", filter=Q(is_online=True, in_fault=True)),
        offline=Count("id", filter=Q(is_online=False)),
    )


def last_collection(jobs: QuerySet[BACnetTask] | None = None) -> BACnetTask | None:
    """The last completed collection among ``jobs`` (default: all): the dashboard shows
    when, and its summary line."""
    jobs = BACnetTask.objects.all() if jobs is None else jobs
    return (
        jobs.filter(kind=BACnetTask.Kind.COLLECT, status=BACnetTask.Status.COMPLETED)
        .order_by("-completed_at")
        .only("id", "kind", "status", "completed_at", "summary", "failed_devices", "result")
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
