"""The BACnet/IP client: the only module of the product that imports BAC0 or bacpypes3.

One long-lived BAC0 application per process lives on an event loop in a thread of its own;
callers (Celery tasks, management commands, tests) use a synchronous facade that submits
coroutines to that loop with ``run_coroutine_threadsafe``. Why this shape:

- One BACnet/IP socket per host interface: bacpypes3 binds with SO_REUSEPORT, and two
  processes on the same ip:port split the replies between them. ``get_client()`` keeps one
  started client per process; the BACnet worker runs the solo (or threads) pool.
- BAC0 is async-only: its constructor needs a running loop, so it is built on the loop
  thread, always with ``ip="A.B.C.D/len"``.
- bacpypes3 raises ErrorPDU, RejectPDU and AbortPDU, which derive from BaseException and
  kill a Celery worker. Every network await goes through ``_Session.call()``, which adds a
  deadline (a garbage or truncated answer otherwise leaves a request waiting forever) and
  converts everything into the picklable ``BACnetError`` / ``BACnetTimeout``.
- A global Who-Is in bacpypes3 always waits its whole timeout; ``discover()`` sends the
  Who-Is itself, hooks I-Am reception and returns once the network has been quiet.

Importing this module is cheap and has no side effects: BAC0 and bacpypes3 are imported on
``start()`` (BAC0 reads ``.env`` and adds log handlers at import, see ``_load_stack``).
"""

from __future__ import annotations

import asyncio
import atexit
import concurrent.futures
import contextlib
import ipaddress
import json
import logging
import math
import os
import queue
import shutil
import socket
import struct
import subprocess
import threading
import time
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from types import SimpleNamespace
from typing import Any

from discovery.bacnet_types import (
    BACnetConfigError,
    BACnetError,
    BACnetTimeout,
    DeviceEnumeration,
    DeviceProperties,
    DeviceReadResult,
    DeviceTarget,
    DiscoveredDevice,
    DiscoveryResult,
    PointInfo,
    PointRef,
    PointValue,
)

log = logging.getLogger(__name__)

DEFAULT_PORT = 47808
MAX_INSTANCE = 4194303

# Object types whose present value the product reads. Others (device, network-port,
# file, proprietary types, ...) are not points and are left out of enumeration.
POINT_OBJECT_TYPES = frozenset(
    {
        "analog-input",
        "analog-output",
        "analog-value",
        "binary-input",
        "binary-output",
        "binary-value",
        "multi-state-input",
        "multi-state-output",
        "multi-state-value",
        "accumulator",
        "pulse-converter",
        "loop",
        "integer-value",
        "positive-integer-value",
        "large-analog-value",
        "characterstring-value",
        "binary-lighting-output",
        "lighting-output",
    }
)

# Rough encoded sizes (bytes) of one item in an acknowledgement, used to size
# ReadPropertyMultiple batches so that the answer fits one APDU for devices that cannot
# segment. Oversized batches are split again when a device says so anyway.
_VALUE_BYTES = 24  # object id, present-value (REAL), status-flags, tags
_OBJECT_LIST_ITEM_BYTES = 12  # property id, array index, object id, tags
_OBJECT_TEXT_BYTES = 120  # name, description, units or state texts
_APDU_HEADER_BYTES = 12
_VALUE_BATCH_CAP = 100  # measured best on segmenting devices (BACNET_NOTES)
_TEXT_BATCH_CAP = 40
_OBJECT_LIST_BATCH_CAP = 100
# Requests in flight to one device when reading element by element or property by property.
_PER_DEVICE_IN_FLIGHT = 2
# The local device accepts segmented answers up to this size (64 x 1476 bytes).
_LOCAL_MAX_APDU = 1476
_LOCAL_MAX_SEGMENTS = 64

_DEVICE_PROPERTIES = (
    ("name", "object-name"),
    ("vendor_id", "vendor-identifier"),
    ("vendor_name", "vendor-name"),
    ("model_name", "model-name"),
    ("firmware_revision", "firmware-revision"),
    ("application_software_version", "application-software-version"),
    ("description", "description"),
    ("location", "location"),
    ("protocol_revision", "protocol-revision"),
    ("max_apdu", "max-apdu-length-accepted"),
    ("segmentation", "segmentation-supported"),
)


# --------------------------------------------------------------------------------------
# Configuration
# --------------------------------------------------------------------------------------


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
    request_deadline_s: float = 6.0
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
            "device_instance": settings.BACNET_DEVICE_INSTANCE,
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


def _check_bindable(ip: str, port: int) -> None:
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


# --------------------------------------------------------------------------------------
# The stack: BAC0 and bacpypes3, imported on first start
# --------------------------------------------------------------------------------------

_stack_lock = threading.Lock()
_stack: SimpleNamespace | None = None


def _load_stack() -> SimpleNamespace:
    """Import BAC0 and the bacpypes3 names the client uses, neutralising BAC0's side effects.

    - BAC0 calls ``load_dotenv(os.getcwd() + "/.env")`` at import: a worker started in some
      folder would pick up that folder's .env. It is skipped (the product reads its own
      .env through django-environ).
    - Every BAC0 class logger gets a stdout handler (INFO) and a ~/.BAC0/BAC0.log file
      handler, and does not propagate. They are removed; BAC0 records propagate to the
      "BAC0_Root" logger at WARNING, so the product's logging configuration decides.
      (BAC0 still creates the empty ~/.BAC0 directory at import.)
    """
    global _stack
    with _stack_lock:
        if _stack is not None:
            return _stack
        try:
            import dotenv
        except ImportError:  # BAC0 then only prints a hint
            dotenv = None
        real_load_dotenv = dotenv.load_dotenv if dotenv else None
        if dotenv:
            dotenv.load_dotenv = lambda *args, **kwargs: False  # type: ignore[assignment]
        try:
            import BAC0
            import BAC0.core.app.asyncApp as bac0_async_app
            from BAC0.scripts.Base import Base as Bac0Base
        finally:
            if dotenv:
                dotenv.load_dotenv = real_load_dotenv  # type: ignore[assignment]
        _quiet_bac0_loggers()
        logging.getLogger("BAC0_Root").setLevel(logging.WARNING)
        # bacpypes3 logs every undecodable packet from a broken device at ERROR with a
        # traceback; the client reports those devices itself.
        logging.getLogger("bacpypes3").setLevel(logging.CRITICAL)

        from bacpypes3 import apdu as bp_apdu
        from bacpypes3 import basetypes, pdu, primitivedata

        _stack = SimpleNamespace(
            BAC0=BAC0,
            Bac0Base=Bac0Base,
            bac0_device_json=os.path.join(os.path.dirname(bac0_async_app.__file__), "device.json"),
            Address=pdu.Address,
            GlobalBroadcast=pdu.GlobalBroadcast,
            RemoteStation=pdu.RemoteStation,
            WhoIsRequest=bp_apdu.WhoIsRequest,
            ErrorRejectAbortNack=bp_apdu.ErrorRejectAbortNack,
            ErrorPDU=bp_apdu.ErrorPDU,
            RejectPDU=bp_apdu.RejectPDU,
            AbortPDU=bp_apdu.AbortPDU,
            ObjectIdentifier=primitivedata.ObjectIdentifier,
            PropertyIdentifier=basetypes.PropertyIdentifier,
            PropertyReference=basetypes.PropertyReference,
            ErrorType=basetypes.ErrorType,
            StatusFlags=basetypes.StatusFlags,
            BinaryPV=basetypes.BinaryPV,
            Real=primitivedata.Real,
            Double=primitivedata.Double,
            Boolean=primitivedata.Boolean,
            Enumerated=primitivedata.Enumerated,
            BitString=primitivedata.BitString,
            Null=primitivedata.Null,
        )
        return _stack


def _quiet_bac0_loggers() -> None:
    """Remove the stdout and ~/.BAC0 file handlers BAC0 gives each class logger."""
    from BAC0.core.utils.notes import LogList

    for bac0_logger in list(LogList.LOGGERS):
        for handler in list(bac0_logger.handlers):
            bac0_logger.removeHandler(handler)
            handler.close()
        bac0_logger.propagate = True
        bac0_logger.setLevel(logging.NOTSET)


# --------------------------------------------------------------------------------------
# Value conversion (run on the loop thread, bacpypes3 values in, plain values out)
# --------------------------------------------------------------------------------------


def safe_text(value: Any) -> str:
    """A device string as a valid Python str: never raises, keeps NUL and odd characters.

    Lone surrogates (undecodable bytes) become U+FFFD; storage strips NUL and length."""
    if value is None:
        return ""
    try:
        # A plain str: bacpypes3's CharacterString subclass would drag bacpypes3 into
        # every pickle, and overrides encode().
        text = str.__str__(value) if isinstance(value, str) else str(value)
    except Exception:
        return ""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        text = "".join("\ufffd" if "\ud800" <= c <= "\udfff" else c for c in text)
    return text


def _enum_text(value: Any) -> str:
    asn1 = getattr(value, "asn1", None)
    if isinstance(asn1, str):
        return asn1
    return safe_text(value)


def _int_or_none(value: Any) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def _is_property_error(bp: SimpleNamespace, value: Any) -> bool:
    return value is None or isinstance(value, bp.ErrorType | bp.ErrorRejectAbortNack)


def _error_type_text(value: Any) -> str:
    if value is None:
        return "no value"
    error_class = getattr(value, "errorClass", None)
    error_code = getattr(value, "errorCode", None)
    if error_class is not None or error_code is not None:
        return f"{_enum_text(error_class)}: {_enum_text(error_code)}"
    return safe_text(value)


def status_flags_mask(value: Any) -> int | None:
    """StatusFlags bit string -> bit mask (in-alarm 1, fault 2, overridden 4, out-of-service 8)."""
    try:
        bits = list(value)
    except TypeError:
        return None
    mask = 0
    for position, bit in enumerate(bits[:4]):
        if bit:
            mask |= 1 << position
    return mask


def shortest_float32(number: float) -> float:
    """The shortest decimal that is the same single-precision REAL: 20.18, not 20.1800003.

    A BACnet REAL is 32 bits; printed as a 64-bit float it shows noise digits."""
    packed = struct.pack("<f", number)
    for digits in range(6, 10):
        candidate = float(f"{number:.{digits}g}")
        if struct.pack("<f", candidate) == packed:
            return candidate
    return number


def convert_present_value(
    bp: SimpleNamespace, object_type: str, value: Any, state_texts: Sequence[str] = ()
) -> tuple[float | None, str]:
    """(value, text) for PointValue. See PointValue and docs/bacnet.md for the rules."""
    if isinstance(value, bp.Boolean | bool):
        return (1.0 if value else 0.0), ("true" if value else "false")
    if isinstance(value, bp.BinaryPV) or object_type.startswith("binary"):
        number = _int_or_none(value)
        if number is None:
            return None, _enum_text(value)
        index = 1 if number else 0
        default = ("inactive", "active")[index]
        text = state_texts[index] if len(state_texts) == 2 and state_texts[index] else default
        return float(index), text
    if isinstance(value, bp.Real | bp.Double | float):
        number = float(value)
        if math.isnan(number):
            return None, "nan"
        if math.isinf(number):
            return None, "inf" if number > 0 else "-inf"
        if isinstance(value, bp.Real):
            number = shortest_float32(number)
        return number, ""
    if isinstance(value, bp.Enumerated):
        return float(int(value)), _enum_text(value)
    if isinstance(value, int):
        text = ""
        if object_type.startswith("multi-state") and 1 <= value <= len(state_texts):
            text = state_texts[value - 1]
        return float(value), text
    if isinstance(value, str):
        return None, safe_text(value)
    if isinstance(value, bp.Null):
        return None, "null"
    return None, safe_text(value)


# --------------------------------------------------------------------------------------
# Error conversion
# --------------------------------------------------------------------------------------


def _nack_reason(bp: SimpleNamespace, exc: BaseException) -> str:
    if isinstance(exc, bp.RejectPDU):
        return f"reject: {_enum_text(exc.apduAbortRejectReason)}"
    if isinstance(exc, bp.AbortPDU):
        return f"abort: {_enum_text(exc.apduAbortRejectReason)}"
    return f"error {_error_type_text(exc)}"


def _is_too_big(error: BACnetError) -> bool:
    """The answer did not fit: split the request and try again."""
    return any(
        word in error.reason
        for word in ("segmentation-not-supported", "buffer-overflow", "apdu-too-long")
    )


def _is_service_unsupported(error: BACnetError) -> bool:
    return any(word in error.reason for word in ("unrecognized-service", "service-request-denied"))


# --------------------------------------------------------------------------------------
# Per-device work on the loop thread
# --------------------------------------------------------------------------------------


async def _all(awaitables: Iterable[Awaitable[Any]]) -> list[Any]:
    """asyncio.gather that cancels the others when one fails: no request outlives its device."""
    tasks = [asyncio.ensure_future(a) for a in awaitables]
    try:
        return await asyncio.gather(*tasks)
    except BaseException:
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.wait(tasks)
        raise


def _batches(items: Sequence[Any], size: int) -> list[list[Any]]:
    size = max(1, size)
    return [list(items[i : i + size]) for i in range(0, len(items), size)]


def _segments_answers(segmentation: str | None) -> bool:
    """Whether a device can send segmented acknowledgements."""
    return segmentation in ("segmented-both", "segmented-transmit")


def batch_size(per_item: int, max_apdu: int | None, segmentation: str | None, cap: int) -> int:
    """How many items one ReadPropertyMultiple may ask a device for."""
    if _segments_answers(segmentation):
        return cap
    usable = (max_apdu or 480) - _APDU_HEADER_BYTES
    return max(1, min(cap, usable // per_item))


class _Session:
    """Requests to one device, each with its own deadline, errors converted."""

    def __init__(self, client: BACnetClient, instance: int, address: str) -> None:
        self.client = client
        self.bp = client._bp
        self.instance = instance
        self.address_text = address
        self.address = self.bp.Address(address)
        self.in_flight = asyncio.Semaphore(_PER_DEVICE_IN_FLIGHT)

    def where(self, what: str) -> str:
        return f"device {self.instance} at {self.address_text}: {what}"

    async def call(self, awaitable: Awaitable[Any], what: str) -> Any:
        deadline = self.client.config.request_deadline_s
        try:
            return await asyncio.wait_for(awaitable, deadline)
        except TimeoutError:
            raise BACnetTimeout(
                self.where(f"{what}: no complete answer within {deadline:g} s"),
                device=self.instance,
                reason="timeout",
            ) from None
        except asyncio.CancelledError:
            task = asyncio.current_task()
            if task is not None and task.cancelling():
                raise  # our caller is being cancelled (device deadline, stop): let it
            raise BACnetError(
                self.where(f"{what}: request cancelled by the stack"),
                device=self.instance,
                reason="cancelled",
            ) from None
        except BACnetError:
            raise
        except self.bp.ErrorRejectAbortNack as exc:
            reason = _nack_reason(self.bp, exc)
            if reason == "abort: no-response":
                # The stack's own abort once every retry went unanswered.
                raise BACnetTimeout(
                    self.where(f"{what}: no answer (apdu timeout, retries exhausted)"),
                    device=self.instance,
                    reason="timeout",
                ) from None
            raise BACnetError(
                self.where(f"{what}: {reason}"), device=self.instance, reason=reason
            ) from None
        except Exception as exc:
            reason = f"{type(exc).__name__}: {safe_text(exc)}"
            raise BACnetError(
                self.where(f"{what}: {reason}"), device=self.instance, reason=reason
            ) from None

    def object_id(self, object_type: str, instance: int) -> Any:
        return self.bp.ObjectIdentifier((object_type, instance))

    async def read(
        self, object_type: str, instance: int, prop: str, index: int | None = None
    ) -> Any:
        what = f"read-property {object_type},{instance} {prop}" + (
            f"[{index}]" if index is not None else ""
        )
        app = self.client._app
        async with self.in_flight:
            value = await self.call(
                app.read_property(
                    self.address,
                    self.object_id(object_type, instance),
                    self.bp.PropertyIdentifier(prop),
                    index,
                ),
                what,
            )
        if value is None or (isinstance(value, str) and value.startswith("-no ")):
            reason = "unsupported answer" if value is None else value.strip("-")
            raise BACnetError(self.where(f"{what}: {reason}"), device=self.instance, reason=reason)
        return value

    async def read_multiple(
        self, specs: Sequence[tuple[str, int, Sequence[str | tuple[str, int]]]]
    ) -> dict[tuple[str, int, str, int | None], Any]:
        """One ReadPropertyMultiple. Keys are (object type, instance, property, index);
        values are decoded values or an ErrorType for per-property errors."""
        bp = self.bp
        parameters: list[Any] = []
        for object_type, instance, props in specs:
            refs = []
            for prop in props:
                if isinstance(prop, tuple):
                    refs.append(
                        bp.PropertyReference(
                            propertyIdentifier=bp.PropertyIdentifier(prop[0]),
                            propertyArrayIndex=prop[1],
                        )
                    )
                else:
                    refs.append(bp.PropertyIdentifier(prop))
            parameters.extend([self.object_id(object_type, instance), refs])
        first = specs[0]
        what = f"read-property-multiple of {len(specs)} objects from {first[0]},{first[1]}"
        async with self.in_flight:
            answer = await self.call(
                self.client._app.read_property_multiple(self.address, parameters), what
            )
        if not isinstance(answer, list):
            raise BACnetError(
                self.where(f"{what}: unsupported answer"),
                device=self.instance,
                reason="unsupported answer",
            )
        results = {}
        for objid, prop_id, index, value in answer:
            key = (_enum_text(objid[0]), int(objid[1]), _enum_text(prop_id), index)
            results[key] = value
        return results


class _DeviceWork:
    """Enumeration and reads of one device (runs on the loop thread)."""

    def __init__(self, session: _Session, supports_rpm: bool = True) -> None:
        self.s = session
        self.bp = session.bp
        self.supports_rpm = supports_rpm

    async def _pipelined(
        self, batches: list[list[Any]], run: Callable[[list[Any]], Awaitable[None]]
    ) -> None:
        """The first batch alone (a silent device fails once, an RPM reject is learnt
        once), then the others with a few requests in flight (``_Session.in_flight``)."""
        if not batches:
            return
        await run(batches[0])
        if self.supports_rpm and len(batches) > 1:
            await _all(run(batch) for batch in batches[1:])

    # -- device properties -------------------------------------------------------------

    async def device_properties(self) -> DeviceProperties:
        raw: dict[str, Any] = {}
        props = [prop for _, prop in _DEVICE_PROPERTIES]
        if self.supports_rpm:
            try:
                answer = await self.s.read_multiple([("device", self.s.instance, props)])
                for prop in props:
                    raw[prop] = answer.get(("device", self.s.instance, prop, None))
            except BACnetTimeout:
                raise
            except BACnetError as exc:
                if _is_service_unsupported(exc):
                    self.supports_rpm = False
                # Otherwise too big, or a device failing the whole request for one
                # optional property: read them one by one (a missing device still fails,
                # on its name).
        if not raw:
            raw = await self._device_properties_one_by_one(props)
        return self._device_properties_from(raw)

    async def _device_properties_one_by_one(self, props: list[str]) -> dict[str, Any]:
        # The name first: a device that cannot answer it is not worth 10 more timeouts.
        raw = {"object-name": await self._read_or_error("device", self.s.instance, props[0])}
        if isinstance(raw["object-name"], BACnetError):
            raise raw["object-name"]  # every device object has a name: the device is the problem
        values = await _all(
            self._read_or_error("device", self.s.instance, prop) for prop in props[1:]
        )
        raw.update(zip(props[1:], values, strict=True))
        return raw

    async def _read_or_error(self, object_type: str, instance: int, prop: str) -> Any:
        try:
            return await self.s.read(object_type, instance, prop)
        except BACnetError as exc:
            return exc

    def _device_properties_from(self, raw: dict[str, Any]) -> DeviceProperties:
        props = DeviceProperties(supports_rpm=self.supports_rpm)
        for attr, prop in _DEVICE_PROPERTIES:
            value = raw.get(prop)
            if isinstance(value, BaseException) or _is_property_error(self.bp, value):
                continue
            if attr in ("vendor_id", "protocol_revision", "max_apdu"):
                setattr(props, attr, _int_or_none(value))
            elif attr == "segmentation":
                props.segmentation = _enum_text(value)
            else:
                setattr(props, attr, safe_text(value))
        return props

    # -- object list ---------------------------------------------------------------------

    async def object_list(self, props: DeviceProperties) -> list[tuple[str, int]]:
        try:
            value = await self.s.read("device", self.s.instance, "object-list")
            return [(_enum_text(oid[0]), int(oid[1])) for oid in value]
        except BACnetTimeout:
            raise
        except BACnetError as exc:
            if not _is_too_big(exc):
                raise
        # Too big for one APDU (a device that cannot segment, or beyond our own limit):
        # read its length (index 0), then the elements.
        count = int(await self.s.read("device", self.s.instance, "object-list", 0))
        indexes = list(range(1, count + 1))
        found: dict[int, tuple[str, int]] = {}
        if self.supports_rpm:
            size = batch_size(
                _OBJECT_LIST_ITEM_BYTES, props.max_apdu, props.segmentation, _OBJECT_LIST_BATCH_CAP
            )
            await self._pipelined(
                _batches(indexes, size), lambda batch: self._object_list_batch(batch, found)
            )
        missing = [i for i in indexes if i not in found]
        if missing:
            values = await _all(self._object_list_element(i) for i in missing)
            for index, value in zip(missing, values, strict=True):
                if value is not None:
                    found[index] = value
        return [found[i] for i in indexes if i in found]

    async def _object_list_element(self, index: int) -> tuple[str, int] | None:
        oid = await self.s.read("device", self.s.instance, "object-list", index)
        return (_enum_text(oid[0]), int(oid[1]))

    async def _object_list_batch(self, batch: list[int], found: dict[int, tuple[str, int]]) -> None:
        try:
            answer = await self.s.read_multiple(
                [("device", self.s.instance, [("object-list", i) for i in batch])]
            )
        except BACnetTimeout:
            raise
        except BACnetError as exc:
            if _is_service_unsupported(exc):
                self.supports_rpm = False
                return
            if _is_too_big(exc) and len(batch) > 1:
                half = len(batch) // 2
                await self._object_list_batch(batch[:half], found)
                await self._object_list_batch(batch[half:], found)
                return
            raise
        for (_t, _i, _p, index), oid in answer.items():
            if index is not None and not _is_property_error(self.bp, oid):
                found[index] = (_enum_text(oid[0]), int(oid[1]))

    # -- object texts --------------------------------------------------------------------

    @staticmethod
    def text_properties(object_type: str) -> list[str]:
        props = ["object-name", "description"]
        if object_type.startswith("binary"):
            props += ["inactive-text", "active-text"]
        elif object_type.startswith("multi-state"):
            props += ["state-text"]
        elif object_type not in ("characterstring-value",):
            props += ["units"]
        return props

    async def points(
        self, objects: Iterable[tuple[str, int]], props: DeviceProperties
    ) -> list[PointInfo]:
        wanted = [(t, i) for t, i in objects if t in POINT_OBJECT_TYPES]
        raw: dict[tuple[str, int], dict[str, Any]] = {obj: {} for obj in wanted}
        if self.supports_rpm:
            size = batch_size(
                _OBJECT_TEXT_BYTES, props.max_apdu, props.segmentation, _TEXT_BATCH_CAP
            )
            await self._pipelined(
                _batches(wanted, size), lambda batch: self._texts_batch(batch, raw)
            )
        pending = [obj for obj in wanted if not raw[obj]]
        if pending:
            await _all(self._texts_one_by_one(obj, raw) for obj in pending)
        return [self._point_from(obj, raw[obj]) for obj in wanted]

    async def _texts_batch(
        self, batch: list[tuple[str, int]], raw: dict[tuple[str, int], dict[str, Any]]
    ) -> None:
        specs = [(t, i, self.text_properties(t)) for t, i in batch]
        try:
            answer = await self.s.read_multiple(specs)
        except BACnetTimeout:
            raise
        except BACnetError as exc:
            if _is_service_unsupported(exc):
                self.supports_rpm = False
                return
            if len(batch) > 1:
                # Too big, or one object the device chokes on: halve until it fits.
                half = len(batch) // 2
                await self._texts_batch(batch[:half], raw)
                await self._texts_batch(batch[half:], raw)
            # A single object that still fails is read property by property later.
            return
        for (object_type, instance, prop, _index), value in answer.items():
            key = (object_type, instance)
            if key in raw:
                raw[key][prop] = value

    async def _texts_one_by_one(
        self, obj: tuple[str, int], raw: dict[tuple[str, int], dict[str, Any]]
    ) -> None:
        props = self.text_properties(obj[0])
        values = await _all(self._read_or_error(obj[0], obj[1], p) for p in props)
        raw[obj] = dict(zip(props, values, strict=True))
        if all(isinstance(v, BACnetTimeout) for v in values):
            raise values[0]

    def _point_from(self, obj: tuple[str, int], raw: dict[str, Any]) -> PointInfo:
        def ok(prop: str) -> Any:
            value = raw.get(prop)
            if isinstance(value, BaseException) or _is_property_error(self.bp, value):
                return None
            return value

        point = PointInfo(object_type=obj[0], instance=obj[1])
        point.name = safe_text(ok("object-name"))
        point.description = safe_text(ok("description"))
        units = ok("units")
        point.units = _enum_text(units) if units is not None else ""
        if obj[0].startswith("binary"):
            point.state_texts = [safe_text(ok("inactive-text")), safe_text(ok("active-text"))]
            if not any(point.state_texts):
                point.state_texts = []
        elif obj[0].startswith("multi-state"):
            texts = ok("state-text")
            if texts is not None:
                try:
                    point.state_texts = [safe_text(t) for t in texts]
                except TypeError:
                    point.state_texts = []
        return point

    # -- present values ------------------------------------------------------------------

    async def read_values(self, target: DeviceTarget, result: DeviceReadResult) -> None:
        """Fill ``result.values`` (in ``target.points`` order) as batches complete."""
        refs = list(target.points)
        values: dict[PointRef, PointValue] = {}
        answered = False
        if self.supports_rpm:
            size = batch_size(_VALUE_BYTES, target.max_apdu, target.segmentation, _VALUE_BATCH_CAP)

            async def one_batch(batch: list[PointRef]) -> None:
                nonlocal answered
                try:
                    await self._values_batch(batch, values)
                    answered = True
                except BACnetTimeout as exc:
                    if not answered:
                        raise  # the device does not answer at all: fail it as a whole
                    for ref in batch:
                        values[ref] = self._point_error(ref, exc)
                # Kept current so that a device deadline keeps what was read.
                result.values = [values[r] for r in refs if r in values]

            await self._pipelined(_batches(refs, size), one_batch)
        result.supports_rpm = self.supports_rpm
        pending = [r for r in refs if r not in values]
        if pending:
            if not answered:
                # Probe with the first point so a silent device costs one deadline only.
                values[pending[0]] = await self._value_one(pending[0], raise_timeout=True)
                pending = pending[1:]
            read = await _all(self._value_one(r) for r in pending)
            values.update(zip(pending, read, strict=True))
        result.values = [values[r] for r in refs]

    def _point_error(self, ref: PointRef, exc: BACnetError) -> PointValue:
        return PointValue(object_type=ref.object_type, instance=ref.instance, error=str(exc))

    async def _values_batch(
        self, batch: list[PointRef], values: dict[PointRef, PointValue]
    ) -> None:
        specs = [(r.object_type, r.instance, ["present-value", "status-flags"]) for r in batch]
        try:
            answer = await self.s.read_multiple(specs)
        except BACnetTimeout:
            raise
        except BACnetError as exc:
            if _is_service_unsupported(exc):
                self.supports_rpm = False
                return
            if len(batch) > 1:
                half = len(batch) // 2
                await self._values_batch(batch[:half], values)
                await self._values_batch(batch[half:], values)
                return
            values[batch[0]] = self._point_error(batch[0], exc)
            return
        for ref in batch:
            values[ref] = self._point_value(
                ref,
                answer.get((ref.object_type, ref.instance, "present-value", None)),
                answer.get((ref.object_type, ref.instance, "status-flags", None)),
            )

    def _point_value(self, ref: PointRef, present: Any, flags: Any) -> PointValue:
        point = PointValue(object_type=ref.object_type, instance=ref.instance)
        if isinstance(present, BaseException) or _is_property_error(self.bp, present):
            reason = str(present) if isinstance(present, BACnetError) else _error_type_text(present)
            point.error = self.s.where(f"{ref.object_type},{ref.instance} present-value: {reason}")
        else:
            try:
                point.value, point.text = convert_present_value(
                    self.bp, ref.object_type, present, getattr(ref, "state_texts", ())
                )
            except Exception as exc:
                point.error = self.s.where(
                    f"{ref.object_type},{ref.instance} present-value: "
                    f"{type(exc).__name__}: {safe_text(exc)}"
                )
        if not (isinstance(flags, BaseException) or _is_property_error(self.bp, flags)):
            point.status_flags = status_flags_mask(flags)
        return point

    async def _value_one(self, ref: PointRef, raise_timeout: bool = False) -> PointValue:
        try:
            present = await self.s.read(ref.object_type, ref.instance, "present-value")
        except BACnetTimeout as exc:
            if raise_timeout:
                raise
            return self._point_error(ref, exc)
        except BACnetError as exc:
            return self._point_error(ref, exc)
        try:
            flags = await self.s.read(ref.object_type, ref.instance, "status-flags")
        except BACnetError:
            flags = None
        return self._point_value(ref, present, flags)


# --------------------------------------------------------------------------------------
# The client
# --------------------------------------------------------------------------------------


@dataclass
class _IAmSeen:
    instance: int
    address: str
    network_number: int | None
    vendor_id: int | None
    max_apdu: int | None
    segmentation: str | None
    at: float = field(default_factory=time.monotonic)


class BACnetClient:
    """Synchronous facade over one BAC0 application on an event-loop thread.

    Thread-safe: any number of caller threads may use one started client. Never call it
    from the loop thread itself (on_device callbacks run in the caller's thread)."""

    def __init__(self, config: ClientConfig | None = None) -> None:
        self.config = config or ClientConfig()
        self._lock = threading.RLock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._bacnet: Any = None  # the BAC0 Lite instance
        self._app: Any = None  # its bacpypes3 Application
        self._bp: Any = None
        self._interface: InterfaceSpec | None = None
        self._iam_listeners: list[Callable[[_IAmSeen], None]] = []
        self.pid = os.getpid()

    # -- lifecycle -----------------------------------------------------------------------

    @property
    def started(self) -> bool:
        return self._app is not None and self._thread is not None and self._thread.is_alive()

    @property
    def local_address(self) -> str:
        """The address the client is bound to, "A.B.C.D:port"."""
        if self._interface is None:
            raise BACnetError("the BACnet client is not started")
        return f"{self._interface.ip}:{self._interface.port}"

    def __enter__(self) -> BACnetClient:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def start(self) -> None:
        """Bind the BACnet stack. Raises BACnetConfigError when it cannot."""
        with self._lock:
            if self.started:
                return
            spec = resolve_interface(self.config)
            bbmd = self._resolve_bbmd()
            _check_bindable(spec.ip, spec.port or DEFAULT_PORT)
            self._bp = _load_stack()
            loop = asyncio.new_event_loop()
            ready = threading.Event()
            thread = threading.Thread(
                target=self._run_loop, args=(loop, ready), name="bacnet-client-loop", daemon=True
            )
            thread.start()
            ready.wait()
            self._loop, self._thread = loop, thread
            future = asyncio.run_coroutine_threadsafe(self._astart(spec, bbmd), loop)
            try:
                future.result(timeout=self.config.request_deadline_s + 15)
            except BaseException as exc:
                future.cancel()
                self._close_stack()
                self._shutdown_loop()
                if isinstance(exc, BACnetError):
                    raise
                if isinstance(exc, concurrent.futures.TimeoutError):
                    raise BACnetConfigError("the BACnet stack did not start in time") from None
                raise BACnetConfigError(
                    f"the BACnet stack did not start on {spec.ip}/{spec.prefix}:{spec.port}: "
                    f"{type(exc).__name__}: {safe_text(exc)}"
                ) from None
            self._interface = spec
            self.pid = os.getpid()
            log.info(
                "BACnet client started on %s/%s:%s as device %s%s",
                spec.ip,
                spec.prefix,
                spec.port,
                self.config.device_instance,
                f", foreign device of BBMD {bbmd[0]}:{bbmd[1]}" if bbmd else "",
            )

    def _resolve_bbmd(self) -> tuple[str, int] | None:
        if not self.config.bbmd_address:
            return None
        try:
            host, port = parse_bbmd_address(self.config.bbmd_address)
        except ValueError as exc:
            raise BACnetConfigError(f"BACNET_BBMD_ADDRESS {exc}") from None
        try:
            ip = socket.gethostbyname(host)
        except OSError as exc:
            raise BACnetConfigError(f"BBMD host {host!r} does not resolve: {exc}") from None
        if self.config.bbmd_ttl <= 0:
            raise BACnetConfigError("BACNET_BBMD_TTL must be a positive number of seconds")
        return ip, port

    @staticmethod
    def _run_loop(loop: asyncio.AbstractEventLoop, ready: threading.Event) -> None:
        asyncio.set_event_loop(loop)
        loop.call_soon(ready.set)
        loop.run_forever()

    async def _astart(self, spec: InterfaceSpec, bbmd: tuple[str, int] | None) -> None:
        bp = self._bp
        before = asyncio.all_tasks()
        kwargs: dict[str, Any] = {
            "ip": f"{spec.ip}/{spec.prefix}",
            "port": spec.port,
            "deviceId": self.config.device_instance,
            "localObjName": f"bacnet-monitor-{self.config.device_instance}",
            "ping": False,
            # BAC0 would otherwise prefer a ~/.BAC0/device.json left by someone else.
            "json_file": bp.bac0_device_json,
        }
        if bbmd:
            kwargs.update(bbmdAddress=f"{bbmd[0]}:{bbmd[1]}", bbmdTTL=self.config.bbmd_ttl)
        try:
            self._bacnet = bp.BAC0.lite(**kwargs)
        except BaseException as exc:  # BAC0 raises its own InitializationError, or worse
            raise BACnetConfigError(
                f"BAC0 could not start on {spec.ip}/{spec.prefix}:{spec.port}: "
                f"{type(exc).__name__}: {safe_text(exc)}"
            ) from None
        _quiet_bac0_loggers()  # classes BAC0 decorated while starting, if any
        # BAC0 starts an I-Am task that polls every 10 ms forever and a task-list cleaner;
        # the client needs neither.
        for task in asyncio.all_tasks() - before:
            code = getattr(task.get_coro(), "cr_code", None)
            if code is not None and f"{os.sep}BAC0{os.sep}" in code.co_filename:
                task.cancel()
        app = self._bacnet.this_application.app
        device = app.device_object
        # Timeouts and retries come from the local device object (BACNET_NOTES).
        device.apduTimeout = self.config.apdu_timeout_ms
        device.apduSegmentTimeout = self.config.apdu_timeout_ms
        device.numberOfApduRetries = self.config.apdu_retries
        device.maxApduLengthAccepted = _LOCAL_MAX_APDU
        device.maxSegmentsAccepted = _LOCAL_MAX_SEGMENTS
        self._app = app
        self._hook_i_am(app)
        link = next(iter(app.link_layers.values()))
        pending = list(getattr(link.server, "_transport_tasks", []))
        if pending:
            done, _ = await asyncio.wait(pending, timeout=3)
            if len(done) != len(pending):
                raise BACnetConfigError(
                    f"could not bind the BACnet socket on {spec.ip}:{spec.port} (or its "
                    "broadcast address)"
                )
        if bbmd:
            await self._await_registration(link, bbmd)

    async def _await_registration(self, link: Any, bbmd: tuple[str, int]) -> None:
        deadline = time.monotonic() + max(self.config.request_deadline_s, 1.0)
        while time.monotonic() < deadline:
            status = getattr(link, "bbmdRegistrationStatus", 0)
            if status == 0:
                return
            if status > 0:
                raise BACnetConfigError(
                    f"BBMD {bbmd[0]}:{bbmd[1]} refused the foreign-device registration "
                    f"(result code {status})"
                )
            await asyncio.sleep(0.02)
        raise BACnetConfigError(
            f"BBMD {bbmd[0]}:{bbmd[1]} did not answer the foreign-device registration "
            f"within {max(self.config.request_deadline_s, 1.0):g} s"
        )

    def _hook_i_am(self, app: Any) -> None:
        """Record every I-Am (with its source address) before bacpypes3 sees it."""
        original = app.do_IAmRequest
        bp = self._bp

        async def do_IAmRequest(apdu: Any) -> None:  # bacpypes3 dispatches by this name
            try:
                identifier = apdu.iAmDeviceIdentifier
                source = apdu.pduSource
                seen = _IAmSeen(
                    instance=int(identifier[1]),
                    address=str(source),
                    network_number=(
                        int(source.addrNet) if isinstance(source, bp.RemoteStation) else None
                    ),
                    vendor_id=_int_or_none(apdu.vendorID),
                    max_apdu=_int_or_none(apdu.maxAPDULengthAccepted),
                    segmentation=(
                        _enum_text(apdu.segmentationSupported)
                        if apdu.segmentationSupported is not None
                        else None
                    ),
                )
            except Exception:
                log.debug("ignoring a malformed I-Am from %s", getattr(apdu, "pduSource", "?"))
                return
            for listener in list(self._iam_listeners):
                listener(seen)
            # Max APDU and segmentation of the device, used by the segmentation machine.
            await app.device_info_cache.set_device_info(apdu)
            await original(apdu)

        app.do_IAmRequest = do_IAmRequest

    def stop(self) -> None:
        """Unregister from the BBMD, free the socket, end the loop thread. Idempotent."""
        with self._lock:
            if self._loop is None:
                return
            self._close_stack()
            self._shutdown_loop()
            self._interface = None
            log.info("BACnet client stopped")

    def _close_stack(self) -> None:
        """Close the BAC0 application, if one was built (also after a failed start)."""
        if self._bacnet is None or self._loop is None:
            return
        if self._thread is None or not self._thread.is_alive():
            return
        future = asyncio.run_coroutine_threadsafe(self._astop(), self._loop)
        try:
            future.result(timeout=5)
        except BaseException as exc:
            log.warning("BACnet client did not stop cleanly: %r", exc)

    async def _astop(self) -> None:
        bacnet, self._bacnet = self._bacnet, None
        self._app = None
        if bacnet is None:
            return
        app = bacnet.this_application.app
        for link in app.link_layers.values():
            if getattr(link, "bbmdAddress", None) is not None:
                link.unregister()  # tell the BBMD now rather than let the entry expire
        await asyncio.sleep(0.05)  # let the unregistration packet leave
        app.close()
        # BAC0 refuses a second application on an address it remembers as used.
        self._bp.Bac0Base._used_ips.discard(bacnet.localIPAddr)

    def _shutdown_loop(self) -> None:
        loop, thread = self._loop, self._thread
        self._loop = self._thread = None
        self._app = None
        if loop is None:
            return
        if thread is not None and thread.is_alive():
            future = asyncio.run_coroutine_threadsafe(self._cancel_all_tasks(), loop)
            try:
                future.result(timeout=5)
            except BaseException as exc:
                log.warning("BACnet loop tasks did not all end: %r", exc)
            loop.call_soon_threadsafe(loop.stop)
            thread.join(timeout=5)
        if not loop.is_running():
            loop.close()

    @staticmethod
    async def _cancel_all_tasks() -> None:
        current = asyncio.current_task()
        tasks = [t for t in asyncio.all_tasks() if t is not current]
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.wait(tasks, timeout=3)
        # Transports close their sockets in callbacks scheduled by close(): run them.
        for _ in range(3):
            await asyncio.sleep(0)

    # -- running coroutines from caller threads ------------------------------------------

    def _submit(self, coro_factory: Callable[[], Awaitable[Any]]) -> concurrent.futures.Future:
        if not self.started:
            raise BACnetError("the BACnet client is not started")
        if threading.current_thread() is self._thread:
            raise RuntimeError("BACnetClient's blocking API cannot be called from its loop thread")

        async def guarded() -> Any:
            return await coro_factory()

        return asyncio.run_coroutine_threadsafe(guarded(), self._loop)  # type: ignore[arg-type]

    def _run(self, coro_factory: Callable[[], Awaitable[Any]], limit_s: float) -> Any:
        future = self._submit(coro_factory)
        try:
            return future.result(timeout=limit_s)
        except concurrent.futures.TimeoutError:
            future.cancel()
            raise BACnetTimeout(f"BACnet operation did not finish within {limit_s:g} s") from None
        except BACnetError:
            raise
        except BaseException as exc:
            if isinstance(exc, KeyboardInterrupt | SystemExit):
                future.cancel()
                raise
            # Last line of defence: nothing BaseException-derived leaves the facade.
            raise BACnetError(f"BACnet operation failed: {type(exc).__name__}: {exc}") from None

    def _session(self, instance: int, address: str) -> _Session:
        try:
            return _Session(self, instance, address)
        except Exception as exc:
            raise BACnetError(
                f"device {instance}: bad address {address!r}: {exc}", device=instance
            ) from None

    # -- discovery -----------------------------------------------------------------------

    def discover(
        self,
        low: int | None = None,
        high: int | None = None,
        targets: Sequence[str] = (),
        timeout_s: float | None = None,
    ) -> DiscoveryResult:
        """Who-Is (global, ranged, or directed to ``targets``) and collect the I-Ams.

        Returns once no I-Am has arrived for ``discovery_quiet_s`` (counted from the
        Who-Is when nothing answers), at most after ``timeout_s`` / ``discovery_max_s``,
        or as soon as every directed target answered. ``devices`` has one entry per
        instance (the first answer); an instance that answered from several addresses is
        listed with all of them in ``duplicates``."""
        if (low is None) != (high is None):
            raise BACnetError("Who-Is needs both low and high instance limits, or neither")
        if (
            low is not None
            and high is not None
            and not (0 <= low <= MAX_INSTANCE and 0 <= high <= MAX_INSTANCE and low <= high)
        ):
            raise BACnetError(f"bad Who-Is range {low}..{high} (0..{MAX_INSTANCE}, low <= high)")
        max_s = self.config.discovery_max_s if timeout_s is None else timeout_s
        return self._run(lambda: self._adiscover(low, high, list(targets), max_s), max_s + 10)

    async def _adiscover(
        self, low: int | None, high: int | None, targets: list[str], max_s: float
    ) -> DiscoveryResult:
        bp = self._bp
        started = time.monotonic()
        seen: list[_IAmSeen] = []
        arrived = asyncio.Event()
        own = self.local_address

        def listener(iam: _IAmSeen) -> None:
            if iam.address == own:
                return
            if low is not None and not (low <= iam.instance <= high):  # type: ignore[operator]
                return
            seen.append(iam)
            arrived.set()

        destinations: list[Any] = []
        for target in targets:
            try:
                destinations.append(bp.Address(target))
            except Exception as exc:
                raise BACnetError(f"bad Who-Is target address {target!r}: {exc}") from None
        if not destinations:
            destinations.append(bp.GlobalBroadcast())
        wanted = {str(d) for d in destinations} if targets else set()

        self._iam_listeners.append(listener)
        try:
            for destination in destinations:
                request = bp.WhoIsRequest(destination=destination)
                if low is not None:
                    request.deviceInstanceRangeLowLimit = low
                    request.deviceInstanceRangeHighLimit = high
                self._app.request(request)
            sent = time.monotonic()
            while True:
                now = time.monotonic()
                last = seen[-1].at if seen else sent
                quiet_left = last + self.config.discovery_quiet_s - now
                max_left = started + max_s - now
                if wanted and wanted <= {s.address for s in seen}:
                    break
                # A target asked by address is waited for up to the discovery limit: one
                # that answers late is slow, not absent. The quiet window ends the rest.
                if (quiet_left <= 0 and not wanted) or max_left <= 0:
                    break
                arrived.clear()
                wait_s = max_left if wanted else min(quiet_left, max_left)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(arrived.wait(), wait_s)
        finally:
            self._iam_listeners.remove(listener)

        devices: dict[int, DiscoveredDevice] = {}
        addresses: dict[int, list[str]] = {}
        for iam in seen:
            addresses.setdefault(iam.instance, [])
            if iam.address not in addresses[iam.instance]:
                addresses[iam.instance].append(iam.address)
            devices.setdefault(
                iam.instance,
                DiscoveredDevice(
                    instance=iam.instance,
                    address=iam.address,
                    network_number=iam.network_number,
                    vendor_id=iam.vendor_id,
                    max_apdu=iam.max_apdu,
                    segmentation=iam.segmentation,
                ),
            )
        duplicates = {i: a for i, a in addresses.items() if len(a) > 1}
        for instance, where in duplicates.items():
            log.warning("BACnet device instance %s answered from %s", instance, ", ".join(where))
        return DiscoveryResult(
            devices=sorted(devices.values(), key=lambda d: d.instance),
            duplicates=duplicates,
            elapsed_s=time.monotonic() - started,
        )

    # -- enumeration ---------------------------------------------------------------------

    def read_device_properties(self, instance: int, address: str) -> DeviceProperties:
        """Name, vendor, model, ... of a device (RPM, or RP when the device rejects RPM)."""

        async def work() -> DeviceProperties:
            return await self._within_device_deadline(
                _DeviceWork(self._session(instance, address)).device_properties(), instance
            )

        return self._run(work, self.config.device_deadline_s + 10)

    def enumerate_points(
        self, instance: int, address: str, properties: DeviceProperties | None = None
    ) -> list[PointInfo]:
        """The device's point objects with name, description, units and state texts."""

        async def work() -> list[PointInfo]:
            async def inner() -> list[PointInfo]:
                job = _DeviceWork(self._session(instance, address))
                props = properties
                if props is None:
                    props = await job.device_properties()
                job.supports_rpm = props.supports_rpm
                objects = await job.object_list(props)
                return await job.points(objects, props)

            return await self._within_device_deadline(inner(), instance)

        return self._run(work, self.config.device_deadline_s + 10)

    async def _within_device_deadline(self, coro: Awaitable[Any], instance: int) -> Any:
        deadline = self.config.device_deadline_s
        try:
            return await asyncio.wait_for(coro, deadline)
        except TimeoutError:
            raise BACnetTimeout(
                f"device {instance}: not finished within its {deadline:g} s deadline",
                device=instance,
                reason="device deadline",
            ) from None

    def enumerate_devices(
        self,
        devices: Sequence[DiscoveredDevice],
        on_device: Callable[[DeviceEnumeration], None] | None = None,
    ) -> list[DeviceEnumeration]:
        """Properties, object list and point texts of many devices at once.

        At most ``read_concurrency`` devices are worked on together, each within
        ``device_deadline_s``; a device that fails gets ``error`` set (with whatever was
        read before) and never delays the others. ``on_device`` is called in this (the
        caller's) thread as each device finishes. Results come back in ``devices`` order."""
        devices = list(devices)
        if not devices:
            return []
        results: queue.SimpleQueue[tuple[int, DeviceEnumeration]] = queue.SimpleQueue()

        async def work() -> None:
            limit = asyncio.Semaphore(max(1, self.config.read_concurrency))

            async def one(index: int, device: DiscoveredDevice) -> None:
                async with limit:
                    results.put((index, await self._enumerate_one(device)))

            await asyncio.gather(*(one(i, d) for i, d in enumerate(devices)))

        future = self._submit(work)
        return self._drain(future, results, len(devices), on_device)

    def _drain(
        self,
        future: concurrent.futures.Future,
        results: queue.SimpleQueue,
        count: int,
        on_item: Callable[[Any], None] | None,
    ) -> list[Any]:
        """Hand results to ``on_item`` in the caller's thread as the loop produces them."""
        rounds = math.ceil(count / max(1, self.config.read_concurrency))
        limit = time.monotonic() + rounds * (self.config.device_deadline_s + 5) + 10
        collected: dict[int, Any] = {}
        try:
            while len(collected) < count:
                try:
                    index, item = results.get(timeout=0.2)
                except queue.Empty:
                    if future.done() and results.empty():
                        break
                    if time.monotonic() > limit:
                        raise BACnetTimeout("BACnet operation exceeded its overall limit") from None
                    continue
                collected[index] = item
                if on_item is not None:
                    on_item(item)
        finally:
            if not future.done():
                future.cancel()
        if len(collected) < count:
            try:
                future.result(timeout=1)
            except BACnetError:
                raise
            except BaseException as exc:
                raise BACnetError(f"BACnet operation failed: {type(exc).__name__}: {exc}") from None
            raise BACnetError("BACnet operation ended without all its results")
        return [collected[i] for i in range(count)]

    async def _enumerate_one(self, device: DiscoveredDevice) -> DeviceEnumeration:
        started = time.monotonic()
        outcome = DeviceEnumeration(device=device)
        try:
            job = _DeviceWork(self._session(device.instance, device.address))

            async def inner() -> None:
                props = await job.device_properties()
                if props.max_apdu is None:
                    props.max_apdu = device.max_apdu
                if not props.segmentation and device.segmentation:
                    props.segmentation = device.segmentation
                outcome.properties = props
                objects = await job.object_list(props)
                outcome.points = await job.points(objects, props)
                props.supports_rpm = job.supports_rpm

            await self._within_device_deadline(inner(), device.instance)
        except BACnetError as exc:
            outcome.error = str(exc)
        except Exception as exc:  # a bug or an undecodable answer: this device only
            log.exception("enumerating device %s failed", device.instance)
            outcome.error = f"device {device.instance}: {type(exc).__name__}: {safe_text(exc)}"
        outcome.elapsed_s = time.monotonic() - started
        return outcome

    # -- reads ---------------------------------------------------------------------------

    def read_points(self, targets: Sequence[DeviceTarget]) -> list[DeviceReadResult]:
        """Present value and status flags of the targets' points, devices concurrently.

        Results come back in ``targets`` order. A device that fails as a whole gets
        ``error`` set (points read before the failure keep their values, the others get
        the error); per-point problems are in ``PointValue.error``."""
        targets = list(targets)
        if not targets:
            return []
        results: queue.SimpleQueue[tuple[int, DeviceReadResult]] = queue.SimpleQueue()

        async def work() -> None:
            limit = asyncio.Semaphore(max(1, self.config.read_concurrency))

            async def one(index: int, target: DeviceTarget) -> None:
                async with limit:
                    results.put((index, await self._read_one(target)))

            await asyncio.gather(*(one(i, t) for i, t in enumerate(targets)))

        future = self._submit(work)
        return self._drain(future, results, len(targets), None)

    async def _read_one(self, target: DeviceTarget) -> DeviceReadResult:
        started = time.monotonic()
        result = DeviceReadResult(instance=target.instance, supports_rpm=target.supports_rpm)
        try:
            job = _DeviceWork(self._session(target.instance, target.address), target.supports_rpm)
            await self._within_device_deadline(job.read_values(target, result), target.instance)
            result.supports_rpm = job.supports_rpm
        except BACnetError as exc:
            result.error = str(exc)
        except Exception as exc:
            log.exception("reading device %s failed", target.instance)
            result.error = f"device {target.instance}: {type(exc).__name__}: {safe_text(exc)}"
        if result.error:
            done = {(v.object_type, v.instance) for v in result.values}
            result.values = list(result.values) + [
                PointValue(object_type=r.object_type, instance=r.instance, error=result.error)
                for r in target.points
                if (r.object_type, r.instance) not in done
            ]
        result.elapsed_s = time.monotonic() - started
        return result

    def read_point(self, instance: int, address: str, ref: PointRef) -> PointValue:
        """Present value and status flags of one point (ReadProperty)."""

        async def work() -> PointValue:
            job = _DeviceWork(self._session(instance, address), supports_rpm=False)
            return await job._value_one(ref)

        return self._run(work, self.config.request_deadline_s * 2 + 10)


# --------------------------------------------------------------------------------------
# The process-wide client
# --------------------------------------------------------------------------------------

_client_lock = threading.Lock()
_client: BACnetClient | None = None


def get_client() -> BACnetClient:
    """The process's client, built from settings and started on first use (thread-safe).

    One socket per process: everything that talks BACnet in a process goes through this.
    After a fork the child builds its own (the parent's loop thread does not exist there)."""
    global _client
    with _client_lock:
        if _client is not None and _client.pid != os.getpid():
            _client = None
        if _client is None:
            _client = BACnetClient(ClientConfig.from_settings())
        if not _client.started:
            _client.start()
        return _client


def shutdown_client() -> None:
    """Stop the process's client, if any (idempotent)."""
    global _client
    with _client_lock:
        client, _client = _client, None
    if client is not None and client.pid == os.getpid():
        client.stop()


atexit.register(shutdown_client)


def with_state_texts(ref: PointRef, state_texts: Sequence[str]) -> PointRef:
    """A PointRef carrying the point's state texts, for readable binary/multi-state text."""
    return replace(ref, state_texts=tuple(state_texts))
