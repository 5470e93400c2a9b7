"""Big device: one controller with thousands of objects, enumerated and read.

The product is the client as it is: requests in flight per device learned (2, growing
to 4 while the device keeps up), the device deadline grown with the work. The "before"
baseline, measured in the same run on the same device, is the same client with 2
requests in flight fixed (what it did before); the bare baseline is a plain bacpypes3
ReadPropertyMultiple loop, 100 objects a request, one at a time, storing nothing."""

from __future__ import annotations

from typing import Any

from bench import bare
from bench.common import Options, PartResult, Row, interleave, log, paired_ratio, rate_stat
from bench.site import run_on_loop, simulated_site, started_client
from discovery.bacnet_client import session
from discovery.bacnet_types import DeviceTarget, PointRef

TITLE = "Big device: enumeration and reads of one device with thousands of objects"
RPM_BATCH = 100


def _fixed_in_flight(fn: Any, most: int) -> Any:
    """``fn`` run with the per-device requests in flight capped at ``most``."""

    def run() -> Any:
        learned = session.IN_FLIGHT_MOST
        session.IN_FLIGHT_MOST = most
        try:
            return fn()
        finally:
            session.IN_FLIGHT_MOST = learned

    return run


def run(options: Options) -> PartResult:
    objects = 10_000 if options.full else 2_000
    runs = options.repeats(3)
    result = PartResult("bigdevice", TITLE)
    sizes = f"1 device x {objects} objects"
    with (
        simulated_site(0, 0, f"--big-object-list={objects}") as site,
        started_client(site) as client,
    ):
        device = site.devices[0]
        instance, address = device["instance"], device["address"]
        properties = client.read_device_properties(instance, address)
        points = client.enumerate_points(instance, address, properties)
        target = DeviceTarget(
            instance,
            address,
            [PointRef(p.object_type, p.instance) for p in points],
            properties.max_apdu,
            properties.segmentation,
        )
        log(f"bigdevice: {sizes}: {len(points)} points; enumerations, interleaved")

        def enumerate_all() -> int:
            return len(client.enumerate_points(instance, address, properties))

        def read_all() -> int:
            (read,) = client.read_points([target])
            return sum(1 for v in read.values if not v.error)

        objects_list = [(p.object_type, p.instance) for p in points]

        def rpm() -> int:
            return run_on_loop(
                client, bare.rpm_values(client.application, [(address, objects_list)], RPM_BATCH, 1)
            )

        enum = interleave(
            {"product": enumerate_all, "before": _fixed_in_flight(enumerate_all, 2)}, runs
        )
        log(f"bigdevice: {sizes}: reads, interleaved")
        reads = interleave(
            {"product": read_all, "before": _fixed_in_flight(read_all, 2), "rpm": rpm}, runs
        )
    enum_rate = rate_stat(enum["product"], lambda n: n)
    enum_before = rate_stat(enum["before"], lambda n: n)
    read_rate = rate_stat(reads["product"], lambda n: n)
    read_before = rate_stat(reads["before"], lambda n: n)
    rpm_rate = rate_stat(reads["rpm"], lambda n: n)
    result.rows += [
        Row(
            "enumerate_points (object list + point texts)",
            sizes,
            "objects/s",
            enum_rate,
            "before: 2 requests in flight",
            enum_before,
            ratio=paired_ratio(enum_rate, enum_before),
        ),
        Row(
            "read_points (present value + status flags)",
            sizes,
            "points/s",
            read_rate,
            "before: 2 requests in flight",
            read_before,
            ratio=paired_ratio(read_rate, read_before),
        ),
        Row(
            "read_points (present value + status flags)",
            sizes,
            "points/s",
            read_rate,
            f"bare RPM loop ({RPM_BATCH} a request, one at a time)",
            rpm_rate,
            ratio=paired_ratio(read_rate, rpm_rate),
        ),
    ]
    short = [n for _, n in enum["product"] + reads["product"] if n != len(points)]
    result.notes.append(
        f"{sizes}: the simulator is one Python process on the same cores; "
        + (f"{len(short)} product run(s) came back short." if short else "every run complete.")
    )
    return result
