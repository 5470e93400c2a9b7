"""Readings as CSV, streamed: rows leave as the database yields them, in chunks, so an
export of millions of readings holds neither the whole table nor the whole file in
memory.

Device strings are untrusted: a cell that a spreadsheet would read as a formula
(``=``, ``+``, ``-``, ``@``, or a tab or carriage return before one) gets a leading
apostrophe (OWASP's advice against CSV injection). Numbers we format ourselves.

By default a row is a stored reading, as stored: with change of value or store on
change, a row says the value changed (or the heartbeat was due), and the value holds
until the point's next row. ``?every=5m`` exports regular intervals instead, what a
spreadsheet's chart or a pivot table expects: at each time of the grid, every point's
value held from its last reading (``read_at`` says when that was), empty where no value
is held (none yet, or past the point's hold limit: ``services.time_weighted``).
"""

from __future__ import annotations

import csv
import itertools
import math
import re
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

from django.conf import settings
from django.db.models import OuterRef, QuerySet, Subquery
from django.http import StreamingHttpResponse
from django.utils import timezone

from discovery.models import BACnetDevice, BACnetPoint, BACnetReading, StatusFlags
from discovery.services.time_weighted import with_hold_limit

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


def csv_lines(rows: Iterable[list[Any]], header: list[str] = HEADER) -> Iterator[str]:
    writer = csv.writer(_Echo())
    yield writer.writerow(header)
    for row in rows:
        yield writer.writerow(row)


HELD_HEADER = [*HEADER, "read_at"]
MAX_HELD_ROWS = 2_000_000
_EVERY = re.compile(r"^\s*(\d+)\s*(s|m|min|h|d)?\s*$")
_UNITS = {None: 1, "s": 1, "m": 60, "min": 60, "h": 3600, "d": 86400}


class ExportError(ValueError):
    """An ``every`` that does not parse, or a grid too big to export."""


def parse_every(text: str | None) -> timedelta | None:
    """``30s``, ``5m``, ``1h``, ``1d`` or seconds; None for none."""
    if not text:
        return None
    found = _EVERY.match(text)
    seconds = int(found.group(1)) * _UNITS[found.group(2)] if found else 0
    if not 1 <= seconds <= 31 * 86400:
        raise ExportError("every must be an interval such as 30s, 5m, 1h or 1d (1 s to 31 d).")
    return timedelta(seconds=seconds)


def held_rows(
    readings: QuerySet,
    every: timedelta,
    start: datetime | None,
    end: datetime | None,
    now: datetime | None = None,
) -> Iterator[list[Any]]:
    """One row per point at every ``every`` from ``start`` (else the first reading's
    time, rounded down to ``every``) to ``end`` (at most now): the value held from the
    point's last reading at or before that time, within its hold limit. The points are
    those with readings in the selection; the reading held into ``start`` counts."""
    now = now or timezone.now()
    end = min(end or now, now)
    ordered = readings.order_by("timestamp", "point_id")
    if start is None:
        first = ordered.values_list("timestamp", flat=True).first()
        if first is None:
            return
        step = every.total_seconds()
        start = datetime.fromtimestamp(first.timestamp() // step * step, tz=UTC)
    ids = set(readings.order_by().values_list("point_id", flat=True).distinct())
    samples = math.ceil(max((end - start) / every, 0)) * len(ids)
    if samples > MAX_HELD_ROWS:
        raise ExportError(
            f"That is {samples:,} rows (at most {MAX_HELD_ROWS:,}): choose a longer every "
            "or a shorter range."
        )
    prior = (
        BACnetReading.objects.filter(
            point_id=OuterRef("pk"),
            timestamp__lt=start,
            timestamp__gte=start - timedelta(seconds=settings.BACNET_HOLD_MAX_S),
        )
        .order_by("-timestamp")
        .values("timestamp")[:1]
    )
    points = with_hold_limit(BACnetPoint.objects.filter(pk__in=ids)).annotate(
        prior_at=Subquery(prior)
    )
    hold: dict[int, timedelta] = {}
    prior_at: dict[int, datetime] = {}
    identity: dict[int, list[Any]] = {}
    units: dict[int, Any] = {}
    for pk, hold_s, at, unit, *rest in points.order_by("pk").values_list(
        "pk", "hold_s", "prior_at", "units", *(c.removeprefix("point__") for c in _COLUMNS[1:6])
    ):
        hold[pk], identity[pk] = timedelta(seconds=hold_s), [neutralise(c) for c in rest]
        units[pk] = neutralise(unit)
        if at is not None:
            prior_at[pk] = at
    last: dict[int, tuple] = {}
    columns = ("point_id", *_COLUMNS)
    for pk, at in prior_at.items():
        found = BACnetReading.objects.filter(point_id=pk, timestamp=at).values_list(*columns)
        last.update({row[0]: row[1:] for row in found})

    def sample(moment: datetime) -> Iterator[list[Any]]:
        local = timezone.localtime(moment).isoformat()
        for pk in sorted(identity):
            held = last.get(pk)
            if held is None or moment - held[0] >= hold[pk]:
                yield [local, *identity[pk], "", "", units[pk], "", "", ""]
                continue
            timestamp, *rest = held
            names = ";".join(StatusFlags.flag_names(rest[-1]))
            cells = [neutralise(cell) for cell in rest[5:]]
            yield [local, *identity[pk], *cells, names, timezone.localtime(timestamp).isoformat()]

    moment = start
    in_range = ordered.filter(timestamp__gte=start, timestamp__lt=end).values_list(*columns)
    for pk, *row in in_range.iterator(chunk_size=CHUNK_SIZE):
        while moment < row[0] and moment < end:
            yield from sample(moment)
            moment += every
        last[pk] = tuple(row)
    while moment < end:
        yield from sample(moment)
        moment += every


def readings_csv_response(
    readings: QuerySet,
    filename: str,
    every: timedelta | None = None,
    start: datetime | None = None,
    end: datetime | None = None,
) -> StreamingHttpResponse:
    """The raw readings, or with ``every`` the held values at regular intervals
    (``held_rows``; its checks run before the response starts)."""
    if every is None:
        lines = csv_lines(reading_rows(readings))
    else:
        rows = held_rows(readings, every, start, end)
        first = next(rows, None)  # raises ExportError now, not mid-stream
        lines = csv_lines(itertools.chain([first] if first else [], rows), HELD_HEADER)
    response = StreamingHttpResponse(lines, content_type="text/csv; charset=utf-8")
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
