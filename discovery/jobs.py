"""Requesting BACnet jobs and reporting on them.

The one entry point for the Start Discovery page, the REST API, the management commands
and the schedules: each calls ``request_job``, which writes the ``BACnetTask`` row and
hands it to the backend once the transaction commits (a worker must never look for a
row that is not committed yet).
"""

from __future__ import annotations

import ipaddress
import logging
import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from discovery.models import MAX_DEVICE_INSTANCE, BACnetDevice, BACnetTask, BACnetWorker, Site

log = logging.getLogger(__name__)

MAX_TARGETS = 256
WHO_IS_WILDCARD = 4194303


class JobError(ValueError):
    """The job cannot be requested as asked; the message is meant for the user."""


def _instance(value: Any, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise JobError(f"{name} must be an integer between 0 and {WHO_IS_WILDCARD}.")
    try:
        number = int(value)
    except ValueError:
        raise JobError(f"{name} must be an integer between 0 and {WHO_IS_WILDCARD}.") from None
    if not 0 <= number <= WHO_IS_WILDCARD:
        raise JobError(f"{name} must be an integer between 0 and {WHO_IS_WILDCARD}.")
    return number


# ASCII digits only: str.isdigit() accepts "²" and other Unicode digits that int()
# refuses, and no network number or port has more than five digits.
_NUMBER = re.compile(r"[0-9]{1,5}")
MAX_ADDRESS_LENGTH = 64


def validate_address(text: str) -> str:
    """Check a BACnet/IP address as users type it: ``192.168.1.20``, ``192.168.1.20:47809``
    or ``NET:ADDR`` behind a router (``20:192.168.2.5``, ``20:0x0a``)."""
    text = str(text).strip()
    if len(text) > MAX_ADDRESS_LENGTH:
        raise JobError(f"{text[:64]!r}...: an address is at most {MAX_ADDRESS_LENGTH} characters.")
    parts = text.split(":")
    if len(parts) >= 2 and parts[0].isdigit():  # a network number first: NET:ADDR
        if not _NUMBER.fullmatch(parts[0]) or not 1 <= int(parts[0]) <= 65534:
            raise JobError(f"{text!r}: a BACnet network number is 1-65534.")
        rest = ":".join(parts[1:])
        if "." in rest:
            validate_address(rest)
        elif not rest or len(rest) > 20:
            raise JobError(f"{text!r} is not a valid NET:ADDR address.")
        return text
    if len(parts) > 2:
        raise JobError(f"{text!r} is not a BACnet/IP address (e.g. 192.168.1.20:47808).")
    try:
        ipaddress.IPv4Address(parts[0])
    except ValueError:
        raise JobError(
            f"{text!r} is not a BACnet/IP address (expected e.g. 192.168.1.20 "
            "or 192.168.1.20:47808)."
        ) from None
    if len(parts) == 2 and not (_NUMBER.fullmatch(parts[1]) and 1 <= int(parts[1]) <= 65535):
        raise JobError(f"{text!r} has an invalid UDP port.")
    return text


def validate_parameters(
    kind: str, parameters: dict[str, Any] | None, site: Site | None = None
) -> dict[str, Any]:
    """Return the cleaned parameters of a job of ``kind`` at ``site`` (default: the
    default site), or raise ``JobError``."""
    if kind not in BACnetTask.Kind.values:
        raise JobError(
            f"Unknown job kind {kind!r}: use one of {', '.join(BACnetTask.Kind.values)}."
        )
    parameters = dict(parameters or {})
    if not isinstance(parameters, dict):
        raise JobError("Job parameters must be an object.")
    allowed = {
        "discover": {"low", "high", "targets"},
        "collect": {"device_instances"},
        "enumerate": {"device_instance"},
        # Commanding jobs are requested by discovery.services.commanding, which checks
        # the value and the user's permission and writes the audit row first.
        "write": {"command_id"},
        "read_priority": {"point_id"},
        # Alarm jobs are requested by discovery.services.alarms / alarm_events (the
        # permission and the audit row come first there).
        "ack_alarm": {"command_id"},
        "register": {"command_id", "device_id", "confirmed"},
        "poll_events": {"device_ids"},
    }[kind]
    unknown = set(parameters) - allowed
    if unknown:
        raise JobError(
            f"Unknown parameter(s) for {kind}: {', '.join(sorted(map(str, unknown)))}; "
            f"allowed: {', '.join(sorted(allowed))}."
        )
    cleaned: dict[str, Any] = {}
    if kind == "discover":
        low, high = parameters.get("low"), parameters.get("high")
        if low in ("", None) and high in ("", None):
            pass
        else:
            low = 0 if low in ("", None) else _instance(low, "low")
            high = WHO_IS_WILDCARD if high in ("", None) else _instance(high, "high")
            if low > high:
                raise JobError("low must not be greater than high.")
            cleaned.update(low=low, high=high)
        targets = parameters.get("targets") or []
        if isinstance(targets, str):
            targets = [t for t in targets.replace(",", " ").split() if t]
        if not isinstance(targets, list) or not all(isinstance(t, str) for t in targets):
            raise JobError("targets must be a list of addresses.")
        if len(targets) > MAX_TARGETS:
            raise JobError(f"At most {MAX_TARGETS} target addresses per discovery.")
        if targets:
            cleaned["targets"] = [validate_address(t) for t in targets]
    elif kind == "collect":
        instances = parameters.get("device_instances")
        if instances not in (None, []):
            if not isinstance(instances, list):
                raise JobError("device_instances must be a list of device instances.")
            cleaned["device_instances"] = [_instance(i, "device instance") for i in instances]
            _require_known_devices(cleaned["device_instances"], site or Site.default())
    elif kind in ("write", "read_priority"):
        cleaned = _command_parameters(kind, parameters)
    elif kind in ("ack_alarm", "register", "poll_events"):
        cleaned = _alarm_parameters(kind, parameters)
    else:
        if "device_instance" not in parameters:
            raise JobError("enumerate needs device_instance.")
        number = _instance(parameters["device_instance"], "device_instance")
        site = site or Site.default()
        if (
            number > MAX_DEVICE_INSTANCE
            or not BACnetDevice.objects.filter(site=site, device_instance=number).exists()
        ):
            raise JobError(f"No known device of {site} has instance {number}.")
        cleaned["device_instance"] = number
    return cleaned


def _command_parameters(kind: str, parameters: dict[str, Any]) -> dict[str, Any]:
    from discovery.models import BACnetPoint, PointCommand

    name = "command_id" if kind == "write" else "point_id"
    value = parameters.get(name)
    if isinstance(value, bool) or not isinstance(value, int):
        raise JobError(f"{kind} needs {name} (an integer).")
    model = PointCommand if kind == "write" else BACnetPoint
    if not model.objects.filter(pk=value).exists():
        raise JobError(f"No {name.removesuffix('_id')} {value}.")
    return {name: value}


def _alarm_parameters(kind: str, parameters: dict[str, Any]) -> dict[str, Any]:
    def whole(name: str) -> int:
        value = parameters.get(name)
        if isinstance(value, bool) or not isinstance(value, int):
            raise JobError(f"{kind} needs {name} (an integer).")
        return value

    if kind == "poll_events":
        ids = parameters.get("device_ids") or []
        if not isinstance(ids, list) or not all(
            isinstance(i, int) and not isinstance(i, bool) for i in ids
        ):
            raise JobError("device_ids must be a list of device ids.")
        return {"device_ids": ids}
    cleaned = {"command_id": whole("command_id")}
    if kind == "register":
        cleaned["device_id"] = whole("device_id")
        cleaned["confirmed"] = bool(parameters.get("confirmed", True))
    return cleaned


def _require_known_devices(instances: list[int], site: Site) -> None:
    """A collection of devices nobody has discovered would read nothing: say so."""
    known = set(
        BACnetDevice.objects.filter(site=site, device_instance__in=instances).values_list(
            "device_instance", flat=True
        )
    )
    unknown = sorted(set(instances) - known)
    if unknown:
        listed = ", ".join(map(str, unknown[:10])) + (" ..." if len(unknown) > 10 else "")
        raise JobError(f"No known device of {site} has instance {listed}: discover it first.")


def request_job(
    kind: str,
    parameters: dict[str, Any] | None = None,
    *,
    trigger: str = BACnetTask.Trigger.MANUAL,
    user: Any = None,
    dedupe_key: str | None = None,
    backend: str | None = None,
    site: Site | None = None,
) -> BACnetTask:
    """Create a pending job of ``site`` (default: the default site) and hand it to the
    backend after commit: it goes to that site's queue, for that site's worker.

    With ``dedupe_key`` (scheduled cycles), an existing job with that key is returned
    instead of a second one."""
    from discovery.backends import get_backend

    site = site or Site.default()
    cleaned = validate_parameters(kind, parameters, site)
    if kind == BACnetTask.Kind.COLLECT:
        # The cycle's timestamp is fixed now, so a retried cycle writes the same
        # (point, timestamp) keys and stores nothing twice.
        cleaned["cycle_at"] = timezone.now().replace(microsecond=0).isoformat()
    chosen = get_backend(backend)
    try:
        with transaction.atomic():
            task = BACnetTask.objects.create(
                site=site,
                kind=kind,
                parameters=cleaned,
                trigger=trigger,
                backend=chosen.name,
                dedupe_key=dedupe_key,
                created_by=user if getattr(user, "is_authenticated", False) else None,
                # Said at once: a job of a site whose worker is down waits (see the sweeper).
                progress=no_worker_note(site, chosen.name),
            )
    except IntegrityError:
        if dedupe_key is None:
            raise
        return BACnetTask.objects.get(dedupe_key=dedupe_key)
    from discovery.events import publish_task_change

    publish_task_change(task.pk)
    transaction.on_commit(lambda: chosen.dispatch(task.pk))
    log.info("Job %s requested (%s, site %s, backend %s)", task.pk, kind, site.slug, chosen.name)
    if not transaction.get_connection().in_atomic_block:
        # Dispatch ran already (no transaction to wait for): the caller's answer says
        # whether the job reached the broker or waits for the sweeper.
        task.refresh_from_db()
    return task


def delivery(task: BACnetTask) -> str:
    """``sent``: handed to the backend (the broker, or the database queue); ``waiting``:
    pending but not sent yet (broker unreachable), the sweeper sends it once it is back;
    ``done``: no longer pending."""
    if task.status != BACnetTask.Status.PENDING:
        return "done"
    return "sent" if task.dispatched_at else "waiting"


def task_status(task: BACnetTask) -> dict[str, Any]:
    """The JSON shape of seed 001's task-status API."""

    from discovery.outcomes import outcome_api_fields

    def iso(value: datetime | None) -> str | None:
        return timezone.localtime(value).isoformat() if value else None

    return {
        "id": task.pk,
        "site": task.site.slug,
        "kind": task.kind,
        "status": task.status,
        **outcome_api_fields(task),
        "trigger": task.trigger,
        "backend": task.backend,
        "parameters": task.parameters,
        "progress": task.progress,
        "result": task.result,
        "error_message": task.error_message,
        "created_at": iso(task.created_at),
        "dispatched_at": iso(task.dispatched_at),
        "started_at": iso(task.started_at),
        "completed_at": iso(task.completed_at),
        "worker_name": task.worker_name,
        "attempts": task.attempts,
        "delivery": delivery(task),
        "window_start": iso(task.window_start),
    }


@dataclass
class BackendStatus:
    """Which backend carries BACnet jobs and whether a live worker serves it."""

    backend: str
    reason: str
    workers: list[BACnetWorker] = field(default_factory=list)
    worker_alive: bool = False
    message: str = ""


def live_workers(backend: str | None = None, site: Site | None = None) -> list[BACnetWorker]:
    """Workers (of a site) whose heartbeat is recent (three heartbeat periods)."""
    window = timedelta(seconds=3 * settings.BACNET_WORKER_HEARTBEAT_S)
    workers = BACnetWorker.objects.filter(last_heartbeat__gte=timezone.now() - window)
    if backend:
        workers = workers.filter(backend=backend)
    if site is not None:
        workers = workers.filter(site=site)
    return list(workers.select_related("site"))


def no_worker_note(site: Site, backend: str) -> str:
    """What a job of ``site`` waits for when no worker of that site is alive ("" if one is)."""
    if live_workers(backend, site):
        return ""
    how = f"--site {site.slug}" if not site.is_default else ""
    return (
        f"Waiting: no BACnet worker of site {site.slug!r} ({backend} backend, queue "
        f"{site.queue!r}) has reported in. Start one on that site's LAN: "
        f"bacnet_worker_windows.py {how}".strip()
    )


def backend_status() -> BackendStatus:
    backend = settings.BACNET_BACKEND
    workers = live_workers()
    serving = [w for w in workers if w.backend == backend]
    message = ""
    if not serving:
        others = sorted({w.backend for w in workers})
        message = f"No BACnet worker serving the {backend} backend has reported in: jobs will wait."
        if others:
            message += (
                f" A worker is running with the {', '.join(others)} backend instead: set "
                "BACNET_BACKEND to the same value for the web and the worker."
            )
        else:
            message += (
                " Start one with `python manage.py bacnet_worker` or bacnet_worker_windows.py."
            )
    return BackendStatus(
        backend=backend,
        reason=settings.BACNET_BACKEND_REASON,
        workers=workers,
        worker_alive=bool(serving),
        message=message,
    )


def fail_jobs_without_worker(now: datetime | None = None) -> int:
    """Pending jobs of a site whose worker has not reported in for
    ``BACNET_JOB_NO_WORKER_FAIL_S`` fail with that reason (0, the default: they wait for
    as long as it takes). Run by the sweeper."""
    from discovery.events import publish_task_change

    wait_s = settings.BACNET_JOB_NO_WORKER_FAIL_S
    if not wait_s:
        return 0
    now = now or timezone.now()
    old = BACnetTask.objects.filter(
        status=BACnetTask.Status.PENDING, created_at__lt=now - timedelta(seconds=wait_s)
    )
    failed = 0
    for site_id, backend in old.values_list("site_id", "backend").distinct():
        site = Site.objects.get(pk=site_id)
        if live_workers(backend, site):
            continue
        for task_id in old.filter(site=site, backend=backend).values_list("pk", flat=True):
            failed += BACnetTask.objects.filter(
                pk=task_id, status=BACnetTask.Status.PENDING
            ).update(
                status=BACnetTask.Status.FAILED,
                error_message=(
                    f"No BACnet worker of site {site.slug!r} ({backend} backend) reported in "
                    f"within {wait_s} s (BACNET_JOB_NO_WORKER_FAIL_S)."
                ),
                completed_at=now,
                progress="Failed",
            )
            publish_task_change(task_id)
    return failed
