"""Alarms from the in-alarm status flag: raised, cleared, acknowledged. No BACnet here."""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

from django.db import transaction
from django.db.models import Exists, F, OuterRef
from django.utils import timezone

from discovery.models import Alarm, BACnetPoint, StatusFlags
from discovery.services.alerts import announce_new_alarms

log = logging.getLogger(__name__)


def sync_alarms() -> tuple[int, int]:
    """Open an alarm for each point whose latest status flags say in-alarm and that has
    none open; clear the open alarms of points whose flags say it no longer is. Returns
    (raised, cleared). Idempotent: runs after every batch of readings."""
    in_alarm = F("last_status_flags").bitand(StatusFlags.IN_ALARM)
    open_alarm = Alarm.objects.filter(point=OuterRef("pk"), cleared_at__isnull=True)
    with transaction.atomic():
        rising = (
            BACnetPoint.objects.annotate(flag=in_alarm, has_open=Exists(open_alarm))
            .filter(flag=StatusFlags.IN_ALARM, has_open=False)
            .values_list("pk", "last_read_at")
        )
        now = timezone.now()
        raised = Alarm.objects.bulk_create(
            [
                Alarm(point_id=pk, raised_at=at or now, message="in-alarm status flag set")
                for pk, at in rising
            ],
            ignore_conflicts=True,
        )
        announce_new_alarms(raised)  # e-mail and webhook notices, sent after commit
        cleared = 0
        falling = Alarm.objects.filter(
            cleared_at__isnull=True, point__last_status_flags__isnull=False
        ).select_related("point")
        for alarm in falling:
            if not (alarm.point.last_status_flags or 0) & StatusFlags.IN_ALARM:
                alarm.cleared_at = alarm.point.last_read_at or now
                alarm.save(update_fields=["cleared_at"])
                cleared += 1
    if raised or cleared:
        log.info("Alarms: %s raised, %s cleared", len(raised), cleared)
    return len(raised), cleared


def acknowledge(alarm: Alarm, user: Any, at: datetime | None = None) -> bool:
    """Record who acknowledged the alarm; False if it already was (the first one stays)."""
    at = at or timezone.now()
    updated = Alarm.objects.filter(pk=alarm.pk, acknowledged_at__isnull=True).update(
        acknowledged_at=at, acknowledged_by=user
    )
    if updated:
        log.info("Alarm %s (point %s) acknowledged by %s", alarm.pk, alarm.point_id, user)
    alarm.refresh_from_db()
    return bool(updated)


def alarms_for_page(user: Any, history: int = 100) -> tuple[list[Alarm], list[Alarm]]:
    """(active, newest first; the latest ``history`` cleared ones) of the sites ``user``
    may see."""
    from discovery.sites import scoped

    base = scoped(
        Alarm.objects.select_related("point__device", "acknowledged_by"),
        user,
        "point__device__site",
    )
    active = list(base.filter(cleared_at__isnull=True).order_by("-raised_at"))
    cleared = list(base.filter(cleared_at__isnull=False).order_by("-raised_at")[:history])
    return active, cleared
