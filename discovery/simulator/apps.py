"""bacpypes3 application stacks of the simulator: the BBMD, the devices and their faults.

Stacks are assembled by hand (as bacpypes3's own `ipv4.app` does) rather than from a
network-port object, for two reasons:
- each loopback device gets a UDP socket that *we* bind, without SO_REUSEPORT: port 0
  then means a free port chosen by the kernel, and no other process can silently share
  the port (bacpypes3 binds with SO_REUSEPORT and retries a failed bind forever);
- the fault devices need hooks below the application layer (silent, malformed).
"""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import Callable
from typing import Any

from bacpypes3.apdu import (
    AbortPDU,
    AbortReason,
    ComplexAckPDU,
)
from bacpypes3.app import Application
from bacpypes3.appservice import ApplicationServiceAccessPoint
from bacpypes3.basetypes import IPMode
from bacpypes3.comm import bind
from bacpypes3.errors import UnrecognizedService
from bacpypes3.ipv4 import IPv4DatagramServer
from bacpypes3.ipv4.bvll import BVLLCodec
from bacpypes3.ipv4.service import BIPBBMD, BIPForeign, UDPMultiplexer
from bacpypes3.local.networkport import NetworkPortObject
from bacpypes3.netservice import NetworkServiceAccessPoint, NetworkServiceElement
from bacpypes3.pdu import PDU, IPv4Address

from .cov import CovReportingMixin
from .events import EventServicesMixin
from .objects import SimDeviceObject, make_point_object, point_identifier
from .spec import PointSpec

log = logging.getLogger("discovery.simulator")


def open_udp_socket(host: str, port: int) -> socket.socket:
    """A bound, non-blocking UDP socket. Raises OSError when the port is taken."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST, 1)
        sock.bind((host, port))
        sock.setblocking(False)
    except OSError:
        sock.close()
        raise
    return sock


class _SocketLinkMixin:
    """BVLL codec + UDP multiplexer + datagram server over a socket we bound ourselves."""

    codec: BVLLCodec
    multiplexer: UDPMultiplexer
    server: IPv4DatagramServer

    def _build_lower(self, address: IPv4Address, sock: socket.socket) -> None:
        self.codec = BVLLCodec()
        self.multiplexer = UDPMultiplexer()
        # no_broadcast: with a given socket bacpypes3 would bind it a second time as
        # the broadcast listener. Sending local broadcasts still needs the address.
        self.server = IPv4DatagramServer(address, no_broadcast=True, bind_socket=sock)
        if address.addrBroadcastTuple != address.addrTuple:
            self.server.broadcast_address = address.addrBroadcastTuple
        bind(self, self.codec, self.multiplexer.annexJ)
        bind(self.multiplexer, self.server)

    def close(self) -> None:
        self.server.close()


class SocketForeignLink(_SocketLinkMixin, BIPForeign):
    def __init__(self, address: IPv4Address, sock: socket.socket) -> None:
        BIPForeign.__init__(self)
        self._build_lower(address, sock)

    def close(self) -> None:
        # Stop the re-registration timer; the BBMD forgets us when the TTL runs out.
        self._stop_tracking_registration()
        handle = getattr(self, "_reregistration_timeout_handle", None)
        if handle is not None:
            handle.cancel()
        super().close()


class SocketBBMDLink(_SocketLinkMixin, BIPBBMD):
    def __init__(self, address: IPv4Address, sock: socket.socket) -> None:
        BIPBBMD.__init__(self, address)
        self._build_lower(address, sock)

    def close(self) -> None:
        handle = getattr(self, "_fdt_clock_handle", None)
        if handle is not None:
            handle.cancel()
        super().close()


# --------------------------------------------------------------------------- ASAPs


class SilentASAP(ApplicationServiceAccessPoint):
    """Drops every confirmed request: the device answers Who-Is and nothing else."""

    async def confirmation(self, pdu: PDU) -> None:
        data = pdu.pduData
        if data and (data[0] >> 4) == 0:  # APDU type 0: confirmed request
            return
        await super().confirmation(pdu)


class FlakyASAP(ApplicationServiceAccessPoint):
    """A device that is slow, busy or dies: it answers each confirmed request after
    ``answer_delay_s``, ignores its first ``drop_who_is`` Who-Is, and answers nothing at
    all (not even Who-Is) once it has taken ``silent_after`` confirmed requests (0:
    never), as one dying in the middle of a read; with ``ignore_rpm`` it never answers
    ReadPropertyMultiple (it times out) but answers ReadProperty."""

    silent_after = 0
    drop_who_is = 0
    answer_delay_s = 0.0
    ignore_rpm = False
    _taken = 0
    _who_is_seen = 0

    async def confirmation(self, pdu: PDU) -> None:
        if self.silent_after and self._taken >= self.silent_after:
            return
        data = pdu.pduData
        if data and (data[0] >> 4) == 0:  # a confirmed request
            self._taken += 1
            service = data[3] if len(data) > 3 and not data[0] & 0x08 else None
            if self.ignore_rpm and service == 14:  # ReadPropertyMultiple: never answered
                return
            if self.answer_delay_s:
                await asyncio.sleep(self.answer_delay_s)
        elif len(data) > 1 and (data[0] >> 4) == 1 and data[1] == 8:  # Who-Is
            self._who_is_seen += 1
            if self._who_is_seen <= self.drop_who_is:
                return
        await super().confirmation(pdu)


class MalformedASAP(ApplicationServiceAccessPoint):
    """Answers confirmed requests with truncated acknowledgements or plain garbage."""

    raw_send: Callable[[bytes, Any], None] | None = None
    _count = 0

    async def confirmation(self, pdu: PDU) -> None:
        data = pdu.pduData
        if not (data and (data[0] >> 4) == 0):
            await super().confirmation(pdu)
            return
        self._count += 1
        invoke_id = data[2] if len(data) > 2 else 0
        service = data[3] if len(data) > 3 else 12
        if self._count % 3 == 0:
            payload = b"\x81\x0a\x00\x08\xde\xad\xbe\xef"  # BVLL header, garbage NPDU
        elif self._count % 3 == 1:
            # Valid BVLL + NPDU, then a ComplexAck whose object identifier tag claims
            # four bytes and carries two: the decoder must give up, not wait forever.
            apdu = bytes([0x30, invoke_id, service, 0x0C, 0x00, 0x00])
            npdu = b"\x01\x00" + apdu
            payload = b"\x81\x0a" + (4 + len(npdu)).to_bytes(2, "big") + npdu
        else:
            # BVLL length that lies about the datagram.
            payload = b"\x81\x0a\x04\x00\x01\x00\x30" + bytes([invoke_id])
        if self.raw_send is not None and pdu.pduSource is not None:
            try:
                self.raw_send(payload, pdu.pduSource)
            except Exception:  # a broken reply must never take the simulator down
                log.exception("malformed device could not send its garbage")


# --------------------------------------------------------------------- applications


class SimApplication(CovReportingMixin, EventServicesMixin, Application):
    """A simulated device's application (Who-Is, ReadProperty, ReadPropertyMultiple,
    SubscribeCOV with COV notifications; with ``--events`` intrinsic alarms and the
    alarm services, see ``events``).

    Point objects are built on first use: a bacpypes3 object costs about a millisecond
    to construct, which made a 10,000-object device take over ten seconds to start."""

    links: list[Any]
    _lazy_points: dict[Any, Any]

    def get_object_id(self, objid: Any) -> Any:
        obj = self.objectIdentifier.get(objid)
        if obj is None:
            point = getattr(self, "_lazy_points", {}).pop(objid, None)
            if point is not None:
                obj = make_point_object(point)
                self.add_object(obj)
        return obj

    def close(self) -> None:
        watcher = self.__dict__.get("_cov_watcher")
        if watcher is not None:
            watcher.cancel()
        for link in getattr(self, "links", []):
            try:
                link.close()
            except Exception:
                log.exception("closing a link layer")


class NoRpmApplication(SimApplication):
    """Rejects ReadPropertyMultiple with unrecognized-service, like old controllers,
    and refuses SubscribeCOV (no COV either)."""

    cov_refused = True

    async def do_ReadPropertyMultipleRequest(self, apdu: Any) -> None:
        raise UnrecognizedService("ReadPropertyMultiple not supported")

    def get_services_supported(self) -> Any:
        services = super().get_services_supported()
        services[services.readPropertyMultiple] = 0
        return services


class NoSegmentationApplication(SimApplication):
    """A device with a small buffer: an answer that does not fit one APDU is aborted.

    bacpypes3 sizes an answer by the *client's* max APDU only; a real device with a
    480-octet buffer cannot send more, so the ack is checked against our own limit."""

    async def response(self, apdu: Any) -> None:
        if isinstance(apdu, ComplexAckPDU):
            limit = int(self.device_object.maxApduLengthAccepted)
            size = len(apdu.encode().pduData)
            if size > limit:
                abort = AbortPDU(
                    srv=True,
                    invoke_id=apdu.apduInvokeID,
                    reason=AbortReason.segmentationNotSupported,
                )
                abort.pduDestination = apdu.pduDestination
                apdu = abort
        await super().response(apdu)


def build_application(
    app_class: type[SimApplication],
    device_object: SimDeviceObject,
    points: list[PointSpec],
    asap_class: type[ApplicationServiceAccessPoint] = ApplicationServiceAccessPoint,
) -> SimApplication:
    """The upper stack (application, ASAP, NSAP); link layers are bound afterwards."""
    app = app_class()
    app.asap = asap_class(device_object, app.device_info_cache)
    app.nsap = NetworkServiceAccessPoint()
    app.nse = NetworkServiceElement()
    bind(app.nse, app.nsap)
    bind(app, app.asap, app.nsap)
    app.links = []
    app.add_object(device_object)
    app._lazy_points = {point_identifier(p): p for p in points}
    device_object._object_ids = [device_object.objectIdentifier, *app._lazy_points]
    return app


def attach_network_port(
    app: Application, address: IPv4Address, mode: str, **extra: Any
) -> NetworkPortObject:
    """Describe the link in a network-port object without letting bacpypes3 open it.

    `Application.add_object` would create (and bind) a second link layer for it."""
    port = NetworkPortObject(
        address,
        objectIdentifier=("network-port", 1),
        objectName="NetworkPort-1",
        bacnetIPMode=IPMode(mode),
        **extra,
    )
    app.objectName[port.objectName] = port
    app.objectIdentifier[port.objectIdentifier] = port
    port._app = app
    device = app.device_object
    if isinstance(device, SimDeviceObject) and device._object_ids is not None:
        device._object_ids.append(port.objectIdentifier)
        device._cached_object_list = None
    return port
