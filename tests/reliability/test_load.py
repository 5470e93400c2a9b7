"""The web under load: 20 clients browse (the device list above all) while a BACnet worker
collects from 50 simulated devices, back to back. gunicorn serves the project as the
compose file runs it (3 workers of 16 threads each), on loopback.

A measurement, not a timing assertion: the test fails only if a request fails; it
prints the latencies (p50, p95, max per page) and writes them to
test-artifacts/load-<pid>.json. docs/reliability.md records what this machine gave.
REL_LOAD_S sets the length of the run (default 20 s, 60 s with REL_FULL=1),
REL_LOAD_CLIENTS the number of clients (20)."""

from __future__ import annotations

import json
import os
import random
import statistics
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field

import pytest
from django.contrib.auth import get_user_model
from django.test import Client

from discovery.jobs import request_job
from discovery.models import BACnetDevice, BACnetPoint
from tests.reliability.conftest import env_int, free_tcp_port
from tests.site_fixtures import start_site
from tests.timing import scaled
from tests.worker_fixtures import (
    ARTIFACTS,
    REPO,
    start_database_worker,
    wait_for_job,
    wait_until,
    worker_env,
)

pytestmark = [pytest.mark.postgres, pytest.mark.slow, pytest.mark.django_db(transaction=True)]

DEVICES, OBJECTS = 50, 20
LOAD_S = env_int("REL_LOAD_S", 20, full=60)
CLIENTS = env_int("REL_LOAD_CLIENTS", 20)
WEB_WORKERS = 3  # docker-compose.yml: WEB_CONCURRENCY defaults to 3
# A person clicking quickly through the pages, not a tight loop.
THINK_S = (0.1, 0.5)


@dataclass
class Samples:
    latencies: dict[str, list[float]] = field(default_factory=dict)
    failures: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, kind: str, seconds: float) -> None:
        with self.lock:
            self.latencies.setdefault(kind, []).append(seconds)

    def fail(self, what: str) -> None:
        with self.lock:
            self.failures.append(what)

    def summary(self) -> dict[str, dict[str, float]]:
        out = {}
        for kind, values in sorted(self.latencies.items()):
            ordered = sorted(values)
            out[kind] = {
                "requests": len(ordered),
                "p50_ms": round(1000 * statistics.median(ordered), 1),
                "p95_ms": round(1000 * ordered[int(0.95 * (len(ordered) - 1))], 1),
                "max_ms": round(1000 * ordered[-1], 1),
            }
        return out


def _browse(base: str, cookie: str, pages: dict[str, list[str]], until: float, out: Samples):
    rng = random.Random()
    weights = {"device list": 6, "device page": 2, "device API": 1, "point page": 1}
    kinds, chances = list(weights), list(weights.values())
    while time.monotonic() < until:
        kind = rng.choices(kinds, chances)[0]
        path = rng.choice(pages[kind])
        request = urllib.request.Request(base + path, headers={"Cookie": cookie})  # noqa: S310
        started = time.perf_counter()
        try:
            with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310
                response.read()
                status = response.status
        except urllib.error.HTTPError as exc:
            status = exc.code
        except OSError as exc:
            out.fail(f"{path}: {exc}")
            continue
        elapsed = time.perf_counter() - started
        if status != 200:
            out.fail(f"{path}: HTTP {status}")
        else:
            out.add(kind, elapsed)
        time.sleep(rng.uniform(*THINK_S))


def _start_web(port: int) -> subprocess.Popen:
    ARTIFACTS.mkdir(exist_ok=True)
    log = (ARTIFACTS / f"load-gunicorn-{os.getpid()}.log").open("w")
    web = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "bacnet_project.wsgi:application",
         "--bind", f"127.0.0.1:{port}", "--workers", str(WEB_WORKERS),
         "--worker-class", "gthread", "--threads", "16"],
        cwd=REPO, env=worker_env(), stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    log.close()

    def answers() -> bool:
        assert web.poll() is None, "gunicorn exited"
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2)
        except OSError:
            return False
        return True

    wait_until(answers, scaled(20), "gunicorn answering")
    return web


def test_it_keeps_answering_20_browsers_while_50_devices_are_collected():
    site = start_site(devices=DEVICES, objects=OBJECTS, vary=True)
    # The product's own BACnet timing, not the suite's short one: 50 simulated devices
    # in one process share the CPU with the web and its 20 clients here.
    env = worker_env(
        site,
        BACNET_BACKEND="database",
        BACNET_APDU_TIMEOUT_MS="3000",
        BACNET_APDU_RETRIES="1",
        BACNET_REQUEST_DEADLINE_S="6",
        BACNET_DEVICE_DEADLINE_S="30",
    )
    worker = start_database_worker("rel-load", env, "--no-schedule")
    port = free_tcp_port()
    web = None
    samples = Samples()
    cycles = []
    try:
        found = wait_for_job(request_job("discover", backend="database").pk, scaled(60))
        assert found.status == "completed", found.error_message
        assert BACnetDevice.objects.count() >= DEVICES
        user = get_user_model().objects.create_user("browser", password="unused-password-1")
        session = Client()
        session.force_login(user)
        cookie = f"sessionid={session.cookies['sessionid'].value}"
        devices = list(BACnetDevice.objects.values_list("device_instance", "pk"))
        points = list(BACnetPoint.objects.values_list("pk", flat=True)[:200])
        pages = {
            "device list": ["/", "/?online=true", "/fragments/devices/"],
            "device page": [f"/devices/{instance}/" for instance, _ in devices],
            "device API": ["/api/devices/"]
            + [f"/api/devices/{instance}/" for instance, _ in devices],
            "point page": [f"/points/{pk}/" for pk in points],
        }
        web = _start_web(port)

        until = time.monotonic() + LOAD_S
        clients = [
            threading.Thread(
                target=_browse,
                args=(f"http://127.0.0.1:{port}", cookie, pages, until, samples),
                daemon=True,
            )
            for _ in range(CLIENTS)
        ]
        for client in clients:
            client.start()
        while time.monotonic() < until:  # collections back to back, for the whole run
            cycles.append(wait_for_job(request_job("collect", backend="database").pk, scaled(40)))
        for client in clients:
            client.join(60)
    finally:
        if web is not None:
            web.terminate()
            web.wait(20)
        worker.stop()
        site.stop()

    summary = samples.summary()
    report = {
        "devices": DEVICES,
        "points": DEVICES * OBJECTS,
        "clients": CLIENTS,
        "seconds": LOAD_S,
        "web_workers": WEB_WORKERS,
        "collections": len(cycles),
        "collection_s": [round(c.result["duration_s"], 2) for c in cycles if c.result],
        "collection_read_s": [round(c.result["read_s"], 2) for c in cycles if c.result],
        "pages": summary,
        "failures": len(samples.failures),
    }
    ARTIFACTS.mkdir(exist_ok=True)
    (ARTIFACTS / f"load-{os.getpid()}.json").write_text(json.dumps(report, indent=2))
    print("\nload:", json.dumps(report, indent=2))
    assert not samples.failures, samples.failures[:20]
    assert all(c.status == "completed" for c in cycles), [c.error_message for c in cycles]
    assert all(c.result["readings"] == DEVICES * OBJECTS for c in cycles)
    assert summary["device list"]["requests"] > CLIENTS
