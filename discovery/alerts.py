"""Alert rules (who hears of which alarms, by e-mail or webhook) and the record of each
notice sent.

Apart from ``models.py`` (which imports it, registering the models). Sending is in
``services.alerts``; it runs on the ``default`` queue or in ``manage.py send_alerts``,
never in the BACnet worker."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import EmailValidator, MaxValueValidator, URLValidator
from django.db import models
from django.db.models import Q
from django.utils import timezone

# Long enough that a guessed or brute-forced secret is not a concern.
MIN_SECRET_LENGTH = 16


class AlarmEvent(models.TextChoices):
    """What happened to an alarm that a rule may be told of."""

    RAISED = "raised", "Raised"
    CLEARED = "cleared", "Returned to normal"
    ACKNOWLEDGED = "acknowledged", "Acknowledged"


class AlertRule(models.Model):
    """Which alarms someone is told of, and how: e-mail to a list of addresses and/or a
    JSON POST to a webhook, signed with the rule's secret (``X-BACnet-Signature``).

    Filters narrow the alarms heard: a site (none: every site), a device, an object
    type, a BACnet priority (0 is the most urgent). Events: raised always by default;
    return to normal and acknowledgement when asked for."""

    name = models.CharField(max_length=100)
    enabled = models.BooleanField(default=True)
    site = models.ForeignKey(
        "discovery.Site",
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="alert_rules",
        help_text="Only this site's alarms (empty: every site's).",
    )
    device = models.ForeignKey(
        "discovery.BACnetDevice",
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="alert_rules",
        help_text="Only this device's alarms.",
    )
    object_type = models.CharField(
        max_length=64, blank=True, help_text="Only points of this object type (analog-input…)."
    )
    priority_at_most = models.PositiveSmallIntegerField(
        null=True,
        blank=True,
        validators=[MaxValueValidator(255)],
        help_text="Only alarms this urgent or more (BACnet priority, 0 most urgent). "
        "Alarms without a priority (from the in-alarm flag) match only rules without it.",
    )
    email_recipients = models.JSONField(default=list, blank=True)
    webhook_url = models.URLField(max_length=500, blank=True)
    webhook_secret = models.CharField(max_length=200, blank=True)
    on_raise = models.BooleanField(default=True)
    on_clear = models.BooleanField(default=False, help_text="Also when it returns to normal.")
    on_acknowledge = models.BooleanField(default=False, help_text="Also when acknowledged.")
    created_at = models.DateTimeField(default=timezone.now)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        app_label = "discovery"
        verbose_name = "alert rule"
        ordering = ["name", "id"]

    def __str__(self) -> str:
        return self.name

    def clean(self) -> None:
        errors = rule_errors(
            {
                "email_recipients": self.email_recipients,
                "webhook_url": self.webhook_url,
                "webhook_secret": self.webhook_secret,
                "on_raise": self.on_raise,
                "on_clear": self.on_clear,
                "on_acknowledge": self.on_acknowledge,
                "site": self.site if self.site_id else None,
                "device": self.device if self.device_id else None,
            }
        )
        if errors:
            raise ValidationError(errors)

    @property
    def channels(self) -> list[str]:
        out: list[str] = []
        if self.email_recipients:
            out.append(AlertDelivery.Channel.EMAIL)
        if self.webhook_url:
            out.append(AlertDelivery.Channel.WEBHOOK)
        return out

    def hears(self, event: str) -> bool:
        return {
            AlarmEvent.RAISED: self.on_raise,
            AlarmEvent.CLEARED: self.on_clear,
            AlarmEvent.ACKNOWLEDGED: self.on_acknowledge,
        }.get(AlarmEvent(event), False)

    def matches(self, alarm: Any) -> bool:
        """True if the alarm (with its point and device loaded) passes the filters."""
        device = alarm.point.device
        if self.site_id is not None and device.site_id != self.site_id:
            return False
        if self.device_id is not None and device.pk != self.device_id:
            return False
        if self.object_type and alarm.point.object_type != self.object_type:
            return False
        if self.priority_at_most is not None:
            # Alarms learnt from event notifications carry a priority; flag alarms none.
            priority = getattr(alarm, "priority", None)
            if priority is None or priority > self.priority_at_most:
                return False
        return True


def rule_errors(data: dict[str, Any]) -> dict[str, list[str]]:
    """The problems of a rule's fields, by field: the admin's form and the API both say
    these (a 400 naming the field), so a rule that cannot deliver is never saved."""
    errors: dict[str, list[str]] = {}
    recipients = data.get("email_recipients") or []
    if not isinstance(recipients, list) or not all(isinstance(r, str) for r in recipients):
        errors["email_recipients"] = ["A list of e-mail addresses."]
    else:
        bad = [r for r in recipients if not _valid_email(r)]
        if bad:
            errors["email_recipients"] = [f"Not an e-mail address: {', '.join(bad)}."]
    url = data.get("webhook_url") or ""
    if url:
        try:
            URLValidator(schemes=["http", "https"])(url)
        except ValidationError:
            errors["webhook_url"] = ["Not an http:// or https:// URL."]
        secret = data.get("webhook_secret") or ""
        if len(secret) < MIN_SECRET_LENGTH:
            errors["webhook_secret"] = [
                f"A webhook needs a shared secret of at least {MIN_SECRET_LENGTH} characters."
            ]
    if not recipients and not url:
        errors.setdefault("email_recipients", []).append(
            "Give e-mail recipients, a webhook URL, or both."
        )
    if not any(data.get(k) for k in ("on_raise", "on_clear", "on_acknowledge")):
        errors["on_raise"] = [
            "Choose at least one event: raised, returned to normal, acknowledged."
        ]
    site, device = data.get("site"), data.get("device")
    if site is not None and device is not None and device.site_id != site.pk:
        errors["device"] = [f"Device {device.device_instance} is not at site {site.slug}."]
    return errors


def _valid_email(address: str) -> bool:
    try:
        EmailValidator()(address)
    except ValidationError:
        return False
    return True


class AlertDelivery(models.Model):
    """One notice of one alarm event, for one rule, by one channel: the row is the queue
    and the record an operator reads.

    States: ``pending`` (recorded with the alarm; a task is sent after commit) ->
    ``sending`` (claimed until ``claimed_until``; ``attempts`` counts the claims) ->
    ``delivered`` (``delivered_at``), or ``retrying`` (``last_error``; due again at
    ``next_attempt_at``) -> … -> ``failed`` (refused for good, a 4xx, or out of attempts).
    A claim is a conditional update: a duplicated or retried task finds the row delivered
    (or claimed by another) and sends nothing."""

    class Channel(models.TextChoices):
        EMAIL = "email", "E-mail"
        WEBHOOK = "webhook", "Webhook"

    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        SENDING = "sending", "Sending"
        RETRYING = "retrying", "Retrying"
        DELIVERED = "delivered", "Delivered"
        FAILED = "failed", "Failed"

    rule = models.ForeignKey(AlertRule, on_delete=models.CASCADE, related_name="deliveries")
    alarm = models.ForeignKey(
        "discovery.Alarm", on_delete=models.CASCADE, related_name="alert_deliveries"
    )
    event = models.CharField(max_length=16, choices=AlarmEvent.choices)
    channel = models.CharField(max_length=16, choices=Channel.choices)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING)
    attempts = models.PositiveSmallIntegerField(default=0)
    last_error = models.TextField(blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    next_attempt_at = models.DateTimeField(default=timezone.now)
    claimed_until = models.DateTimeField(null=True, blank=True)
    delivered_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        app_label = "discovery"
        verbose_name = "alert delivery"
        verbose_name_plural = "alert deliveries"
        ordering = ["-created_at", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["rule", "alarm", "event", "channel"],
                name="%(app_label)s_%(class)s_unique_notice",
                violation_error_message="This notice of this alarm is already recorded.",
            ),
        ]
        indexes = [
            # The sender looks for deliveries due (waiting or to be retried).
            models.Index(
                fields=["next_attempt_at"],
                condition=Q(status__in=["pending", "retrying", "sending"]),
                name="discovery_delivery_due",
            ),
        ]

    def __str__(self) -> str:
        return (
            f"{self.get_channel_display()} of alarm {self.alarm_id} ({self.event}): {self.status}"
        )
