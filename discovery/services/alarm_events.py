"""Alarms from the devices themselves, in the BACnet worker: event notifications stored,
event information polled, acknowledgements sent, the worker registered as a recipient.

Notifications arrive on the client's loop thread and wait in its bounded queue;
``EventStore.flush`` (called by the worker's COV keeper thread, every
``BACNET_COV_FLUSH_S``, in both backends) applies everything that arrived in one
transaction: a storm costs one transaction per flush, not one per packet. While the
database is away the notices stay in ``pending`` (at most ``BACNET_EVENT_BUFFER``; what
the bound drops is counted in ``lost``, logged, and shown on the worker's row) and are
applied when it is back.

A notification about an object the product never enumerated gets a point of its own
(polling off, its description says so), so its alarm is visible; one from a device the
product does not know is counted and logged.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from discovery.bacnet_types import (
    EventInformation,
    EventNotice,
    EventSummary,
)
from discovery.models import (
    Alarm,
    BACnetDevice,
    BACnetPoint,
    BACnetTask,
    BACnetWorker,
    Site,
    default_site_id,
)
from discovery.services.alarms import DEVICE_SOURCES, raise_alarms

log = logging.getLogger(__name__)

_Key = tuple[int, str, int]  # device instance, object type, object instance


def _when(unix: float | None, fallback: float) -> datetime:
    return datetime.fromtimestamp(unix if unix is not None else fallback, tz=UTC)


def _points(site_id: int, keys: Iterable[_Key], counts: dict[str, int]) -> dict[_Key, int]:
    """Point ids of ``keys``; objects of known devices that are not points yet get one
    (an object the device never listed, or one not enumerated yet)."""
    keys = set(keys)
    devices = {k[0] for k in keys}
    known = {
        (d, t, i): pk
        for pk, d, t, i in BACnetPoint.objects.filter(
            device__site_id=site_id, device__device_instance__in=devices
        ).values_list("id", "device__device_instance", "object_type", "object_instance")
    }
    missing = keys - set(known)
    if missing:
        by_instance = {
            d.device_instance: d
            for d in BACnetDevice.objects.filter(site_id=site_id, device_instance__in=devices)
        }
        for device, object_type, instance in sorted(missing):
            owner = by_instance.get(device)
            if owner is None:
                counts["unknown_devices"] += 1
                log.warning(
                    "event notification from device %s, unknown here: discover it first", device
                )
                continue
            point, _ = BACnetPoint.objects.get_or_create(
                device=owner,
                object_type=object_type,
                object_instance=instance,
                defaults={
                    "name": f"{object_type} {instance}",
                    "description": "Not in the device's object list: known from its alarms.",
                    "polling_enabled": False,
                },
            )
            counts["unknown_objects"] += 1
            log.warning(
                "event notification for %s,%s of device %s, which it never listed: recorded "
                "as point %s",
                object_type,
                instance,
                device,
                point.pk,
            )
            known[(device, object_type, instance)] = point.pk
    return known


def _event_fields(notice: EventNotice) -> dict[str, Any]:
    return {
        "event_state": notice.to_state,
        "from_state": notice.from_state,
        "event_type": notice.event_type,
        "priority": notice.priority,
        "notify_type": notice.notify_type,
        "ack_required": notice.ack_required,
        "notification_class": notice.notification_class,
        "event_time": _when(notice.event_time, notice.at),
        "event_stamp": notice.event_stamp,
    }


def apply_notices(notices: list[EventNotice], site_id: int | None = None) -> dict[str, int]:
    """Raise, update and clear alarms from notifications (arrival order), in one
    transaction. Returns counts (raised, updated, cleared, unknown objects/devices)."""
    counts: dict[str, int] = defaultdict(int)
    if not notices:
        return counts
    site_id = site_id or default_site_id()
    with transaction.atomic():
        ids = _points(site_id, {(n.device, n.object_type, n.instance) for n in notices}, counts)
        open_rows = {
            a.point_id: a
            for a in Alarm.objects.filter(point_id__in=set(ids.values()), cleared_at__isnull=True)
        }
        new: dict[int, Alarm] = {}
        done: list[Alarm] = []  # raised and cleared within this batch
        changed: dict[int, Alarm] = {}
        for notice in notices:
            pk = ids.get((notice.device, notice.object_type, notice.instance))
            if pk is None or notice.notify_type == "ack-notification":
                continue
            alarm = new.get(pk) or open_rows.get(pk)
            fields = _event_fields(notice)
            if notice.to_state == "normal":
                if alarm is not None:
                    alarm.cleared_at = fields["event_time"]
                    alarm.event_state, alarm.from_state = "normal", notice.from_state
                    if pk in new:
                        done.append(new.pop(pk))
                    else:
                        changed[pk] = open_rows.pop(pk)
                    counts["cleared"] += 1
                continue
            if alarm is None:
                new[pk] = Alarm(
                    point_id=pk,
                    source=Alarm.Source.NOTIFICATION,
                    raised_at=fields["event_time"],
                    message=notice.message or f"{notice.to_state} ({notice.event_type})",
                    **fields,
                )
                continue
            for name, value in fields.items():
                setattr(alarm, name, value)
            if notice.message:
                alarm.message = notice.message
            if pk not in new:
                changed[pk] = alarm
                counts["updated"] += 1
        if changed:
            Alarm.objects.bulk_update(
                list(changed.values()),
                ["cleared_at", "message", *_event_fields(notices[0]).keys()],
            )
        counts["raised"] = len(raise_alarms([*new.values(), *done]))
    return counts


class EventStore:
    """The worker's notifications, buffered and applied in batches (see module)."""

    def __init__(self, site_id: int | None = None, worker_name: str = "") -> None:
        self.site_id = site_id
        self.worker_name = worker_name
        self.pending: list[EventNotice] = []
        self.totals: dict[str, int] = defaultdict(int)
        self._saved_totals: dict[str, int] = {}

    def flush(self, client: Any) -> int:
        """Apply what arrived (and what a database outage held back); the count of
        notices applied."""
        notices, dropped, garbage = client.take_event_notices()
        self.pending += notices
        self.totals["received"] += len(notices)
        self.totals["garbage"] += garbage
        self.totals["dropped"] += dropped
        overflow = len(self.pending) - settings.BACNET_EVENT_BUFFER
        if overflow > 0:
            del self.pending[:overflow]
            self.totals["lost"] += overflow
        if dropped or overflow > 0:
            log.warning(
                "Event notifications lost to full buffers: %s (client) + %s (database away)",
                self.totals["dropped"],
                self.totals["lost"],
            )
        if garbage:
            log.warning("Event notifications with garbage parameters dropped: %s", garbage)
        self._save_totals()
        applied = 0
        if self.pending:
            counts = apply_notices(self.pending, self.site_id)
            applied = len(self.pending)
            self.pending = []
            for name in ("unknown_objects", "unknown_devices"):
                self.totals[name] += counts.get(name, 0)
            if counts.get("raised") or counts.get("cleared"):
                log.info(
                    "Event notifications: %s applied, %s raised, %s cleared",
                    applied,
                    counts.get("raised", 0),
                    counts.get("cleared", 0),
                )
            self._save_totals()
        return applied

    def _save_totals(self) -> None:
        if self.worker_name and dict(self.totals) != self._saved_totals:
            BACnetWorker.objects.filter(name=self.worker_name).update(
                event_counts=dict(self.totals)
            )
            self._saved_totals = dict(self.totals)


# -- polls ---------------------------------------------------------------------------------


def _summary_time(summary: EventSummary, fallback: datetime) -> datetime:
    index = 1 if summary.event_state == "fault" else 0
    at = summary.times[index]
    return datetime.fromtimestamp(at, tz=UTC) if at is not None else fallback


def apply_event_information(
    device: BACnetDevice, info: EventInformation, asked_at: datetime | None = None
) -> dict[str, int]:
    """Raise alarms for objects the device says are not normal and the product did not
    know about; clear the device-reported open alarms of objects it no longer lists as
    not normal (a return to normal whose notification was lost), except those raised
    since the device was asked (``asked_at``: a notification may overtake the answer)."""
    counts: dict[str, int] = defaultdict(int)
    source = (
        Alarm.Source.EVENT_INFO
        if info.service == "event-information"
        else Alarm.Source.ALARM_SUMMARY
    )
    now = timezone.now()
    offnormal = [s for s in info.summaries if s.event_state != "normal"]
    with transaction.atomic():
        keys = {(device.device_instance, s.object_type, s.instance) for s in offnormal}
        ids = _points(device.site_id or default_site_id(), keys, counts)
        open_rows = {
            a.point_id: a
            for a in Alarm.objects.filter(point_id__in=set(ids.values()), cleared_at__isnull=True)
        }
        new = []
        for summary in offnormal:
            pk = ids.get((device.device_instance, summary.object_type, summary.instance))
            if pk is None:
                continue
            index = 1 if summary.event_state == "fault" else 0
            raised_at = _summary_time(summary, now)
            fields: dict[str, Any] = {
                "event_state": summary.event_state,
                "priority": summary.priorities[index],
                "notify_type": summary.notify_type,
                "ack_required": not summary.acked[index],
                "event_stamp": summary.stamps[index],
                "event_time": raised_at,
            }
            alarm = open_rows.get(pk)
            if alarm is None:
                new.append(
                    Alarm(
                        point_id=pk,
                        source=source,
                        raised_at=raised_at,
                        message=f"{summary.event_state} (learnt by polling the device)",
                        **fields,
                    )
                )
            elif alarm.event_state != summary.event_state or (
                alarm.ack_required and summary.acked[index]
            ):
                if alarm.ack_required and summary.acked[index] and not alarm.device_ack:
                    alarm.device_ack_note = "acknowledged on the device"
                alarm.event_state = summary.event_state
                alarm.save(update_fields=["event_state", "device_ack_note"])
                counts["updated"] += 1
        counts["raised"] = len(raise_alarms(new))
        listed = set(ids.values())
        stale = Alarm.objects.filter(
            point__device=device, cleared_at__isnull=True, source__in=DEVICE_SOURCES
        ).exclude(point_id__in=listed)
        if asked_at is not None:
            stale = stale.filter(raised_at__lt=asked_at)
        counts["cleared"] = stale.update(cleared_at=now, event_state="normal")
        BACnetDevice.objects.filter(pk=device.pk).update(
            events_polled_at=now, alarm_services=info.service
        )
    return counts


def poll_devices(client: Any, devices: list[BACnetDevice]) -> dict[str, Any]:
    """Ask each device for its event states and apply the answers."""
    asked_at = timezone.now()
    polls = client.poll_events([(d.device_instance, d.address, d.alarm_services) for d in devices])
    by_instance = {d.device_instance: d for d in devices}
    result: dict[str, Any] = {"devices": len(devices), "raised": 0, "cleared": 0, "errors": {}}
    for poll in polls:
        device = by_instance[poll.device]
        if poll.error:
            result["errors"][str(poll.device)] = poll.error[:300]
            continue
        if poll.info is None:  # the device has neither service
            BACnetDevice.objects.filter(pk=device.pk).update(
                alarm_services=poll.services, events_polled_at=timezone.now()
            )
            continue
        counts = apply_event_information(device, poll.info, asked_at)
        result["raised"] += counts.get("raised", 0)
        result["cleared"] += counts.get("cleared", 0)
    return result


def pollable_devices(site_id: int) -> list[BACnetDevice]:
    """The online devices of a site that may answer an event-information poll."""
    return list(
        BACnetDevice.objects.filter(site_id=site_id, is_online=True).exclude(alarm_services="none")
    )


def request_event_polls() -> int:
    """One poll job per site with devices to poll; returns how many were requested."""
    from discovery.jobs import request_job

    requested = 0
    for site in Site.objects.all():
        devices = pollable_devices(site.pk)
        if not devices:
            continue
        request_job(
            BACnetTask.Kind.POLL_EVENTS,
            {"device_ids": [d.pk for d in devices]},
            trigger=BACnetTask.Trigger.SCHEDULED,
            site=site,
        )
        requested += 1
    return requested
