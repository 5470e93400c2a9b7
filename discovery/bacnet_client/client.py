"""BACnetClient: the synchronous facade callers use (discover, enumerate, read).

Each method submits a coroutine to the client's loop thread (``runtime.ClientRuntime``) and
waits for it with an overall limit; devices are worked on concurrently, each within
``device_deadline_s``, and one failing device never delays the others. A global Who-Is in
bacpypes3 always waits its whole timeout; ``discover()`` sends the Who-Is itself, listens to
the I-Ams the runtime records and returns once the network has been quiet.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import math
import queue
import time
from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import Any

from discovery.bacnet_client.alarms import AlarmsMixin
from discovery.bacnet_client.command import CommandingMixin
from discovery.bacnet_client.convert import safe_text
from discovery.bacnet_client.deadline import (
    ENUMERATE_S_PER_OBJECT,
    READ_S_PER_POINT,
    DeviceDeadline,
    device_deadline,
)
from discovery.bacnet_client.device import DeviceWork
from discovery.bacnet_client.runtime import ClientRuntime
from discovery.bacnet_client.whois import who_is
from discovery.bacnet_types import (
    BACnetError,
    BACnetTimeout,
    CovNotification,
    CovOutcome,
    CovTarget,
    DeviceEnumeration,
    DeviceProperties,
    DeviceReadResult,
    DeviceTarget,
    DiscoveredDevice,
    DiscoveryResult,
    PointInfo,
    PointRef,
    PointValue,
)

log = logging.getLogger(__name__)

MAX_INSTANCE = 4194303


class BACnetClient(AlarmsMixin, CommandingMixin, ClientRuntime):
    """Synchronous facade over one BAC0 application on an event-loop thread (discover,
    enumerate, read; write and relinquish from ``command.CommandingMixin``; event
    notifications, event information, AcknowledgeAlarm and recipient registration from
    ``alarms.AlarmsMixin``).

    Thread-safe: any number of caller threads may use one started client. Never call it
    from the loop thread itself (on_device callbacks run in the caller's thread)."""

    # -- discovery -----------------------------------------------------------------------

    def discover(
        self,
        low: int | None = None,
        high: int | None = None,
        targets: Sequence[str] = (),
        timeout_s: float | None = None,
    ) -> DiscoveryResult:
        """Who-Is (global, ranged, or directed to ``targets``) and collect the I-Ams.

        Returns once no I-Am has arrived for ``discovery_quiet_s`` (counted from the
        Who-Is when nothing answers), at most after ``timeout_s`` / ``discovery_max_s``,
        or as soon as every directed target answered. ``devices`` has one entry per
        instance (the first answer); an instance that answered from several addresses is
        listed with all of them in ``duplicates``."""
        if (low is None) != (high is None):
            raise BACnetError("Who-Is needs both low and high instance limits, or neither")
        if (
            low is not None
            and high is not None
            and not (0 <= low <= MAX_INSTANCE and 0 <= high <= MAX_INSTANCE and low <= high)
        ):
            raise BACnetError(f"bad Who-Is range {low}..{high} (0..{MAX_INSTANCE}, low <= high)")
        max_s = self.config.discovery_max_s if timeout_s is None else timeout_s
        return self._run(lambda: self._adiscover(low, high, list(targets), max_s), max_s + 10)

    async def _adiscover(
        self, low: int | None, high: int | None, targets: list[str], max_s: float
    ) -> DiscoveryResult:
        return await who_is(self, low, high, targets, max_s)

    # -- enumeration ---------------------------------------------------------------------

    def read_device_properties(self, instance: int, address: str) -> DeviceProperties:
        """Name, vendor, model, ... of a device (RPM, or RP when the device rejects RPM)."""

        async def work() -> DeviceProperties:
            async with device_deadline(self.config, instance):
                return await DeviceWork(self._session(instance, address)).device_properties()

        return self._run(work, self.config.device_deadline_s + 10)

    def enumerate_points(
        self, instance: int, address: str, properties: DeviceProperties | None = None
    ) -> list[PointInfo]:
        """The device's point objects with name, description, units and state texts."""

        async def work() -> list[PointInfo]:
            async with device_deadline(self.config, instance) as deadline:
                job = DeviceWork(self._session(instance, address))
                props = properties
                if props is None:
                    props = await job.device_properties()
                job.supports_rpm = props.supports_rpm
                objects = await job.object_list(props)
                deadline.grow(len(objects), ENUMERATE_S_PER_OBJECT, "objects")
                return await job.points(objects, props)

        return self._run(work, DeviceDeadline.most(self.config) + 10)

    def enumerate_devices(
        self,
        devices: Sequence[DiscoveredDevice],
        on_device: Callable[[DeviceEnumeration], None] | None = None,
        known: dict[int, frozenset[tuple[str, int]]] | None = None,
        only_new: bool = False,
    ) -> list[DeviceEnumeration]:
        """Properties, object list and point texts of many devices at once.

        At most ``read_concurrency`` devices are worked on together, each within its
        device deadline; a device that fails gets ``error`` set, with whatever was read
        before (properties, the points whose texts were read), and never delays the
        others. ``known`` (instance -> objects already stored) puts new objects first,
        so an enumeration cut short still adds points and the next attempt goes on;
        ``only_new`` reads the texts of those only (a pass that goes on).
        ``on_device`` is called in this (the caller's) thread as each device finishes.
        Results come back in ``devices`` order."""
        known = known or {}
        devices = list(devices)
        if not devices:
            return []
        results: queue.SimpleQueue[tuple[int, DeviceEnumeration]] = queue.SimpleQueue()

        async def work() -> None:
            limit = asyncio.Semaphore(max(1, self.config.read_concurrency))

            async def one(index: int, device: DiscoveredDevice) -> None:
                async with limit:
                    result = await self.enumerate_one(device, known.get(device.instance), only_new)
                    results.put((index, result))

            await asyncio.gather(*(one(i, d) for i, d in enumerate(devices)))

        future = self._submit(work)
        return self._drain(future, results, len(devices), on_device)

    def _drain(
        self,
        future: concurrent.futures.Future,
        results: queue.SimpleQueue,
        count: int,
        on_item: Callable[[Any], None] | None,
    ) -> list[Any]:
        """Hand results to ``on_item`` in the caller's thread as the loop produces them."""
        rounds = math.ceil(count / max(1, self.config.read_concurrency))
        limit = time.monotonic() + rounds * (DeviceDeadline.most(self.config) + 5) + 10
        collected: dict[int, Any] = {}
        try:
            while len(collected) < count:
                try:
                    index, item = results.get(timeout=0.2)
                except queue.Empty:
                    if future.done() and results.empty():
                        break
                    if time.monotonic() > limit:
                        raise BACnetTimeout("BACnet operation exceeded its overall limit") from None
                    continue
                collected[index] = item
                if on_item is not None:
                    on_item(item)
        finally:
            if not future.done():
                future.cancel()
        if len(collected) < count:
            try:
                future.result(timeout=1)
            except BACnetError:
                raise
            except BaseException as exc:
                raise BACnetError(f"BACnet operation failed: {type(exc).__name__}: {exc}") from None
            raise BACnetError("BACnet operation ended without all its results")
        return [collected[i] for i in range(count)]

    async def enumerate_one(
        self,
        device: DiscoveredDevice,
        known: frozenset[tuple[str, int]] | None = None,
        only_new: bool = False,
    ) -> DeviceEnumeration:
        """One device's enumeration, on the loop thread (``enumerate_devices`` runs many)."""
        started = time.monotonic()
        outcome = DeviceEnumeration(device=device, only_new=only_new)
        job: DeviceWork | None = None
        try:
            job = DeviceWork(self._session(device.instance, device.address))

            async with device_deadline(self.config, device.instance) as deadline:
                props = await job.device_properties()
                if props.max_apdu is None:
                    props.max_apdu = device.max_apdu
                if not props.segmentation and device.segmentation:
                    props.segmentation = device.segmentation
                outcome.properties = props
                objects = await job.object_list(props)
                deadline.grow(len(objects), ENUMERATE_S_PER_OBJECT, "objects")
                outcome.points = await job.points(objects, props, known or frozenset(), only_new)
                props.supports_rpm = job.supports_rpm
        except BACnetError as exc:
            outcome.error = str(exc)
            outcome.cut_short = exc.reason == "device deadline"
        except Exception as exc:  # a bug or an undecodable answer: this device only
            log.exception("enumerating device %s failed", device.instance)
            outcome.error = f"device {device.instance}: {type(exc).__name__}: {safe_text(exc)}"
        if outcome.error and not outcome.points and job is not None:
            outcome.points = job.partial_points()  # not all-or-nothing: keep what was read
        outcome.elapsed_s = time.monotonic() - started
        return outcome

    # -- change of value -----------------------------------------------------------------

    def subscribe_cov(self, targets: Sequence[CovTarget]) -> list[CovOutcome]:
        """SubscribeCOV (a renewal is the same request) for each target; one outcome each.
        The notifications are queued on arrival: ``take_cov_notifications``."""
        targets = list(targets)
        if not targets:
            return []
        limit = self.config.request_timeout_s * (len(targets) + 2)
        return self._run(lambda: self.cov.subscribe(targets), limit)

    def take_cov_notifications(self) -> tuple[list[CovNotification], int]:
        """The notifications received since the last call (oldest first), and how many
        the buffer's bound dropped meanwhile."""
        return self.cov.drain()

    # -- reads ---------------------------------------------------------------------------

    def read_points(self, targets: Sequence[DeviceTarget]) -> list[DeviceReadResult]:
        """Present value and status flags of the targets' points, devices concurrently.

        Results come back in ``targets`` order. A device that fails as a whole gets
        ``error`` set (points read before the failure keep their values, the others get
        the error); per-point problems are in ``PointValue.error``."""
        targets = list(targets)
        if not targets:
            return []
        results: queue.SimpleQueue[tuple[int, DeviceReadResult]] = queue.SimpleQueue()

        async def work() -> None:
            limit = asyncio.Semaphore(max(1, self.config.read_concurrency))

            async def one(index: int, target: DeviceTarget) -> None:
                async with limit:
                    results.put((index, await self._read_one(target)))

            await asyncio.gather(*(one(i, t) for i, t in enumerate(targets)))

        future = self._submit(work)
        return self._drain(future, results, len(targets), None)

    async def _read_one(self, target: DeviceTarget) -> DeviceReadResult:
        started = time.monotonic()
        result = DeviceReadResult(instance=target.instance, supports_rpm=target.supports_rpm)
        try:
            async with device_deadline(
                self.config, target.instance, len(target.points), READ_S_PER_POINT, "points"
            ):
                await self._read_or_find(target, result)
        except BACnetError as exc:
            result.error = str(exc)
        except Exception as exc:
            log.exception("reading device %s failed", target.instance)
            result.error = f"device {target.instance}: {type(exc).__name__}: {safe_text(exc)}"
        if result.error:
            done = {(v.object_type, v.instance) for v in result.values}
            result.values = list(result.values) + [
                PointValue(object_type=r.object_type, instance=r.instance, error=result.error)
                for r in target.points
                if (r.object_type, r.instance) not in done
            ]
        result.elapsed_s = time.monotonic() - started
        return result

    async def _read_or_find(self, target: DeviceTarget, result: DeviceReadResult) -> None:
        """Read the device at its address; when it times out there, look for its
        instance (Who-Is low = high = instance: it may have a new address) and read it
        where it answers, in this same cycle. Healthy devices cost nothing more."""
        job = DeviceWork(self._session(target.instance, target.address), target.supports_rpm)
        try:
            await job.read_values(target, result)
            result.supports_rpm = job.supports_rpm
            return
        except BACnetTimeout as exc:
            failure = exc
        found = await self.locate(target.instance)
        addresses = [d.address for d in found]
        if not found:
            result.reachable = False
            raise BACnetTimeout(
                f"{failure}; no answer to a Who-Is for its instance either",
                device=target.instance,
                reason=failure.reason,
            )
        if len(found) > 1 or found[0].address in target.conflict_addresses:
            result.conflict = addresses
            raise BACnetError(
                f"device {target.instance}: no answer at {target.address}; what answers "
                f"for its instance ({', '.join(addresses)}) is another device claiming "
                "it: not read until the conflict is resolved",
                device=target.instance,
                reason="duplicate instance",
            )
        (where,) = found
        if where.address == target.address:
            if job.supports_rpm and not job.s.answered:
                # It answers Who-Is: perhaps only ReadPropertyMultiple goes unanswered.
                # Read it with ReadProperty (one request decides: see read_values).
                job = DeviceWork(self._session(target.instance, target.address), False)
                result.values = []
                try:
                    await job.read_values(target, result)
                except BACnetTimeout:
                    raise failure from None
                result.supports_rpm = False
                log.info(
                    "BACnet device %s: ReadPropertyMultiple timed out, ReadProperty "
                    "answers: read with ReadProperty",
                    target.instance,
                )
                return
            raise failure  # it answers Who-Is but not reads: in fault (reachable)
        log.info(
            "BACnet device %s moved from %s to %s", target.instance, target.address, where.address
        )
        result.moved_to = where
        result.values = []
        moved = replace(
            target,
            address=where.address,
            max_apdu=where.max_apdu or target.max_apdu,
            segmentation=where.segmentation or target.segmentation,
        )
        job = DeviceWork(self._session(moved.instance, moved.address), moved.supports_rpm)
        await job.read_values(moved, result)
        result.supports_rpm = job.supports_rpm

    async def locate(self, instance: int) -> list[DiscoveredDevice]:
        """Every device that answers a Who-Is for ``instance`` (through the BBMD when
        registered with one), first answer first; empty when none does."""
        found = await self._adiscover(instance, instance, [], self.config.discovery_max_s)
        return found.answers.get(instance, found.devices)

    def read_point(self, instance: int, address: str, ref: PointRef) -> PointValue:
        """Present value and status flags of one point (ReadProperty)."""

        async def work() -> PointValue:
            job = DeviceWork(self._session(instance, address), supports_rpm=False)
            return await job._value_one(ref)

        return self._run(work, self.config.request_timeout_s * 2 + 10)
