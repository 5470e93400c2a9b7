"""Alarm notices by e-mail and webhook: queued with the alarm, sent off the BACnet worker.

A delivery row per (alarm, event, rule, channel) is recorded in the transaction that
raised the alarm (``announce_new_alarms``); after commit the Celery backend sends a
``deliver_alert`` task to the ``default`` queue and the database backend wakes
``manage.py send_alerts``. Either way ``deliver`` claims the row with a conditional
update, sends, and records the outcome: a retried or duplicated task finds the row
delivered and sends nothing twice. ``send_due_alerts`` (beat, or the sender's loop)
sends what is due or was lost, and queues the events no code path announced
(return to normal, acknowledgement, alarms raised elsewhere).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import partial
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import F, Q
from django.urls import reverse
from django.utils import timezone

from discovery.events import notify
from discovery.models import Alarm, AlarmEvent, AlertDelivery, AlertRule
from discovery.services.alert_channels import SendError, post_webhook, send_email

log = logging.getLogger(__name__)

DELIVER_TASK = "discovery.tasks.deliver_alert"
# The database backend's sender LISTENs on this (PostgreSQL; it polls elsewhere).
ALERT_WAITING = "bacnet_alert_waiting"
# When each event happened, on the alarm.
EVENT_TIME = {
    AlarmEvent.RAISED: "raised_at",
    AlarmEvent.CLEARED: "cleared_at",
    AlarmEvent.ACKNOWLEDGED: "acknowledged_at",
}
# Events no code path announced are looked for this far back (and never before the
# rule existed: a new rule does not send the history).
CATCH_UP = timedelta(hours=1)
# A Celery task's retry fires at its countdown, a little before the row's time at most.
CLOCK_SLACK = timedelta(seconds=1)
Status = AlertDelivery.Status


@dataclass(frozen=True)
class Outcome:
    """What one ``deliver`` did: ``status`` of the row after it (or ``skipped`` if it was
    not this call's to send), and when to try again."""

    status: str
    retry_in_s: float | None = None


def announce_new_alarms(alarms: Iterable[int | Alarm]) -> int:
    """Record the notices of newly raised alarms (ids, or the ``Alarm`` objects just
    created: ``bulk_create(ignore_conflicts=True)`` gives them no id, so they are found
    again by point and time) and send them once the transaction commits. Returns how many
    were recorded."""
    ids: list[int] = []
    unsaved: list[Q] = []
    for alarm in alarms:
        if isinstance(alarm, Alarm) and alarm.pk is None:
            unsaved.append(Q(point_id=alarm.point_id, raised_at=alarm.raised_at))
        else:
            ids.append(alarm.pk if isinstance(alarm, Alarm) else int(alarm))
    if unsaved:
        found = Alarm.objects.filter(cleared_at__isnull=True).filter(_any(unsaved))
        ids += list(found.values_list("pk", flat=True))
    return queue_deliveries(ids, AlarmEvent.RAISED)


def _any(conditions: list[Q]) -> Q:
    combined = Q(pk__in=[])
    for condition in conditions:
        combined |= condition
    return combined


def queue_deliveries(alarm_ids: Iterable[int], event: str) -> int:
    """A delivery row per matching rule and channel for each alarm (none twice), sent
    after commit."""
    ids = sorted(set(alarm_ids))
    if not ids:  # the common case: sync_alarms runs every few seconds
        return 0
    rules = [r for r in AlertRule.objects.filter(enabled=True) if r.hears(event)]
    if not rules:
        return 0
    alarms = Alarm.objects.filter(pk__in=ids).select_related("point__device")
    return _record(
        [(alarm, rule) for alarm in alarms for rule in rules if rule.matches(alarm)], event
    )


def _record(pairs: list[tuple[Alarm, AlertRule]], event: str) -> int:
    rows = [
        AlertDelivery(rule=rule, alarm=alarm, event=event, channel=channel)
        for alarm, rule in pairs
        for channel in rule.channels
    ]
    if not rows:
        return 0
    with transaction.atomic():
        before = set(_waiting_ids({a.pk for a, _ in pairs}, event))
        # A notice recorded already (the catch-up and an announcement racing) stays one.
        AlertDelivery.objects.bulk_create(rows, ignore_conflicts=True)
        new = [pk for pk in _waiting_ids({a.pk for a, _ in pairs}, event) if pk not in before]
        transaction.on_commit(partial(dispatch, new))
    return len(new)


def _waiting_ids(alarm_ids: set[int], event: str) -> list[int]:
    return list(
        AlertDelivery.objects.filter(
            alarm_id__in=alarm_ids, event=event, status=Status.PENDING, attempts=0
        ).values_list("pk", flat=True)
    )


def dispatch(delivery_ids: list[int]) -> None:
    """Hand committed deliveries to whoever sends them. A broker that cannot be reached
    costs one bounded attempt, not one per notice: the rows wait for ``send_due_alerts``."""
    if not delivery_ids:
        return
    if settings.BACNET_BACKEND != "celery":
        notify(ALERT_WAITING, str(len(delivery_ids)))
        return
    from discovery.backends import send_bounded

    for pk in delivery_ids:
        try:
            send_bounded(DELIVER_TASK, pk)
        except Exception as exc:  # kombu raises OperationalError, timeouts, socket errors
            log.warning("Alarm notices not sent to the broker (%s): sent when due", exc)
            return


def claim(delivery_id: int, now: datetime | None = None) -> bool:
    """Take the delivery for this call: it must be waiting and due, or claimed by a
    sender that has not finished within its lease (it died). True if it was taken."""
    now = now or timezone.now()
    lease = timedelta(
        seconds=2 * max(settings.ALERT_WEBHOOK_TIMEOUT_S, settings.EMAIL_TIMEOUT) + 30
    )
    due = Q(status__in=[Status.PENDING, Status.RETRYING], next_attempt_at__lte=now + CLOCK_SLACK)
    abandoned = Q(status=Status.SENDING, claimed_until__lt=now)
    taken = (
        AlertDelivery.objects.filter(pk=delivery_id)
        .filter(due | abandoned)
        .update(status=Status.SENDING, claimed_until=now + lease, attempts=F("attempts") + 1)
    )
    return taken == 1


def deliver(delivery_id: int) -> Outcome:
    """Send one delivery if it is this call's to send, and record how it went."""
    if not claim(delivery_id):
        return Outcome("skipped")
    delivery = AlertDelivery.objects.select_related(
        "rule", "alarm__point__device__site", "alarm__acknowledged_by"
    ).get(pk=delivery_id)
    rule = delivery.rule
    try:
        if not rule.enabled:
            raise SendError("The rule was disabled before this was sent.", retry=False)
        if delivery.channel == AlertDelivery.Channel.WEBHOOK:
            if not rule.webhook_url:
                raise SendError("The rule has no webhook URL any more.", retry=False)
            post_webhook(rule.webhook_url, rule.webhook_secret, payload(delivery), delivery.pk)
        else:
            if not rule.email_recipients:
                raise SendError("The rule has no e-mail recipients any more.", retry=False)
            subject, body = email_text(delivery)
            send_email(list(rule.email_recipients), subject, body, delivery.pk)
    except SendError as exc:
        return _failed(delivery, str(exc), exc.retry)
    AlertDelivery.objects.filter(pk=delivery.pk, status=Status.SENDING).update(
        status=Status.DELIVERED, delivered_at=timezone.now(), claimed_until=None, last_error=""
    )
    log.info("Alarm notice %s delivered (%s, rule %r)", delivery.pk, delivery.channel, rule.name)
    return Outcome(Status.DELIVERED)


def _failed(delivery: AlertDelivery, error: str, retry: bool) -> Outcome:
    if retry and delivery.attempts < settings.ALERT_MAX_ATTEMPTS:
        wait = min(settings.ALERT_RETRY_BACKOFF_S * 2 ** (delivery.attempts - 1), 3600.0)
        AlertDelivery.objects.filter(pk=delivery.pk, status=Status.SENDING).update(
            status=Status.RETRYING,
            last_error=error,
            claimed_until=None,
            next_attempt_at=timezone.now() + timedelta(seconds=wait),
        )
        log.warning("Alarm notice %s failed (%s); again in %.3g s", delivery.pk, error, wait)
        return Outcome(Status.RETRYING, wait)
    if retry:
        error = f"{error} (gave up after {delivery.attempts} attempts)"
    AlertDelivery.objects.filter(pk=delivery.pk, status=Status.SENDING).update(
        status=Status.FAILED, last_error=error, claimed_until=None
    )
    log.error("Alarm notice %s failed for good: %s", delivery.pk, error)
    return Outcome(Status.FAILED)


def send_due_alerts(limit: int = 100, grace_s: float = 0.0) -> dict[str, int]:
    """Queue the events no one announced, then send the deliveries due (``grace_s``
    after their time: in Celery mode their own task normally sends them first). Run by
    beat (``Send alarm notices``) and by ``manage.py send_alerts``."""
    queued = queue_missed_events()
    now = timezone.now()
    due = (
        AlertDelivery.objects.filter(
            Q(
                status__in=[Status.PENDING, Status.RETRYING],
                next_attempt_at__lte=now - timedelta(seconds=grace_s),
            )
            | Q(status=Status.SENDING, claimed_until__lt=now)
        )
        .order_by("next_attempt_at")
        .values_list("pk", flat=True)[:limit]
    )
    counts = {"queued": queued, "delivered": 0, "retrying": 0, "failed": 0}
    for pk in list(due):
        outcome = deliver(pk)
        if outcome.status in counts:
            counts[outcome.status] += 1
    return counts


def next_due_in_s(default: float) -> float:
    """Seconds until the next retry is due (at most ``default``): the sender sleeps so."""
    at = (
        AlertDelivery.objects.filter(status__in=[Status.PENDING, Status.RETRYING])
        .order_by("next_attempt_at")
        .values_list("next_attempt_at", flat=True)
        .first()
    )
    if at is None:
        return default
    return max(0.0, min(default, (at - timezone.now()).total_seconds()))


def queue_missed_events(now: datetime | None = None) -> int:
    """Record the deliveries of recent events that no code path announced: returns to
    normal and acknowledgements (their code does not call in here), and alarms raised
    where ``announce_new_alarms`` is not called. Within ``CATCH_UP``, after the rule."""
    now = now or timezone.now()
    rules = list(AlertRule.objects.filter(enabled=True))
    queued = 0
    for event, field in EVENT_TIME.items():
        hearing = [r for r in rules if r.hears(event)]
        if not hearing:
            continue
        since = max(now - CATCH_UP, min(r.created_at for r in hearing))
        alarms = list(
            Alarm.objects.filter(**{f"{field}__gte": since})
            .select_related("point__device")
            .order_by(field)[:1000]
        )
        known = set(
            AlertDelivery.objects.filter(alarm__in=alarms, event=event).values_list(
                "rule_id", "alarm_id"
            )
        )
        pairs = [
            (alarm, rule)
            for alarm in alarms
            for rule in hearing
            if (rule.pk, alarm.pk) not in known
            and getattr(alarm, field) >= rule.created_at
            and rule.matches(alarm)
        ]
        queued += _record(pairs, event)
    return queued


def _alarm_url(alarm: Alarm) -> str:
    base = settings.ALERT_BASE_URL.rstrip("/")
    return f"{base}{reverse('discovery:alarm-list')}" if base else ""


def payload(delivery: AlertDelivery) -> dict[str, Any]:
    """The webhook's JSON (the same facts as the e-mail)."""
    alarm = delivery.alarm
    point = alarm.point
    device = point.device
    return {
        "delivery": delivery.pk,
        "event": delivery.event,
        "rule": {"id": delivery.rule_id, "name": delivery.rule.name},
        "alarm": {
            "id": alarm.pk,
            "source": alarm.source,
            "message": alarm.message,
            "priority": getattr(alarm, "priority", None),
            "raised_at": _iso(alarm.raised_at),
            "cleared_at": _iso(alarm.cleared_at),
            "acknowledged_at": _iso(alarm.acknowledged_at),
            "acknowledged_by": alarm.acknowledged_by.get_username()
            if alarm.acknowledged_by
            else None,
            "url": _alarm_url(alarm),
        },
        "point": {
            "id": point.pk,
            "name": point.name,
            "object_type": point.object_type,
            "object_instance": point.object_instance,
        },
        "device": {"instance": device.device_instance, "name": device.name},
        "site": {"slug": device.site.slug, "name": device.site.name},
    }


def _iso(at: datetime | None) -> str | None:
    return at.isoformat() if at else None


def email_text(delivery: AlertDelivery) -> tuple[str, str]:
    """(subject, body) of the e-mail."""
    alarm = delivery.alarm
    point, device = alarm.point, alarm.point.device
    what = AlarmEvent(delivery.event).label.lower()
    subject = f"[BACnet] Alarm {what}: {point} on {device.name or device.device_instance}"
    when = {
        AlarmEvent.RAISED: alarm.raised_at,
        AlarmEvent.CLEARED: alarm.cleared_at,
        AlarmEvent.ACKNOWLEDGED: alarm.acknowledged_at,
    }[AlarmEvent(delivery.event)]
    stamp = "%Y-%m-%d %H:%M:%S %Z"
    lines = [f"Alarm {what} at {timezone.localtime(when):{stamp}}." if when else f"Alarm {what}."]
    lines += [
        f"Point: {point} ({point.object_type},{point.object_instance})",
        f"Device: {device.device_instance} {device.name}".rstrip(),
        f"Site: {device.site.name}",
        f"Raised: {timezone.localtime(alarm.raised_at):{stamp}}",
    ]
    if alarm.message:
        lines.append(f"Message: {alarm.message}")
    if alarm.acknowledged_at:
        who = alarm.acknowledged_by.get_username() if alarm.acknowledged_by else "a removed user"
        lines.append(f"Acknowledged by {who}")
    if url := _alarm_url(alarm):
        lines.append(f"Alarms page: {url}")
    lines += ["", f"Rule: {delivery.rule.name} (notice {delivery.pk})"]
    return subject, "\n".join(lines) + "\n"


def deliveries_by_alarm(alarm_ids: Iterable[int]) -> dict[int, list[AlertDelivery]]:
    """The deliveries of each alarm, for the alarms page."""
    out: dict[int, list[AlertDelivery]] = {}
    rows = AlertDelivery.objects.filter(alarm_id__in=list(alarm_ids)).select_related("rule")
    for row in rows.order_by("created_at", "id"):
        out.setdefault(row.alarm_id, []).append(row)
    return out


def resend_failed(delivery_ids: Iterable[int]) -> int:
    """Queue failed deliveries again (an operator fixed the address or the server)."""
    ids = list(
        AlertDelivery.objects.filter(pk__in=list(delivery_ids), status=Status.FAILED).values_list(
            "pk", flat=True
        )
    )
    with transaction.atomic():
        AlertDelivery.objects.filter(pk__in=ids).update(
            status=Status.PENDING, attempts=0, next_attempt_at=timezone.now()
        )
        transaction.on_commit(partial(dispatch, ids))
    return len(ids)


def overdue_count(minutes: int = 5) -> int:
    """Notices due for longer than this: nothing is sending them (no worker on
    ``default``, no ``send_alerts`` in the database backend)."""
    since = timezone.now() - timedelta(minutes=minutes)
    return AlertDelivery.objects.filter(
        status__in=[Status.PENDING, Status.RETRYING], next_attempt_at__lt=since
    ).count()
