"""Commanding one point: WriteProperty of the present value at a priority (clause 19.2),
a NULL write to relinquish it, and a read of what decides the value now (priority array,
relinquish default, current command priority, min/max present value).

bacpypes3's ``write_property`` returns (does not raise) an error, reject or abort answer,
and raises them as BaseException elsewhere: both end here as ``BACnetError`` with the
device's reason ("error property: write-access-denied").
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from discovery.bacnet_client.convert import convert_present_value, nack_reason
from discovery.bacnet_types import BACnetError, CommandState, PrioritySlot

if TYPE_CHECKING:
    from discovery.bacnet_client.session import Session

_OPTIONAL = ("min-pres-value", "max-pres-value", "number-of-states")


def typed_value(bp: Any, object_type: str, value: float | str | None) -> Any:
    """The bacpypes3 value of a write: NULL relinquishes; REAL, BinaryPV or Unsigned
    as the object type wants (the caller has validated ``value`` already)."""
    if value is None:
        return bp.Null(())
    if object_type.startswith("analog"):
        return bp.Real(float(value))
    if object_type.startswith("binary"):
        return bp.BinaryPV(str(value))
    return bp.Unsigned(int(value))


async def write_present_value(
    s: Session, object_type: str, instance: int, value: float | str | None, priority: int
) -> None:
    """WriteProperty present-value at ``priority``; ``value`` None writes NULL."""
    bp = s.bp
    verb = "relinquish" if value is None else f"write {value!r}"
    what = f"{verb} to {object_type},{instance} present-value at priority {priority}"
    answer = await s.call(
        s.client.application.write_property(
            s.address,
            s.object_id(object_type, instance),
            bp.PropertyIdentifier("present-value"),
            typed_value(bp, object_type, value),
            None,
            priority,
        ),
        what,
    )
    if isinstance(answer, bp.ErrorRejectAbortNack):
        reason = nack_reason(bp, answer)
        raise BACnetError(s.where(f"{what}: {reason}"), device=s.instance, reason=reason)
    if isinstance(answer, str) and answer.startswith("-no "):
        reason = answer.strip("-")
        raise BACnetError(s.where(f"{what}: {reason}"), device=s.instance, reason=reason)


async def read_command_state(
    s: Session, object_type: str, instance: int, state_texts: Sequence[str] = ()
) -> CommandState:
    """Present value, priority array, relinquish default and limits of one object, with
    ReadProperty each (a few requests: this is one point on demand, not a cycle)."""
    bp = s.bp
    texts = tuple(state_texts)
    state = CommandState(object_type=object_type, instance=instance)
    pv = await s.read(object_type, instance, "present-value")
    state.present_value, state.present_text = convert_present_value(bp, object_type, pv, texts)
    try:
        array = await s.read(object_type, instance, "priority-array")
    except BACnetError as exc:
        if "unknown-property" not in exc.reason:
            raise
        state.commandable = False
        return state
    for position, slot in enumerate(array, start=1):
        if getattr(slot, "null", None) is not None:
            continue
        choice = getattr(slot, "_choice", None)
        raw = getattr(slot, choice) if choice else slot
        number, text = convert_present_value(bp, object_type, raw, texts)
        state.slots.append(PrioritySlot(priority=position, value=number, text=text))
    default = await s.read(object_type, instance, "relinquish-default")
    state.relinquish_default, state.relinquish_default_text = convert_present_value(
        bp, object_type, default, texts
    )
    state.current_priority = state.slots[0].priority if state.slots else None
    for prop in _OPTIONAL:
        if prop == "number-of-states" and not object_type.startswith("multi-state"):
            continue
        if prop != "number-of-states" and not object_type.startswith("analog"):
            continue
        try:
            value = await s.read(object_type, instance, prop)
        except BACnetError as exc:
            if "unknown-property" in exc.reason:
                continue  # optional properties: the object has no such limit
            raise
        if prop == "min-pres-value":
            state.min_present_value = float(value)
        elif prop == "max-pres-value":
            state.max_present_value = float(value)
        else:
            state.number_of_states = int(value)
    return state


class CommandingMixin:
    """The facade's commanding methods (mixed into ``BACnetClient``)."""

    config: Any
    _run: Any
    _session: Any

    def read_command_state(
        self,
        instance: int,
        address: str,
        object_type: str,
        object_instance: int,
        state_texts: Sequence[str] = (),
    ) -> CommandState:
        """What decides the point's present value now (see ``CommandState``)."""

        async def work() -> CommandState:
            session = self._session(instance, address)
            return await read_command_state(session, object_type, object_instance, state_texts)

        return self._run(work, self.config.request_timeout_s * 8 + 10)

    def write_present_value(
        self,
        instance: int,
        address: str,
        object_type: str,
        object_instance: int,
        value: float | str | None,
        priority: int,
    ) -> None:
        """WriteProperty present-value at ``priority`` (``value`` None: relinquish).
        Raises ``BACnetError`` with the device's reason when it refuses."""

        async def work() -> None:
            session = self._session(instance, address)
            await write_present_value(session, object_type, object_instance, value, priority)

        self._run(work, self.config.request_timeout_s * 2 + 10)
