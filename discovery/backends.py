"""How a requested job reaches a BACnet worker: the two backends behind one interface.

- ``celery``: the job id and its site's slug go to the task, which ``CELERY_TASK_ROUTES``
  (``discovery.routing.route_task``) puts on the site's queue: ``bacnet`` for the
  default site, ``bacnet.<slug>`` for the others.
- ``database``: no broker at all; each site's worker claims that site's pending rows
  itself. Dispatching only wakes it (PostgreSQL NOTIFY; on SQLite it polls).
"""

from __future__ import annotations

import logging
import time
from datetime import datetime
from typing import Any, Protocol

from django.conf import settings
from django.utils import timezone

from bacnet_project.platform_detection import normalise_backend
from discovery.events import JOB_WAITING, notify, publish_task_change
from discovery.models import BACnetTask

log = logging.getLogger(__name__)

# The Celery task that carries each kind of job (names as in seed 003).
TASK_FOR_KIND: dict[str, str] = {
    BACnetTask.Kind.DISCOVER: "discovery.tasks.discover_devices",
    BACnetTask.Kind.ENUMERATE: "discovery.tasks.discover_device_points",
    BACnetTask.Kind.COLLECT: "discovery.tasks.read_device_points",
    BACnetTask.Kind.WRITE: "discovery.tasks.write_point_value",
    BACnetTask.Kind.READ_PRIORITY: "discovery.tasks.read_priority_array",
    BACnetTask.Kind.ACK_ALARM: "discovery.tasks.acknowledge_alarm",
    BACnetTask.Kind.REGISTER: "discovery.tasks.register_alarm_recipient",
    BACnetTask.Kind.POLL_EVENTS: "discovery.tasks.poll_event_information",
}

BROKER_DOWN_NOTE = "Queued: the message broker is not reachable; the job is sent when it is back."


class Backend(Protocol):
    name: str

    def dispatch(self, task_id: int, *, force: bool = False) -> bool:
        """Hand a committed pending job to the workers; False if it could not be sent yet
        (``force``: try even if the broker failed a moment ago)."""


# After a failed send, this process does not try again for a while: under a frozen
# broker, a burst of clicks must answer at once instead of each waiting out the timeout.
# The sweeper does not wait (``force``): it is what sends the waiting jobs.
_broker_down_until = 0.0


def broker_send_timeout_s() -> float:
    """The longest a request may wait on the broker (connect, publish, one retry)."""
    return 2 * settings.BACNET_BROKER_TIMEOUT_S + 1


class CeleryBackend:
    name = "celery"

    def dispatch(self, task_id: int, *, force: bool = False) -> bool:
        global _broker_down_until

        row = BACnetTask.objects.filter(pk=task_id).values_list("kind", "site__slug").first()
        if row is None:
            return False
        kind, site = row
        if not force and time.monotonic() < _broker_down_until:
            self._mark_waiting(task_id, "broker unreachable a moment ago")
            return False
        try:
            send_bounded(
                TASK_FOR_KIND[kind], task_id, expires=_expiry(task_id), kwargs={"site": site}
            )
        except Exception as exc:  # kombu raises OperationalError, timeouts and socket errors
            _broker_down_until = time.monotonic() + 5 * settings.BACNET_BROKER_TIMEOUT_S
            self._mark_waiting(task_id, exc)
            return False
        _broker_down_until = 0.0
        BACnetTask.objects.filter(pk=task_id).update(dispatched_at=timezone.now())
        return True

    @staticmethod
    def _mark_waiting(task_id: int, why: object) -> None:
        log.warning("Job %s not sent, broker unreachable: %s", task_id, why)
        BACnetTask.objects.filter(pk=task_id, dispatched_at__isnull=True).update(
            progress=BROKER_DOWN_NOTE
        )
        publish_task_change(task_id)


def send_bounded(
    name: str,
    *args: Any,
    expires: datetime | None = None,
    kwargs: dict[str, Any] | None = None,
) -> None:
    """Send a task, giving up within about ``broker_send_timeout_s()``.

    The socket and connect timeouts of the transport (settings) bound each attempt; the
    producer is taken from the pool with a timeout too, or a burst of requests would
    queue behind the few producers stuck on a frozen broker. A send that timed out may
    still reach the broker once it wakes: the claim makes a second message harmless."""
    from bacnet_project.celery import app

    timeout = settings.BACNET_BROKER_TIMEOUT_S
    with app.producer_pool.acquire(block=True, timeout=timeout) as producer:
        app.send_task(
            name,
            args=list(args),
            kwargs=kwargs or {},
            producer=producer,
            expires=expires,
            retry=True,
            retry_policy={
                "max_retries": 1,
                "interval_start": 0,
                "interval_step": 0.5,
                "interval_max": 0.5,
            },
        )


def _expiry(task_id: int) -> datetime | None:
    """Scheduled cycles expire when their window's bound has passed (see ``windows``):
    a message that waited longer must not store today's values as old history."""
    from discovery.windows import expiry_of

    task = BACnetTask.objects.filter(pk=task_id).first()
    return expiry_of(task) if task is not None else None


class DatabaseBackend:
    name = "database"

    def dispatch(self, task_id: int, *, force: bool = False) -> bool:
        BACnetTask.objects.filter(pk=task_id).update(dispatched_at=timezone.now())
        notify(JOB_WAITING, str(task_id))
        return True


BACKENDS: dict[str, type[Backend]] = {"celery": CeleryBackend, "database": DatabaseBackend}


def get_backend(name: str | None = None) -> Backend:
    """The backend named, else the configured one (``BACNET_BACKEND`` or detection)."""
    chosen = normalise_backend(name) if name else settings.BACNET_BACKEND
    return BACKENDS[chosen]()
