"""Default beat schedules, installed once on migrate and editable in the admin afterwards,
and the beat scheduler that sends collection once per window.

Each periodic entry expires after its own period, so a backlog (worker down for an hour)
does not pile up sixty collection cycles for when it comes back. The "Collect readings"
entry's interval is the collection period for both backends (``discovery.windows``);
``BACNET_COLLECT_INTERVAL_S`` is only its value on the first migrate."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

from celery.schedules import schedstate
from django.conf import settings
from django_celery_beat.schedulers import DatabaseScheduler, ModelEntry

DEFAULT_ENTRIES = (
    "Collect readings",
    "Hourly statistics",
    "Daily statistics",
    "Sweep jobs",
    "Readings maintenance",
    "Send alarm notices",
)


def install_default_schedules(**_: Any) -> list[str]:
    """Create the default periodic tasks that do not exist yet (by name). Returns the
    names created; entries a user has edited or disabled are left alone."""
    from django_celery_beat.models import CrontabSchedule, IntervalSchedule, PeriodicTask

    collect_every = settings.BACNET_COLLECT_INTERVAL_S
    every_collect, _ = IntervalSchedule.objects.get_or_create(
        every=collect_every, period=IntervalSchedule.SECONDS
    )
    override_check = max(1, settings.BACNET_OVERRIDE_CHECK_S)
    every_override_check, _ = IntervalSchedule.objects.get_or_create(
        every=override_check, period=IntervalSchedule.SECONDS
    )
    every_minute, _ = IntervalSchedule.objects.get_or_create(
        every=60, period=IntervalSchedule.SECONDS
    )
    every_half_minute, _ = IntervalSchedule.objects.get_or_create(
        every=30, period=IntervalSchedule.SECONDS
    )
    # A few minutes past the hour / midnight, so the closing bucket's readings are in.
    hourly, _ = CrontabSchedule.objects.get_or_create(
        minute="5", hour="*", day_of_week="*", day_of_month="*", month_of_year="*"
    )
    daily, _ = CrontabSchedule.objects.get_or_create(
        minute="15", hour="0", day_of_week="*", day_of_month="*", month_of_year="*"
    )
    # After the daily rollup, so the day that leaves the retention has its statistics.
    maintenance, _ = CrontabSchedule.objects.get_or_create(
        minute="45", hour="0", day_of_week="*", day_of_month="*", month_of_year="*"
    )
    wanted = {
        "Collect readings": dict(
            task="discovery.tasks.read_device_points",
            interval=every_collect,
            expire_seconds=collect_every,
        ),
        "Hourly statistics": dict(
            task="discovery.tasks.calculate_hourly_stats", crontab=hourly, expire_seconds=3600
        ),
        "Daily statistics": dict(
            task="discovery.tasks.calculate_daily_stats", crontab=daily, expire_seconds=86400
        ),
        "Readings maintenance": dict(
            task="discovery.tasks.maintain_readings", crontab=maintenance, expire_seconds=86400
        ),
        "Sweep jobs": dict(
            task="discovery.tasks.sweep_jobs", interval=every_minute, expire_seconds=60
        ),
        "Relinquish overrides": dict(
            task="discovery.tasks.relinquish_due_overrides",
            interval=every_override_check,
            expire_seconds=override_check,
        ),
        "Send alarm notices": dict(
            task="discovery.tasks.send_due_alerts", interval=every_half_minute, expire_seconds=30
        ),
    }
    event_poll = settings.BACNET_EVENT_POLL_S
    if event_poll > 0:
        every_event_poll, _ = IntervalSchedule.objects.get_or_create(
            every=event_poll, period=IntervalSchedule.SECONDS
        )
        wanted["Poll event information"] = dict(
            task="discovery.tasks.request_event_polls",
            interval=every_event_poll,
            expire_seconds=event_poll,
        )
    created = []
    for name, fields in wanted.items():
        _, was_created = PeriodicTask.objects.get_or_create(
            name=name, defaults={**fields, "args": json.dumps([]), "kwargs": json.dumps({})}
        )
        if was_created:
            created.append(name)
    return created


# -- beat: one message per collection window ----------------------------------------------


class WindowEntry(ModelEntry):
    """The collection entry is due once per window, at the window's start, whenever the
    previous message went (an interval schedule counts from the last send, and drifts)."""

    def is_due(self) -> tuple[bool, float]:
        from discovery.windows import COLLECT_TASK, window_start

        run_every = getattr(self.schedule, "run_every", None)
        if self.task != COLLECT_TASK or run_every is None or not self.model.enabled:
            return super().is_due()
        period = max(int(run_every.total_seconds()), 1)
        now = datetime.now(UTC)
        current = window_start(now, period)
        until_next = (current + timedelta(seconds=period) - now).total_seconds()
        last = self.last_run_at
        if last is not None and last.tzinfo is None:
            last = last.replace(tzinfo=UTC)
        if last is None or last < current:
            return schedstate(True, until_next)
        return schedstate(False, until_next)


class WindowScheduler(DatabaseScheduler):
    """django-celery-beat's scheduler, with collection stamped with its window.

    Each collection message carries the window it was meant for (``window_start``,
    ``period_s``) and expires at the window's bound: however late the worker takes it,
    it is stored as that window or skipped, never as the next one."""

    Entry = WindowEntry

    def apply_async(self, entry: Any, producer: Any = None, advance: bool = True, **kwargs: Any):
        from discovery.windows import COLLECT_TASK, late_bound_s, window_start

        run_every = getattr(entry.schedule, "run_every", None)
        if entry.task == COLLECT_TASK and run_every is not None:
            period = max(int(run_every.total_seconds()), 1)
            start = window_start(datetime.now(UTC), period)
            saved = entry.kwargs, entry.options
            # Entries cannot be copied (their pickling needs a model): stamp this send.
            entry.kwargs = {
                **(entry.kwargs or {}),
                "window_start": start.isoformat(),
                "period_s": period,
            }
            entry.options = {
                **(entry.options or {}),
                "expires": start + timedelta(seconds=late_bound_s(period)),
            }
            try:
                return super().apply_async(entry, producer, advance, **kwargs)
            finally:
                entry.kwargs, entry.options = saved
        return super().apply_async(entry, producer, advance, **kwargs)
