"""The domain: the sites (buildings), the devices and points found on each site's BACnet
network, their readings, rolled-up statistics, the jobs that produced them and the
workers that ran the jobs."""

from __future__ import annotations

from datetime import timedelta

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models
from django.db.models import Q
from django.utils import timezone

from discovery.alarms import Alarm
from discovery.alerts import AlarmEvent, AlertDelivery, AlertRule
from discovery.keeping import CovState, Keeping, KeepingRule

# Re-exported: the models of these modules are registered with the app from here.
__all__ = [
    "Alarm",
    "AlarmEvent",
    "AlertDelivery",
    "AlertRule",
    "CovState",
    "Keeping",
    "KeepingRule",
]

from discovery.routing import BACNET_QUEUE as BACNET_QUEUE
from discovery.routing import DEFAULT_SITE_SLUG as DEFAULT_SITE_SLUG
from discovery.routing import queue_of

# BACnet device instances are 22 bits; 4194303 is the "unconfigured" wildcard.
MAX_DEVICE_INSTANCE = 4194302


def _default_time_zone() -> str:
    return settings.TIME_ZONE


class Site(models.Model):
    """A building (or campus) with its own BACnet internetwork, served by its own BACnet
    worker consuming the site's queue. Device instances repeat between sites.

    ``bacnet_interface`` and ``bbmd_address`` are what the site's worker uses unless its
    command line or environment says otherwise; ``collect_interval_s`` seeds the site's
    collection schedule (empty: ``BACNET_COLLECT_INTERVAL_S``). ``viewers``: a user listed
    on any site sees only the sites that list them; a user no site lists sees all."""

    name = models.CharField(max_length=100, unique=True)
    slug = models.SlugField(max_length=50, unique=True)
    time_zone = models.CharField(max_length=64, default=_default_time_zone)
    bacnet_interface = models.CharField(max_length=64, blank=True)
    bbmd_address = models.CharField(max_length=64, blank=True)
    collect_interval_s = models.PositiveIntegerField(null=True, blank=True)
    # Which objects discovery stores (``discovery.point_rules``): object types, name
    # patterns and instance ranges to include or exclude. Empty: every object.
    point_rules = models.JSONField(default=dict, blank=True)
    viewers = models.ManyToManyField(
        "auth.User", blank=True, related_name="bacnet_sites", help_text="Users limited to it."
    )

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    def clean(self) -> None:
        from discovery.point_rules import validate_rules

        try:
            validate_rules(self.point_rules)
        except ValidationError as exc:
            raise ValidationError({"point_rules": exc.messages}) from None

    @property
    def is_default(self) -> bool:
        return self.slug == DEFAULT_SITE_SLUG

    @property
    def queue(self) -> str:
        """The Celery queue of this site's BACnet jobs."""
        return queue_of(self.slug)

    @classmethod
    def default(cls) -> Site:
        site, _ = cls.objects.get_or_create(
            slug=DEFAULT_SITE_SLUG, defaults={"name": "Default site"}
        )
        return site


def default_site_id() -> int:
    """Rows created without a site belong to the default site. (Only the id is read: the
    migration that adds the column calls this with the table as it was then.)"""
    pk = Site.objects.filter(slug=DEFAULT_SITE_SLUG).values_list("pk", flat=True).first()
    return pk if pk is not None else Site.default().pk


class Segmentation(models.TextChoices):
    BOTH = "segmented-both", "Segmented both"
    TRANSMIT = "segmented-transmit", "Segmented transmit"
    RECEIVE = "segmented-receive", "Segmented receive"
    NONE = "no-segmentation", "No segmentation"


class BACnetDevice(models.Model):
    """A BACnet device of a site, identified by its instance number (unique across the
    site's internetwork; other sites have their own device 1001).

    ``address`` is the BACnet address as bacpypes3 prints it: ``192.168.1.20`` or
    ``192.168.1.20:47809`` on the local network, ``20:0x0a`` behind a router, where 20 is
    also kept in ``network_number``. Rediscovery updates address and name in place.
    """

    site = models.ForeignKey(
        Site, on_delete=models.PROTECT, related_name="devices", default=default_site_id
    )
    device_instance = models.PositiveIntegerField()
    address = models.CharField(max_length=64)
    network_number = models.PositiveIntegerField(null=True, blank=True)
    name = models.CharField(max_length=255, blank=True)
    vendor_id = models.PositiveIntegerField(null=True, blank=True)
    vendor_name = models.CharField(max_length=255, blank=True)
    model_name = models.CharField(max_length=255, blank=True)
    firmware_revision = models.CharField(max_length=255, blank=True)
    application_software_version = models.CharField(max_length=255, blank=True)
    description = models.TextField(blank=True)
    location = models.CharField(max_length=255, blank=True)
    protocol_revision = models.PositiveSmallIntegerField(null=True, blank=True)
    max_apdu_length = models.PositiveIntegerField(null=True, blank=True)
    segmentation = models.CharField(max_length=32, choices=Segmentation.choices, blank=True)
    supports_rpm = models.BooleanField(
        default=True, help_text="Cleared when the device rejects ReadPropertyMultiple."
    )
    # How the device tells its event states when asked (its protocol-services-supported,
    # read by the event poll): "event-information", "alarm-summary", "none", or "" (not
    # read yet).
    alarm_services = models.CharField(max_length=32, blank=True)
    events_polled_at = models.DateTimeField(null=True, blank=True)
    poll_interval_s = models.PositiveIntegerField(
        null=True, blank=True, help_text="Read its points at most this often (empty: every cycle)."
    )
    first_seen = models.DateTimeField(default=timezone.now)
    last_seen = models.DateTimeField(default=timezone.now)
    is_online = models.BooleanField(default=True)
    last_error = models.TextField(blank=True)
    in_fault = models.BooleanField(
        default=False,
        help_text="Answers (Who-Is, or some requests) but its reads fail: last_error says why.",
    )
    # Other addresses that answered for this instance. The device stays bound to
    # ``address`` (the first binding) and the others are never read, so the two never
    # mix; shown until a user resolves it (``resolve_conflict``).
    conflict_addresses = models.JSONField(default=list, blank=True)
    conflict_since = models.DateTimeField(null=True, blank=True)
    # Earlier addresses, newest first: {"address", "until" (ISO time), "how"}.
    address_history = models.JSONField(default=list, blank=True)

    class Meta:
        verbose_name = "BACnet device"
        verbose_name_plural = "BACnet devices"
        ordering = ["device_instance"]
        constraints = [
            models.CheckConstraint(
                condition=Q(device_instance__lte=MAX_DEVICE_INSTANCE),
                name="%(app_label)s_%(class)s_instance_in_range",
                violation_error_message="A device instance is at most 4194302.",
            ),
            # Also the index of every lookup by instance, which is always within a site.
            models.UniqueConstraint(
                fields=["site", "device_instance"],
                name="%(app_label)s_%(class)s_unique_site_instance",
                violation_error_message="This site already has a device with that instance.",
            ),
        ]
        indexes = [
            # The device list filters by online state and sorts by name.
            models.Index(fields=["is_online", "name"], name="discovery_device_online_name"),
        ]

    def __str__(self) -> str:
        return f"{self.name or 'device'} ({self.device_instance})"

    def mark_offline(self, reason: str) -> None:
        self.is_online = False
        self.in_fault = False
        self.last_error = reason
        self.save(update_fields=["is_online", "in_fault", "last_error"])

    @property
    def state(self) -> str:
        """ "offline" (answers nothing), "fault" (answers, but reads fail) or "online"."""
        if not self.is_online:
            return "offline"
        return "fault" if self.in_fault else "online"

    @property
    def has_conflict(self) -> bool:
        return bool(self.conflict_addresses)

    def resolve_conflict(self, address: str | None = None) -> None:
        """A user settles a duplicate instance: keep the current binding, or bind the
        device to ``address`` (one of the conflicting ones; its points are re-read from
        there, so re-enumerate it)."""
        if address and address != self.address:
            self.address_history = moved_history(self.address_history, self.address, "user")
            self.address = address
        self.conflict_addresses = []
        self.conflict_since = None
        self.save(
            update_fields=["address", "address_history", "conflict_addresses", "conflict_since"]
        )


ADDRESS_HISTORY_LIMIT = 20


def moved_history(history: list[dict], old_address: str, how: str) -> list[dict]:
    """The address history with ``old_address`` added (newest first, bounded)."""
    entry = {"address": old_address, "until": timezone.now().isoformat(), "how": how}
    return [entry, *history][:ADDRESS_HISTORY_LIMIT]


class BACnetPoint(models.Model):
    """One object of a device (analog-input 3, binary-value 7, ...) and its latest value."""

    device = models.ForeignKey(BACnetDevice, on_delete=models.CASCADE, related_name="points")
    object_type = models.CharField(max_length=64)
    object_instance = models.PositiveIntegerField()
    name = models.CharField(max_length=255, blank=True)
    description = models.TextField(blank=True)
    units = models.CharField(max_length=64, blank=True)
    state_texts = models.JSONField(default=list, blank=True)
    last_value = models.FloatField(null=True, blank=True)
    last_value_text = models.CharField(max_length=255, blank=True)
    last_status_flags = models.PositiveSmallIntegerField(null=True, blank=True)
    last_read_at = models.DateTimeField(null=True, blank=True)
    last_error = models.TextField(blank=True)
    polling_enabled = models.BooleanField(default=True)
    poll_interval_s = models.PositiveIntegerField(
        null=True, blank=True, help_text="Read at most this often (empty: the device's)."
    )
    # Set while the device's object list no longer holds the point: its history is kept,
    # it is not polled, and it is polled again if it comes back (polling_enabled is the
    # user's choice and stays untouched).
    missing_since = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    # Store on change (discovery.services.store_on_change): unset fields follow the rule
    # of the point's object type (BACNET_STORE_RULES); with no rule at all, every
    # reading is stored.
    deadband = models.FloatField(
        null=True, blank=True, help_text="Store when the value moved more than this (analog)."
    )
    deadband_relative = models.FloatField(
        null=True,
        blank=True,
        help_text="Store when the value moved more than this fraction of the last stored one.",
    )
    heartbeat_minutes = models.PositiveIntegerField(
        null=True, blank=True, help_text="Store at least this often, changed or not."
    )
    # The last reading stored (the deadband compares with it, not with the latest value).
    stored_value = models.FloatField(null=True, blank=True)
    stored_value_text = models.CharField(max_length=255, blank=True)
    stored_status_flags = models.PositiveSmallIntegerField(null=True, blank=True)
    stored_at = models.DateTimeField(null=True, blank=True)
    # Change of value (discovery.keeping): blank keeping follows the object type's rule.
    keeping = models.CharField(max_length=16, choices=Keeping.choices, blank=True)
    cov_state = models.CharField(max_length=16, choices=CovState.choices, blank=True)
    cov_renewed_at = models.DateTimeField(null=True, blank=True)
    cov_note = models.TextField(blank=True)

    class Meta:
        verbose_name = "BACnet point"
        verbose_name_plural = "BACnet points"
        ordering = ["device_id", "object_type", "object_instance"]
        constraints = [
            models.UniqueConstraint(
                fields=["device", "object_type", "object_instance"],
                name="%(app_label)s_%(class)s_unique_device_object",
                violation_error_message="This device already has a point with that object.",
            ),
        ]
        indexes = [
            # Point search by name across devices.
            models.Index(fields=["name"], name="discovery_point_name"),
            # "Does any point store on change?", asked by every cycle store: an empty
            # index answers at once where a scan of 10,000 points took 4.5 ms.
            models.Index(
                fields=["id"],
                condition=Q(deadband__isnull=False)
                | Q(deadband_relative__isnull=False)
                | Q(heartbeat_minutes__isnull=False),
                name="discovery_point_store_rule",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.object_type}:{self.object_instance} {self.name}".strip()

    @property
    def object_identifier(self) -> str:
        return f"{self.object_type},{self.object_instance}"


class StatusFlags(models.IntegerChoices):
    """BACnet StatusFlags as a bit mask, the order of the bits in the bit string."""

    IN_ALARM = 1, "in-alarm"
    FAULT = 2, "fault"
    OVERRIDDEN = 4, "overridden"
    OUT_OF_SERVICE = 8, "out-of-service"

    @classmethod
    def flag_names(cls, mask: int | None) -> list[str]:
        """The names of the bits set in ``mask`` (``names`` is taken by Django's Choices)."""
        if not mask:
            return []
        return [str(flag.label) for flag in cls if mask & flag.value]


class BACnetReading(models.Model):
    """A value read from a point at a time. Unique per (point, timestamp): a re-run of
    the same collection cycle stores nothing twice."""

    point = models.ForeignKey(BACnetPoint, on_delete=models.CASCADE, related_name="readings")
    timestamp = models.DateTimeField()
    value = models.FloatField(null=True, blank=True)
    value_text = models.CharField(max_length=255, blank=True)
    status_flags = models.PositiveSmallIntegerField(null=True, blank=True)

    class Meta:
        verbose_name = "BACnet reading"
        verbose_name_plural = "BACnet readings"
        constraints = [
            # Also the (point, time) index that serves a point's trend and the rollups.
            models.UniqueConstraint(
                fields=["point", "timestamp"],
                name="%(app_label)s_%(class)s_unique_point_time",
                violation_error_message="This point already has a reading at that time.",
            ),
        ]
        indexes = [
            # Time-range scans across all points (CSV export of a time range, rollups).
            models.Index(fields=["timestamp"], name="discovery_reading_time"),
        ]

    def __str__(self) -> str:
        return f"{self.point_id}@{self.timestamp:%Y-%m-%d %H:%M:%S}"


class StatBase(models.Model):
    """Min, max, average and count of a point's numeric readings over one bucket, and
    their time-weighted average (``discovery.services.time_weighted``). A bucket with no
    reading but a value held into it has count 0 and that value as its figures."""

    point = models.ForeignKey(BACnetPoint, on_delete=models.CASCADE, related_name="+")
    bucket_start = models.DateTimeField()
    minimum = models.FloatField()
    maximum = models.FloatField()
    average = models.FloatField()
    count = models.PositiveIntegerField()
    # Each reading weighted by how long it held (until the next one or the bucket's end):
    # what irregular readings (change of value) need; equal to ``average`` for regular
    # polls. Null for buckets rolled up before it existed.
    time_average = models.FloatField(null=True, blank=True)
    # The seconds of the bucket a value was known (held within its point's hold limit):
    # what a longer average weighs this bucket's ``time_average`` by. Null for buckets
    # rolled up before it existed.
    covered_s = models.FloatField(null=True, blank=True)

    class Meta:
        abstract = True
        ordering = ["point_id", "bucket_start"]
        constraints = [
            models.UniqueConstraint(
                fields=["point", "bucket_start"],
                name="%(app_label)s_%(class)s_unique_point_bucket",
                violation_error_message="This point already has statistics for that bucket.",
            ),
        ]
        indexes = [
            # The rollup starts from the newest bucket written, to catch up after an outage.
            models.Index(fields=["bucket_start"], name="%(class)s_bucket"),
        ]

    def __str__(self) -> str:
        return f"{self.point_id}@{self.bucket_start:%Y-%m-%d %H:%M}"


class BACnetHourlyStat(StatBase):
    """Hourly statistics, upserted by ``calculate_hourly_stats``."""

    class Meta(StatBase.Meta):
        verbose_name = "BACnet hourly statistic"
        verbose_name_plural = "BACnet hourly statistics"


class BACnetDailyStat(StatBase):
    """Daily statistics, upserted by ``calculate_daily_stats``."""

    class Meta(StatBase.Meta):
        verbose_name = "BACnet daily statistic"
        verbose_name_plural = "BACnet daily statistics"


class BACnetTask(models.Model):
    """The record of every requested BACnet job, whichever backend carries it.

    States: ``pending`` (created; handed to the backend after commit) -> ``running``
    (claimed by a worker: ``worker_name``, ``started_at``, ``heartbeat_at``) ->
    ``completed`` (``result``; ``summary`` and ``failed_devices`` say what it amounts
    to: with failed devices it is shown as "completed with errors") or ``failed``
    (``error_message``). A running job whose heartbeat goes stale (its worker died) goes
    back to ``pending`` until ``attempts`` reaches the limit, then to ``failed`` with that
    reason. A ``pending`` job can be ``cancelled``: no worker claims it then.
    """

    class Kind(models.TextChoices):
        DISCOVER = "discover", "Device discovery"
        COLLECT = "collect", "Collect readings"
        ENUMERATE = "enumerate", "Enumerate device points"
        WRITE = "write", "Write point value"
        READ_PRIORITY = "read_priority", "Read priority array"
        ACK_ALARM = "ack_alarm", "Acknowledge an alarm on its device"
        REGISTER = "register", "Register as alarm recipient"
        POLL_EVENTS = "poll_events", "Poll event information"

    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        RUNNING = "running", "Running"
        COMPLETED = "completed", "Completed"
        FAILED = "failed", "Failed"
        CANCELLED = "cancelled", "Cancelled"

    class Trigger(models.TextChoices):
        MANUAL = "manual", "Manual"
        SCHEDULED = "scheduled", "Scheduled"
        API = "api", "API"

    # The site whose worker runs it: the job goes to that site's queue (``Site.queue``).
    site = models.ForeignKey(
        Site, on_delete=models.PROTECT, related_name="tasks", default=default_site_id
    )
    kind = models.CharField(max_length=16, choices=Kind.choices)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING)
    trigger = models.CharField(max_length=16, choices=Trigger.choices, default=Trigger.MANUAL)
    backend = models.CharField(max_length=16, blank=True)
    parameters = models.JSONField(default=dict, blank=True)
    result = models.JSONField(null=True, blank=True)
    progress = models.CharField(max_length=255, blank=True)
    error_message = models.TextField(blank=True)
    # Set with the result of a completed job (discovery.outcomes.outcome_fields): the
    # one line the lists show, and how many devices failed in it.
    summary = models.CharField(max_length=255, blank=True)
    failed_devices = models.PositiveIntegerField(default=0)
    created_at = models.DateTimeField(default=timezone.now)
    dispatched_at = models.DateTimeField(null=True, blank=True)
    started_at = models.DateTimeField(null=True, blank=True)
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    completed_at = models.DateTimeField(null=True, blank=True)
    worker_name = models.CharField(max_length=255, blank=True)
    attempts = models.PositiveSmallIntegerField(default=0)
    # Set for scheduled cycles ("collect:2026-11-23T10:41:00+00:00"): a re-delivered or
    # twice-scheduled cycle finds its existing row instead of creating a second one.
    dedupe_key = models.CharField(max_length=64, null=True, blank=True, unique=True)
    created_by = models.ForeignKey(
        "auth.User", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    # Scheduled cycles: the collection window the cycle belongs to (its readings are
    # stored at window_start) and the schedule's period when it was opened.
    window_start = models.DateTimeField(null=True, blank=True)
    window_period_s = models.PositiveIntegerField(null=True, blank=True)

    class Meta:
        verbose_name = "BACnet job"
        verbose_name_plural = "BACnet jobs"
        ordering = ["-created_at", "-id"]
        indexes = [
            # Recent jobs of a kind and status (dashboard, jobs page).
            models.Index(fields=["kind", "status", "created_at"], name="discovery_task_kind"),
            # The dashboard's jobs started by people, apart from the scheduled cycles.
            models.Index(fields=["trigger", "created_at"], name="discovery_task_trigger"),
            # The database backend claims the oldest pending job of its site.
            models.Index(
                fields=["site", "created_at"],
                condition=Q(status="pending"),
                name="discovery_task_pending",
            ),
            # The sweeper looks for running jobs with a stale heartbeat.
            models.Index(
                fields=["heartbeat_at"],
                condition=Q(status="running"),
                name="discovery_task_running",
            ),
            # Window accounting: the latest scheduled window, windows in a time range.
            models.Index(
                fields=["window_start"],
                condition=Q(window_start__isnull=False),
                name="discovery_task_window",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} #{self.pk} ({self.status})"

    @property
    def is_finished(self) -> bool:
        return self.status in (self.Status.COMPLETED, self.Status.FAILED, self.Status.CANCELLED)

    @property
    def duration(self) -> timedelta | None:
        if self.started_at and self.completed_at:
            return self.completed_at - self.started_at
        return None


class CollectionGap(models.Model):
    """A collection window that has no cycle, and why (see ``discovery.windows``).

    Every window between the first scheduled cycle and the last has either a scheduled
    ``BACnetTask`` (``window_start``) or one of these rows: counting both gives the
    count of windows."""

    class Reason(models.TextChoices):
        WORKER_DOWN = "worker_down", "No BACnet worker was running"
        OVERRUN = "overrun", "The worker was busy with an earlier job"
        LATE = "late", "The cycle's message came after the window's bound"
        DISABLED = "disabled", "Collection was disabled in the schedule"
        NO_MESSAGE = "no_message", "Nothing opened this window (beat, broker or database down?)"

    site = models.ForeignKey(
        Site, on_delete=models.CASCADE, related_name="gaps", default=default_site_id
    )
    window_start = models.DateTimeField()
    period_s = models.PositiveIntegerField()
    reason = models.CharField(max_length=16, choices=Reason.choices)
    detail = models.CharField(max_length=255, blank=True)
    recorded_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-window_start"]
        constraints = [
            models.UniqueConstraint(
                fields=["site", "window_start"],
                name="%(app_label)s_%(class)s_unique_site_window",
                violation_error_message="This site's window already has a gap recorded.",
            ),
        ]

    def __str__(self) -> str:
        return f"gap {self.window_start:%Y-%m-%d %H:%M:%S} ({self.reason})"


class BACnetWorker(models.Model):
    """A BACnet worker process, known by the heartbeat it writes while it lives.

    The UI uses it to show whether a worker serves the configured backend, so a
    mismatch is visible at once instead of jobs waiting forever."""

    name = models.CharField(max_length=255, unique=True)
    # The site it serves (it consumes that site's queue, or claims its rows).
    site = models.ForeignKey(
        Site, null=True, blank=True, on_delete=models.SET_NULL, related_name="workers"
    )
    backend = models.CharField(max_length=16)
    hostname = models.CharField(max_length=255, blank=True)
    pid = models.PositiveIntegerField(null=True, blank=True)
    interface = models.CharField(max_length=64, blank=True)
    started_at = models.DateTimeField(default=timezone.now)
    last_heartbeat = models.DateTimeField(default=timezone.now)
    # Event notifications this process received: {"received", "garbage", "dropped",
    # "unknown_objects", "lost"} since it started (services.alarm_events).
    event_counts = models.JSONField(default=dict, blank=True)
    current_task = models.ForeignKey(
        BACnetTask, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        verbose_name = "BACnet worker"
        verbose_name_plural = "BACnet workers"
        ordering = ["-last_heartbeat"]

    def __str__(self) -> str:
        return self.name

    def is_alive(self, within_s: int) -> bool:
        return timezone.now() - self.last_heartbeat < timedelta(seconds=within_s)


# Commanding (audit trail, timed overrides, priority arrays) lives in its own module.
from discovery.command_models import PointCommand, PointCommandState  # noqa: E402, F401
