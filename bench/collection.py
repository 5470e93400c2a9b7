"""Collection: points read and stored in PostgreSQL per second, against a simulated site.

The product is one ``collect_and_store`` cycle (plan from the database, read every
enabled point with the client, store the readings and latest values). Baselines in the
same run, over the same devices and points: a bare bacpypes3 ReadPropertyMultiple loop
that stores nothing (present value and status flags, 100 objects a request, 16 devices
at a time like the product), and ReadProperty one at a time (present value only, on a
slice)."""

from __future__ import annotations

import itertools
from datetime import timedelta

from django.utils import timezone

from bench import bare
from bench.common import (
    Options,
    PartResult,
    Row,
    Stat,
    clear_all_data,
    interleave,
    log,
    paired_ratio,
    rate_stat,
    repeat,
)
from bench.site import cpu_seconds, run_on_loop, simulated_site, started_client
from discovery.services.collection import collect_and_store, collection_plan
from discovery.services.discovery import discover_and_store

TITLE = "Collection: points read and stored per second"
RPM_BATCH = 100
RP_SLICE = 400
BARE_TARGET = 0.8
RP_TARGET = 10.0


def _measure(result: PartResult, devices: int, objects: int, runs: int) -> None:
    sizes = f"{devices} devices x {objects} points"
    with simulated_site(devices, objects) as site, started_client(site) as client:
        clear_all_data()
        found = discover_and_store(client)
        plan = collection_plan()  # (targets, point ids by key, ...)
        targets, keys = plan[0], plan[1]
        log(
            f"collection: {sizes}: {found['devices_found']} devices, {len(keys)} points "
            f"enumerated in {found['duration_s']:.1f} s"
        )
        total = len(keys)
        times = (
            timezone.now().replace(microsecond=0) - timedelta(days=1) + timedelta(seconds=k)
            for k in itertools.count()
        )
        summaries: list[dict] = []

        def product() -> int:
            summary = collect_and_store(client, cycle_at=next(times))
            summaries.append(summary)
            return int(summary["readings"])

        def read_only() -> int:
            results = client.read_points(targets)
            return sum(1 for r in results for v in r.values if not v.error)

        per_device = [(t.address, [(p.object_type, p.instance) for p in t.points]) for t in targets]

        def rpm() -> int:
            return run_on_loop(
                client,
                bare.rpm_values(
                    client.application, per_device, RPM_BATCH, client.config.read_concurrency
                ),
            )

        refs = [(t.address, p.object_type, p.instance) for t in targets for p in t.points]
        rp_slice = refs[:: max(1, len(refs) // RP_SLICE)][:RP_SLICE]

        def rp() -> int:
            return run_on_loop(client, bare.rp_values(client.application, rp_slice))

        log(f"collection: {sizes}: product cycles, client reads and bare RPM, interleaved")
        sim_cpu = cpu_seconds(site.pid)
        samples = interleave(
            {"product": product, "read_only": read_only, "rpm": rpm}, runs, warmup=1
        )
        sim_cpu = (cpu_seconds(site.pid) - sim_cpu) / (3 * (runs + 1))
        cycles, reads, rpms = samples["product"], samples["read_only"], samples["rpm"]
        log(f"collection: {sizes}: ReadProperty one at a time")
        rps = repeat(rp, max(3, runs // 2))

    product_rate = rate_stat(cycles, lambda n: n)
    incomplete = [s for s in summaries if s["readings"] != total]
    rpm_rate = rate_stat(rpms, lambda n: n)
    rp_rate = rate_stat(rps, lambda n: n)
    read_rate = rate_stat(reads, lambda n: n)
    store_share = Stat(
        [(s["duration_s"] - s["read_s"]) / s["duration_s"] for s in summaries if s["duration_s"]]
    )
    to_bare = paired_ratio(product_rate, rpm_rate)
    result.rows += [
        Row(
            "collect_and_store (read + store)",
            sizes,
            "points/s",
            product_rate,
            f"bare RPM loop ({RPM_BATCH} a request)",
            rpm_rate,
            f">= {BARE_TARGET}x bare RPM",
            to_bare >= BARE_TARGET,
            ratio=to_bare,
        ),
        Row(
            "collect_and_store (read + store)",
            sizes,
            "points/s",
            product_rate,
            f"ReadProperty one at a time ({len(rp_slice)} points)",
            rp_rate,
            f">= {RP_TARGET:g}x ReadProperty",
            product_rate.median >= RP_TARGET * rp_rate.median,
        ),
        Row(
            "client.read_points alone (no storing)",
            sizes,
            "points/s",
            read_rate,
            f"bare RPM loop ({RPM_BATCH} a request)",
            rpm_rate,
            ratio=paired_ratio(read_rate, rpm_rate),
        ),
    ]
    result.notes.append(
        f"{sizes}: storing took {store_share.median:.0%} of a cycle (median; "
        f"`duration_s - read_s` of the cycle's result); the simulator process used "
        f"{sim_cpu:.2f} CPU s per measured run"
        + (f"; {len(incomplete)} cycle(s) stored fewer than {total} readings" if incomplete else "")
        + "."
    )


def run(options: Options) -> PartResult:
    result = PartResult("collection", TITLE)
    runs = options.repeats(5)
    sizes = [(10, 200)] + ([(50, 100)] if options.full else [])
    for devices, objects in sizes:
        _measure(result, devices, objects, runs)
    result.notes.append(
        "Python at both ends on the same 2 shared cores: the simulator (one process, all "
        "devices) and the client compete for CPU, so absolute rates are low; compare ratios. "
        "The bare loops run on the product client's own bacpypes3 application and loop, "
        "with the product's device concurrency (BACNET_READ_CONCURRENCY, 16). Product, client "
        "reads and bare loop run in interleaved rounds; their ratios are the median of the "
        "per-round ratios."
    )
    return result
