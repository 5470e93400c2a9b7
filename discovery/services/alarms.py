"""Alarms: raised, cleared, acknowledged (and the acknowledgement sent to the device
where it asks for one), the product registered as a device's alarm recipient. No BACnet
here: the worker's side is in ``alarm_events``.

``raise_alarms`` is the one function that creates ``Alarm`` rows, whatever the source
(status flags, event notifications, event-information polls): alerts hook onto it.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from django.db import IntegrityError, transaction
from django.db.models import Exists, F, OuterRef
from django.utils import timezone

from discovery.command_models import PointCommand
from discovery.models import Alarm, BACnetDevice, BACnetPoint, BACnetTask, StatusFlags
from discovery.services.alerts import announce_new_alarms
from discovery.services.commanding import NotAllowed, can_command

log = logging.getLogger(__name__)

# Sources a device reports itself: cleared by the device's word, not by status flags.
DEVICE_SOURCES = (Alarm.Source.NOTIFICATION, Alarm.Source.EVENT_INFO, Alarm.Source.ALARM_SUMMARY)


def raise_alarms(candidates: Sequence[Alarm]) -> list[Alarm]:
    """Create these alarms (unsaved rows), except for points that already have an open
    one (the first per point wins); returns the rows created. Every new ``Alarm`` row
    of the product is made here."""
    if not candidates:
        return []
    created: list[Alarm] = []
    with transaction.atomic():
        points = {a.point_id for a in candidates}
        busy = set(
            Alarm.objects.filter(point_id__in=points, cleared_at__isnull=True).values_list(
                "point_id", flat=True
            )
        )
        fresh: list[Alarm] = []
        for alarm in candidates:
            if alarm.cleared_at is None:
                if alarm.point_id in busy:
                    continue
                busy.add(alarm.point_id)
            fresh.append(alarm)
        try:
            with transaction.atomic():
                created = Alarm.objects.bulk_create(fresh)
        except IntegrityError:
            # Raised meanwhile by another writer (the unique open alarm per point):
            # one by one, keeping the ones that fit.
            created = []
            for alarm in fresh:
                alarm.pk = None
                try:
                    with transaction.atomic():
                        alarm.save(force_insert=True)
                    created.append(alarm)
                except IntegrityError:
                    continue
        announce_new_alarms(created)  # e-mail and webhook notices, sent after commit
    if created:
        log.info("Alarms raised: %s", ", ".join(f"{a.point_id}" for a in created[:20]))
    return created


def sync_alarms() -> tuple[int, int]:
    """Open an alarm for each point whose latest status flags say in-alarm and that has
    none open; clear the open flag alarms of points whose flags say it no longer is.
    Returns (raised, cleared). Idempotent: runs after every batch of readings.

    Flags read before an alarm of the point was cleared are old news (the device said
    "normal" by notification since): they raise nothing."""
    in_alarm = F("last_status_flags").bitand(StatusFlags.IN_ALARM)
    open_alarm = Alarm.objects.filter(point=OuterRef("pk"), cleared_at__isnull=True)
    cleared_since = Alarm.objects.filter(
        point=OuterRef("pk"), cleared_at__gte=OuterRef("last_read_at")
    )
    with transaction.atomic():
        rising = (
            BACnetPoint.objects.annotate(
                flag=in_alarm, has_open=Exists(open_alarm), stale=Exists(cleared_since)
            )
            .filter(flag=StatusFlags.IN_ALARM, has_open=False, stale=False)
            .values_list("pk", "last_read_at")
        )
        now = timezone.now()
        raised = raise_alarms(
            [
                Alarm(point_id=pk, raised_at=at or now, message="in-alarm status flag set")
                for pk, at in rising
            ]
        )
        cleared = 0
        falling = Alarm.objects.filter(
            cleared_at__isnull=True,
            source=Alarm.Source.STATUS_FLAGS,
            point__last_status_flags__isnull=False,
        ).select_related("point")
        for alarm in falling:
            if not (alarm.point.last_status_flags or 0) & StatusFlags.IN_ALARM:
                alarm.cleared_at = alarm.point.last_read_at or now
                alarm.save(update_fields=["cleared_at"])
                cleared += 1
    if raised or cleared:
        log.info("Alarms: %s raised, %s cleared", len(raised), cleared)
    return len(raised), cleared


def needs_device_ack(alarm: Alarm) -> bool:
    """The device asked for an acknowledgement of this transition, and said which."""
    return bool(alarm.ack_required and alarm.event_stamp and alarm.source in DEVICE_SOURCES)


def _audit(alarm: Alarm, user: Any, action: str, **fields: Any) -> PointCommand:
    point = alarm.point
    person = user if getattr(user, "is_authenticated", False) else None
    return PointCommand.objects.create(
        point=point,
        alarm=alarm,
        device_instance=point.device.device_instance,
        object_type=point.object_type,
        object_instance=point.object_instance,
        point_name=point.name[:255],
        user=person,
        username=person.get_username() if person else "",
        action=action,
        priority=None,
        **fields,
    )


def acknowledge(alarm: Alarm, user: Any, at: datetime | None = None) -> bool:
    """Record who acknowledged the alarm (the first one stays: False if it already was),
    in the audit trail too; where the device asked for it, request the job that sends
    AcknowledgeAlarm. Needs the permission of every other write (``NotAllowed``)."""
    if not can_command(user):
        raise NotAllowed("You may not acknowledge alarms (the Operators group may).")
    at = at or timezone.now()
    with transaction.atomic():
        updated = Alarm.objects.filter(pk=alarm.pk, acknowledged_at__isnull=True).update(
            acknowledged_at=at, acknowledged_by=user
        )
        alarm.refresh_from_db()
        if not updated:
            return False
        to_device = needs_device_ack(alarm)
        command = _audit(
            alarm,
            user,
            PointCommand.Action.ACKNOWLEDGE,
            value_text=alarm.event_state or "in alarm",
            result=PointCommand.Result.PENDING if to_device else PointCommand.Result.WRITTEN,
            message="" if to_device else "acknowledged in the product (the device does not ask)",
            finished_at=None if to_device else at,
        )
        if to_device:
            from discovery.jobs import request_job

            Alarm.objects.filter(pk=alarm.pk).update(device_ack=Alarm.DeviceAck.PENDING)
            command.task = request_job(
                BACnetTask.Kind.ACK_ALARM,
                {"command_id": command.pk},
                user=user,
                site=alarm.point.device.site,
            )
            command.save(update_fields=["task"])
    alarm.refresh_from_db()
    log.info("Alarm %s (point %s) acknowledged by %s", alarm.pk, alarm.point_id, user)
    return True


def request_registration(
    device: BACnetDevice, *, user: Any, confirmed: bool = True
) -> PointCommand:
    """Ask the device's worker to add itself to the device's notification classes'
    recipient lists: a write, with the same permission and audit as the others."""
    from discovery.jobs import request_job

    if not can_command(user):
        raise NotAllowed("You may not register for alarms (the Operators group may).")
    with transaction.atomic():
        command = PointCommand.objects.create(
            device_instance=device.device_instance,
            object_type="notification-class",
            object_instance=0,  # every notification class of the device
            point_name=f"{device} notification classes",
            user=user,
            username=user.get_username(),
            action=PointCommand.Action.REGISTER,
            priority=None,
            value_text="confirmed" if confirmed else "unconfirmed",
        )
        command.task = request_job(
            BACnetTask.Kind.REGISTER,
            {"command_id": command.pk, "device_id": device.pk, "confirmed": confirmed},
            user=user,
            site=device.site,
        )
        command.save(update_fields=["task"])
    return command


def alarms_for_page(user: Any, history: int = 100) -> tuple[list[Alarm], list[Alarm]]:
    """(active, most urgent first then newest; the latest ``history`` cleared ones) of
    the sites ``user`` may see."""
    from discovery.sites import scoped

    base = scoped(
        Alarm.objects.select_related("point__device", "acknowledged_by"),
        user,
        "point__device__site",
    )
    active = list(
        base.filter(cleared_at__isnull=True).order_by(
            F("priority").asc(nulls_last=True), "-raised_at"
        )
    )
    cleared = list(base.filter(cleared_at__isnull=False).order_by("-raised_at")[:history])
    return active, cleared
