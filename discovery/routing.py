"""Celery routing of BACnet work: each job goes to its site's queue.

A BACnet task carries its site's slug (``site`` keyword); ``route_task`` turns it into
the queue: ``bacnet`` for the default site (and for a message that names none, as the
design's routes always did), ``bacnet.<slug>`` for the others. Each site's BACnet worker
consumes only its own queue, on that site's LAN.
"""

from __future__ import annotations

from typing import Any

# No Django import here: Celery loads its routers before Django may be set up.
# The site that existing installations and the single-site setup run as; its queue is
# the design's plain ``bacnet``, so routes and the Windows scripts stay as they are.
DEFAULT_SITE_SLUG = "default"
BACNET_QUEUE = "bacnet"

BACNET_TASKS = frozenset(
    {
        "discovery.tasks.discover_devices",
        "discovery.tasks.read_device_points",
        "discovery.tasks.discover_device_points",
        "discovery.tasks.read_point_value",
        "discovery.tasks.write_point_value",
        "discovery.tasks.read_priority_array",
        "discovery.tasks.acknowledge_alarm",
        "discovery.tasks.register_alarm_recipient",
        "discovery.tasks.poll_event_information",
    }
)


def queue_of(slug: str | None) -> str:
    """``bacnet`` for the default site (and jobs that name none), else ``bacnet.<slug>``."""
    return BACNET_QUEUE if not slug or slug == DEFAULT_SITE_SLUG else f"{BACNET_QUEUE}.{slug}"


def route_task(
    name: str, args: Any, kwargs: Any, options: Any, task: Any = None, **_: Any
) -> dict[str, str] | None:
    """Celery router: BACnet tasks to their site's queue; others to the next router."""
    if name not in BACNET_TASKS:
        return None
    return {"queue": queue_of((kwargs or {}).get("site"))}
