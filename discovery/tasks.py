"""Celery tasks, named as in seed 003 and routed by ``CELERY_TASK_ROUTES``.

BACnet tasks carry a job id and its site (queue ``bacnet`` for the default site,
``bacnet.<site>`` for the others: ``discovery.routing``); each is a few lines over ``run_job``,
which claims the ``BACnetTask`` row, runs the service function and records the outcome.
Rollups, the sweeper and alarm notices run on ``default``. Late acknowledgement (settings) plus
idempotent writes make re-delivery harmless.
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

from celery import shared_task
from celery.signals import task_revoked, worker_ready, worker_shutdown

from discovery import worker
from discovery.models import DEFAULT_SITE_SLUG, BACnetPoint, CollectionGap
from discovery.routing import queue_of
from discovery.services import rollups
from discovery.sites import UnknownSite, get_site, site_of_queue
from discovery.windows import (
    COLLECT_TASK,
    collection_period_s,
    record_gap,
    warn_if_period_differs,
)

log = logging.getLogger(__name__)


def _run(task: Any, job_id: int) -> dict | None:
    return worker.run_job(job_id, task.request.hostname or "celery")


# ``site`` is for routing (``discovery.routing``): the job row says its site, and the
# worker checks it against its own before running anything.
@shared_task(name="discovery.tasks.discover_devices", bind=True)
def discover_devices(self: Any, job_id: int, site: str | None = None) -> dict | None:
    """Who-Is, then enumerate and store every device that answered."""
    return _run(self, job_id)


@shared_task(name="discovery.tasks.discover_device_points", bind=True)
def discover_device_points(self: Any, job_id: int, site: str | None = None) -> dict | None:
    """Re-read one device's properties and object list."""
    return _run(self, job_id)


@shared_task(name="discovery.tasks.read_device_points", bind=True)
def read_device_points(
    self: Any,
    job_id: int | None = None,
    window_start: str | None = None,
    period_s: int | None = None,
    site: str | None = None,
) -> dict | None:
    """One collection cycle. Beat sends it without a job id but with the window it was
    meant for (and the site's slug, from the site's schedule): the window's job row is
    created here, once however often the message arrives, and however late (within the
    window's bound)."""
    if job_id is None:
        identity = worker.current_worker()
        if identity is not None and (site or DEFAULT_SITE_SLUG) != identity.site_slug:
            raise worker.WrongSite(
                f"Collection of site {site or 'default'!r} reached the worker of site "
                f"{identity.site_slug!r}: not run (check CELERY_TASK_ROUTES and -Q)."
            )
        start = datetime.fromisoformat(window_start) if window_start else None
        task = worker.scheduled_collection(
            "celery", start=start, period_s=period_s, site=get_site(site)
        )
        if task is None:
            log.info("Collection window %s already ran or was skipped", window_start or "now")
            return None
        job_id = task.pk
    return _run(self, job_id)


@task_revoked.connect
def _record_expired_window(
    sender: Any = None, request: Any = None, expired: bool = False, **_: Any
) -> None:
    """A collection message that expired unread (the worker was busy or down past the
    window's bound): its window is recorded as a gap with the reason."""
    if not expired or request is None or getattr(sender, "name", "") != COLLECT_TASK:
        return
    kwargs = getattr(request, "kwargs", None) or {}
    if kwargs.get("window_start"):
        try:
            site = get_site(kwargs.get("site"))
        except UnknownSite:
            return
        start = datetime.fromisoformat(kwargs["window_start"])
        period = int(kwargs.get("period_s") or 0) or collection_period_s(site)
        record_gap(start, period, CollectionGap.Reason.LATE, "message expired unread", site)


@shared_task(name="discovery.tasks.read_point_value", bind=True)
def read_point_value(self: Any, point_id: int, site: str | None = None) -> dict:
    """Read one point now and store the reading."""
    from discovery.bacnet_client import get_client
    from discovery.services.collection import read_point_and_store

    identity = worker.current_worker()
    if identity is None:
        raise worker.WrongWorker("read_point_value must run on the BACnet worker")
    point = BACnetPoint.objects.select_related("device").get(pk=point_id)
    if point.device.site_id != identity.site_id:
        raise worker.WrongSite(
            f"Point {point_id} is at another site than this worker's ({identity.site_slug})."
        )
    return read_point_and_store(get_client(), point)


@shared_task(name="discovery.tasks.write_point_value", bind=True)
def write_point_value(self: Any, job_id: int, site: str | None = None) -> dict | None:
    """Write (or relinquish) a point's present value at a priority, then read it back."""
    return _run(self, job_id)


@shared_task(name="discovery.tasks.read_priority_array", bind=True)
def read_priority_array(self: Any, job_id: int, site: str | None = None) -> dict | None:
    """Read a commandable point's priority array and store it."""
    return _run(self, job_id)


@shared_task(name="discovery.tasks.acknowledge_alarm", bind=True)
def acknowledge_alarm(self: Any, job_id: int, site: str | None = None) -> dict | None:
    """Send AcknowledgeAlarm for an alarm acknowledged in the product."""
    return _run(self, job_id)


@shared_task(name="discovery.tasks.register_alarm_recipient", bind=True)
def register_alarm_recipient(self: Any, job_id: int, site: str | None = None) -> dict | None:
    """Add this worker to a device's notification classes' recipient lists."""
    return _run(self, job_id)


@shared_task(name="discovery.tasks.poll_event_information", bind=True)
def poll_event_information(self: Any, job_id: int, site: str | None = None) -> dict | None:
    """Ask devices for their event states (GetEventInformation / GetAlarmSummary)."""
    return _run(self, job_id)


@shared_task(name="discovery.tasks.request_event_polls")
def request_event_polls() -> int:
    """Request an event-information poll job for each site (beat, on ``default``)."""
    from discovery.services.alarm_events import request_event_polls as request

    return request()


@shared_task(name="discovery.tasks.relinquish_due_overrides")
def relinquish_due_overrides() -> int:
    """Request the relinquish of every timed override whose time has come."""
    from discovery.services.commanding import relinquish_due_overrides as due

    return due()


@shared_task(name="discovery.tasks.calculate_hourly_stats")
def calculate_hourly_stats(lookback_hours: int = 3) -> int:
    return rollups.calculate_hourly_stats(lookback_hours)


@shared_task(name="discovery.tasks.calculate_daily_stats")
def calculate_daily_stats(lookback_days: int = 2) -> int:
    return rollups.calculate_daily_stats(lookback_days)


@shared_task(name="discovery.tasks.maintain_readings")
def maintain_readings() -> dict[str, Any]:
    """Partitions ahead; raw readings and statistics past their retention out."""
    from dataclasses import asdict

    from discovery.services.retention import maintain_readings as maintain

    return asdict(maintain())


@shared_task(name="discovery.tasks.sweep_jobs")
def sweep_jobs() -> dict[str, int]:
    """Retry or fail jobs of dead workers; send jobs that never reached the broker."""
    return worker.sweep_jobs()


@shared_task(name="discovery.tasks.deliver_alert", bind=True)
def deliver_alert(self: Any, delivery_id: int) -> str:
    """Send one alarm notice (e-mail or webhook); retried with backoff while it may pass."""
    from discovery.services import alerts

    if worker.current_worker() is not None:
        # Routed here by mistake: the row stays pending for ``send_due_alerts``.
        raise worker.WrongWorker("Alarm notices are never sent from the BACnet worker")
    outcome = alerts.deliver(delivery_id)
    if outcome.retry_in_s is not None:
        raise self.retry(countdown=outcome.retry_in_s, max_retries=None)
    return outcome.status


@shared_task(name="discovery.tasks.send_due_alerts")
def send_due_alerts() -> dict[str, int]:
    """Notices of events nobody announced, retries due, and messages the broker lost."""
    from discovery.services import alerts

    # A minute's grace: a delivery's own task normally sends it first.
    return alerts.send_due_alerts(grace_s=60)


@worker_ready.connect
def _start_bacnet_worker(sender: Any, **_: Any) -> None:
    """A Celery worker consuming a site's BACnet queue (``bacnet``, ``bacnet.<site>``) is
    that site's BACnet worker: it opens the BACnet socket now (a wrong interface fails at
    start) and writes heartbeats. A site that does not exist stops it at once."""
    queues = set(sender.app.amqp.queues.consume_from or {})
    sites = sorted({slug for q in queues if (slug := site_of_queue(q)) is not None})
    if not sites:
        return
    if len(sites) > 1:
        log.error(
            "This worker consumes the queues of several sites (%s): a BACnet worker serves "
            "one site's LAN; it serves %r only and refuses the others' jobs",
            ", ".join(sites),
            sites[0],
        )
    bacnet_queue = queue_of(sites[0])
    if len(queues) > 1:
        log.warning(
            "This worker consumes %s besides %r: BACnet jobs would wait behind other "
            "work; run it with -Q %s only",
            ", ".join(sorted(queues - {bacnet_queue})),
            bacnet_queue,
            bacnet_queue,
        )
    try:
        site = get_site(sites[0])
    except UnknownSite as exc:
        log.critical("Not starting the BACnet worker: %s", exc)
        _stop_at_once()
        return
    from discovery.sites import apply_site_bacnet_settings

    apply_site_bacnet_settings(site)
    from discovery.bacnet_client import get_client

    interface = ""
    try:
        interface = get_client().local_address
    except Exception as exc:  # reported plainly; jobs will fail with the same reason
        log.error("BACnet client did not start: %s", exc)
    worker.become_bacnet_worker(sender.hostname, "celery", interface, site)
    warn_if_period_differs()
    worker.sweep_jobs()


def _stop_at_once() -> None:
    """A worker for a site that does not exist must not take its queue's messages."""
    import os
    import signal

    os.kill(os.getpid(), signal.SIGTERM)


@worker_shutdown.connect
def _stop_bacnet_worker(**_: Any) -> None:
    if worker.current_worker() is None:
        return
    worker.stop_bacnet_worker()
    from discovery.bacnet_client import shutdown_client

    shutdown_client()


__all__ = [
    "calculate_daily_stats",
    "calculate_hourly_stats",
    "deliver_alert",
    "discover_device_points",
    "discover_devices",
    "read_device_points",
    "read_point_value",
    "read_priority_array",
    "relinquish_due_overrides",
    "send_due_alerts",
    "sweep_jobs",
    "write_point_value",
]
