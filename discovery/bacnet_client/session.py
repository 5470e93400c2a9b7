"""Requests to one device: ``Session`` puts a deadline on every network await, converts
whatever bacpypes3 raises into ``BACnetError`` / ``BACnetTimeout``, and notices when a
device that was answering stops.

bacpypes3's ErrorPDU, RejectPDU and AbortPDU derive from BaseException and would kill a
Celery worker; a garbage or truncated answer would leave a request waiting forever. Every
request of ``device.DeviceWork`` goes through ``Session.call()`` for both reasons.

A device that dies in the middle of a read would otherwise cost a full request deadline
per remaining batch. After a timeout the session asks one cheap question (the device's
name, outside the queue of batches); if that goes unanswered too, the device is "gone"
for the rest of this operation: every waiting request fails at once with the same reason.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Iterable, Sequence
from typing import TYPE_CHECKING, Any

from discovery.bacnet_client.convert import enum_text, nack_reason, safe_text
from discovery.bacnet_types import BACnetError, BACnetTimeout

if TYPE_CHECKING:
    from discovery.bacnet_client.runtime import ClientRuntime

# Requests in flight to one device: a safe start, one more after every few answers in
# a row up to the most, halved on a timeout (learned per device and operation). With the
# simulated device on the same two cores, 4 gained up to 1.1x on enumeration and nothing
# on reads over 2 (bench/bigdevice.py, docs/bacnet.md); a controller with a CPU of its
# own is where more in flight can pay.
IN_FLIGHT_START = 2
IN_FLIGHT_MOST = 4
_IN_FLIGHT_GROW_AFTER = 8
# Timeouts in a row (no answer in between) of a device that still answers the probe
# before it is given up for this operation anyway: each one cost a request deadline.
_MAX_TIMEOUTS = 4


class _InFlight:
    """How many requests one device gets at once: additive increase while it answers,
    halved when a request times out (a busy device is given less, not more)."""

    def __init__(self) -> None:
        self.limit = IN_FLIGHT_START
        self.active = 0
        self.streak = 0
        self._changed = asyncio.Condition()

    async def __aenter__(self) -> None:
        async with self._changed:
            await self._changed.wait_for(lambda: self.active < self.limit)
            self.active += 1

    async def __aexit__(self, *exc_info: object) -> None:
        async with self._changed:
            self.active -= 1
            self._changed.notify_all()

    def answered(self) -> None:
        self.streak += 1
        if self.streak >= _IN_FLIGHT_GROW_AFTER and self.limit < IN_FLIGHT_MOST:
            self.limit += 1
            self.streak = 0

    def timed_out(self) -> None:
        self.limit = max(1, self.limit // 2)
        self.streak = 0


class DeviceGone(BACnetTimeout):
    """A device that had answered stopped answering (its probe went unanswered too)."""


async def gather_all(awaitables: Iterable[Awaitable[Any]]) -> list[Any]:
    """asyncio.gather that cancels the others when one fails: no request outlives its device."""
    tasks = [asyncio.ensure_future(a) for a in awaitables]
    try:
        return await asyncio.gather(*tasks)
    except BaseException:
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.wait(tasks)
        raise


class Session:
    """Requests to one device, each with its own deadline, errors converted."""

    def __init__(self, client: ClientRuntime, instance: int, address: str) -> None:
        self.client = client
        self.bp = client.bp
        self.instance = instance
        self.address_text = address
        self.address = self.bp.Address(address)
        self.in_flight = _InFlight()
        # Liveness: when the device last answered anything (an error is an answer too),
        # how many requests timed out, and the reason once it is given up.
        self.answered_at: float | None = None
        self.timeouts = 0
        self.gone: DeviceGone | None = None
        self._probe: asyncio.Future[bool] | None = None
        self._probe_sent = 0.0

    @property
    def answered(self) -> bool:
        return self.answered_at is not None

    def where(self, what: str) -> str:
        return f"device {self.instance} at {self.address_text}: {what}"

    async def call(self, awaitable: Awaitable[Any], what: str, probe: bool = False) -> Any:
        if self.gone is not None and not probe:
            _close(awaitable)
            raise self.gone
        config = self.client.config
        deadline = config.request_timeout_s
        sent = time.monotonic()
        try:
            answer = await asyncio.wait_for(awaitable, deadline)
        except TimeoutError:
            # Only a request the stack never completes gets here (a malformed or truncated
            # answer): a silent device ends in the stack's own no-response abort first.
            exc = BACnetTimeout(
                self.where(
                    f"{what}: no complete answer within {deadline:g} s (BACNET_REQUEST_DEADLINE_S)"
                ),
                device=self.instance,
                reason="incomplete answer",
            )
            raise await self._after_timeout(exc, sent, probe) from None
        except asyncio.CancelledError:
            task = asyncio.current_task()
            if task is not None and task.cancelling():
                raise  # our caller is being cancelled (device deadline, stop): let it
            raise BACnetError(
                self.where(f"{what}: request cancelled by the stack"),
                device=self.instance,
                reason="cancelled",
            ) from None
        except BACnetError:
            raise
        except self.bp.ErrorRejectAbortNack as exc:
            reason = nack_reason(self.bp, exc)
            if reason == "abort: no-response":
                # The stack's own abort once every retry went unanswered.
                timeout = BACnetTimeout(
                    self.where(f"{what}: {config.no_answer_text}"),
                    device=self.instance,
                    reason="timeout",
                )
                raise await self._after_timeout(timeout, sent, probe) from None
            self._answered(probe)
            raise BACnetError(
                self.where(f"{what}: {reason}"), device=self.instance, reason=reason
            ) from None
        except Exception as exc:
            self._answered(probe)
            reason = f"{type(exc).__name__}: {safe_text(exc)}"
            raise BACnetError(
                self.where(f"{what}: {reason}"), device=self.instance, reason=reason
            ) from None
        self._answered(probe)
        return answer

    def _answered(self, probe: bool) -> None:
        self.answered_at = time.monotonic()
        if not probe:  # the probe is small: it says alive, not that batches get through
            self.timeouts = 0  # counted in a row
            self.in_flight.answered()

    async def _after_timeout(self, exc: BACnetTimeout, sent: float, probe: bool) -> BACnetTimeout:
        """The exception to raise for a timed-out request: itself while the device still
        answers (the caller retries smaller or records it), ``DeviceGone`` once it does
        not. A device that never answered is left to the caller (it fails as a whole)."""
        if probe or not self.answered:
            return exc
        if self.gone is not None:
            return self.gone
        self.timeouts += 1
        self.in_flight.timed_out()
        if self.answered_at is not None and self.answered_at > sent:
            alive = True  # another request got an answer meanwhile: no probe needed
        else:
            alive = await self._probe_once(sent)
        if self.gone is not None:
            return self.gone
        if not alive:
            self.gone = DeviceGone(
                self.where(f"stopped answering ({exc.reason}; a probe went unanswered too)"),
                device=self.instance,
                reason=exc.reason,
            )
            return self.gone
        if self.timeouts > _MAX_TIMEOUTS:
            self.gone = DeviceGone(
                self.where(
                    f"{self.timeouts} requests in a row timed out (last: {exc.reason}); "
                    "giving up on it for now (a busy device: raise BACNET_APDU_TIMEOUT_MS)"
                ),
                device=self.instance,
                reason=exc.reason,
            )
            return self.gone
        return exc

    async def _probe_once(self, sent: float) -> bool:
        """Whether the device answers its name now: one request, shared by every batch
        that timed out meanwhile, sent past the queue of batches."""
        if self._probe is None or (self._probe.done() and self._probe_sent < sent):
            self._probe_sent = time.monotonic()
            self._probe = asyncio.ensure_future(self._probe_request())
        return await asyncio.shield(self._probe)

    async def _probe_request(self) -> bool:
        try:
            await self.call(
                self.client.application.read_property(
                    self.address,
                    self.object_id("device", self.instance),
                    self.bp.PropertyIdentifier("object-name"),
                ),
                "probe",
                probe=True,
            )
        except BACnetTimeout:
            return False
        except BACnetError:
            return True  # an error answer is an answer
        return True

    def object_id(self, object_type: str, instance: int) -> Any:
        return self.bp.ObjectIdentifier((object_type, instance))

    async def read(
        self, object_type: str, instance: int, prop: str, index: int | None = None
    ) -> Any:
        what = f"read-property {object_type},{instance} {prop}" + (
            f"[{index}]" if index is not None else ""
        )
        app = self.client.application
        async with self.in_flight:
            if self.gone is not None:
                raise self.gone
            value = await self.call(
                app.read_property(
                    self.address,
                    self.object_id(object_type, instance),
                    self.bp.PropertyIdentifier(prop),
                    index,
                ),
                what,
            )
        if value is None or (isinstance(value, str) and value.startswith("-no ")):
            reason = "unsupported answer" if value is None else value.strip("-")
            raise BACnetError(self.where(f"{what}: {reason}"), device=self.instance, reason=reason)
        return value

    async def read_multiple(
        self, specs: Sequence[tuple[str, int, Sequence[str | tuple[str, int]]]]
    ) -> dict[tuple[str, int, str, int | None], Any]:
        """One ReadPropertyMultiple. Keys are (object type, instance, property, index);
        values are decoded values or an ErrorType for per-property errors."""
        bp = self.bp
        parameters: list[Any] = []
        for object_type, instance, props in specs:
            refs = []
            for prop in props:
                if isinstance(prop, tuple):
                    refs.append(
                        bp.PropertyReference(
                            propertyIdentifier=bp.PropertyIdentifier(prop[0]),
                            propertyArrayIndex=prop[1],
                        )
                    )
                else:
                    refs.append(bp.PropertyIdentifier(prop))
            parameters.extend([self.object_id(object_type, instance), refs])
        first = specs[0]
        what = f"read-property-multiple of {len(specs)} objects from {first[0]},{first[1]}"
        async with self.in_flight:
            if self.gone is not None:
                raise self.gone
            answer = await self.call(
                self.client.application.read_property_multiple(self.address, parameters), what
            )
        if not isinstance(answer, list):
            raise BACnetError(
                self.where(f"{what}: unsupported answer"),
                device=self.instance,
                reason="unsupported answer",
            )
        results = {}
        for objid, prop_id, index, value in answer:
            key = (enum_text(objid[0]), int(objid[1]), enum_text(prop_id), index)
            results[key] = value
        return results


def _close(awaitable: Awaitable[Any]) -> None:
    """Close a coroutine that will not be awaited (no "never awaited" warning)."""
    close = getattr(awaitable, "close", None)
    if close is not None:
        close()
