"""What the dashboard says about each site: is its worker alive, its last cycle, the
devices that failed in it and the points it read."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from discovery.jobs import live_workers
from discovery.models import BACnetTask, Site
from discovery.sites import visible_sites


@dataclass
class SiteStatus:
    site: Site
    worker_alive: bool
    workers: list[str]
    last_cycle_at: datetime | None
    last_cycle_status: str
    devices_failed: int
    points_read: int


def site_status(site: Site, backend: str | None = None) -> SiteStatus:
    workers = live_workers(backend, site)
    cycle = (
        BACnetTask.objects.filter(site=site, kind=BACnetTask.Kind.COLLECT)
        .exclude(status__in=[BACnetTask.Status.PENDING, BACnetTask.Status.RUNNING])
        .order_by("-completed_at", "-id")
        .only("status", "completed_at", "failed_devices", "result")
        .first()
    )
    result = (cycle.result or {}) if cycle else {}
    return SiteStatus(
        site=site,
        worker_alive=bool(workers),
        workers=[w.name for w in workers],
        last_cycle_at=cycle.completed_at if cycle else None,
        last_cycle_status=cycle.status if cycle else "",
        devices_failed=cycle.failed_devices if cycle else 0,
        points_read=int(result.get("readings") or 0),
    )


def site_statuses(user: Any, backend: str | None = None) -> list[SiteStatus]:
    """One line per site the user may see."""
    return [site_status(site, backend) for site in visible_sites(user)]
