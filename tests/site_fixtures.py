"""Simulated BACnet sites for tests: a subprocess running `manage.py simulate_site`.

Use the module-scoped fixtures (`simulated_site`, `faulty_site`) or `start_site()` for a
site of your own; `bridge_lab()` builds a root-only Linux bridge for true broadcast.
Import the fixtures with `from tests.site_fixtures import simulated_site  # noqa: F401`,
or list this module in `pytest_plugins`.
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest

from tests.servers import process_alive
from tests.timing import scaled

REPO = Path(__file__).resolve().parent.parent
READY_TIMEOUT_S = scaled(20.0)
STOP_TIMEOUT_S = scaled(5.0)


def free_udp_port(host: str = "127.0.0.1") -> int:
    """A UDP port that is free right now (bind to port 0, read it, close)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


class SimulatedSite:
    """A running simulator process and what its ready file says."""

    def __init__(self, process: subprocess.Popen[bytes], ready: dict[str, Any], workdir: Path):
        self.process = process
        self.ready = ready
        self.workdir = workdir
        self.bbmd: str | None = ready["bbmd"]
        self.bbmd_device_instance: int | None = ready.get("bbmd_device_instance")
        self.mode: str = ready["mode"]
        self.devices: list[dict[str, Any]] = ready["devices"]
        self.router: dict[str, Any] | None = ready.get("router")

    def device(self, role: str) -> dict[str, Any]:
        """The first device with that role ("normal", "silent", "routed", ...)."""
        for dev in self.devices:
            if dev["role"] == role:
                return dev
        raise KeyError(f"no {role!r} device in this site")

    def devices_with_role(self, role: str) -> list[dict[str, Any]]:
        return [dev for dev in self.devices if dev["role"] == role]

    @property
    def normal_devices(self) -> list[dict[str, Any]]:
        return self.devices_with_role("normal")

    @property
    def log(self) -> str:
        """What the simulator wrote to stdout/stderr so far."""
        path = self.workdir / "simulator.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def stop(self) -> int | None:
        """SIGTERM, wait, SIGKILL after 10 s. Returns the exit status."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(STOP_TIMEOUT_S)
        shutil.rmtree(self.workdir, ignore_errors=True)
        return self.process.returncode


def simulator_command(args: Sequence[str]) -> list[str]:
    return [sys.executable, str(REPO / "manage.py"), "simulate_site", *args]


def start_site(
    devices: int = 3,
    objects: int = 5,
    faults: bool = False,
    vary: bool = False,
    extra_args: Sequence[str] = (),
) -> SimulatedSite:
    """Start a loopback site on free ports and wait for its ready file (60 s at most)."""
    args = [
        f"--devices={devices}",
        f"--objects={objects}",
        "--bbmd-port=0",
        "--base-port=0",
    ]
    if faults:
        args.append("--faults")
    if vary:
        args.append("--vary")
    return start_site_with_args([*args, *extra_args])


def start_site_with_args(args: Sequence[str], timeout: float = READY_TIMEOUT_S) -> SimulatedSite:
    """Start `simulate_site` with exactly these arguments (plus --ready-file)."""
    workdir = Path(tempfile.mkdtemp(prefix="simsite-"))
    ready_file = workdir / "ready.json"
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "tests.settings", "PYTHONUNBUFFERED": "1"}
    with open(workdir / "simulator.log", "wb") as log:
        process = subprocess.Popen(
            simulator_command([*args, f"--ready-file={ready_file}"]),
            cwd=REPO,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    deadline = time.monotonic() + timeout
    while not ready_file.exists():
        if process.poll() is not None:
            text = (workdir / "simulator.log").read_text(errors="replace")
            shutil.rmtree(workdir, ignore_errors=True)
            raise RuntimeError(f"simulate_site exited with {process.returncode}:\n{text}")
        if time.monotonic() > deadline:
            site = SimulatedSite(process, {"bbmd": None, "mode": "", "devices": []}, workdir)
            text = site.log
            site.stop()
            raise RuntimeError(f"simulate_site not ready within {timeout:.0f} s:\n{text}")
        time.sleep(0.05)
    ready = json.loads(ready_file.read_text())
    return SimulatedSite(process, ready, workdir)


@pytest.fixture(scope="module")
def simulated_site() -> Iterator[SimulatedSite]:
    """Three normal devices with eight objects each, values varying over time."""
    site = start_site(devices=3, objects=8, vary=True)
    try:
        yield site
    finally:
        site.stop()


@pytest.fixture(scope="module")
def faulty_site() -> Iterator[SimulatedSite]:
    """Two normal devices plus every fault device (see docs/simulator.md)."""
    site = start_site(devices=2, objects=6, faults=True, vary=True)
    try:
        yield site
    finally:
        site.stop()


# ------------------------------------------------------------------ bridge lab (root)

LAB_RANGE = ipaddress.IPv4Network("198.18.0.0/15")
LAB_LINK_PREFIX = "bnlab"
LAB_SKIP_REASON = (
    "changes the host's network (a bridge and a route): run `make test-lab` "
    "or set BACNET_TEST_LAB=1"
)


def lab_requested() -> bool:
    return os.environ.get("BACNET_TEST_LAB", "") not in ("", "0", "false")


def lab_route_metric(pid: int) -> int:
    """One blackhole route per lab, told apart by its metric: concurrent labs own theirs."""
    return 1000 + pid % 50000


def sweep_dead_labs(ip: Any) -> None:
    """Remove the bridges and blackhole routes of labs whose test process is gone."""
    live_metrics = set()
    for line in ip("-o", "link", "show", "type", "bridge", check=False).stdout.splitlines():
        match = re.match(rf"\d+: ({LAB_LINK_PREFIX}(\d+))[:@]", line)
        if not match:
            continue
        owner = int(match.group(2))
        if process_alive(owner) and owner != os.getpid():
            live_metrics.add(lab_route_metric(owner))
        else:
            ip("link", "del", match.group(1), check=False)
    routes = ip("route", "show", "type", "blackhole", str(LAB_RANGE), check=False).stdout
    for metric in re.findall(r"metric (\d+)", routes):
        if int(metric) >= 1000 and int(metric) not in live_metrics:
            ip("route", "del", "blackhole", str(LAB_RANGE), "metric", metric, check=False)


@contextlib.contextmanager
def bridge_lab(devices: int = 12) -> Iterator[dict[str, Any]]:
    """A Linux bridge with 198.18.X.1/24 and aliases .11, .12, ... for `devices` devices.

    `--faults` needs 5 addresses more than the normal devices (4 faults + the router).

    Root only, and only when asked (`make test-lab`, or BACNET_TEST_LAB=1; CI asks): it
    changes the host's network. A blackhole route covers the parts of 198.18.0.0/15 the
    lab does not use, so nothing can leave the machine. Everything is removed in
    `finally`, whatever happens, and a lab first removes the bridges and routes of labs
    whose process is gone (killed runs), found by their name `bnlab<pid>`. Yields
    {"bridge", "prefix" ("198.18.X"), "client_address" ("198.18.X.1/24"),
    "device_addresses"}."""
    from tests.conftest import skip_or_fail

    if not lab_requested():
        pytest.skip(LAB_SKIP_REASON)
    if os.geteuid() != 0:
        skip_or_fail("the bridge lab needs root")
    ip_cmd = shutil.which("ip")
    if not ip_cmd:
        skip_or_fail("the bridge lab needs iproute2 (`ip`)")
    assert ip_cmd is not None

    pid = os.getpid()
    name = f"{LAB_LINK_PREFIX}{pid}"
    metric = str(lab_route_metric(pid))

    def ip(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [ip_cmd, *args], check=check, capture_output=True, text=True, timeout=10
        )

    def subnet_in_use(prefix: str) -> bool:
        out = ip("-o", "-4", "addr", "show", "to", f"{prefix}.0/24", check=False).stdout
        return bool(out.strip())

    # The lab's own /24 within 198.18.100-249.x: skip ones another lab is using.
    prefix = ""
    for k in range(150):
        candidate = f"198.18.{100 + (pid + k) % 150}"
        if not subnet_in_use(candidate):
            prefix = candidate
            break
    if not prefix:
        raise RuntimeError("no free /24 for the bridge lab in 198.18.100.0-198.18.249.0")

    sweep_dead_labs(ip)
    blackhole_added = False
    try:
        # The bridge's connected /24 is more specific than the blackhole, so only the
        # rest of the range is dropped.
        # The bridge first: a concurrent lab's sweep keeps the routes of live bridges.
        ip("link", "add", name, "type", "bridge")
        ip("route", "add", "blackhole", str(LAB_RANGE), "metric", metric)
        blackhole_added = True
        ip("addr", "add", f"{prefix}.1/24", "brd", f"{prefix}.255", "dev", name)
        addresses = []
        for k in range(devices + 1):  # devices, then a spare (the router)
            addr = f"{prefix}.{11 + k}"
            ip("addr", "add", f"{addr}/32", "dev", name)
            addresses.append(addr)
        ip("link", "set", name, "up")
        yield {
            "bridge": name,
            "prefix": prefix,
            "client_address": f"{prefix}.1/24",
            "device_addresses": addresses,
        }
    finally:
        ip("link", "del", name, check=False)
        if blackhole_added:
            ip("route", "del", "blackhole", str(LAB_RANGE), "metric", metric, check=False)
