"""Memory: resident memory of a BACnet worker process over many collection cycles.

The worker is the product's own process (``manage.py bacnet_worker``, the database
backend: it claims jobs from PostgreSQL and runs the same ``execute`` -> ``collect_and_store``
path as the Celery task), started with its BACnet client on loopback, registered with
the simulator's BBMD. The bench requests one discovery, then one collection cycle after
another, and reads the worker's VmRSS and VmHWM (peak) from /proc after each cycle."""

from __future__ import annotations

import os
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path

from bench.common import REPO, Options, PartResult, Row, Stat, clear_all_data, log
from bench.site import free_udp_port, simulated_site
from discovery.jobs import request_job
from discovery.models import BACnetTask, BACnetWorker

TITLE = "Memory: BACnet worker resident memory over collection cycles"
DEVICES = 50
OBJECTS = 100
WARMUP = 5
JOB_LIMIT_S = 300.0
# Flat: the last quarter's median RSS at most this much above the second quarter's.
FLAT_TOLERANCE = 0.02
FLAT_TOLERANCE_MB = 2.0


def _status_mb(pid: int, field: str) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"{field} not in /proc/{pid}/status")


def _wait(task: BACnetTask, worker: subprocess.Popen[bytes]) -> dict:
    deadline = time.monotonic() + JOB_LIMIT_S
    while time.monotonic() < deadline:
        task.refresh_from_db()
        if task.status == BACnetTask.Status.COMPLETED:
            return task.result or {}
        if task.status == BACnetTask.Status.FAILED:
            raise RuntimeError(f"job {task.pk} failed: {task.error_message}")
        if worker.poll() is not None:
            raise RuntimeError(f"the worker exited with {worker.returncode}")
        time.sleep(0.05)
    raise RuntimeError(f"job {task.pk} did not finish within {JOB_LIMIT_S:g} s")


def run(options: Options) -> PartResult:
    result = PartResult("memory", TITLE)
    cycles = options.runs if options.runs and options.runs > WARMUP * 2 else None
    cycles = cycles or (100 if options.full else 20)
    clear_all_data()
    with simulated_site(DEVICES, OBJECTS) as site:
        env = {
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "bench.settings",
            "BACNET_BACKEND": "database",
            "PYTHONUNBUFFERED": "1",
        }
        log_path = Path(site.workdir) / "worker.log"
        command = [
            sys.executable,
            str(REPO / "manage.py"),
            "bacnet_worker",
            "--no-schedule",
            f"--interface=127.0.0.1/8:{free_udp_port()}",
            f"--bbmd={site.bbmd}",
            "--bbmd-ttl=600",
            "--name=bench-memory",
        ]
        with open(log_path, "wb") as out:
            worker = subprocess.Popen(command, cwd=REPO, env=env, stdout=out, stderr=out)
        try:
            deadline = time.monotonic() + 60
            while not BACnetWorker.objects.filter(name="bench-memory").exists():
                if worker.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"the worker did not start:\n{log_path.read_text()}")
                time.sleep(0.1)
            started_rss = _status_mb(worker.pid, "VmRSS")
            found = _wait(request_job("discover", {}, backend="database"), worker)
            log(f"memory: worker discovered {found.get('devices_found')} devices")
            rss: list[float] = []
            durations: list[float] = []
            readings = 0
            failed_cycles = 0
            for cycle in range(cycles):
                summary = _wait(request_job("collect", {}, backend="database"), worker)
                readings += int(summary.get("readings", 0))
                failed_cycles += bool(summary.get("devices_failed"))
                durations.append(float(summary.get("duration_s", 0)))
                rss.append(_status_mb(worker.pid, "VmRSS"))
                if cycle % 10 == 9:
                    log(f"memory: cycle {cycle + 1}/{cycles}, RSS {rss[-1]:.1f} MB")
                time.sleep(1.0)  # cycle_at has one-second resolution
            peak = _status_mb(worker.pid, "VmHWM")
        finally:
            if worker.poll() is None:
                worker.send_signal(signal.SIGTERM)
                try:
                    worker.wait(30)
                except subprocess.TimeoutExpired:
                    worker.kill()
                    worker.wait(10)

    measured = rss[WARMUP:]
    quarter = max(1, len(measured) // 4)
    early = Stat(measured[quarter : 2 * quarter] or measured[:1])
    late = Stat(measured[-quarter:])
    growth = late.median - early.median
    flat = growth <= max(FLAT_TOLERANCE * early.median, FLAT_TOLERANCE_MB)
    xs = list(range(len(measured)))
    slope_kb = statistics.linear_regression(xs, measured).slope * 1024 if len(xs) > 1 else 0.0
    sizes = f"{DEVICES} devices x {OBJECTS} points, {cycles} cycles ({readings:,} readings)"
    step = max(1, len(rss) // 20)
    shown = sorted({*range(0, len(rss), step), len(rss) - 1})
    result.rows += [
        Row(
            "worker RSS, last quarter of the cycles",
            sizes,
            "MB",
            late,
            "RSS in the second quarter (after warm-up)",
            early,
            f"flat: <= +{FLAT_TOLERANCE:.0%} or +{FLAT_TOLERANCE_MB:g} MB",
            flat,
        ),
        Row(
            "worker peak RSS (VmHWM)",
            sizes,
            "MB",
            Stat([peak]),
            "RSS before the first job",
            Stat([started_rss]),
        ),
        Row("collection cycle, as the job reports it", sizes, "s", Stat(durations)),
    ]
    result.notes.append(
        f"RSS after cycle {', '.join(f'{k + 1}: {rss[k]:.1f}' for k in shown)} (MB). "
        "Least-squares "
        f"growth after the {WARMUP} warm-up cycles: {slope_kb:+.0f} kB per cycle."
        + (
            f" {failed_cycles} cycle(s) had devices that did not answer in time (the "
            "simulator shares the 2 cores; their readings are missing from the total)."
            if failed_cycles
            else ""
        )
    )
    return result
