"""Fixtures of the BACnet client tests: a simulated site and a client registered with it.

Real BACnet/IP over UDP on loopback: the simulator (a subprocess) runs a BBMD and the
devices, the client in the test process registers with the BBMD as a foreign device.
Short deadlines keep the silent and malformed devices cheap."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest

from discovery.bacnet_client import BACnetClient, ClientConfig
from discovery.bacnet_types import DeviceEnumeration, DiscoveryResult
from tests.site_fixtures import SimulatedSite, free_udp_port, start_site
from tests.timing import scaled

APDU_TIMEOUT_MS = int(scaled(500))
REQUEST_DEADLINE_S = scaled(1.5)
DEVICE_DEADLINE_S = scaled(4.0)


def fast_config(**overrides: Any) -> ClientConfig:
    """A client on 127.0.0.1/8 and a free port, with the short test deadlines."""
    values: dict[str, Any] = {
        "interface": "127.0.0.1/8",
        "port": free_udp_port(),
        "apdu_timeout_ms": APDU_TIMEOUT_MS,
        "apdu_retries": 1,
        "request_deadline_s": REQUEST_DEADLINE_S,
        "device_deadline_s": DEVICE_DEADLINE_S,
        "discovery_quiet_s": scaled(0.5),
        "discovery_max_s": scaled(5.0),
        "read_concurrency": 8,
    }
    values.update(overrides)
    return ClientConfig(**values)


@pytest.fixture(scope="session")
def site() -> Iterator[SimulatedSite]:
    """Three normal devices and every fault device, twelve objects each, values varying."""
    running = start_site(devices=3, objects=12, faults=True, vary=True)
    try:
        yield running
    finally:
        running.stop()


def client_of(site: SimulatedSite) -> Iterator[BACnetClient]:
    """A started client, registered with the site's BBMD; stopped at the end."""
    bacnet = BACnetClient(fast_config(bbmd_address=site.bbmd, bbmd_ttl=60))
    bacnet.start()
    try:
        yield bacnet
    finally:
        bacnet.stop()


@pytest.fixture(scope="session")
def client(site: SimulatedSite) -> Iterator[BACnetClient]:
    yield from client_of(site)


@pytest.fixture(scope="session")
def discovered(client: BACnetClient) -> DiscoveryResult:
    return client.discover()


@dataclass
class Enumerated:
    results: list[DeviceEnumeration]
    elapsed_s: float
    callback_threads: set[int] = field(default_factory=set)
    callback_order: list[int] = field(default_factory=list)

    def of(self, instance: int) -> DeviceEnumeration:
        return next(e for e in self.results if e.device.instance == instance)


@pytest.fixture(scope="session")
def enumerated(client: BACnetClient, discovered: DiscoveryResult) -> Enumerated:
    threads: set[int] = set()
    order: list[int] = []

    def on_device(item: DeviceEnumeration) -> None:
        threads.add(threading.get_ident())
        order.append(item.device.instance)

    started = time.monotonic()
    results = client.enumerate_devices(discovered.devices, on_device=on_device)
    return Enumerated(results, time.monotonic() - started, threads, order)


def simulated(site: SimulatedSite, instance: int) -> dict[str, Any]:
    return next(d for d in site.devices if d["instance"] == instance)
