"""Discovery: time to discover and fully enumerate N simulated devices, and store them.

The product is ``discover_and_store`` (global Who-Is until a quiet window passes, then
device properties, object list and point texts of every device, upserted). Baseline in
the same run: the time of the last I-Am after a global Who-Is (the least any discovery
can wait, since it cannot know it has heard everyone) plus a bare bacpypes3 enumeration
of the same devices (with the product's device concurrency, nothing stored)."""

from __future__ import annotations

from bench import bare, candidates
from bench.common import (
    Options,
    PartResult,
    Row,
    Stat,
    clear_all_data,
    interleave,
    log,
    paired_ratio,
    seconds_stat,
)
from bench.site import run_on_loop, simulated_site, started_client
from discovery.services.discovery import discover_and_store

TITLE = "Discovery: discover and fully enumerate N devices"
OBJECTS = 20
TARGET_RATIO = 2.0
# "No fixed 3 s wait": discovery ends within this much after the last I-Am.
AFTER_LAST_I_AM_S = 1.0


def _measure(result: PartResult, devices: int, runs: int) -> None:
    sizes = f"{devices} devices x {OBJECTS} objects"
    with simulated_site(devices, OBJECTS) as site, started_client(site) as client:
        expected = {d["instance"] for d in site.devices}
        if site.ready.get("bbmd_device_instance") is not None:
            expected.add(int(site.ready["bbmd_device_instance"]))  # it answers Who-Is too
        addresses = [(d["instance"], d["address"]) for d in site.devices]
        summaries: list[dict] = []

        def product() -> dict:
            summary = discover_and_store(client)
            summaries.append(summary)
            return summary

        def last_i_am() -> float:
            return run_on_loop(client, bare.last_i_am(client, expected))

        def client_enumeration() -> int:
            found = client.discover()
            return len(client.enumerate_devices(found.devices))

        def overlapped() -> int:
            return run_on_loop(client, candidates.discover_and_enumerate_overlapped(client))

        def enumeration() -> int:
            return run_on_loop(
                client,
                bare.enumerate_devices(
                    client.application, addresses, client.config.read_concurrency
                ),
            )

        log(f"discovery: {sizes}: product, last I-Am, bare and client enumeration, interleaved")
        samples = interleave(
            {
                "product": product,
                "i_am": last_i_am,
                "bare": enumeration,
                "client": client_enumeration,
                "overlapped": overlapped,
            },
            runs,
            before={"product": clear_all_data},
        )
        runs_product, bare_enum, client_only = (
            samples["product"],
            samples["bare"],
            samples["client"],
        )
        i_ams = [seconds for _, seconds in samples["i_am"]]

    found = [s["devices_found"] for s in summaries[1:]]
    missed = [n for n in found if n != len(expected)]
    baseline = Stat([a + b for a, (b, _) in zip(i_ams, bare_enum, strict=True)])
    product_stat = seconds_stat(runs_product)
    who_is = Stat([s["discovery_s"] for s in summaries[1:]])
    i_am_stat = Stat(i_ams)
    to_baseline = paired_ratio(product_stat, baseline)
    result.rows += [
        Row(
            "discover_and_store (Who-Is + enumerate + store)",
            f"{sizes}; {summaries[-1]['points']:,} points",
            "s",
            product_stat,
            "last I-Am + bare enumeration",
            baseline,
            f"<= {TARGET_RATIO:g}x baseline",
            to_baseline <= TARGET_RATIO,
            ratio=to_baseline,
        ),
        Row(
            "Who-Is phase of discover()",
            sizes,
            "s",
            who_is,
            "last I-Am after a global Who-Is",
            i_am_stat,
            f"<= last I-Am + {AFTER_LAST_I_AM_S:g} s (no fixed 3 s wait)",
            who_is.median <= i_am_stat.median + AFTER_LAST_I_AM_S,
        ),
        Row(
            "client.discover + enumerate_devices (no storing)",
            sizes,
            "s",
            seconds_stat(client_only),
            "last I-Am + bare enumeration",
            baseline,
            ratio=paired_ratio(seconds_stat(client_only), baseline),
        ),
        Row(
            "candidate: enumeration started by each I-Am (no storing)",
            sizes,
            "s",
            seconds_stat(samples["overlapped"]),
            "last I-Am + bare enumeration",
            baseline,
            ratio=paired_ratio(seconds_stat(samples["overlapped"]), baseline),
        ),
        Row(
            "enumerate + store (the rest of discover_and_store)",
            sizes,
            "s",
            Stat(
                [
                    t - s["discovery_s"]
                    for (t, _), s in zip(runs_product, summaries[1:], strict=True)
                ]
            ),
            "bare enumeration",
            seconds_stat(bare_enum),
        ),
    ]
    if missed:
        result.notes.append(
            f"{sizes}: {len(missed)} discovery run(s) found {missed} of {len(expected)} devices."
        )


def run(options: Options) -> PartResult:
    result = PartResult("discovery", TITLE)
    runs = options.repeats(5 if not options.full else 3)
    for devices in [50, 200] if options.full else [50]:
        _measure(result, devices, runs)
    result.notes.append(
        "Counts include the simulator's BBMD, which answers Who-Is as a device. Each product "
        "run starts from an empty database (every device and point is created). The quiet "
        "window (BACNET_DISCOVERY_QUIET_S) is the product default, 0.5 s. The measures run "
        "in interleaved rounds; ratios against the baseline are the median of the per-round "
        "ratios."
    )
    return result
