"""How a point is kept (polled, or change of value) and the per-object-type rule.

Apart from ``models.py`` so that the COV state stays one small module; ``models``
imports it (the model is registered with the app from there)."""

from __future__ import annotations

from django.db import models


class Keeping(models.TextChoices):
    """How a point's value is kept. A point with none follows its object type's rule
    (``KeepingRule``), and without a rule it is polled."""

    POLLED = "polled", "Polled"
    COV = "cov", "Change of value"
    COV_CHECK = "cov-check", "Change of value, with a slow check poll"


class CovState(models.TextChoices):
    """Where a COV point's subscription stands. Anything but SUBSCRIBED means the
    point is polled meanwhile (the fallback), and ``cov_note`` says why."""

    NONE = "", "Not subscribed"
    SUBSCRIBED = "subscribed", "Subscribed"
    REFUSED = "refused", "Refused by the device (polled)"
    NO_ANSWER = "no-answer", "Device did not answer (polled)"


class KeepingRule(models.Model):
    """The keeping of every point of an object type that has none of its own."""

    object_type = models.CharField(max_length=64)
    keeping = models.CharField(max_length=16, choices=Keeping.choices)

    class Meta:
        app_label = "discovery"
        verbose_name = "keeping rule"
        ordering = ["object_type"]
        constraints = [
            models.UniqueConstraint(
                fields=["object_type"],
                name="%(app_label)s_%(class)s_unique_object_type",
                violation_error_message="This object type already has a rule.",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.object_type}: {self.get_keeping_display()}"
