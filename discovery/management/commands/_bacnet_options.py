"""Command-line options shared by the commands that open a BACnet socket."""

from __future__ import annotations

import os
from argparse import ArgumentParser
from typing import Any

from django.conf import settings
from django.core.management.base import CommandError

from discovery.models import Site


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
    parser.add_argument(
        "--site",
        default=os.environ.get("BACNET_SITE") or None,
        help="Slug of the site whose LAN this process is on (default: BACNET_SITE, else "
        "the default site); its interface and BBMD apply unless given here.",
    )


def apply_bacnet_options(options: dict[str, Any], *, tool: bool = True) -> Site:
    """The site named (``--site``; a site that does not exist stops the command at
    once), its BACnet settings, then the command-line values, which win over the
    environment and the site for this process only.

    A tool's client (``discover``, ``collect``) gets a device instance of its own: with
    the worker's, the two would be one instance twice on the network (see
    discovery.product_identity). The worker (``tool=False``) keeps
    ``BACNET_DEVICE_INSTANCE``."""
    from discovery.product_identity import tool_device_instance
    from discovery.sites import UnknownSite, apply_site_bacnet_settings, get_site

    try:
        site = get_site(options.get("site"))
    except UnknownSite as exc:
        raise CommandError(f"Not starting: {exc}") from None
    apply_site_bacnet_settings(site)

    if tool:
        settings.BACNET_CLIENT_DEVICE_INSTANCE = tool_device_instance()
    if options.get("interface"):
        settings.BACNET_INTERFACE = options["interface"]
    if options.get("bbmd"):
        settings.BACNET_BBMD_ADDRESS = options["bbmd"]
    if options.get("bbmd_ttl"):
        settings.BACNET_BBMD_TTL = options["bbmd_ttl"]
    return site
