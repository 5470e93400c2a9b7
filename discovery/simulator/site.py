"""Run a simulated BACnet site in one asyncio process.

Loopback mode (the default, no root): a BBMD on host:bbmd-port, every device on a UDP
port of its own registered with it as a foreign device. bacpypes3 cannot do broadcast
discovery on loopback (it treats any 127.x address on its own port as itself, and a
broadcast from another port goes to that other port), so the BBMD carries a client's
global Who-Is to every registered device instead.

Bridge mode (root, set up by tests/site_fixtures.bridge_lab): devices on address aliases
host.11, host.12, ... of a Linux bridge, port 47808 each, plain broadcast, no BBMD.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import json
import logging
import os
import signal
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bacpypes3.pdu import IPv4Address

from . import apps
from .events import add_event_objects
from .objects import make_device_object
from .plan import plan_site
from .router import RoutedNetwork
from .spec import (
    BRIDGE,
    LOOPBACK,
    MALFORMED,
    NO_RPM,
    NO_SEGMENTATION,
    NORMAL,
    ROUTED,
    ROUTED_NETWORK,
    SILENT,
    DeviceSpec,
    SiteSpec,
)

log = logging.getLogger("discovery.simulator")

REGISTRATION_TIMEOUT_S = 20.0
BRIDGE_PORT = 47808
BRIDGE_FIRST_HOST = 11


class SiteError(RuntimeError):
    """The site could not start (port taken, registration refused, bad options)."""


@dataclass
class RunningSite:
    spec: SiteSpec
    devices: list[DeviceSpec]
    bbmd_address: str | None = None
    applications: list[Any] = field(default_factory=list)
    foreign_links: list[Any] = field(default_factory=list)
    router: RoutedNetwork | None = None

    def ready_document(self) -> dict[str, Any]:
        return {
            "bbmd": self.bbmd_address,
            "bbmd_device_instance": (
                self.spec.bbmd_instance if self.bbmd_address and not self.spec.join_bbmd else None
            ),
            "mode": self.spec.mode,
            "pid": os.getpid(),
            "vary": self.spec.vary,
            "router": self.router.describe() if self.router else None,
            "devices": [dev.to_json() for dev in self.devices],
        }

    def close(self) -> None:
        # No unregistering from the BBMD: it lives in this process and goes away too.
        if self.router is not None:
            self.router.close()
        for app in self.applications:
            try:
                app.close()
            except Exception:
                log.exception("closing an application")


def _loopback_address(host: str, port: int, prefix: int = 32) -> IPv4Address:
    return IPv4Address(f"{host}/{prefix}:{port}")


def _app_class_for(role: str) -> type[apps.SimApplication]:
    if role == NO_RPM:
        return apps.NoRpmApplication
    if role == NO_SEGMENTATION:
        return apps.NoSegmentationApplication
    return apps.SimApplication


def _asap_class_for(role: str) -> type:
    if role == SILENT:
        return apps.SilentASAP
    if role == MALFORMED:
        return apps.MalformedASAP
    return apps.ApplicationServiceAccessPoint


def build_device_app(dev: DeviceSpec, spec: SiteSpec | None = None) -> apps.SimApplication:
    asap = _asap_class_for(dev.role)
    flaky = {
        "silent_after": spec.silent_after if spec else 0,
        "drop_who_is": spec.drop_who_is if spec else 0,
        "answer_delay_s": spec.answer_delay_s if spec else 0.0,
        "ignore_rpm": spec.ignore_rpm if spec else False,
    }
    if any(flaky.values()) and asap is apps.ApplicationServiceAccessPoint:
        asap = type("Flaky", (apps.FlakyASAP,), flaky)
    app = apps.build_application(
        _app_class_for(dev.role), make_device_object(dev), dev.points, asap
    )
    if spec is not None and spec.events and dev.role == NORMAL:
        add_event_objects(app)
    return app


def _wire_malformed(app: apps.SimApplication, link: Any) -> None:
    """Give the malformed device a way to put raw bytes on the wire, past bacpypes3."""
    if not isinstance(app.asap, apps.MalformedASAP):
        return
    server = link.server  # ours or bacpypes3's link layer: both end in a datagram server

    def send(data: bytes, source: Any) -> None:
        if server.local_transport is not None:
            server.local_transport.sendto(data, source.addrTuple)

    app.asap.raw_send = send


def _bind_port(host: str, port: int, what: str) -> Any:
    try:
        return apps.open_udp_socket(host, port)
    except OSError as exc:
        raise SiteError(f"cannot bind {what} to {host}:{port}: {exc.strerror or exc}") from exc


async def _start_loopback(site: RunningSite) -> None:
    spec = site.spec
    if spec.join_bbmd:
        site.bbmd_address = spec.join_bbmd
    else:
        _start_bbmd(site)
    bbmd_target = IPv4Address(site.bbmd_address)
    await _start_loopback_devices(site, bbmd_target)


def _start_bbmd(site: RunningSite) -> None:
    spec = site.spec
    # The BBMD's own device, with a network port in BBMD mode.
    bbmd_sock = _bind_port(spec.host, spec.bbmd_port, "the BBMD")
    bbmd_port = bbmd_sock.getsockname()[1]
    # /8 gives the BBMD a broadcast address (127.255.255.255) for its own I-Am; the
    # devices hear it through the foreign-device table, not through that broadcast.
    bbmd_addr = _loopback_address(spec.host, bbmd_port, 8)
    bbmd_dev = DeviceSpec(
        instance=spec.bbmd_instance,
        role="bbmd",
        name=spec.bbmd_name,
        vendor_id=spec.vendor_id,
        vendor_name=spec.vendor_name,
        model_name="SIM-BBMD",
        firmware_revision="1.0.0",
        application_software_version="sim-bbmd",
        description="BBMD of the simulated site",
        location="Loopback",
    )
    bbmd_app = apps.build_application(apps.SimApplication, make_device_object(bbmd_dev), [])
    bbmd_link = apps.SocketBBMDLink(bbmd_addr, bbmd_sock)
    bbmd_app.nsap.bind(bbmd_link, address=bbmd_addr)
    bbmd_app.links.append(bbmd_link)
    apps.attach_network_port(
        bbmd_app,
        bbmd_addr,
        "bbmd",
        bbmdAcceptFDRegistrations=True,
        bbmdBroadcastDistributionTable=[],
        bbmdForeignDeviceTable=[],
    )
    site.applications.append(bbmd_app)
    site.bbmd_address = f"{spec.host}:{bbmd_port}"


async def _start_loopback_devices(site: RunningSite, bbmd_target: IPv4Address) -> None:
    spec = site.spec
    port = spec.base_port
    router_devices: list[DeviceSpec] = []
    for dev in site.devices:
        if dev.role == ROUTED:
            router_devices.append(dev)
            continue
        sock = _bind_port(spec.host, port, f"device {dev.instance}")
        actual = sock.getsockname()[1]
        if port:
            port += 1
        address = _loopback_address(spec.host, actual)
        app = build_device_app(dev, spec)
        link = apps.SocketForeignLink(address, sock)
        app.nsap.bind(link, address=address)
        app.links.append(link)
        _wire_malformed(app, link)
        link.register(bbmd_target, spec.fd_ttl)
        site.applications.append(app)
        site.foreign_links.append(link)
        dev.address = f"{spec.host}:{actual}"
        dev.port = actual

    if router_devices:
        sock = _bind_port(spec.host, port, "the router")
        actual = sock.getsockname()[1]
        address = _loopback_address(spec.host, actual)
        router = RoutedNetwork(ROUTED_NETWORK, f"simnet-{os.getpid()}-{id(site)}")
        link = apps.SocketForeignLink(address, sock)
        router.attach_ip(link, address)
        link.register(bbmd_target, spec.fd_ttl)
        site.foreign_links.append(link)
        for dev in router_devices:
            router.add_device(dev, build_device_app(dev))
        site.router = router

    await _wait_registered(site.foreign_links)
    if site.router is not None:
        # Once registered: a foreign device cannot broadcast before that.
        await site.router.announce()


async def _wait_registered(links: list[Any]) -> None:
    deadline = time.monotonic() + REGISTRATION_TIMEOUT_S
    for link in links:
        remaining = deadline - time.monotonic()
        try:
            await asyncio.wait_for(link._registration_event.wait(), max(remaining, 0.01))
        except TimeoutError:
            raise SiteError(
                f"foreign-device registration of {link.server.local_address} "
                f"not acknowledged within {REGISTRATION_TIMEOUT_S:.0f} s "
                f"(status {link.bbmdRegistrationStatus})"
            ) from None


def _check_local_address(ip: str, what: str) -> None:
    """bacpypes3 retries a failed bind forever: find a missing alias before it does."""
    try:
        apps.open_udp_socket(ip, 0).close()
    except OSError as exc:
        raise SiteError(
            f"cannot bind {what} to {ip}: {exc.strerror or exc} "
            "(bridge mode needs the aliases that tests/site_fixtures.bridge_lab creates)"
        ) from exc


async def _start_bridge(site: RunningSite) -> None:
    """Devices on host.11, host.12, ... (aliases that bridge_lab created), port 47808."""
    from bacpypes3.ipv4.link import NormalLinkLayer

    spec = site.spec
    net = ipaddress.IPv4Network(f"{spec.host}.0/24", strict=False)
    host_no = BRIDGE_FIRST_HOST
    router_devices = []
    for dev in site.devices:
        if dev.role == ROUTED:
            router_devices.append(dev)
            continue
        ip = str(net.network_address + host_no)
        host_no += 1
        _check_local_address(ip, f"device {dev.instance}")
        address = IPv4Address(f"{ip}/24:{BRIDGE_PORT}")
        app = build_device_app(dev)
        # bacpypes3's own normal link layer: it also opens the broadcast listener
        # (x.x.x.255:47808), which plain broadcast discovery needs.
        link = NormalLinkLayer(address)
        app.nsap.bind(link, address=address)
        app.links.append(link)
        _wire_malformed(app, link)
        site.applications.append(app)
        dev.address = f"{ip}:{BRIDGE_PORT}"
        dev.port = BRIDGE_PORT
    if router_devices:
        ip = str(net.network_address + host_no)
        _check_local_address(ip, "the router")
        address = IPv4Address(f"{ip}/24:{BRIDGE_PORT}")
        router = RoutedNetwork(ROUTED_NETWORK, f"simnet-{os.getpid()}-{id(site)}")
        router.attach_ip(NormalLinkLayer(address), address)
        for dev in router_devices:
            router.add_device(dev, build_device_app(dev))
        site.router = router
    # Wait until every socket listens: bacpypes3 opens them in tasks.
    servers = [link.server for app in site.applications for link in app.links]
    if site.router is not None:
        servers.append(site.router.ip_link.server)
    try:
        await asyncio.wait_for(
            asyncio.gather(*(s._local_transport_ready.wait() for s in servers)), 20
        )
    except TimeoutError:
        raise SiteError(
            f"the bridge sockets did not open within 20 s: is port {BRIDGE_PORT} taken "
            "on the lab addresses (or on 0.0.0.0)?"
        ) from None
    if site.router is not None:
        await site.router.announce()


def write_ready_file(path: str | os.PathLike[str], document: dict[str, Any]) -> None:
    """Write atomically (temporary file, then rename) so readers never see half of it."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".ready-", dir=str(target.parent))
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(document, fh, indent=2, ensure_ascii=True)
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


async def start_site(spec: SiteSpec) -> RunningSite:
    site = RunningSite(spec=spec, devices=plan_site(spec))
    try:
        if spec.mode == LOOPBACK:
            await _start_loopback(site)
        elif spec.mode == BRIDGE:
            await _start_bridge(site)
        else:  # validate() already refused it
            raise SiteError(f"unknown mode {spec.mode!r}")
    except BaseException:
        site.close()
        raise
    return site


def _log_started(site: RunningSite) -> None:
    spec = site.spec
    if site.bbmd_address and spec.join_bbmd:
        log.info("devices registered with the running BBMD %s", site.bbmd_address)
    elif site.bbmd_address:
        log.info(
            "BBMD %s (device %s) accepting foreign-device registrations",
            site.bbmd_address,
            spec.bbmd_instance,
        )
    by_role: dict[str, list[str]] = {}
    for dev in site.devices:
        by_role.setdefault(dev.role, []).append(f"{dev.instance}@{dev.address}")
    for role, entries in by_role.items():
        log.info("%d %s device(s): %s", len(entries), role, ", ".join(entries))
    total_objects = sum(len(d.points) for d in site.devices)
    log.info(
        "simulated site ready: %d devices, %d objects, mode %s%s",
        len(site.devices),
        total_objects,
        spec.mode,
        ", values vary" if spec.vary else "",
    )


async def serve(spec: SiteSpec, ready_file: str | os.PathLike[str] | None = None) -> None:
    """Start the site, write the ready file, run until SIGTERM/SIGINT, close everything."""
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        # Not available outside the main thread or on Windows: Ctrl-C still works.
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(signum, stop.set)
    # bacpypes3 logs a traceback for every datagram it cannot decode, and the fault
    # tests send thousands on purpose: silence it unless the caller set a level.
    bacpypes_log = logging.getLogger("bacpypes3")
    if bacpypes_log.level == logging.NOTSET:
        bacpypes_log.setLevel(logging.CRITICAL)
    site = await start_site(spec)
    try:
        _log_started(site)
        if ready_file:
            write_ready_file(ready_file, site.ready_document())
            log.info("ready file written: %s", ready_file)
        await stop.wait()
        log.info("stopping the simulated site")
    finally:
        site.close()
        # Let the transports finish closing before the loop goes away.
        await asyncio.sleep(0.05)


def run_site(spec: SiteSpec, ready_file: str | os.PathLike[str] | None = None) -> None:
    """Blocking entry point of `simulate_site`: returns after SIGTERM/SIGINT."""
    # Where signal handlers cannot be installed (Windows), Ctrl-C arrives as
    # KeyboardInterrupt; asyncio.run has closed everything by then.
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve(spec, ready_file))
