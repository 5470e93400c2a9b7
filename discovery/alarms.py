"""Alarms: a point in alarm now, since when, acknowledged by whom.

Learnt three ways (``source``): from the in-alarm bit of the status flags that every poll
and every COV notification carries (``services.alarms.sync_alarms``), from the event
notifications devices send (``services.alarm_events``), and from GetEventInformation /
GetAlarmSummary polls of devices that support them. Apart from ``models.py`` (which
imports it, registering the model)."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q


class Alarm(models.Model):
    """One alarm of one point: raised when its in-alarm flag was first seen set, or an
    event notification (or a poll of the device's event information) said it left
    normal; cleared when it is back to normal. Acknowledging records who and when; where
    the device asked for it (``ack_required``) the acknowledgement is also sent to the
    device (``device_ack``), and each one is in the commanding audit trail.

    Every new row is made by ``services.alarms.raise_alarms`` (one place to hook
    alerts on)."""

    class Source(models.TextChoices):
        STATUS_FLAGS = "status-flags", "In-alarm status flag"
        NOTIFICATION = "notification", "Event notification"
        EVENT_INFO = "event-info", "GetEventInformation poll"
        ALARM_SUMMARY = "alarm-summary", "GetAlarmSummary poll"

    class DeviceAck(models.TextChoices):
        NOT_NEEDED = "", "Not needed"
        PENDING = "pending", "Being sent"
        SENT = "sent", "Acknowledged on the device"
        FAILED = "failed", "Device refused or did not answer"

    point = models.ForeignKey(
        "discovery.BACnetPoint", on_delete=models.CASCADE, related_name="alarms"
    )
    source = models.CharField(max_length=32, choices=Source.choices, default=Source.STATUS_FLAGS)
    raised_at = models.DateTimeField()
    cleared_at = models.DateTimeField(null=True, blank=True)
    message = models.CharField(max_length=255, blank=True)
    # What the device said (event notifications and event-information polls): its
    # event state now ("high-limit", "offnormal", ...), the one before, the transition's
    # priority (0 most urgent .. 255), notify type and time stamp as the device keeps it
    # ("time:..", "seq:..", "datetime:..": AcknowledgeAlarm must send it back as it is).
    event_state = models.CharField(max_length=32, blank=True)
    from_state = models.CharField(max_length=32, blank=True)
    event_type = models.CharField(max_length=32, blank=True)
    priority = models.PositiveSmallIntegerField(null=True, blank=True)
    notify_type = models.CharField(max_length=16, blank=True)
    ack_required = models.BooleanField(default=False)
    notification_class = models.PositiveIntegerField(null=True, blank=True)
    event_time = models.DateTimeField(null=True, blank=True)
    event_stamp = models.CharField(max_length=64, blank=True)
    device_ack = models.CharField(
        max_length=16, choices=DeviceAck.choices, default=DeviceAck.NOT_NEEDED, blank=True
    )
    device_ack_note = models.CharField(max_length=255, blank=True)
    acknowledged_at = models.DateTimeField(null=True, blank=True)
    acknowledged_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        app_label = "discovery"
        ordering = ["-raised_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["point"],
                condition=Q(cleared_at__isnull=True),
                name="%(app_label)s_%(class)s_unique_open_per_point",
                violation_error_message="This point already has an open alarm.",
            ),
        ]
        indexes = [
            # The alarms page: history newest first.
            models.Index(fields=["-raised_at"], name="discovery_alarm_raised"),
            # The alarms page and the event pollers: the open alarms.
            models.Index(
                fields=["point"],
                condition=Q(cleared_at__isnull=True),
                name="discovery_alarm_open",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.point} in alarm since {self.raised_at:%Y-%m-%d %H:%M:%S}"

    @property
    def active(self) -> bool:
        return self.cleared_at is None
