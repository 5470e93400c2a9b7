"""System checks for the BACnet settings (``manage.py check`` and every server start).

Registered on import; ``DiscoveryConfig.ready()`` imports this module. The checks use the
client's stdlib helpers only: no BACnet stack is started and BAC0 is not imported.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.checks import Error, Tags, Warning, register

from discovery.bacnet_client import (
    host_ipv4_interfaces,
    is_host_address,
    parse_bbmd_address,
    parse_interface,
)

BACKENDS = ("celery", "database")

# (setting, smallest allowed value) for the numeric BACnet settings.
_POSITIVE_SETTINGS = (
    ("BACNET_PORT", 1),
    ("BACNET_BBMD_TTL", 1),
    ("BACNET_APDU_TIMEOUT_MS", 1),
    ("BACNET_APDU_RETRIES", 0),
    ("BACNET_REQUEST_DEADLINE_S", 0.001),
    ("BACNET_DEVICE_DEADLINE_S", 0.001),
    ("BACNET_DISCOVERY_QUIET_S", 0.001),
    ("BACNET_DISCOVERY_MAX_S", 0.001),
    ("BACNET_READ_CONCURRENCY", 1),
    # A COV lifetime of 0 would mean "forever" to the device, never renewed: refused.
    ("BACNET_COV_LIFETIME_S", 2),
    ("BACNET_COV_FLUSH_S", 0.01),
    ("BACNET_COV_CHECK_S", 1),
    ("BACNET_COV_RETRY_S", 1),
    ("BACNET_HOLD_MAX_S", 1),
    # Alarms: 0 turns the event poll off; a process identifier may be 0.
    ("BACNET_EVENT_POLL_S", 0),
    ("BACNET_EVENT_PROCESS_ID", 0),
    ("BACNET_EVENT_BUFFER", 1),
)


@register(Tags.compatibility)
def check_bacnet_interface(app_configs: Any = None, **kwargs: Any) -> list[Error | Warning]:
    """discovery.E001: BACNET_INTERFACE does not parse; W002: not an address of this host.

    W002 is a warning, not an error: web and workers often share one ``.env``, and the
    web container does not have the BACnet worker's address. The client itself refuses
    to start on an address the host does not have."""
    text = getattr(settings, "BACNET_INTERFACE", "")
    if not text:
        return []  # auto-detected when the client starts
    try:
        spec = parse_interface(text)
    except ValueError as exc:
        return [
            Error(
                f"BACNET_INTERFACE does not parse: {exc}",
                hint='Use "A.B.C.D/len" or "A.B.C.D/len:port", e.g. "192.168.1.5/24", or '
                "leave it empty to auto-detect.",
                id="discovery.E001",
            )
        ]
    if not is_host_address(spec.ip):
        known = ", ".join(f"{ip}/{prefix}" for ip, prefix, _ in host_ipv4_interfaces())
        return [
            Warning(
                f"BACNET_INTERFACE {text!r}: {spec.ip} is not an address of this host.",
                hint=(f"This host has: {known}. " if known else "")
                + "Set BACNET_INTERFACE for the process that runs the BACnet worker, on the "
                "host that has that address, or leave it empty to auto-detect.",
                id="discovery.W002",
            )
        ]
    return []


@register(Tags.compatibility)
def check_bacnet_bbmd(app_configs: Any = None, **kwargs: Any) -> list[Error]:
    """discovery.E003: BACNET_BBMD_ADDRESS does not parse."""
    text = getattr(settings, "BACNET_BBMD_ADDRESS", "")
    if not text:
        return []
    try:
        parse_bbmd_address(text)
    except ValueError as exc:
        return [
            Error(
                f"BACNET_BBMD_ADDRESS does not parse: {exc}",
                hint='Use "host[:port]", e.g. "192.168.10.1" or "192.168.10.1:47808", or '
                "leave it empty when devices are on the local subnet.",
                id="discovery.E003",
            )
        ]
    return []


@register(Tags.compatibility)
def check_bacnet_backend(app_configs: Any = None, **kwargs: Any) -> list[Error]:
    """discovery.E004: BACNET_BACKEND is neither celery nor database."""
    backend = getattr(settings, "BACNET_BACKEND", "")
    if backend not in BACKENDS:
        return [
            Error(
                f"BACNET_BACKEND is {backend!r}.",
                hint="Use one of: " + ", ".join(BACKENDS) + " (or leave it unset to detect).",
                id="discovery.E004",
            )
        ]
    return []


@register(Tags.compatibility)
def check_bacnet_numbers(app_configs: Any = None, **kwargs: Any) -> list[Error]:
    """discovery.E005: a numeric BACnet setting is out of range."""
    errors = []
    for name, smallest in _POSITIVE_SETTINGS:
        value = getattr(settings, name, None)
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, int | float) or value < smallest:
            errors.append(
                Error(
                    f"{name} is {value!r}; it must be a number of at least {smallest}.",
                    id="discovery.E005",
                )
            )
    port = getattr(settings, "BACNET_PORT", None)
    if isinstance(port, int) and port > 65535:
        errors.append(Error(f"BACNET_PORT is {port}; it must be 1..65535.", id="discovery.E005"))
    return errors
