"""Store on change: a reading goes into the history only when it moved beyond the point's
deadband or its heartbeat is due; the point's latest value is updated every cycle.

A rule is (absolute deadband, relative deadband, heartbeat minutes). Each point's own
fields win, field by field, over the rule of its object type (``BACNET_STORE_RULES``,
e.g. ``{"analog-input": {"deadband": 0.2, "heartbeat_minutes": 15}}``). A point with no
rule at all stores every reading: today's behaviour stays the default. Binary and
multi-state points store on any change of state, whatever the deadband says. A change of
status flags (alarm, fault, override) is always stored.

Comparisons are against the last *stored* reading (``BACnetPoint.stored_*``), so a slow
drift is stored once it has moved a deadband in total, not lost in small steps.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.db.models import Q

from discovery.models import BACnetPoint

STATEFUL_TYPES = ("binary", "multi-state")


@dataclass(frozen=True)
class Rule:
    deadband: float | None = None
    deadband_relative: float | None = None
    heartbeat_minutes: float | None = None

    @property
    def active(self) -> bool:
        return any(
            v is not None for v in (self.deadband, self.deadband_relative, self.heartbeat_minutes)
        )


@dataclass(frozen=True)
class Stored:
    """A point's rule and its last stored reading."""

    object_type: str
    rule: Rule
    value: float | None
    text: str
    flags: int | None
    at: datetime | None


def type_rule(object_type: str) -> Rule:
    raw = (settings.BACNET_STORE_RULES or {}).get(object_type) or {}
    return Rule(raw.get("deadband"), raw.get("deadband_relative"), raw.get("heartbeat_minutes"))


def effective_rule(point_rule: Rule, object_type: str) -> Rule:
    """The point's own settings, each falling back to its object type's rule."""
    fallback = type_rule(object_type)
    return Rule(
        *(
            own if own is not None else default
            for own, default in zip(
                (point_rule.deadband, point_rule.deadband_relative, point_rule.heartbeat_minutes),
                (fallback.deadband, fallback.deadband_relative, fallback.heartbeat_minutes),
                strict=True,
            )
        )
    )


def should_store(
    stored: Stored, value: float | None, text: str, flags: int | None, at: datetime
) -> bool:
    """Whether this reading goes into the history."""
    rule = stored.rule
    if not rule.active or stored.at is None:
        return True
    if rule.heartbeat_minutes is not None and at - stored.at >= timedelta(
        minutes=rule.heartbeat_minutes
    ):
        return True
    if flags != stored.flags:
        return True
    if value is None or stored.value is None:
        return (value, text) != (stored.value, stored.text)
    if stored.object_type.startswith(STATEFUL_TYPES):
        return value != stored.value
    band = max(rule.deadband or 0.0, (rule.deadband_relative or 0.0) * abs(stored.value))
    if band == 0.0:
        return value != stored.value
    return abs(value - stored.value) > band


def _any_rule_in_use() -> bool:
    """A type rule, or any point with its own (the partial index
    ``discovery_point_store_rule`` answers without reading the points)."""
    if settings.BACNET_STORE_RULES:
        return True
    return BACnetPoint.objects.filter(
        Q(deadband__isnull=False)
        | Q(deadband_relative__isnull=False)
        | Q(heartbeat_minutes__isnull=False)
    ).exists()


def unchanged_points(
    values: Iterable[tuple[int, float | None, str, int | None]], at: datetime
) -> set[int] | None:
    """The points of a cycle whose reading is *not* to be stored (within the deadband,
    heartbeat not due). None, after one cheap query, when no rule is in use: every
    reading is stored and the last stored reading need not be tracked."""
    if not _any_rule_in_use():
        return None
    values = list(values)
    ids = [point_id for point_id, *_ in values]
    if not ids:
        return set()
    states = {
        row[0]: Stored(
            row[1],
            effective_rule(Rule(row[2], row[3], row[4]), row[1]),
            row[5],
            row[6],
            row[7],
            row[8],
        )
        for row in BACnetPoint.objects.filter(pk__in=ids).values_list(
            "pk",
            "object_type",
            "deadband",
            "deadband_relative",
            "heartbeat_minutes",
            "stored_value",
            "stored_value_text",
            "stored_status_flags",
            "stored_at",
        )
    }
    return {
        point_id
        for point_id, number, text, flags in values
        if point_id in states and not should_store(states[point_id], number, text, flags, at)
    }
