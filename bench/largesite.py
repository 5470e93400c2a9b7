"""A large site read every minute: one site's collection cycle over a simulated site of
many devices and objects (the issue's 200 x 200 = 40,000 points with ``--full``).

The product is one scheduled cycle of the site (``collect_and_store`` with the site and
``due_only``, as the site's worker runs it): cycle time against the one-minute period,
the worker's CPU and peak memory (this process is the worker: client and store), and the
database's write rate (readings stored per second of the storing part of the cycle).
Baseline in the same run, over the same points: the bare bacpypes3 ReadPropertyMultiple
loop that stores nothing. A second measure gives a quarter of the points a 15-minute
interval (energy meters): a cycle then reads three quarters of them."""

from __future__ import annotations

import itertools
import os
import resource
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
)
from bench.site import cpu_seconds, run_on_loop, simulated_site, started_client
from discovery.models import BACnetPoint, Site
from discovery.services.collection import collect_and_store, collection_plan
from discovery.services.discovery import discover_and_store

TITLE = "Large site: one site's cycle, read every minute"
RPM_BATCH = 100
PERIOD_S = 60


def _measure(result: PartResult, devices: int, objects: int, runs: int) -> None:
    sizes = f"{devices} devices x {objects} objects"
    with simulated_site(devices, objects) as site, started_client(site) as client:
        clear_all_data()
        tower, _ = Site.objects.get_or_create(slug="tower", defaults={"name": "Tower"})
        found = discover_and_store(client, site_id=tower.pk)
        targets, keys = collection_plan(site_id=tower.pk)[:2]
        log(f"largesite: {sizes}: {len(keys)} points enumerated in {found['duration_s']:.0f} s")
        times = (
            timezone.now().replace(microsecond=0) - timedelta(days=1) + timedelta(minutes=k)
            for k in itertools.count()
        )
        summaries: list[dict] = []

        def cycle() -> int:
            summary = collect_and_store(
                client, cycle_at=next(times), site_id=tower.pk, due_only=True
            )
            summaries.append(summary)
            return int(summary["readings"])

        per_device = [(t.address, [(p.object_type, p.instance) for p in t.points]) for t in targets]

        def rpm() -> int:
            return run_on_loop(
                client,
                bare.rpm_values(
                    client.application, per_device, RPM_BATCH, client.config.read_concurrency
                ),
            )

        worker_cpu = cpu_seconds(os.getpid())
        samples = interleave({"product": cycle, "rpm": rpm}, runs, warmup=1)
        worker_cpu = (cpu_seconds(os.getpid()) - worker_cpu) / (2 * (runs + 1))
        peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        all_summaries = list(summaries)

        # A quarter of the points every 15 minutes: each cycle reads the rest, and the
        # quarter only when due.
        ids = list(BACnetPoint.objects.filter(device__site=tower).values_list("id", flat=True))
        BACnetPoint.objects.filter(id__in=ids[::4]).update(poll_interval_s=15 * 60)
        summaries.clear()
        cycle()  # the first cycle after the change reads the quarter once more
        summaries.clear()
        mixed = interleave({"product": cycle}, max(2, runs // 2), warmup=0)["product"]

    cycles = Stat([seconds for seconds, _ in samples["product"]])
    product_rate = rate_stat(samples["product"], lambda n: n)
    rpm_rate = rate_stat(samples["rpm"], lambda n: n)
    writes = Stat(
        [
            s["readings"] / (s["duration_s"] - s["read_s"])
            for s in all_summaries
            if s["duration_s"] > s["read_s"]
        ]
    )
    result.rows += [
        Row(
            "site cycle time (read + store)",
            f"{sizes} ({len(keys)} points)",
            "s",
            cycles,
            target=f"< {PERIOD_S} s (the period)",
            met=cycles.high < PERIOD_S,
        ),
        Row(
            "site cycle (read + store)",
            sizes,
            "points/s",
            product_rate,
            f"bare RPM loop ({RPM_BATCH} a request)",
            rpm_rate,
            ratio=paired_ratio(product_rate, rpm_rate),
        ),
        Row("database write rate (storing part of the cycle)", sizes, "rows/s", writes),
        Row(
            "site cycle, a quarter of the points every 15 min",
            f"{sizes}, {len(ids) - len(ids[::4])} points due",
            "s",
            Stat([seconds for seconds, _ in mixed]),
        ),
    ]
    result.notes.append(
        f"{sizes}: the worker (this process: client and store) used {worker_cpu:.1f} CPU s "
        f"per measured run, peak memory {peak_mb:.0f} MB (max RSS, bench included); "
        f"{sum(1 for s in all_summaries if s['readings'] != len(keys))} cycle(s) stored "
        f"fewer than {len(keys)} readings."
    )


def run(options: Options) -> PartResult:
    result = PartResult("largesite", TITLE)
    devices, objects = (200, 200) if options.full else (20, 200)
    _measure(result, devices, objects, options.repeats(3))
    result.notes.append(
        "Simulator and worker share the machine's 2 cores with other work: compare the "
        "cycle with the bare loop of the same run. Readings are stored at cycle times a "
        "minute apart, a day ago."
    )
    return result
