"""Commanding points, the BACnet worker's side: carry out a recorded write or
relinquish, read back the present value and priority array, and say plainly what the
device did.

Called by ``worker.execute`` for ``write`` and ``read_priority`` jobs. A retried job
(its worker died) never writes again once the device has acknowledged: the
acknowledgement is committed at once (``confirmed_at``), and a retry only reads back.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict
from typing import Any

from django.utils import timezone

from discovery.bacnet_client import BACnetClient
from discovery.bacnet_types import BACnetError, BACnetTimeout, CommandState
from discovery.command_models import COMMAND_PERMISSION
from discovery.models import BACnetPoint, BACnetTask, PointCommand, PointCommandState

Result = PointCommand.Result

# The device's error codes as an operator would say them.
_PLAIN = {
    "write-access-denied": "the device refused the write (write access denied)",
    "value-out-of-range": "the device refused the value: out of its range",
    "invalid-data-type": "the device refused the value: wrong type for this point",
    "unknown-object": "the device has no such object (re-enumerate the device)",
    "unknown-property": "the object has no present value to write",
    "invalid-array-index": "the device refused the priority",
    "service-request-denied": "the device refused the request",
    "unrecognized-service": "the device does not support WriteProperty",
}


def plain_reason(error: BACnetError) -> str:
    """The device's answer in plain words (the BACnet code stays in brackets)."""
    if isinstance(error, BACnetTimeout):
        return f"the device did not answer ({error.reason})"
    for code, words in _PLAIN.items():
        if code in error.reason:
            return f"{words} [{error.reason}]"
    return f"the device answered with an error: {error.reason}"


def _send_value(command: PointCommand) -> float | str | None:
    if command.action == PointCommand.Action.RELINQUISH:
        return None
    value = command.value if command.value is not None else 0.0
    if command.object_type.startswith("binary"):
        return "active" if value else "inactive"
    if command.object_type.startswith("multi-state"):
        return int(value)
    return float(value)


def store_state(point: BACnetPoint, state: CommandState) -> PointCommandState:
    slots = [asdict(slot) for slot in state.slots]
    stored, _ = PointCommandState.objects.update_or_create(
        point=point,
        defaults={
            "read_at": timezone.now(),
            "commandable": state.commandable,
            "present_value": state.present_value,
            "present_text": state.present_text[:255],
            "slots": slots,
            "current_priority": state.current_priority,
            "relinquish_default": state.relinquish_default,
            "relinquish_default_text": state.relinquish_default_text[:255],
            "min_present_value": state.min_present_value,
            "max_present_value": state.max_present_value,
            "number_of_states": state.number_of_states,
            "error": "",
        },
    )
    return stored


def _read_state(client: BACnetClient, point: BACnetPoint) -> CommandState:
    device = point.device
    return client.read_command_state(
        device.device_instance,
        device.address,
        point.object_type,
        point.object_instance,
        [str(t) for t in point.state_texts or []],
    )


def read_priority(client: BACnetClient, task: BACnetTask, progress: Callable[[str], None]) -> dict:
    """The ``read_priority`` job: read the point's priority array and store it."""
    point = BACnetPoint.objects.select_related("device").get(pk=task.parameters["point_id"])
    progress(f"Reading the priority array of {point.object_type} {point.object_instance}")
    try:
        state = _read_state(client, point)
    except BACnetError as exc:
        PointCommandState.objects.update_or_create(
            point=point, defaults={"read_at": timezone.now(), "error": plain_reason(exc)}
        )
        raise BACnetError(plain_reason(exc), device=exc.device, reason=exc.reason) from None
    store_state(point, state)
    return {"point_id": point.pk, "current_priority": state.current_priority}


def carry_out(client: BACnetClient, task: BACnetTask, progress: Callable[[str], None]) -> dict:
    """The ``write`` job: check again, write (or relinquish), read back, record."""
    command = PointCommand.objects.select_related("point__device", "user").get(
        pk=task.parameters["command_id"]
    )
    point = command.point
    if point is None:
        return _finish(command, Result.FAILED, "the point was deleted before the write")
    # The task checks the permission again: a user may have lost it since the request.
    if command.user is not None and not command.user.has_perm(COMMAND_PERMISSION):
        return _finish(command, Result.REJECTED, f"{command.username} may not command points")
    device = point.device
    value = _send_value(command)
    verb = "Relinquishing" if value is None else f"Writing {command.value_text}"
    if command.confirmed_at is None:
        if value is not None and command.object_type.startswith("analog"):
            # Limits read fresh from the device: nothing out of range is ever sent.
            try:
                limits = _read_state(client, point)
            except BACnetError as exc:
                return _finish(command, _failure(exc), plain_reason(exc))
            store_state(point, limits)
            low, high = limits.min_present_value, limits.max_present_value
            if (low is not None and float(value) < low) or (
                high is not None and float(value) > high
            ):
                return _finish(
                    command,
                    Result.REJECTED,
                    f"{value:g} is outside the point's range {low:g}..{high:g}; not sent",
                )
        progress(f"{verb} at priority {command.priority}")
        try:
            client.write_present_value(
                device.device_instance,
                device.address,
                point.object_type,
                point.object_instance,
                value,
                command.priority or 16,  # writes always have one (the audit row's rule)
            )
        except BACnetError as exc:
            return _finish(command, _failure(exc), plain_reason(exc))
        PointCommand.objects.filter(pk=command.pk).update(confirmed_at=timezone.now())
    progress("Reading back the present value and priority array")
    try:
        state = _read_state(client, point)
    except BACnetError as exc:
        message = f"written; the read-back failed: {plain_reason(exc)}"
        return _finish(command, _written(command, None), message)
    store_state(point, state)
    result = _written(command, state)
    return _finish(command, result, _message(command, state, result), state)


def _failure(exc: BACnetError) -> str:
    return Result.FAILED if isinstance(exc, BACnetTimeout) else Result.REFUSED


def _written(command: PointCommand, state: CommandState | None) -> str:
    if command.action == PointCommand.Action.RELINQUISH:
        return Result.RELINQUISHED
    current = state.current_priority if state is not None else None
    if current is not None and command.priority is not None and current < command.priority:
        return Result.NOT_IN_CONTROL
    return Result.WRITTEN


def _message(command: PointCommand, state: CommandState, result: str) -> str:
    now = state.present_text or (
        f"{state.present_value:g}" if state.present_value is not None else "?"
    )
    if result == Result.NOT_IN_CONTROL:
        return (
            f"written at priority {command.priority}, but priority {state.current_priority} "
            f"is in control: the value did not change (now {now})"
        )
    if result == Result.RELINQUISHED:
        holder = (
            f"priority {state.current_priority} in control"
            if state.current_priority
            else "the relinquish default in control"
        )
        return f"priority {command.priority} relinquished; now {now} ({holder})"
    return f"written; now {now} at priority {state.current_priority}"


def _finish(
    command: PointCommand, result: str, message: str, state: CommandState | None = None
) -> dict[str, Any]:
    fields: dict[str, Any] = {
        "result": result,
        "message": message[:2000],
        "finished_at": timezone.now(),
    }
    if state is not None:
        fields.update(
            read_back_value=state.present_value,
            read_back_text=state.present_text[:255],
            read_back_priority=state.current_priority,
            read_back_slots=[asdict(slot) for slot in state.slots],
        )
    PointCommand.objects.filter(pk=command.pk).update(**fields)
    if result == Result.RELINQUISHED:
        PointCommand.objects.filter(
            relinquished_by=command, override_state=PointCommand.Override.ENDING
        ).update(override_state=PointCommand.Override.ENDED)
    if result in (Result.REFUSED, Result.FAILED, Result.REJECTED):
        if command.override_state == PointCommand.Override.ACTIVE:
            # A write that did not happen holds nothing to relinquish later.
            PointCommand.objects.filter(pk=command.pk).update(
                override_state=PointCommand.Override.ENDED, override_ended_at=timezone.now()
            )
        # The job fails with the reason in plain words (the audit row says the same).
        raise CommandFailed(message)
    return {"command_id": command.pk, "result": result, "message": message}


class CommandFailed(Exception):
    """The device refused the write, did not answer, or it was refused here."""
