"""A simulated BACnet site and a product client registered with it, for the BACnet parts.

The site is ``manage.py simulate_site`` in a subprocess (loopback mode: a BBMD and one
UDP socket per device on 127.0.0.1, free ports); the client binds 127.0.0.1 on a free
port and registers with the BBMD as a foreign device, as in the demo."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.common import REPO, log

READY_TIMEOUT_S = 120.0


def free_udp_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


@dataclass
class Site:
    process: subprocess.Popen[bytes]
    ready: dict[str, Any]
    workdir: Path

    @property
    def bbmd(self) -> str:
        return str(self.ready["bbmd"])

    @property
    def devices(self) -> list[dict[str, Any]]:
        return list(self.ready["devices"])

    @property
    def pid(self) -> int:
        return self.process.pid


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(15)


@contextlib.contextmanager
def simulated_site(devices: int, objects: int, *extra: str) -> Iterator[Site]:
    """``devices`` normal devices with ``objects`` objects each, values varying."""
    workdir = Path(tempfile.mkdtemp(prefix="bench-site-"))
    ready_file = workdir / "ready.json"
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "bench.settings", "PYTHONUNBUFFERED": "1"}
    command = [
        sys.executable,
        str(REPO / "manage.py"),
        "simulate_site",
        f"--devices={devices}",
        f"--objects={objects}",
        "--bbmd-port=0",
        "--base-port=0",
        "--vary",
        "--fd-ttl=600",
        f"--ready-file={ready_file}",
        *extra,
    ]
    started = time.monotonic()
    with open(workdir / "simulator.log", "wb") as out:
        process = subprocess.Popen(command, cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT)
    try:
        while not ready_file.exists():
            if process.poll() is not None or time.monotonic() - started > READY_TIMEOUT_S:
                text = (workdir / "simulator.log").read_text(errors="replace")
                raise RuntimeError(f"simulate_site did not become ready:\n{text[-3000:]}")
            time.sleep(0.05)
        ready = json.loads(ready_file.read_text())
        log(
            f"site: {devices} devices x {objects} objects ready in "
            f"{time.monotonic() - started:.1f} s (BBMD {ready['bbmd']})"
        )
        yield Site(process, ready, workdir)
    finally:
        _stop(process)
        shutil.rmtree(workdir, ignore_errors=True)


def client_config(site: Site, **overrides: Any) -> Any:
    """The product's client configuration (the BACNET_* defaults), bound to loopback."""
    from discovery.bacnet_client import ClientConfig

    values: dict[str, Any] = {
        "interface": "127.0.0.1/8",
        "port": free_udp_port(),
        "bbmd_address": site.bbmd,
        "bbmd_ttl": 600,
    }
    values.update(overrides)
    return ClientConfig.from_settings(**values)


@contextlib.contextmanager
def started_client(site: Site, **overrides: Any) -> Iterator[Any]:
    from discovery.bacnet_client import BACnetClient

    client = BACnetClient(client_config(site, **overrides))
    client.start()
    try:
        yield client
    finally:
        client.stop()


def run_on_loop(client: Any, coro: Any, timeout: float = 600.0) -> Any:
    """Run a coroutine on the client's own event loop (the bare baselines use the same
    bacpypes3 application and socket as the product)."""
    return client.run_coroutine(coro, timeout)


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (from /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    return (int(fields[11]) + int(fields[12])) / ticks
