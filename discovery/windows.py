"""Collection windows: the clock of periodic collection, in both backends.

Time is cut into windows of the collection period, aligned to the epoch (at 60 s:
10:41:00, 10:42:00, ...). A scheduled cycle belongs to one window and its readings are
stored at the window's start, whenever its message is processed:

- Celery mode: beat (``discovery.schedules.WindowScheduler``) sends one message per
  window, at the window's start, stamped with that window; a late message keeps its
  window and never takes the next one.
- Database mode: the worker opens the window itself when its start comes (it sleeps
  until the next window, not "now + period").

The period has one source of truth per site: the site's "Collect readings" schedule (the
admin's beat schedule; the database worker reads the same row). ``BACNET_COLLECT_INTERVAL_S``
(or the site's ``collect_interval_s``) is only the value installed with the schedule.
Each site has its own windows, cycles and gaps: one site's outage is not another's.

A cycle that starts more than ``late_bound_s`` after its window's start is not run: its
values would be read now and stored as history of a moment long gone. It is skipped,
and the skip is recorded as a ``CollectionGap`` (reason ``late``). Every window that has
no cycle gets a gap row with the reason, so that windows with a cycle plus gaps is the
count of windows (``account``).
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import Max, Q
from django.utils import timezone

from discovery.models import DEFAULT_SITE_SLUG, BACnetTask, BACnetWorker, CollectionGap, Site

log = logging.getLogger(__name__)

COLLECT_TASK = "discovery.tasks.read_device_points"
Reason = CollectionGap.Reason
# Catching up after an outage records at most this many gap rows at once (a week down at
# 10 s is 60,480 windows); beyond, the windows stay visible as ``unexplained``.
MAX_GAPS_AT_ONCE = 100_000
# Up to this many missing windows get a reason each; more are one outage, one reason.
FEW_GAPS = 20


def window_start(moment: datetime, period_s: int) -> datetime:
    """The start of the window that ``moment`` falls in (UTC, whole periods)."""
    period_s = max(int(period_s), 1)
    epoch = moment.timestamp()
    return datetime.fromtimestamp(epoch - epoch % period_s, tz=UTC).replace(microsecond=0)


def site_of(site: Site | int | None) -> Site:
    """The site given (or by id), else the default one."""
    if isinstance(site, Site):
        return site
    return Site.objects.get(pk=site) if site else Site.default()


def site_kwarg(slug: str) -> str:
    """How a site's collection schedule names its site in its JSON kwargs."""
    return f'"site": "{slug}"'


def collection_schedule(site: Site | int | None = None) -> Any:
    """The beat schedule row of a site's periodic collection (django-celery-beat), or
    None. The default site's is the one that names no site."""
    from django_celery_beat.models import PeriodicTask

    slug = site_of(site).slug
    rows = PeriodicTask.objects.filter(task=COLLECT_TASK, interval__isnull=False)
    if slug == DEFAULT_SITE_SLUG:
        rows = rows.exclude(kwargs__contains='"site"')
    else:
        rows = rows.filter(kwargs__contains=site_kwarg(slug))
    return rows.select_related("interval").order_by("-enabled", "id").first()


def period_of(schedule: Any) -> int:
    if schedule is None:
        return settings.BACNET_COLLECT_INTERVAL_S
    return max(int(schedule.interval.schedule.run_every.total_seconds()), 1)


def collection_period_s(site: Site | int | None = None) -> int:
    """A site's collection period: its schedule's, else ``BACNET_COLLECT_INTERVAL_S``."""
    return period_of(collection_schedule(site))


def warn_if_period_differs() -> None:
    """Say so at start-up when ``BACNET_COLLECT_INTERVAL_S`` is set but the schedule
    (the one source of truth) says otherwise: the variable only seeds the schedule."""
    schedule = collection_schedule()
    if schedule is None or "BACNET_COLLECT_INTERVAL_S" not in os.environ:
        return
    if period_of(schedule) != settings.BACNET_COLLECT_INTERVAL_S:
        log.warning(
            "BACNET_COLLECT_INTERVAL_S is %s s but the %r schedule says %s s: the schedule "
            "is used (edit it in the admin); the variable only sets it on the first migrate",
            settings.BACNET_COLLECT_INTERVAL_S,
            schedule.name,
            period_of(schedule),
        )


def collection_enabled(site: Site | int | None = None) -> bool:
    schedule = collection_schedule(site)
    return schedule is None or schedule.enabled


def late_bound_s(period_s: int) -> float:
    """How late after its window's start a cycle may still start: one period, but at
    least ``BACNET_COLLECT_MAX_LATE_S`` (room for a worker restart and a retry)."""
    return float(max(period_s, settings.BACNET_COLLECT_MAX_LATE_S))


def expiry_of(task: BACnetTask) -> datetime | None:
    """When a message carrying ``task`` stops being worth running (scheduled cycles)."""
    if task.window_start is None:
        return None
    period = task.window_period_s or collection_period_s(task.site_id)
    return task.window_start + timedelta(seconds=late_bound_s(period))


def is_too_late(task: BACnetTask, now: datetime | None = None) -> bool:
    expiry = expiry_of(task)
    return expiry is not None and (now or timezone.now()) > expiry


# -- opening windows and recording gaps ---------------------------------------------------


def window_key(start: datetime, site: Site) -> str:
    """The dedupe key of a site's window (the default site's keeps the older form)."""
    if site.is_default:
        return f"collect:{start.isoformat()}"
    return f"collect:{site.slug}:{start.isoformat()}"


def open_window(
    start: datetime,
    period_s: int,
    backend: str,
    now: datetime | None = None,
    site: Site | int | None = None,
) -> BACnetTask | None:
    """The pending job of a site's window starting at ``start``, created once however
    often it is asked for (beat, a re-delivered message, a second worker). None if the
    window already ran, or is past its bound (then recorded as a ``late`` gap)."""
    now = now or timezone.now()
    site = site_of(site)
    key = window_key(start, site)
    existing = BACnetTask.objects.filter(dedupe_key=key).first()
    if existing is None and now > start + timedelta(seconds=late_bound_s(period_s)):
        record_gap(start, period_s, Reason.LATE, f"message processed at {now:%H:%M:%S}", site)
        return None
    if existing is None:
        fill_gaps_before(start, period_s, backend, now, site)
        try:
            with transaction.atomic():
                existing = BACnetTask.objects.create(
                    site=site,
                    dedupe_key=key,
                    kind=BACnetTask.Kind.COLLECT,
                    trigger=BACnetTask.Trigger.SCHEDULED,
                    backend=backend,
                    parameters={"cycle_at": start.isoformat()},
                    dispatched_at=now,
                    window_start=start,
                    window_period_s=period_s,
                )
        except IntegrityError:  # a second worker opened it at the same moment
            existing = BACnetTask.objects.get(dedupe_key=key)
        # A gap recorded for this window earlier (e.g. "disabled") is superseded.
        CollectionGap.objects.filter(site=site, window_start=start).delete()
    return existing if existing.status == BACnetTask.Status.PENDING else None


def record_gap(
    start: datetime,
    period_s: int,
    reason: str,
    detail: str = "",
    site: Site | int | None = None,
) -> None:
    """Record that a site's window starting at ``start`` has no cycle, unless it has one."""
    site = site_of(site)
    if BACnetTask.objects.filter(site=site, window_start=start).exists():
        return
    _, created = CollectionGap.objects.get_or_create(
        site=site,
        window_start=start,
        defaults={"period_s": period_s, "reason": reason, "detail": detail[:255]},
    )
    if created:
        log.warning(
            "Collection window %s of %s skipped: %s %s", start.isoformat(), site, reason, detail
        )


def last_known_window(site: Site | int | None = None) -> tuple[datetime, int] | None:
    """The latest window of a site with a cycle or a gap, and its period."""
    site = site_of(site)
    task = (
        BACnetTask.objects.filter(site=site, window_start__isnull=False)
        .order_by("-window_start")
        .values_list("window_start", "window_period_s")
        .first()
    )
    gap = (
        CollectionGap.objects.filter(site=site)
        .order_by("-window_start")
        .values_list("window_start", "period_s")
        .first()
    )
    candidates = [(c[0], c[1]) for c in (task, gap) if c is not None and c[0] is not None]
    if not candidates:
        return None
    start, period = max(candidates, key=lambda c: c[0])
    return start, period or collection_period_s(site)


def windows_between(after_end: datetime, before: datetime, period_s: int) -> list[datetime]:
    """Window starts of ``period_s`` from ``after_end`` (rounded up) to before ``before``."""
    first = window_start(after_end, period_s)
    if first < after_end:
        first += timedelta(seconds=period_s)
    starts: list[datetime] = []
    moment = first
    while moment < before and len(starts) < MAX_GAPS_AT_ONCE:
        starts.append(moment)
        moment += timedelta(seconds=period_s)
    return starts


def fill_gaps_before(
    start: datetime, period_s: int, backend: str, now: datetime, site: Site | None = None
) -> int:
    """Record a gap, with the likeliest reason, for every window of a site between the
    last known one and ``start``. Returns the number of gaps recorded."""
    site = site_of(site)
    last = last_known_window(site)
    if last is None or last[0] >= start:
        return 0
    previous_end = last[0] + timedelta(seconds=last[1])
    missing = windows_between(previous_end, start, period_s)
    if len(missing) > FEW_GAPS:
        # A long outage has one cause: ask once, record them all in one insert.
        reason, detail = why_missing(missing[0], backend, site)
        record_gaps(missing, period_s, reason, detail, site)
    else:
        for moment in missing:
            reason, detail = why_missing(moment, backend, site)
            record_gap(moment, period_s, reason, detail, site)
    return len(missing)


def record_gaps(
    starts: list[datetime], period_s: int, reason: str, detail: str, site: Site | None = None
) -> None:
    """Record many gaps at once (windows that have a cycle or a gap are left alone)."""
    site = site_of(site)
    CollectionGap.objects.bulk_create(
        [
            CollectionGap(
                site=site, window_start=s, period_s=period_s, reason=reason, detail=detail[:255]
            )
            for s in starts
        ],
        ignore_conflicts=True,
        batch_size=1000,
    )
    log.warning(
        "Collection windows %s to %s skipped: %s %s",
        starts[0].isoformat(),
        starts[-1].isoformat(),
        reason,
        detail,
    )


def why_missing(moment: datetime, backend: str, site: Site | None = None) -> tuple[str, str]:
    """The likeliest reason why a site's window starting at ``moment`` got no cycle
    (only that site's jobs and workers count: another site's are on another LAN)."""
    site = site_of(site)
    busy = (
        BACnetTask.objects.filter(site=site, backend=backend, started_at__lte=moment)
        .filter(Q(completed_at__gt=moment) | Q(completed_at__isnull=True))
        .exclude(started_at__isnull=True)
        .order_by("-started_at")
        .first()
    )
    if busy is not None:
        return Reason.OVERRUN, f"job {busy.pk} ({busy.kind}) was running"
    started = BACnetWorker.objects.filter(site=site, backend=backend).aggregate(Max("started_at"))
    first_start = started["started_at__max"]
    if first_start is None or first_start > moment:
        return Reason.WORKER_DOWN, "no BACnet worker was running yet"
    if backend == "database":
        return Reason.NO_MESSAGE, "the worker did not open it (database unreachable?)"
    return Reason.NO_MESSAGE, "no message came for this window (beat or broker down?)"


def record_disabled_windows(now: datetime | None = None, site: Site | int | None = None) -> int:
    """While a site's collection is disabled in its schedule, record each passed window
    as a ``disabled`` gap (called by the sweeper and the database worker)."""
    site = site_of(site)
    schedule = collection_schedule(site)
    if schedule is None or schedule.enabled:
        return 0
    now = now or timezone.now()
    period = period_of(schedule)
    last = last_known_window(site)
    if last is None:
        return 0
    current = window_start(now, period)
    missing = windows_between(last[0] + timedelta(seconds=last[1]), current, period)
    if missing:
        record_gaps(missing, period, Reason.DISABLED, f"schedule {schedule.name!r} disabled", site)
    return len(missing)


def skip_late_cycle(task: BACnetTask, now: datetime | None = None) -> None:
    """A scheduled cycle not started by its window's bound: failed with the reason, and
    its window recorded as a ``late`` gap."""
    now = now or timezone.now()
    bound = late_bound_s(task.window_period_s or collection_period_s(task.site_id))
    message = (
        f"Skipped at {now:%H:%M:%S}: not started within {bound:.0f} s of its window "
        f"{task.window_start:%H:%M:%S}; values read now would not be that window's."
    )
    # Only from the state the caller saw: a cycle a worker claimed meanwhile is its own.
    updated = BACnetTask.objects.filter(pk=task.pk, status=task.status).update(
        status=BACnetTask.Status.FAILED,
        error_message=message,
        progress="Skipped (late)",
        completed_at=now,
    )
    if not updated:
        return
    if task.window_start is not None:
        CollectionGap.objects.get_or_create(
            site=task.site,
            window_start=task.window_start,
            defaults={
                "period_s": task.window_period_s or 0,
                "reason": Reason.LATE,
                "detail": f"job {task.pk} not started by the bound ({now:%H:%M:%S})",
            },
        )
    log.warning("Job %s: %s", task.pk, message)


# -- accounting ---------------------------------------------------------------------------


@dataclass
class WindowAccount:
    """Windows from the first scheduled one to the last, and what each had."""

    windows: int
    with_readings: int  # completed cycles
    in_progress: int  # pending or running cycles
    failed: int
    gaps: int
    unexplained: list[datetime]


def account(
    since: datetime | None = None,
    until: datetime | None = None,
    site: Site | int | None = None,
) -> WindowAccount:
    """Walk a site's windows from the first known to the last: each has a cycle
    (completed, failed or still to run) or a gap; ``unexplained`` lists those with neither."""
    site = site_of(site)
    tasks = BACnetTask.objects.filter(site=site, window_start__isnull=False)
    gaps = CollectionGap.objects.filter(site=site)
    if since:
        tasks, gaps = tasks.filter(window_start__gte=since), gaps.filter(window_start__gte=since)
    if until:
        tasks, gaps = tasks.filter(window_start__lte=until), gaps.filter(window_start__lte=until)
    known: dict[datetime, tuple[str, int]] = {}
    for start, period in gaps.values_list("window_start", "period_s"):
        known[start] = ("gap", period)
    for task_start, task_period, status in tasks.values_list(
        "window_start", "window_period_s", "status"
    ):
        if task_start is not None:
            known[task_start] = (status, task_period or 0)
    result = WindowAccount(0, 0, 0, 0, 0, [])
    ordered = sorted(known)
    for index, start in enumerate(ordered):
        what, period = known[start]
        result.windows += 1
        if what == "gap":
            result.gaps += 1
        elif what == BACnetTask.Status.FAILED:
            result.failed += 1
        elif what == BACnetTask.Status.COMPLETED:
            result.with_readings += 1
        else:
            result.in_progress += 1
        if index + 1 < len(ordered) and period:
            following = ordered[index + 1]
            next_period = known[following][1] or period
            holes = windows_between(start + timedelta(seconds=period), following, next_period)
            result.unexplained.extend(holes)
            result.windows += len(holes)
    return result


def recent_summary(
    hours: int = 24, gaps_shown: int = 20, site: Site | int | None = None
) -> dict[str, Any]:
    """What the jobs page shows: a site's window account of the last hours, recent gaps."""
    site = site_of(site)
    since = timezone.now() - timedelta(hours=hours)
    return {
        "hours": hours,
        "site": site,
        "period_s": collection_period_s(site),
        "account": account(since=since, site=site),
        "gaps": list(CollectionGap.objects.filter(site=site, window_start__gte=since)[:gaps_shown]),
    }
