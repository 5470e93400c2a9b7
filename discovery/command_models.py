"""Commanding points: the audit trail of every write and relinquish request (with the
timed overrides it carries) and the last priority array read from each point.

Imported by ``discovery.models`` (Django finds models there); kept apart so that the
domain's main module stays readable.
"""

from __future__ import annotations

from typing import Any

from django.db import models
from django.db.models import Q
from django.utils import timezone

COMMAND_PERMISSION = "discovery.command_point"
OPERATORS_GROUP = "Operators"


class PointCommand(models.Model):
    """One write or relinquish request, kept for the audit trail: who, when, which point,
    what value at which priority, until when, why, what the device answered and the
    value read back. Never edited from the UI or the API (the admin shows it read-only).

    ``result``: ``pending`` (job requested) -> ``written`` (the device acknowledged and
    the value is in control), ``not_in_control`` (acknowledged, but a higher priority
    holds the point: the value did not change), ``relinquished``, ``refused`` (the
    device said no: ``message`` in plain words), ``failed`` (no answer, job failed) or
    ``rejected`` (refused here before any packet: wrong type, out of range, ...).

    A write with ``expires_at`` is a timed override: ``override_state`` goes ``active``
    -> ``ending`` (its relinquish requested, at expiry or ended early) -> ``ended``, or
    ``replaced`` when a later write at the same priority took its slot (that one is not
    relinquished under the new writer's feet)."""

    class Action(models.TextChoices):
        WRITE = "write", "Write"
        RELINQUISH = "relinquish", "Relinquish"
        # Alarms (``services.alarms``): no priority; ``alarm`` names the alarm.
        ACKNOWLEDGE = "acknowledge", "Acknowledge alarm"
        REGISTER = "register", "Register as alarm recipient"

    class Result(models.TextChoices):
        PENDING = "pending", "Pending"
        WRITTEN = "written", "Written"
        NOT_IN_CONTROL = "not_in_control", "Written, a higher priority in control"
        RELINQUISHED = "relinquished", "Relinquished"
        REFUSED = "refused", "Refused by the device"
        FAILED = "failed", "Failed"
        REJECTED = "rejected", "Rejected before sending"

    class Override(models.TextChoices):
        NONE = "", "None"
        ACTIVE = "active", "Active"
        ENDING = "ending", "Being relinquished"
        ENDED = "ended", "Ended"
        REPLACED = "replaced", "Replaced by a later write"

    point = models.ForeignKey(
        "discovery.BACnetPoint", null=True, on_delete=models.SET_NULL, related_name="commands"
    )
    # Copies, so that the trail still says which point once the point is gone.
    device_instance = models.PositiveIntegerField()
    object_type = models.CharField(max_length=64)
    object_instance = models.PositiveIntegerField()
    point_name = models.CharField(max_length=255, blank=True)
    user = models.ForeignKey(
        "auth.User", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    username = models.CharField(max_length=150, blank=True, help_text="Empty: the system.")
    created_at = models.DateTimeField(default=timezone.now)
    action = models.CharField(max_length=16, choices=Action.choices)
    value = models.FloatField(null=True, blank=True)
    value_text = models.CharField(max_length=255, blank=True)
    priority = models.PositiveSmallIntegerField(null=True, blank=True)
    alarm = models.ForeignKey(
        "discovery.Alarm", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    expires_at = models.DateTimeField(null=True, blank=True)
    reason = models.CharField(max_length=500, blank=True)
    task = models.ForeignKey(
        "discovery.BACnetTask", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    result = models.CharField(max_length=16, choices=Result.choices, default=Result.PENDING)
    message = models.TextField(blank=True)
    # Set when the device acknowledged: a retried job never writes a second time.
    confirmed_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    read_back_value = models.FloatField(null=True, blank=True)
    read_back_text = models.CharField(max_length=255, blank=True)
    read_back_priority = models.PositiveSmallIntegerField(null=True, blank=True)
    read_back_slots = models.JSONField(default=list, blank=True)
    override_state = models.CharField(
        max_length=16, choices=Override.choices, default=Override.NONE, blank=True
    )
    override_ended_at = models.DateTimeField(null=True, blank=True)
    override_ended_by = models.CharField(max_length=150, blank=True)
    relinquished_by = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        verbose_name = "point command"
        verbose_name_plural = "point commands (audit trail)"
        ordering = ["-created_at", "-id"]
        permissions = [("command_point", "Can command points (write and relinquish)")]
        constraints = [
            models.CheckConstraint(
                condition=Q(priority__isnull=True) | Q(priority__gte=1, priority__lte=16),
                name="%(app_label)s_%(class)s_priority_in_range",
                violation_error_message="A BACnet priority is 1-16.",
            ),
        ]
        indexes = [
            # The point page's trail: one point's commands, newest first.
            models.Index(fields=["point", "created_at"], name="discovery_command_point"),
            # The audit page filters by time (and user, result).
            models.Index(fields=["created_at"], name="discovery_command_created"),
            # The relinquish of due overrides: active ones by expiry.
            models.Index(
                fields=["expires_at"],
                condition=Q(override_state="active"),
                name="discovery_command_due",
            ),
        ]

    def __str__(self) -> str:
        if self.priority is None:
            return (
                f"{self.object_type},{self.object_instance} of device {self.device_instance}: "
                f"{self.get_action_display()} by {self.username or 'system'}"
            )
        what = self.value_text if self.action == self.Action.WRITE else "relinquish"
        return (
            f"{self.object_type},{self.object_instance} of device {self.device_instance}: "
            f"{what} @{self.priority} by {self.username or 'system'}"
        )

    @property
    def point_label(self) -> str:
        return self.point_name or f"{self.object_type} {self.object_instance}"


class PointCommandState(models.Model):
    """What decided a point's present value when last read from the device (after each
    write, or on demand from the point page): the set priority slots, the priority in
    control, the relinquish default and the limits a write must keep to."""

    point = models.OneToOneField(
        "discovery.BACnetPoint", on_delete=models.CASCADE, related_name="command_state"
    )
    read_at = models.DateTimeField(default=timezone.now)
    commandable = models.BooleanField(default=True)
    present_value = models.FloatField(null=True, blank=True)
    present_text = models.CharField(max_length=255, blank=True)
    # [{"priority": 8, "value": 19.5, "text": ""}], highest priority first.
    slots = models.JSONField(default=list, blank=True)
    current_priority = models.PositiveSmallIntegerField(null=True, blank=True)
    relinquish_default = models.FloatField(null=True, blank=True)
    relinquish_default_text = models.CharField(max_length=255, blank=True)
    min_present_value = models.FloatField(null=True, blank=True)
    max_present_value = models.FloatField(null=True, blank=True)
    number_of_states = models.PositiveIntegerField(null=True, blank=True)
    error = models.TextField(blank=True)

    class Meta:
        verbose_name = "point priority array"
        verbose_name_plural = "point priority arrays"

    def __str__(self) -> str:
        return f"priority array of point {self.point_id} at {self.read_at}"


def install_operators_group(**_kwargs: Any) -> None:
    """The Operators group with the permission to command points (post_migrate).

    Migration 0012 creates it too; this puts it back after a flush or a deleted group,
    as Django does with permissions."""
    from django.contrib.auth.models import Group, Permission
    from django.contrib.contenttypes.models import ContentType

    content_type = ContentType.objects.get_for_model(PointCommand)
    permission, _ = Permission.objects.get_or_create(
        content_type=content_type,
        codename="command_point",
        defaults={"name": "Can command points (write and relinquish)"},
    )
    group, _ = Group.objects.get_or_create(name=OPERATORS_GROUP)
    group.permissions.add(permission)
