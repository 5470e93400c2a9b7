"""Running BACnet jobs, whichever backend delivered them.

A job row moves pending -> running -> completed | failed (see ``BACnetTask``). This
module claims jobs with conditional updates (two workers never run the same job),
keeps heartbeats while they run, records the outcome, puts the jobs of dead workers
back (``sweep_jobs``). The database backend's loop is in ``database_worker``.

The BACnet client is imported lazily: only a BACnet worker process opens a BACnet
socket, and a process that never runs a BACnet job never imports BAC0.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import DatabaseError, InterfaceError, close_old_connections, transaction
from django.db.models import F
from django.utils import timezone

from discovery import windows
from discovery.events import publish_task_change
from discovery.models import BACnetDevice, BACnetTask, BACnetWorker, Site
from discovery.outcomes import outcome_fields

log = logging.getLogger(__name__)

Status = BACnetTask.Status


class WrongWorker(RuntimeError):
    """A BACnet job reached a process that is not a BACnet worker (a routing mistake)."""


class WrongSite(WrongWorker):
    """A BACnet job of one site reached the worker of another (a routing mistake): the
    worker is on another LAN, where the job's device instances are other devices."""


@dataclass
class WorkerIdentity:
    name: str
    backend: str
    hostname: str
    pid: int
    site_id: int
    site_slug: str


_identity: WorkerIdentity | None = None
_current_task_id: int | None = None
_heartbeat: Heartbeat | None = None
_cov_keeper: Any = None  # services.cov.CovKeeper, imported with the worker's BACnet side


def current_worker() -> WorkerIdentity | None:
    return _identity


def default_worker_name(backend: str) -> str:
    return f"bacnet-{backend}@{socket.gethostname()}"


class Heartbeat(threading.Thread):
    """Writes the worker's and its running job's heartbeat every few seconds.

    A thread, because the solo pool blocks the main thread for the whole task and sends
    no heartbeats of its own meanwhile."""

    def __init__(self, identity: WorkerIdentity, period_s: float) -> None:
        super().__init__(name="bacnet-heartbeat", daemon=True)
        self.identity = identity
        self.period_s = period_s
        self.stopped = threading.Event()

    def beat(self) -> None:
        now = timezone.now()
        BACnetWorker.objects.filter(name=self.identity.name).update(
            last_heartbeat=now, current_task_id=_current_task_id
        )
        if _current_task_id is not None:
            BACnetTask.objects.filter(pk=_current_task_id, status=Status.RUNNING).update(
                heartbeat_at=now
            )

    def run(self) -> None:
        while not self.stopped.wait(self.period_s):
            try:
                self.beat()
            except (DatabaseError, InterfaceError) as exc:
                log.warning("Heartbeat not written (database unreachable): %s", exc)
            finally:
                close_old_connections()

    def stop(self) -> None:
        self.stopped.set()


def become_bacnet_worker(
    name: str, backend: str, interface: str = "", site: Site | None = None
) -> WorkerIdentity:
    """Register this process as the BACnet worker of ``site`` (default: the default
    site), start its heartbeat, and put back the jobs that a previous life of this
    worker left running (it was killed)."""
    global _identity, _heartbeat
    site = site or Site.default()
    identity = WorkerIdentity(name, backend, socket.gethostname(), os.getpid(), site.pk, site.slug)
    now = timezone.now()
    BACnetWorker.objects.update_or_create(
        name=name,
        defaults={
            "site": site,
            "backend": backend,
            "hostname": identity.hostname,
            "pid": identity.pid,
            "interface": interface[:64],
            "started_at": now,
            "last_heartbeat": now,
            "current_task": None,
        },
    )
    _identity = identity
    orphans = BACnetTask.objects.filter(status=Status.RUNNING, worker_name=name)
    for task in orphans:
        _retry_or_fail(task, f"worker {name} restarted while running it")
    _heartbeat = Heartbeat(identity, settings.BACNET_WORKER_HEARTBEAT_S)
    _heartbeat.start()
    _start_cov_keeper(site)
    log.info(
        "BACnet worker %s ready (site %s, backend %s, pid %s)",
        name,
        site.slug,
        backend,
        identity.pid,
    )
    return identity


def _start_cov_keeper(site: Site) -> None:
    """Change-of-value subscriptions live with the socket, in this process, on a thread
    of their own: it runs between and during jobs, whichever backend delivers them. It
    keeps the points of this worker's site only (the devices on its LAN)."""
    global _cov_keeper
    from discovery.bacnet_client import current_client
    from discovery.services.cov import CovKeeper

    _cov_keeper = CovKeeper(current_client, site.pk, _identity.name if _identity else "")
    _cov_keeper.start()


def stop_bacnet_worker() -> None:
    global _identity, _heartbeat, _cov_keeper
    if _cov_keeper is not None:
        _cov_keeper.stop()
        _cov_keeper.join(timeout=5)
        _cov_keeper = None
    if _heartbeat is not None:
        _heartbeat.stop()
        _heartbeat = None
    if _identity is not None:
        # An old heartbeat tells the UI at once that this worker is gone.
        BACnetWorker.objects.filter(name=_identity.name).update(
            last_heartbeat=timezone.now() - timedelta(days=1), current_task=None
        )
        _identity = None


# -- the life of one job ----------------------------------------------------------------


def claim(task_id: int, worker_name: str) -> BACnetTask | None:
    """pending -> running, only if it is still pending (a re-delivered message or a
    second worker finds it taken and leaves it)."""
    now = timezone.now()
    updated = BACnetTask.objects.filter(pk=task_id, status=Status.PENDING).update(
        status=Status.RUNNING,
        worker_name=worker_name,
        started_at=now,
        heartbeat_at=now,
        progress="Started",
        error_message="",
        attempts=F("attempts") + 1,
    )
    if updated != 1:
        return None
    publish_task_change(task_id)
    return BACnetTask.objects.get(pk=task_id)


def claim_next(
    worker_name: str, backend: str = "database", site_id: int | None = None
) -> BACnetTask | None:
    """Claim the oldest pending job of ``backend`` and of the worker's site (default:
    the default site): ``SELECT … FOR UPDATE SKIP LOCKED`` on PostgreSQL (two workers
    never take the same row; SQLite's immediate transactions serialise the same claim)."""
    site_id = site_id or Site.default().pk
    with transaction.atomic():
        task = (
            BACnetTask.objects.select_for_update(skip_locked=True)
            .filter(status=Status.PENDING, backend=backend, site_id=site_id)
            .order_by("created_at", "id")
            .first()
        )
        if task is None:
            return None
        return claim(task.pk, worker_name)


def set_progress(task_id: int, message: str) -> None:
    BACnetTask.objects.filter(pk=task_id).update(
        progress=message[:255], heartbeat_at=timezone.now()
    )
    publish_task_change(task_id)


def _finish(
    task_id: int, status: str, *, result: Any = None, error: str = "", **outcome: Any
) -> None:
    BACnetTask.objects.filter(pk=task_id, status=Status.RUNNING).update(
        status=status,
        result=result,
        error_message=error,
        completed_at=timezone.now(),
        progress="Completed" if status == Status.COMPLETED else "Failed",
        **outcome,
    )
    publish_task_change(task_id)


def run_job(task_id: int, worker_name: str, *, claimed: BACnetTask | None = None) -> dict | None:
    """Claim (unless already claimed), execute and record one job. Never raises for a
    job's own failure: that is recorded on the row, and the worker lives on."""
    global _current_task_id
    if _identity is None:
        message = (
            f"BACnet job {task_id} reached {worker_name}, which is not a BACnet worker: "
            "only the worker consuming the 'bacnet' queue (or `manage.py bacnet_worker`) "
            "may run BACnet jobs. Check CELERY_TASK_ROUTES and the worker's -Q option."
        )
        # Recorded on the row, so a routing mistake cannot pass unnoticed.
        BACnetTask.objects.filter(pk=task_id, status=Status.PENDING).update(
            status=Status.FAILED,
            worker_name=worker_name,
            error_message=message,
            completed_at=timezone.now(),
            progress="Failed",
        )
        publish_task_change(task_id)
        raise WrongWorker(message)
    refuse_other_site(task_id, worker_name)
    task = claimed or claim(task_id, worker_name)
    if task is None:
        log.info("Job %s is not pending any more; nothing to do", task_id)
        return None
    if windows.is_too_late(task):
        windows.skip_late_cycle(task)
        publish_task_change(task.pk)
        return None
    _current_task_id = task.pk
    started = time.monotonic()
    log.info("Job %s (%s) started on %s", task.pk, task.kind, worker_name)
    try:
        result = execute(task, lambda message: set_progress(task.pk, message))
    except Exception as exc:
        _current_task_id = None
        if lost_database(exc):
            # Not the job's fault: retried like a job whose worker died.
            _retry_after_database_loss(task, exc)
            return None
        log.warning("Job %s failed: %s", task.pk, exc)
        close_old_connections()
        _finish(task.pk, Status.FAILED, error=str(exc)[:2000] or type(exc).__name__)
        return None
    finally:
        _current_task_id = None
    result.setdefault("duration_s", round(time.monotonic() - started, 3))
    # The readings are committed: a database lost now must not turn the job into a
    # retry (or a "late" skip) of work that is done. The summary line and failed-device
    # count ("completed with errors") go with it.
    outcome = outcome_fields(task.kind, result)
    _with_reconnect(lambda: _finish(task.pk, Status.COMPLETED, result=result, **outcome))
    log.info("Job %s completed: %s", task.pk, result)
    return result


def refuse_other_site(task_id: int, worker_name: str) -> None:
    """Raise ``WrongSite`` if the job belongs to another site than this worker's. The job
    is left pending and sent again to its own site's queue: this worker's LAN is another
    building, where its device instances are other devices."""
    assert _identity is not None
    row = (
        BACnetTask.objects.filter(pk=task_id)
        .values_list("site_id", "site__slug", "status", "backend")
        .first()
    )
    if row is None or row[0] == _identity.site_id:
        return
    _, slug, status, backend = row
    message = (
        f"Refused by {worker_name}, the worker of site {_identity.site_slug!r}: job {task_id} "
        f"is for site {slug!r} (queue {Site(slug=slug).queue!r})."
    )
    log.error("%s Check CELERY_TASK_ROUTES and the worker's -Q/--site option.", message)
    if status == Status.PENDING:
        BACnetTask.objects.filter(pk=task_id, status=Status.PENDING).update(
            progress=f"{message} Sent to its own queue."[:255], dispatched_at=None
        )
        publish_task_change(task_id)
        _redispatch(task_id, backend)
    raise WrongSite(message)


def _with_reconnect(write: Callable[[], object], tries: int = 5) -> None:
    """Run a database write, reconnecting and trying again while the database is away
    (a few seconds, then the error goes up and the sweeper deals with the row)."""
    for attempt in range(tries):
        try:
            write()
            return
        except (DatabaseError, InterfaceError) as exc:
            if attempt == tries - 1 or not lost_database(exc):
                raise
            log.warning("Database unreachable (%s); trying again", exc)
            close_old_connections()
            from django.db import connection

            connection.close()
            time.sleep(min(2**attempt, 10))


def lost_database(exc: BaseException) -> bool:
    """True if ``exc`` (or what caused it) is the database connection going away, not an
    error of the job itself (a constraint, bad data)."""
    from django.db import OperationalError

    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, OperationalError | InterfaceError):
            return True
        module = type(current).__module__ or ""
        if module.startswith("psycopg") and type(current).__name__ in (
            "OperationalError",
            "InterfaceError",
        ):
            return True
        current = current.__cause__ or current.__context__
    return False


def _retry_after_database_loss(task: BACnetTask, exc: BaseException) -> None:
    """Put the job back (or fail it after its attempts) once the database answers again.
    If it still does not answer, the row stays running with a heartbeat that goes stale,
    and the sweeper (or this worker's restart) retries it."""
    why = f"database connection lost: {str(exc).strip()[:200]}"
    log.warning("Job %s interrupted, %s", task.pk, why)
    close_old_connections()
    from django.db import connection

    connection.close()
    try:
        _with_reconnect(lambda: _retry_or_fail(task, why))
    except (DatabaseError, InterfaceError) as again:
        log.warning("Job %s left for the sweeper: database still unreachable (%s)", task.pk, again)


def execute(task: BACnetTask, progress: Callable[[str], None]) -> dict[str, Any]:
    """Run the service function that does the job's kind of work."""
    from discovery.bacnet_client import get_client
    from discovery.services.collection import collect_and_store
    from discovery.services.discovery import discover_and_store, enumerate_and_store

    params = task.parameters or {}
    client = get_client()
    if task.kind in (
        BACnetTask.Kind.ACK_ALARM,
        BACnetTask.Kind.REGISTER,
        BACnetTask.Kind.POLL_EVENTS,
    ):
        from discovery.services import alarm_jobs

        return alarm_jobs.run_job(client, task, progress)
    if task.kind in (BACnetTask.Kind.WRITE, BACnetTask.Kind.READ_PRIORITY):
        from discovery.services import command_runs

        if task.kind == BACnetTask.Kind.WRITE:
            return command_runs.carry_out(client, task, progress)
        return command_runs.read_priority(client, task, progress)
    if task.kind == BACnetTask.Kind.DISCOVER:
        return discover_and_store(
            client,
            site_id=task.site_id,
            low=params.get("low"),
            high=params.get("high"),
            targets=params.get("targets", []),
            progress=progress,
        )
    if task.kind == BACnetTask.Kind.ENUMERATE:
        device = BACnetDevice.objects.get(site=task.site, device_instance=params["device_instance"])
        return enumerate_and_store(client, device, progress)
    cycle_at = datetime.fromisoformat(params["cycle_at"]) if params.get("cycle_at") else None
    cycle_at = cycle_at or task.created_at
    if task.window_start is None:
        # A requested (not scheduled) cycle run long after it was asked for is stored at
        # the time it is actually read, not as old history (scheduled ones are skipped
        # instead: see run_job).
        bound = windows.late_bound_s(windows.collection_period_s(task.site_id))
        if timezone.now() - cycle_at > timedelta(seconds=bound):
            cycle_at = timezone.now().replace(microsecond=0)
    return collect_and_store(
        client,
        site_id=task.site_id,
        due_only=task.window_start is not None,
        cycle_at=cycle_at,
        device_instances=params.get("device_instances"),
        progress=progress,
    )


# -- scheduled cycles and recovery ------------------------------------------------------


def scheduled_collection(
    backend: str,
    now: datetime | None = None,
    *,
    start: datetime | None = None,
    period_s: int | None = None,
    site: Site | int | None = None,
) -> BACnetTask | None:
    """The pending job of a site's collection window, created once per window whoever
    asks (beat, a re-delivered message, a second database worker). ``start`` is the
    window the message was meant for; without it, the window ``now`` falls in. None if
    the window already ran or its bound has passed (see ``discovery.windows``)."""
    now = now or timezone.now()
    site = windows.site_of(site)
    period = period_s or windows.collection_period_s(site)
    start = start or windows.window_start(now, period)
    return windows.open_window(start, period, backend, now, site)


def _retry_or_fail(task: BACnetTask, why: str) -> str:
    """Put a job whose worker died back to pending, or fail it after too many attempts
    (or skip it, a scheduled cycle whose window's bound has passed)."""
    if windows.is_too_late(task):
        windows.skip_late_cycle(task)
        publish_task_change(task.pk)
        return "failed"
    if task.attempts < settings.BACNET_JOB_MAX_ATTEMPTS:
        updated = BACnetTask.objects.filter(pk=task.pk, status=Status.RUNNING).update(
            status=Status.PENDING,
            progress=f"Retrying: {why}"[:255],
            worker_name="",
            dispatched_at=None,
        )
        outcome = "retried"
    else:
        updated = BACnetTask.objects.filter(pk=task.pk, status=Status.RUNNING).update(
            status=Status.FAILED,
            error_message=f"Gave up after {task.attempts} attempts: {why}.",
            completed_at=timezone.now(),
            progress="Failed",
        )
        outcome = "failed"
    if updated:
        log.warning("Job %s %s: %s", task.pk, outcome, why)
        publish_task_change(task.pk)
        if outcome == "retried":
            _redispatch(task.pk, task.backend)
    return outcome


def _redispatch(task_id: int, backend: str) -> None:
    from discovery.backends import get_backend

    transaction.on_commit(lambda: get_backend(backend or None).dispatch(task_id))


def sweep_jobs(now: datetime | None = None) -> dict[str, int]:
    """Recover jobs: running ones whose heartbeat went stale (their worker died) are
    retried or failed; pending Celery jobs that never reached the broker are sent."""
    now = now or timezone.now()
    stale_before = now - timedelta(seconds=settings.BACNET_JOB_STALE_AFTER_S)
    counts = {"retried": 0, "failed": 0, "redispatched": 0}
    for task in BACnetTask.objects.filter(status=Status.RUNNING, heartbeat_at__lt=stale_before):
        outcome = _retry_or_fail(
            task, f"worker {task.worker_name or '?'} sent no heartbeat since {task.heartbeat_at}"
        )
        counts[outcome] += 1
    # Scheduled cycles still waiting after their window's bound will never be run (their
    # messages expired): record them as skipped so that the window has its reason.
    counts["skipped"] = 0
    for task in BACnetTask.objects.filter(status=Status.PENDING, window_start__isnull=False):
        if windows.is_too_late(task, now):
            windows.skip_late_cycle(task, now)
            publish_task_change(task.pk)
            counts["skipped"] += 1
    from discovery.jobs import fail_jobs_without_worker

    counts["no_worker"] = fail_jobs_without_worker(now)
    counts["disabled"] = sum(
        windows.record_disabled_windows(now, site) for site in Site.objects.all()
    )
    # A safety net under the override check of its own (database worker, beat).
    from discovery.services.commanding import relinquish_due_overrides

    counts["overrides_ended"] = relinquish_due_overrides(now)
    # Oldest first, and stop at the first failure: the broker is still away, and each
    # further try would only wait out the same timeout.
    from discovery.backends import get_backend

    undelivered = (
        BACnetTask.objects.filter(
            status=Status.PENDING,
            backend="celery",
            dispatched_at__isnull=True,
            created_at__lt=now - timedelta(seconds=5),
        )
        .order_by("created_at", "id")
        .values_list("pk", flat=True)
    )
    for task_id in undelivered:
        counts["redispatched"] += 1
        if not get_backend("celery").dispatch(task_id, force=True):
            break
    return counts
