"""Client configuration and the local address: ClientConfig, BACNET_INTERFACE and BBMD
address parsing, host interface detection, and the check that the socket can be bound.

Standard library only: ``discovery.checks`` uses these helpers in processes that never
start a BACnet stack (``manage.py check``, the web server).
"""

from __future__ import annotations

import ipaddress
import json
import logging
import shutil
import socket
import subprocess
from dataclasses import dataclass
from typing import Any

from discovery.bacnet_types import BACnetConfigError

log = logging.getLogger(__name__)

DEFAULT_PORT = 47808


@dataclass(frozen=True)
class ClientConfig:
    """Everything the client needs, normally from the BACNET_* settings."""

    # "A.B.C.D/len" or "A.B.C.D/len:port"; "" = auto-detect from the host's interfaces.
    # A port in the interface wins over ``port``.
    interface: str = ""
    port: int = DEFAULT_PORT
    device_instance: int = 3056999
    bbmd_address: str = ""  # "host[:port]": register as a foreign device when set
    bbmd_ttl: int = 900
    apdu_timeout_ms: int = 3000
    apdu_retries: int = 1
    request_deadline_s: float = 8.0
    device_deadline_s: float = 30.0
    discovery_quiet_s: float = 0.5
    discovery_max_s: float = 5.0
    read_concurrency: int = 16

    @classmethod
    def from_settings(cls, **overrides: Any) -> ClientConfig:
        """Build from django.conf.settings BACNET_*; keyword arguments override."""
        from django.conf import settings

        values = {
            "interface": settings.BACNET_INTERFACE,
            "port": settings.BACNET_PORT,
            # A command-line tool's own instance, set by its options; else the worker's.
            "device_instance": getattr(settings, "BACNET_CLIENT_DEVICE_INSTANCE", None)
            or settings.BACNET_DEVICE_INSTANCE,
            "bbmd_address": settings.BACNET_BBMD_ADDRESS,
            "bbmd_ttl": settings.BACNET_BBMD_TTL,
            "apdu_timeout_ms": settings.BACNET_APDU_TIMEOUT_MS,
            "apdu_retries": settings.BACNET_APDU_RETRIES,
            "request_deadline_s": settings.BACNET_REQUEST_DEADLINE_S,
            "device_deadline_s": settings.BACNET_DEVICE_DEADLINE_S,
            "discovery_quiet_s": settings.BACNET_DISCOVERY_QUIET_S,
            "discovery_max_s": settings.BACNET_DISCOVERY_MAX_S,
            "read_concurrency": settings.BACNET_READ_CONCURRENCY,
        }
        values.update(overrides)
        return cls(**values)

    @property
    def apdu_total_s(self) -> float:
        """How long bacpypes3 retries a request to a silent device before it gives up."""
        return self.apdu_timeout_ms / 1000 * (self.apdu_retries + 1)

    @property
    def request_timeout_s(self) -> float:
        """The deadline of one request: the configured one, but always with a margin
        above the stack's own retries, so a silent device ends in the stack's
        no-response (one reason) and never races the deadline (two texts, and a future
        the stack completes after it was cancelled)."""
        margin = max(0.5, 0.2 * self.apdu_total_s)
        return max(self.request_deadline_s, self.apdu_total_s + margin)

    @property
    def no_answer_text(self) -> str:
        return (
            f"no answer within {self.apdu_total_s:g} s (BACNET_APDU_TIMEOUT_MS "
            f"{self.apdu_timeout_ms} x {self.apdu_retries + 1} attempts)"
        )


# --------------------------------------------------------------------------------------
# Addresses (stdlib only: also used by discovery.checks in processes without BACnet)
# --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class InterfaceSpec:
    """A parsed BACNET_INTERFACE: address, prefix length and port (None when not given)."""

    ip: str
    prefix: int | None = None
    port: int | None = None


def parse_interface(text: str) -> InterfaceSpec:
    """Parse "A.B.C.D", "A.B.C.D/len", "A.B.C.D:port" or "A.B.C.D/len:port".

    Raises ValueError with a readable message."""
    text = text.strip()
    if not text:
        raise ValueError("empty interface")
    rest, port = text, None
    if ":" in text:
        rest, _, port_text = text.rpartition(":")
        port = _parse_port(port_text, text)
    ip_text, prefix = rest, None
    if "/" in rest:
        ip_text, _, prefix_text = rest.partition("/")
        if not prefix_text.isdigit() or not 0 <= int(prefix_text) <= 32:
            raise ValueError(f"{text!r}: the prefix length must be 0..32")
        prefix = int(prefix_text)
    try:
        ip = ipaddress.IPv4Address(ip_text)
    except ValueError:
        raise ValueError(f"{text!r}: {ip_text!r} is not an IPv4 address") from None
    if ip.is_unspecified or ip.is_multicast:
        raise ValueError(f"{text!r}: {ip} cannot be a BACnet/IP interface address")
    return InterfaceSpec(str(ip), prefix, port)


def parse_bbmd_address(text: str) -> tuple[str, int]:
    """Parse a BBMD address "host[:port]" (port 47808 when absent). Raises ValueError."""
    text = text.strip()
    if not text:
        raise ValueError("empty BBMD address")
    host, port = text, DEFAULT_PORT
    if ":" in text:
        host, _, port_text = text.rpartition(":")
        port = _parse_port(port_text, text)
    try:
        ip = ipaddress.IPv4Address(host)
    except ValueError:
        # A host name is acceptable; it is resolved when the client starts.
        labels = host.split(".")
        if not host or len(host) > 253 or not all(_is_hostname_label(x) for x in labels):
            raise ValueError(
                f"{text!r}: {host!r} is neither an IPv4 address nor a host name"
            ) from None
        return host, port
    if ip.is_unspecified or ip.is_multicast:
        raise ValueError(f"{text!r}: {ip} cannot be a BBMD address")
    return str(ip), port


def _is_hostname_label(label: str) -> bool:
    return 0 < len(label) <= 63 and label.replace("-", "").isalnum() and label[0] != "-"


def _parse_port(port_text: str, whole: str) -> int:
    if not port_text.isdigit() or not 1 <= int(port_text) <= 65535:
        raise ValueError(f"{whole!r}: the port must be 1..65535")
    return int(port_text)


def host_ipv4_interfaces() -> list[tuple[str, int, str]]:
    """(address, prefix length, interface name) of this host's IPv4 addresses.

    Uses ``ip -j addr`` (Linux); returns [] where that is not available."""
    ip_cmd = shutil.which("ip")
    if not ip_cmd:
        return []
    try:
        out = subprocess.run(
            [ip_cmd, "-j", "-4", "addr", "show"],
            capture_output=True,
            timeout=5,
            check=True,
        ).stdout
        links = json.loads(out or b"[]")
    except (OSError, subprocess.SubprocessError, ValueError):
        return []
    found = []
    for link in links:
        for info in link.get("addr_info", []):
            if info.get("family") == "inet" and info.get("local"):
                found.append(
                    (info["local"], int(info.get("prefixlen", 32)), link.get("ifname", ""))
                )
    return found


def is_host_address(ip: str) -> bool:
    """True when this host has the IPv4 address (a socket can bind to it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        try:
            sock.bind((ip, 0))
        except OSError:
            return False
    return True


def detect_interface() -> str:
    """The first non-loopback IPv4 address of this host with its prefix, "A.B.C.D/len".

    Falls back to the address of the default route (prefix /24, a guess) and then to
    127.0.0.1/8."""
    for ip, prefix, name in host_ipv4_interfaces():
        if not ipaddress.IPv4Address(ip).is_loopback:
            log.info("BACnet interface auto-detected: %s/%s on %s", ip, prefix, name)
            return f"{ip}/{prefix}"
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            # connect() on UDP only picks a route; nothing is sent.
            sock.connect(("198.18.0.1", DEFAULT_PORT))
            ip = sock.getsockname()[0]
        if not ipaddress.IPv4Address(ip).is_loopback:
            log.warning(
                "BACnet interface auto-detected from the default route: %s/24 (prefix "
                "guessed; set BACNET_INTERFACE=A.B.C.D/len to be exact)",
                ip,
            )
            return f"{ip}/24"
    except OSError:
        pass
    log.warning("No non-loopback IPv4 interface found: BACnet client uses 127.0.0.1/8")
    return "127.0.0.1/8"


def host_prefix_for(ip: str) -> int | None:
    for address, prefix, _name in host_ipv4_interfaces():
        if address == ip:
            return prefix
    return None


def resolve_interface(config: ClientConfig) -> InterfaceSpec:
    """The interface to bind: parsed, with prefix and port filled in. Raises BACnetConfigError."""
    text = config.interface or detect_interface()
    try:
        spec = parse_interface(text)
    except ValueError as exc:
        raise BACnetConfigError(f"BACNET_INTERFACE {exc}") from None
    prefix = spec.prefix
    if prefix is None:
        prefix = host_prefix_for(spec.ip) or (8 if spec.ip.startswith("127.") else 24)
        log.info("BACnet interface %s given without a prefix: using /%s", spec.ip, prefix)
    port = spec.port if spec.port is not None else config.port
    if not 1 <= port <= 65535:
        raise BACnetConfigError(f"BACnet port {port} is not 1..65535")
    return InterfaceSpec(spec.ip, prefix, port)


def check_bindable(ip: str, port: int) -> None:
    """Fail clearly before bacpypes3 gets the address: it retries a failing bind forever."""
    if not is_host_address(ip):
        raise BACnetConfigError(
            f"BACnet interface {ip} is not an address of this host; set BACNET_INTERFACE "
            "to one of: " + ", ".join(f"{a}/{p}" for a, p, _ in host_ipv4_interfaces())
        )
    # No SO_REUSEPORT here on purpose: a socket another process holds (even with
    # SO_REUSEPORT, as bacpypes3 binds) makes this fail, and two BACnet stacks on one
    # ip:port would split each device's answers between them.
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        try:
            sock.bind((ip, port))
        except OSError as exc:
            raise BACnetConfigError(
                f"UDP port {ip}:{port} is in use ({exc.strerror}): another BACnet "
                "application (or worker process) owns it; only one may run per interface "
                "and port"
            ) from None
