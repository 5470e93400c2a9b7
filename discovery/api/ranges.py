"""Time ranges as users give them: a named span ending now, or a custom start and end.

Shared by the pages (point trends, CSV links) and the API (trend data), so a range means
the same thing everywhere and a bad one is always the same clear 400."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta

from django.utils import timezone
from django.utils.dateparse import parse_date, parse_datetime

NAMED_RANGES: dict[str, timedelta] = {
    "hour": timedelta(hours=1),
    "day": timedelta(days=1),
    "week": timedelta(weeks=1),
    "month": timedelta(days=31),
    "year": timedelta(days=366),
}
RANGE_LABELS = {
    "hour": "Last hour",
    "day": "Last day",
    "week": "Last week",
    "month": "Last month",
    "year": "Last year",
    "custom": "Custom",
}
# Ten years is far beyond any retention here: larger spans are typing mistakes.
MAX_SPAN = timedelta(days=3660)


class RangeError(ValueError):
    """The range cannot be used as given; the message is meant for the user."""


@dataclass(frozen=True)
class TimeRange:
    start: datetime
    end: datetime
    name: str  # one of NAMED_RANGES or "custom"

    @property
    def span(self) -> timedelta:
        return self.end - self.start


def parse_time(text: str, field: str) -> datetime:
    """An ISO 8601 date-time (``2026-11-23T10:00``, with or without zone) or a date.

    Times without a zone are read in the site's time zone."""
    text = text.strip()
    try:
        moment = parse_datetime(text)
        if moment is None:
            day = parse_date(text)
            moment = datetime.combine(day, time.min) if isinstance(day, date) else None
    except ValueError:
        moment = None
    if moment is None:
        raise RangeError(
            f"{field} must be an ISO 8601 date or date-time, e.g. 2026-11-23T10:00:00Z."
        )
    try:
        if timezone.is_naive(moment):
            moment = timezone.make_aware(moment)
        # ISO 8601 allows offsets up to 23:59, PostgreSQL stores 15:59 at most.
        return moment.astimezone(UTC)
    except (OverflowError, ValueError):
        raise RangeError(f"{field} is out of range.") from None


def resolve_range(params: Mapping[str, str], default: str = "day") -> TimeRange:
    """Read ``range`` (hour, day, week, month, year, custom) or ``start``/``end``.

    ``start`` or ``end`` alone makes a custom range: the end defaults to now, the start
    to one day before the end."""
    name = (params.get("range") or "").strip()
    start_text = (params.get("start") or "").strip()
    end_text = (params.get("end") or "").strip()
    now = timezone.now()
    if name and name != "custom" and name not in NAMED_RANGES:
        raise RangeError(f"range must be one of {', '.join([*NAMED_RANGES, 'custom'])}.")
    if name in NAMED_RANGES or not (start_text or end_text or name):
        name = name or default
        return TimeRange(start=now - NAMED_RANGES[name], end=now, name=name)
    end = parse_time(end_text, "end") if end_text else now
    start = parse_time(start_text, "start") if start_text else end - NAMED_RANGES["day"]
    if start >= end:
        raise RangeError("start must be before end.")
    if end - start > MAX_SPAN:
        raise RangeError("The range is longer than ten years: narrow it down.")
    return TimeRange(start=start, end=end, name="custom")
