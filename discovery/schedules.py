"""Default beat schedules, installed once on migrate and editable in the admin afterwards.

Each periodic entry expires after its own period, so a backlog (worker down for an hour)
does not pile up sixty collection cycles for when it comes back."""

from __future__ import annotations

import json
from typing import Any

from django.conf import settings

DEFAULT_ENTRIES = ("Collect readings", "Hourly statistics", "Daily statistics", "Sweep jobs")


def install_default_schedules(**_: Any) -> list[str]:
    """Create the default periodic tasks that do not exist yet (by name). Returns the
    names created; entries a user has edited or disabled are left alone."""
    from django_celery_beat.models import CrontabSchedule, IntervalSchedule, PeriodicTask

    collect_every = settings.BACNET_COLLECT_INTERVAL_S
    every_collect, _ = IntervalSchedule.objects.get_or_create(
        every=collect_every, period=IntervalSchedule.SECONDS
    )
    every_minute, _ = IntervalSchedule.objects.get_or_create(
        every=60, period=IntervalSchedule.SECONDS
    )
    # A few minutes past the hour / midnight, so the closing bucket's readings are in.
    hourly, _ = CrontabSchedule.objects.get_or_create(
        minute="5", hour="*", day_of_week="*", day_of_month="*", month_of_year="*"
    )
    daily, _ = CrontabSchedule.objects.get_or_create(
        minute="15", hour="0", day_of_week="*", day_of_month="*", month_of_year="*"
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
        "Sweep jobs": dict(
            task="discovery.tasks.sweep_jobs", interval=every_minute, expire_seconds=60
        ),
    }
    created = []
    for name, fields in wanted.items():
        _, was_created = PeriodicTask.objects.get_or_create(
            name=name, defaults={**fields, "args": json.dumps([]), "kwargs": json.dumps({})}
        )
        if was_created:
            created.append(name)
    return created
