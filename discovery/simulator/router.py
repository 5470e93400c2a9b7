"""A BACnet router in the simulator: devices on a virtual network behind network 20.

The router's IP side is a B/IP link (a foreign device of the BBMD in loopback mode, a
normal node in bridge mode); its other side is a bacpypes3 virtual LAN (`bacpypes3.vlan`)
in the same process carrying the routed devices. A client's global Who-Is reaches the
router, which forwards it onto the VLAN; answers come back with SNET/SADR, so the client
sees the devices as `20:<mac>`.
"""

from __future__ import annotations

import logging
from typing import Any

from bacpypes3.comm import bind
from bacpypes3.netservice import NetworkServiceAccessPoint, NetworkServiceElement
from bacpypes3.pdu import IPv4Address, LocalStation, RemoteStation
from bacpypes3.vlan import VirtualNetwork
from bacpypes3.vlan.link import VirtualLinkLayer

from .spec import DeviceSpec

log = logging.getLogger("discovery.simulator")

# The network number the router gives its IP side. Clients never need it: they learn
# the route to the VLAN from the router's announcements and from SNET in answers.
IP_NETWORK_NUMBER = 1
ROUTER_MAC = 1
FIRST_DEVICE_MAC = 11


class RoutedNetwork:
    """One router between an IP link and one virtual network of simulated devices."""

    def __init__(self, network_number: int, vlan_name: str) -> None:
        self.network_number = network_number
        self.vlan_name = vlan_name
        self.vlan = VirtualNetwork(vlan_name)
        self.nsap = NetworkServiceAccessPoint()
        self.nse = NetworkServiceElement()
        bind(self.nse, self.nsap)
        self.ip_link: Any = None
        self.ip_address: IPv4Address | None = None
        self.vlan_link = VirtualLinkLayer(LocalStation(bytes([ROUTER_MAC])), vlan_name)
        self.device_apps: list[Any] = []
        self._next_mac = FIRST_DEVICE_MAC

    def attach_ip(self, link: Any, address: IPv4Address) -> None:
        self.ip_link = link
        self.ip_address = address
        self.nsap.bind(link, net=IP_NETWORK_NUMBER, address=address)
        self.nsap.bind(
            self.vlan_link, net=self.network_number, address=LocalStation(bytes([ROUTER_MAC]))
        )

    def add_device(self, dev: DeviceSpec, app: Any) -> None:
        mac = self._next_mac
        self._next_mac += 1
        station = LocalStation(bytes([mac]))
        link = VirtualLinkLayer(station, self.vlan_name)
        app.nsap.bind(link, address=station)
        self.device_apps.append(app)
        dev.mac = mac
        dev.network_number = self.network_number
        dev.address = str(RemoteStation(self.network_number, bytes([mac])))

    async def announce(self) -> None:
        """I-Am-Router-To-Network on the IP side, so clients learn the route at once."""
        if self.ip_link is None:
            return
        adapter = self.nsap.adapters[IP_NETWORK_NUMBER]
        try:
            await self.nse.i_am_router_to_network(adapter=adapter, network=[self.network_number])
        except Exception:
            log.exception("router announcement failed")

    def describe(self) -> dict[str, Any]:
        return {
            "address": f"{self.ip_address.addrTuple[0]}:{self.ip_address.addrTuple[1]}"
            if self.ip_address
            else None,
            "network_number": self.network_number,
            "ip_network_number": IP_NETWORK_NUMBER,
        }

    def close(self) -> None:
        for app in self.device_apps:
            try:
                app.close()
            except Exception:
                log.exception("closing a routed device")
        if self.ip_link is not None:
            self.ip_link.close()
        # Free the name: VirtualNetwork keeps a class-level registry of networks.
        VirtualNetwork._networks.pop(self.vlan_name, None)
