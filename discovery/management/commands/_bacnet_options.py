"""Command-line options shared by the commands that open a BACnet socket."""

from __future__ import annotations

from argparse import ArgumentParser
from typing import Any

from django.conf import settings


def add_bacnet_options(parser: ArgumentParser) -> None:
    parser.add_argument(
        "--interface",
        help="Local address to bind, ADDR/LEN[:PORT] (e.g. 192.168.1.5/24 or "
        "127.0.0.1/8:47900); overrides BACNET_INTERFACE.",
    )
    parser.add_argument(
        "--bbmd",
        help="Register as a foreign device with this BBMD, HOST[:PORT]; "
        "overrides BACNET_BBMD_ADDRESS.",
    )
    parser.add_argument("--bbmd-ttl", type=int, help="Foreign-device time-to-live, seconds.")


def apply_bacnet_options(options: dict[str, Any], *, tool: bool = True) -> None:
    """Command-line values win over the environment for this process only.

    A tool's client (``discover``, ``collect``) gets a device instance of its own: with
    the worker's, the two would be one instance twice on the network (see
    discovery.product_identity). The worker (``tool=False``) keeps
    ``BACNET_DEVICE_INSTANCE``."""
    from discovery.product_identity import tool_device_instance

    if tool:
        settings.BACNET_CLIENT_DEVICE_INSTANCE = tool_device_instance()
    if options.get("interface"):
        settings.BACNET_INTERFACE = options["interface"]
    if options.get("bbmd"):
        settings.BACNET_BBMD_ADDRESS = options["bbmd"]
    if options.get("bbmd_ttl"):
        settings.BACNET_BBMD_TTL = options["bbmd_ttl"]
