"""Alarms: a point in alarm now, since when, acknowledged by whom.

Learnt from the in-alarm bit of the status flags that every poll and every COV
notification carries (``services.alarms.sync_alarms``); event notifications are not
received yet. Apart from ``models.py`` (which imports it, registering the model)."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q


class Alarm(models.Model):
    """One alarm of one point: raised when its in-alarm flag was first seen set, cleared
    when first seen clear again. Acknowledging records who and when (the audit)."""

    class Source(models.TextChoices):
        STATUS_FLAGS = "status-flags", "In-alarm status flag"

    point = models.ForeignKey(
        "discovery.BACnetPoint", on_delete=models.CASCADE, related_name="alarms"
    )
    source = models.CharField(max_length=32, choices=Source.choices, default=Source.STATUS_FLAGS)
    raised_at = models.DateTimeField()
    cleared_at = models.DateTimeField(null=True, blank=True)
    message = models.CharField(max_length=255, blank=True)
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
        ]

    def __str__(self) -> str:
        return f"{self.point} in alarm since {self.raised_at:%Y-%m-%d %H:%M:%S}"

    @property
    def active(self) -> bool:
        return self.cleared_at is None
