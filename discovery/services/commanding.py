"""Commanding points, the requesting side: check a write before any packet, record it
in the audit trail, and request the job that carries it to the BACnet worker.

The page, the API and the timed-override sweep all call these functions; the worker's
side (the write itself, the read-back) is in ``command_runs``.
"""

from __future__ import annotations

import math
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from discovery.command_models import COMMAND_PERMISSION
from discovery.jobs import JobError, request_job
from discovery.models import BACnetPoint, BACnetTask, PointCommand

Result = PointCommand.Result
Override = PointCommand.Override

# Objects whose present value is commandable (a priority array) or writable.
COMMANDABLE_TYPES = (
    "analog-output",
    "analog-value",
    "binary-output",
    "binary-value",
    "multi-state-output",
    "multi-state-value",
)
DEFAULT_PRIORITY = 8  # "manual operator"
# Priority 6 is reserved for minimum on/off times (clause 19.2.3): never written by hand.
RESERVED_PRIORITY = 6
# The durations the point page offers for a timed override.
DURATIONS = {"30m": timedelta(minutes=30), "1h": timedelta(hours=1), "4h": timedelta(hours=4)}


class CommandRefused(JobError):
    """The write is refused before anything is sent; the message says why."""


class NotAllowed(PermissionError):
    """The user may not command points."""


def can_command(user: Any) -> bool:
    return bool(getattr(user, "is_authenticated", False) and user.has_perm(COMMAND_PERMISSION))


def is_commandable(point: BACnetPoint) -> bool:
    return point.object_type in COMMANDABLE_TYPES


def state_names(point: BACnetPoint) -> list[str]:
    """Multi-state: the state texts, state 1 first; binary: inactive, active."""
    return [str(t) for t in point.state_texts or []]


def check_priority(priority: Any) -> int:
    if isinstance(priority, int) and not isinstance(priority, bool):
        number = priority
    elif isinstance(priority, str) and priority.strip().isdigit():
        number = int(priority.strip())
    else:
        raise CommandRefused("The priority must be a whole number from 1 to 16.")
    if not 1 <= number <= 16:
        raise CommandRefused(f"Priority {number} does not exist: BACnet priorities are 1-16.")
    if number == RESERVED_PRIORITY:
        raise CommandRefused("Priority 6 is reserved for minimum on/off times: choose another.")
    return number


def check_value(point: BACnetPoint, value: Any) -> tuple[float | str, float, str]:
    """(value to send, number to record, text to record) or ``CommandRefused``.

    Analog: a finite number within the min/max present value last read from the device;
    binary: active/inactive (or the point's own texts, or 1/0); multi-state: a state
    number 1..number of states, or a state name."""
    if not is_commandable(point):
        raise CommandRefused(
            f"{point.object_type} {point.object_instance} cannot be commanded: only analog, "
            "binary and multi-state outputs and values can."
        )
    text = str(value).strip() if value is not None else ""
    if not text:
        raise CommandRefused("A value is needed.")
    kind = point.object_type
    if kind.startswith("analog"):
        try:
            number = float(text)
        except ValueError:
            raise CommandRefused(f"{text[:40]!r} is not a number.") from None
        if not math.isfinite(number):
            raise CommandRefused("The value must be a finite number.")
        low, high = _limits(point)
        if low is not None and number < low:
            raise CommandRefused(f"{number:g} is below the point's minimum ({low:g}).")
        if high is not None and number > high:
            raise CommandRefused(f"{number:g} is above the point's maximum ({high:g}).")
        return number, number, f"{number:g}"
    if kind.startswith("binary"):
        shown = state_names(point) if len(state_names(point)) == 2 else []
        texts = [t.lower() for t in shown]
        lowered = text.lower()
        if lowered in ("inactive", "0", "off", "false") or (texts and lowered == texts[0]):
            return "inactive", 0.0, f"inactive ({shown[0]})" if shown else "inactive"
        if lowered in ("active", "1", "on", "true") or (texts and lowered == texts[1]):
            return "active", 1.0, f"active ({shown[1]})" if shown else "active"
        raise CommandRefused(f"{text[:40]!r}: a binary point takes active or inactive.")
    names = state_names(point)
    count = _number_of_states(point) or len(names)
    if text.isdigit():
        state = int(text)
    elif text.lower() in [n.lower() for n in names]:
        state = [n.lower() for n in names].index(text.lower()) + 1
    else:
        offered = ", ".join(f"{i} ({n})" for i, n in enumerate(names, start=1))
        raise CommandRefused(
            f"{text[:40]!r} is not a state of this point" + (f": {offered}." if offered else ".")
        )
    if count and not 1 <= state <= count:
        raise CommandRefused(f"State {state} does not exist: this point has states 1-{count}.")
    if state < 1:
        raise CommandRefused("States are numbered from 1.")
    label = names[state - 1] if 1 <= state <= len(names) else ""
    return state, float(state), f"{state} ({label})" if label else str(state)


def _limits(point: BACnetPoint) -> tuple[float | None, float | None]:
    state = getattr(point, "command_state", None)
    if state is None:
        return None, None
    return state.min_present_value, state.max_present_value


def _number_of_states(point: BACnetPoint) -> int | None:
    state = getattr(point, "command_state", None)
    return state.number_of_states if state is not None else None


def expiry(duration: str | None, until: datetime | None, now: datetime | None = None) -> Any:
    """When a timed override ends: a duration key (``30m``, ``1h``, ``4h``), a time, or
    None (a permanent write)."""
    now = now or timezone.now()
    if until is not None:
        if until <= now:
            raise CommandRefused("The end of the override must be in the future.")
        return until
    if not duration:
        return None
    if duration not in DURATIONS:
        raise CommandRefused(f"Unknown duration {duration!r}: use {', '.join(DURATIONS)}.")
    return now + DURATIONS[duration]


def _check_reason(reason: str) -> str:
    reason = (reason or "").strip()
    if settings.BACNET_COMMAND_REASON_REQUIRED and not reason:
        raise CommandRefused("Say why (the reason is kept in the audit trail).")
    return reason[:500]


def _audit_row(point: BACnetPoint, user: Any, **fields: Any) -> PointCommand:
    person = user if getattr(user, "is_authenticated", False) else None
    return PointCommand.objects.create(
        point=point,
        device_instance=point.device.device_instance,
        object_type=point.object_type,
        object_instance=point.object_instance,
        point_name=point.name[:255],
        user=person,
        username=person.get_username() if person else "",
        **fields,
    )


def request_write(
    point: BACnetPoint,
    value: Any,
    priority: Any = DEFAULT_PRIORITY,
    *,
    user: Any,
    reason: str = "",
    expires_at: datetime | None = None,
    trigger: str = BACnetTask.Trigger.MANUAL,
) -> PointCommand:
    """Check, record and request a write. A refusal is recorded too (``rejected``, no
    job, nothing sent) and raised as ``CommandRefused``; a user without the permission
    gets ``NotAllowed`` and nothing is recorded."""
    if not can_command(user):
        raise NotAllowed("You may not command points (the Operators group may).")
    try:
        level = check_priority(priority)
        _sent, number, text = check_value(point, value)
        why = _check_reason(reason)
    except CommandRefused as refused:
        _audit_row(
            point,
            user,
            action=PointCommand.Action.WRITE,
            value_text=str(value)[:255] if value is not None else "",
            priority=priority if isinstance(priority, int) and 1 <= priority <= 16 else 16,
            reason=str(reason or "")[:500],
            result=Result.REJECTED,
            message=str(refused),
            finished_at=timezone.now(),
        )
        raise
    with transaction.atomic():
        # A later write at the same priority takes the slot: an override there must not
        # relinquish it at its own expiry.
        PointCommand.objects.filter(
            point=point, priority=level, override_state=Override.ACTIVE
        ).update(override_state=Override.REPLACED, override_ended_at=timezone.now())
        command = _audit_row(
            point,
            user,
            action=PointCommand.Action.WRITE,
            value=number,
            value_text=text,
            priority=level,
            reason=why,
            expires_at=expires_at,
            override_state=Override.ACTIVE if expires_at else Override.NONE,
        )
        # The point's site: its worker is the one on the point's LAN.
        command.task = request_job(
            BACnetTask.Kind.WRITE,
            {"command_id": command.pk},
            trigger=trigger,
            user=user,
            site=point.device.site,
        )
        command.save(update_fields=["task"])
    return command


def request_relinquish(
    point: BACnetPoint,
    priority: Any,
    *,
    user: Any,
    reason: str = "",
    ends: PointCommand | None = None,
    trigger: str = BACnetTask.Trigger.MANUAL,
) -> PointCommand:
    """Record and request a NULL write at ``priority``. ``user`` None is the system (a
    timed override's expiry); a person needs the permission and (by setting) a reason."""
    if user is not None and not can_command(user):
        raise NotAllowed("You may not command points (the Operators group may).")
    level = check_priority(priority)
    if not is_commandable(point):
        raise CommandRefused(f"{point.object_type} {point.object_instance} cannot be commanded.")
    why = _check_reason(reason) if user is not None else (reason or "")[:500]
    with transaction.atomic():
        if ends is None:
            # Relinquishing by hand ends the override holding that slot, if any (also
            # one whose own relinquish failed, e.g. the device was offline at expiry).
            PointCommand.objects.filter(
                point=point, priority=level, override_state__in=[Override.ACTIVE, Override.ENDING]
            ).update(
                override_state=Override.ENDED,
                override_ended_at=timezone.now(),
                override_ended_by=getattr(user, "username", "")[:150],
            )
        command = _audit_row(
            point,
            user,
            action=PointCommand.Action.RELINQUISH,
            value_text="NULL",
            priority=level,
            reason=why,
        )
        # The point's site: its worker is the one on the point's LAN.
        command.task = request_job(
            BACnetTask.Kind.WRITE,
            {"command_id": command.pk},
            trigger=trigger,
            user=user,
            site=point.device.site,
        )
        command.save(update_fields=["task"])
        if ends is not None:
            PointCommand.objects.filter(pk=ends.pk).update(relinquished_by=command)
    return command


def end_override(override: PointCommand, *, user: Any, reason: str = "") -> PointCommand | None:
    """End an active override now (relinquish its priority). None if it is not active
    any more (expired, ended or replaced meanwhile)."""
    if not can_command(user):
        raise NotAllowed("You may not command points (the Operators group may).")
    why = _check_reason(reason)
    claimed = PointCommand.objects.filter(pk=override.pk, override_state=Override.ACTIVE).update(
        override_state=Override.ENDING,
        override_ended_at=timezone.now(),
        override_ended_by=user.get_username()[:150],
    )
    if claimed != 1 or override.point is None:
        return None
    return request_relinquish(
        override.point, override.priority, user=user, reason=why or "ended early", ends=override
    )


def relinquish_due_overrides(now: datetime | None = None) -> int:
    """Relinquish every active override whose time has come. Each is claimed with a
    conditional update (two sweepers never relinquish one twice); the relinquish is an
    ordinary job, so it survives a worker restart like any other. Returns how many."""
    now = now or timezone.now()
    count = 0
    due = PointCommand.objects.filter(
        override_state=Override.ACTIVE, expires_at__lte=now
    ).select_related("point__device")
    for override in due:
        claimed = PointCommand.objects.filter(
            pk=override.pk, override_state=Override.ACTIVE
        ).update(override_state=Override.ENDING, override_ended_at=now, override_ended_by="")
        if claimed != 1:
            continue
        if override.point is None:
            PointCommand.objects.filter(pk=override.pk).update(override_state=Override.ENDED)
            continue
        request_relinquish(
            override.point,
            override.priority,
            user=None,
            reason=f"override #{override.pk} expired",
            ends=override,
            trigger=BACnetTask.Trigger.SCHEDULED,
        )
        count += 1
    return count


def request_priority_read(point: BACnetPoint, *, user: Any) -> BACnetTask:
    """A job that reads the point's priority array fresh from the device."""
    if not is_commandable(point):
        raise CommandRefused(f"{point.object_type} points have no priority array.")
    return request_job(
        BACnetTask.Kind.READ_PRIORITY, {"point_id": point.pk}, user=user, site=point.device.site
    )


def active_overrides() -> Any:
    return (
        PointCommand.objects.filter(override_state=Override.ACTIVE)
        .select_related("point__device")
        .order_by("expires_at")
    )
