"""Readings as CSV, streamed: rows leave as the database yields them, in chunks, so an
export of millions of readings holds neither the whole table nor the whole file in
memory.

Device strings are untrusted: a cell that a spreadsheet would read as a formula
(``=``, ``+``, ``-``, ``@``, or a tab or carriage return before one) gets a leading
apostrophe (OWASP's advice against CSV injection). Numbers we format ourselves.
"""

from __future__ import annotations

import csv
from collections.abc import Iterable, Iterator
from typing import Any

from django.db.models import QuerySet
from django.http import StreamingHttpResponse
from django.utils import timezone

from discovery.models import BACnetDevice, StatusFlags

FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")
CHUNK_SIZE = 2000
HEADER = [
    "timestamp",
    "device_instance",
    "device_name",
    "object_type",
    "object_instance",
    "point_name",
    "value",
    "value_text",
    "units",
    "status_flags",
    "status_flag_names",
]
_COLUMNS = [
    "timestamp",
    "point__device__device_instance",
    "point__device__name",
    "point__object_type",
    "point__object_instance",
    "point__name",
    "value",
    "value_text",
    "point__units",
    "status_flags",
]


def neutralise(cell: Any) -> Any:
    """Make a text cell inert for spreadsheets; other values pass unchanged."""
    if isinstance(cell, str) and cell.startswith(FORMULA_PREFIXES):
        return "'" + cell
    return cell


class _Echo:
    """A file-like object whose write returns the line, for csv.writer in a generator."""

    def write(self, value: str) -> str:
        return value


def reading_rows(readings: QuerySet) -> Iterator[list[Any]]:
    rows = readings.order_by("timestamp", "point_id").values_list(*_COLUMNS)
    for row in rows.iterator(chunk_size=CHUNK_SIZE):
        timestamp, *rest = row
        # The bit mask means nothing in a spreadsheet: its flags are named beside it.
        names = ";".join(StatusFlags.flag_names(rest[-1]))
        # In the site's zone (TIME_ZONE), with its offset: what the pages show.
        local = timezone.localtime(timestamp).isoformat()
        yield [local, *(neutralise(cell) for cell in rest), names]


def csv_lines(rows: Iterable[list[Any]]) -> Iterator[str]:
    writer = csv.writer(_Echo())
    yield writer.writerow(HEADER)
    for row in rows:
        yield writer.writerow(row)


def readings_csv_response(readings: QuerySet, filename: str) -> StreamingHttpResponse:
    response = StreamingHttpResponse(
        csv_lines(reading_rows(readings)), content_type="text/csv; charset=utf-8"
    )
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    return response


def export_filename(selected: dict[str, Any]) -> str:
    """``readings-device-5-point-12.csv``: a device is named by its BACnet instance, as
    on the pages, whether it was chosen by instance or by database id."""
    parts = []
    instance = selected.get("device_instance")
    if instance is None and selected.get("device") is not None:
        found = BACnetDevice.objects.filter(pk=selected["device"]).values_list(
            "device_instance", flat=True
        )
        instance = found.first()
    if instance is not None:
        parts.append(f"device-{int(instance)}")
    if selected.get("point") is not None:
        parts.append(f"point-{int(selected['point'])}")
    return "-".join(["readings", *parts]) + ".csv"
