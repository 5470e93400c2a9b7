"""How a requested job reaches a BACnet worker: the two backends behind one interface.

- ``celery``: the job id goes to the routed task, which ``CELERY_TASK_ROUTES`` puts on
  the ``bacnet`` queue.
- ``database``: no broker at all; the worker claims pending rows itself. Dispatching
  only wakes it (PostgreSQL NOTIFY; on SQLite it polls).
"""

from __future__ import annotations

import logging
from typing import Protocol

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
}

BROKER_DOWN_NOTE = "Queued: the message broker is not reachable; the job is sent when it is back."


class Backend(Protocol):
    name: str

    def dispatch(self, task_id: int) -> bool:
        """Hand a committed pending job to the workers; False if it could not be sent yet."""


class CeleryBackend:
    name = "celery"

    def dispatch(self, task_id: int) -> bool:
        from bacnet_project.celery import app

        kind = BACnetTask.objects.filter(pk=task_id).values_list("kind", flat=True).first()
        if kind is None:
            return False
        try:
            # Few quick retries: the web request must not hang on a dead broker; the
            # sweeper sends jobs that were never dispatched once the broker is back.
            app.send_task(
                TASK_FOR_KIND[kind],
                args=[task_id],
                retry=True,
                retry_policy={"max_retries": 1, "interval_start": 0.2, "interval_step": 0.5},
            )
        except Exception as exc:  # kombu raises OperationalError and socket errors alike
            log.warning("Job %s not sent, broker unreachable: %s", task_id, exc)
            BACnetTask.objects.filter(pk=task_id, dispatched_at__isnull=True).update(
                progress=BROKER_DOWN_NOTE
            )
            publish_task_change(task_id)
            return False
        BACnetTask.objects.filter(pk=task_id).update(dispatched_at=timezone.now())
        return True


class DatabaseBackend:
    name = "database"

    def dispatch(self, task_id: int) -> bool:
        BACnetTask.objects.filter(pk=task_id).update(dispatched_at=timezone.now())
        notify(JOB_WAITING, str(task_id))
        return True


BACKENDS: dict[str, type[Backend]] = {"celery": CeleryBackend, "database": DatabaseBackend}


def get_backend(name: str | None = None) -> Backend:
    """The backend named, else the configured one (``BACNET_BACKEND`` or detection)."""
    chosen = normalise_backend(name) if name else settings.BACNET_BACKEND
    return BACKENDS[chosen]()
