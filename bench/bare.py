"""The bare baselines: bacpypes3 calls with nothing around them.

They run on the product client's own event loop and bacpypes3 application (same socket,
same foreign-device registration, same timeouts), so the difference to the product is
only what the product adds: batching policy, deadlines, error handling, conversion and
storage. Nothing here is stored."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from typing import Any

from bacpypes3.apdu import WhoIsRequest
from bacpypes3.basetypes import PropertyIdentifier
from bacpypes3.pdu import Address, GlobalBroadcast
from bacpypes3.primitivedata import ObjectIdentifier

VALUE_PROPS = ["present-value", "status-flags"]
# What the product reads of a device object and of each point (bacnet_client.py).
DEVICE_PROPS = [
    "object-name",
    "vendor-identifier",
    "vendor-name",
    "model-name",
    "firmware-revision",
    "application-software-version",
    "description",
    "location",
    "protocol-revision",
    "max-apdu-length-accepted",
    "segmentation-supported",
]
TEXT_BATCH = 40
POINT_TYPES = ("analog", "binary", "multi-state")

Objects = Sequence[tuple[str, int]]


def _rpm_parameters(objects: Objects, props: Sequence[str]) -> list[Any]:
    parameters: list[Any] = []
    for object_type, instance in objects:
        parameters += [
            ObjectIdentifier((object_type, instance)),
            [PropertyIdentifier(p) for p in props],
        ]
    return parameters


def text_props(object_type: str) -> list[str]:
    if object_type.startswith("binary"):
        return ["object-name", "description", "inactive-text", "active-text"]
    if object_type.startswith("multi-state"):
        return ["object-name", "description", "state-text"]
    return ["object-name", "description", "units"]


async def rpm_values(
    app: Any, devices: Sequence[tuple[str, Objects]], batch: int, concurrency: int
) -> int:
    """Present value and status flags of every object, ``batch`` objects a request,
    one request at a time per device, ``concurrency`` devices at once (the product's
    BACNET_READ_CONCURRENCY). Returns values read."""
    limit = asyncio.Semaphore(concurrency)

    async def one(address: str, objects: Objects) -> int:
        where = Address(address)
        read = 0
        async with limit:
            for start in range(0, len(objects), batch):
                part = objects[start : start + batch]
                parameters = _rpm_parameters(part, VALUE_PROPS)
                answer = await app.read_property_multiple(where, parameters)
                read += len(answer) // len(VALUE_PROPS)
        return read

    counts = await asyncio.gather(*(one(address, objects) for address, objects in devices))
    return sum(counts)


async def rp_values(app: Any, refs: Sequence[tuple[str, str, int]]) -> int:
    """Present value of each (address, object type, instance), one request at a time."""
    for address, object_type, instance in refs:
        await app.read_property(
            Address(address),
            ObjectIdentifier((object_type, instance)),
            PropertyIdentifier("present-value"),
        )
    return len(refs)


async def enumerate_devices(app: Any, devices: Sequence[tuple[int, str]], concurrency: int) -> int:
    """Device properties, object list and point texts of every device, ``concurrency``
    devices at once (all 200 at once overwhelm the one-process simulator: requests time
    out). Returns the number of points found."""
    limit = asyncio.Semaphore(concurrency)

    async def one(instance: int, address: str) -> int:
        async with limit:
            return await _enumerate_one(instance, address)

    async def _enumerate_one(instance: int, address: str) -> int:
        where = Address(address)
        device = ObjectIdentifier(("device", instance))
        await app.read_property_multiple(
            where, [device, [PropertyIdentifier(p) for p in DEVICE_PROPS]]
        )
        object_list = await app.read_property(where, device, PropertyIdentifier("object-list"))
        points = [
            (str(oid[0]), int(oid[1])) for oid in object_list if str(oid[0]).startswith(POINT_TYPES)
        ]
        for start in range(0, len(points), TEXT_BATCH):
            part = points[start : start + TEXT_BATCH]
            parameters: list[Any] = []
            for object_type, inst in part:
                parameters += [
                    ObjectIdentifier((object_type, inst)),
                    [PropertyIdentifier(p) for p in text_props(object_type)],
                ]
            await app.read_property_multiple(where, parameters)
        return len(points)

    counts = await asyncio.gather(*(one(instance, address) for instance, address in devices))
    return sum(counts)


async def last_i_am(client: Any, expected: set[int], limit_s: float = 20.0) -> float:
    """Seconds from a global Who-Is to the I-Am of the last of ``expected`` devices:
    the least any discovery can take (it cannot know it is done earlier)."""
    seen: dict[int, float] = {}
    everyone = asyncio.Event()

    def listener(iam: Any) -> None:
        if iam.instance in expected and iam.instance not in seen:
            seen[iam.instance] = iam.at
            if len(seen) == len(expected):
                everyone.set()

    with client.i_am_listener(listener):
        sent = time.monotonic()
        client.application.request(WhoIsRequest(destination=GlobalBroadcast()))
        await asyncio.wait_for(everyone.wait(), limit_s)
    return max(seen.values()) - sent
