"""A BACnet client in its own process, to check the simulator from the outside.

    python -m tests.simulator.probe READY_FILE PORT [--bind ADDR/LEN] [--no-bbmd]
        [--read-roles normal,routed]

Starts BAC0.lite on ADDR (default 127.0.0.1/8) and PORT, registered as a foreign device
with the site's BBMD (unless --no-bbmd), then runs every check below against the
devices of the ready file and prints one line `PROBE-RESULT <json>` on stdout (BAC0
logs there too). Each request has its own deadline: a silent or broken device costs
that deadline and nothing more.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import time
from typing import Any

from tests.timing import scaled

DEADLINE_S = scaled(4.0)


def _describe(exc: BaseException) -> str:
    # bacpypes3's ErrorPDU / RejectPDU / AbortPDU are BaseExceptions: name them.
    if isinstance(exc, TimeoutError | asyncio.TimeoutError):
        return "timeout"
    name = type(exc).__name__
    reason = getattr(exc, "apduAbortRejectReason", None)
    if reason is not None:
        return f"{name}:{reason}"
    code = getattr(exc, "errorCode", None)
    if code is not None:
        return f"{name}:{code}"
    return f"{name}:{exc}"


def _plain(value: Any) -> Any:
    if isinstance(value, float):
        if math.isnan(value) or math.isinf(value):
            return str(value)
        return value
    if isinstance(value, int | str | bool) or value is None:
        return value
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return str(value)


async def _call(coro: Any) -> dict[str, Any]:
    started = time.monotonic()
    try:
        value = await asyncio.wait_for(coro, DEADLINE_S)
    except BaseException as exc:
        if isinstance(exc, KeyboardInterrupt | SystemExit):
            raise
        return {"error": _describe(exc), "elapsed": time.monotonic() - started}
    return {"value": _plain(value), "elapsed": time.monotonic() - started}


async def run(
    ready: dict[str, Any], port: int, bind: str, use_bbmd: bool, read_roles: set[str] | None
) -> dict[str, Any]:
    import BAC0
    from bacpypes3.pdu import Address
    from bacpypes3.primitivedata import ObjectIdentifier

    BAC0.log_level("error")
    kwargs: dict[str, Any] = {"ip": bind, "port": port}
    if use_bbmd:
        kwargs.update(bbmdAddress=ready["bbmd"], bbmdTTL=60)
    bacnet = BAC0.lite(**kwargs)
    result: dict[str, Any] = {}
    try:
        app = bacnet.this_application.app
        # Wait for the foreign-device registration: broadcasts are dropped before it.
        link = next(iter(app.link_layers.values()), None) if app.link_layers else None
        event = getattr(link, "_registration_event", None)
        if use_bbmd and event is not None:
            await asyncio.wait_for(event.wait(), 10)
        else:
            await asyncio.sleep(0.5)

        i_ams = await app.who_is(timeout=scaled(2))
        result["discovered"] = sorted(
            [int(i.iAmDeviceIdentifier[1]), str(i.pduSource)] for i in i_ams
        )
        first, last = ready["devices"][0]["instance"], ready["devices"][-1]["instance"]
        i_ams = await app.who_is(first, first, timeout=scaled(2))
        result["ranged"] = [int(i.iAmDeviceIdentifier[1]) for i in i_ams]
        result["last_instance"] = last

        reads: dict[str, Any] = {}
        for dev in ready["devices"]:
            if read_roles is not None and dev["role"] not in read_roles:
                continue
            addr = Address(dev["address"])
            entry: dict[str, Any] = {}
            first_obj = dev["objects"][0]
            oid = ObjectIdentifier(f"{first_obj['object_type']},{first_obj['instance']}")
            entry["present_value"] = await _call(app.read_property(addr, oid, "present-value"))
            if dev["role"] in ("silent", "malformed"):
                # One request shows the behaviour; more would only add deadlines.
                reads[str(dev["instance"])] = entry
                continue
            entry["object_name"] = await _call(app.read_property(addr, oid, "object-name"))
            device_oid = ObjectIdentifier(f"device,{dev['instance']}")
            entry["device_name"] = await _call(app.read_property(addr, device_oid, "object-name"))
            entry["object_list"] = await _call(app.read_property(addr, device_oid, "object-list"))
            entry["object_list_length"] = await _call(
                app.read_property(addr, device_oid, "object-list", 0)
            )
            if dev["role"] == "no-segmentation":
                elements = []
                for index in range(1, len(dev["objects"]) + 3):  # one past the end
                    element = await _call(app.read_property(addr, device_oid, "object-list", index))
                    elements.append(element.get("value", element.get("error")))
                entry["object_list_elements"] = elements
                many = []
                for obj in dev["objects"][:60]:
                    many += [f"{obj['object_type']},{obj['instance']}", ["object-name"]]
                entry["rpm_too_big"] = await _call(app.read_property_multiple(addr, many))
            props = ["present-value", "status-flags"]
            spec: list[Any] = []
            for obj in dev["objects"][:4]:
                spec += [f"{obj['object_type']},{obj['instance']}", props]
            entry["rpm"] = await _call(app.read_property_multiple(addr, spec))
            reads[str(dev["instance"])] = entry
        result["reads"] = reads
    finally:
        bacnet.disconnect()
    return result


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("ready_file")
    parser.add_argument("port", type=int)
    parser.add_argument("--bind", default="127.0.0.1/8")
    parser.add_argument("--no-bbmd", action="store_true")
    parser.add_argument("--read-roles", default="", help="comma-separated; default all")
    args = parser.parse_args()
    with open(args.ready_file, encoding="utf-8") as fh:
        ready = json.load(fh)
    roles = set(args.read_roles.split(",")) if args.read_roles else None
    result = asyncio.run(run(ready, args.port, args.bind, not args.no_bbmd, roles))
    print("PROBE-RESULT " + json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
