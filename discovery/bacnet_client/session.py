"""Requests to one device: ``_Session`` puts a deadline on every network await and converts
whatever bacpypes3 raises into ``BACnetError`` / ``BACnetTimeout``.

bacpypes3's ErrorPDU, RejectPDU and AbortPDU derive from BaseException and would kill a
Celery worker; a garbage or truncated answer would leave a request waiting forever. Every
request of ``device._DeviceWork`` goes through ``_Session.call()`` for both reasons.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Iterable, Sequence
from typing import TYPE_CHECKING, Any

from discovery.bacnet_client.convert import _enum_text, _nack_reason, safe_text
from discovery.bacnet_types import BACnetError, BACnetTimeout

if TYPE_CHECKING:
    from discovery.bacnet_client.runtime import ClientRuntime

# Requests in flight to one device when reading element by element or property by property.
_PER_DEVICE_IN_FLIGHT = 2


async def _all(awaitables: Iterable[Awaitable[Any]]) -> list[Any]:
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


class _Session:
    """Requests to one device, each with its own deadline, errors converted."""

    def __init__(self, client: ClientRuntime, instance: int, address: str) -> None:
        self.client = client
        self.bp = client._bp
        self.instance = instance
        self.address_text = address
        self.address = self.bp.Address(address)
        self.in_flight = asyncio.Semaphore(_PER_DEVICE_IN_FLIGHT)

    def where(self, what: str) -> str:
        return f"device {self.instance} at {self.address_text}: {what}"

    async def call(self, awaitable: Awaitable[Any], what: str) -> Any:
        deadline = self.client.config.request_deadline_s
        try:
            return await asyncio.wait_for(awaitable, deadline)
        except TimeoutError:
            raise BACnetTimeout(
                self.where(f"{what}: no complete answer within {deadline:g} s"),
                device=self.instance,
                reason="timeout",
            ) from None
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
            reason = _nack_reason(self.bp, exc)
            if reason == "abort: no-response":
                # The stack's own abort once every retry went unanswered.
                raise BACnetTimeout(
                    self.where(f"{what}: no answer (apdu timeout, retries exhausted)"),
                    device=self.instance,
                    reason="timeout",
                ) from None
            raise BACnetError(
                self.where(f"{what}: {reason}"), device=self.instance, reason=reason
            ) from None
        except Exception as exc:
            reason = f"{type(exc).__name__}: {safe_text(exc)}"
            raise BACnetError(
                self.where(f"{what}: {reason}"), device=self.instance, reason=reason
            ) from None

    def object_id(self, object_type: str, instance: int) -> Any:
        return self.bp.ObjectIdentifier((object_type, instance))

    async def read(
        self, object_type: str, instance: int, prop: str, index: int | None = None
    ) -> Any:
        what = f"read-property {object_type},{instance} {prop}" + (
            f"[{index}]" if index is not None else ""
        )
        app = self.client._app
        async with self.in_flight:
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
            answer = await self.call(
                self.client._app.read_property_multiple(self.address, parameters), what
            )
        if not isinstance(answer, list):
            raise BACnetError(
                self.where(f"{what}: unsupported answer"),
                device=self.instance,
                reason="unsupported answer",
            )
        results = {}
        for objid, prop_id, index, value in answer:
            key = (_enum_text(objid[0]), int(objid[1]), _enum_text(prop_id), index)
            results[key] = value
        return results
