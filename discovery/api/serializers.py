"""Serializers: what the API shows of each model. Device strings go out as JSON strings;
clients render them as text."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from discovery.models import (
    Alarm,
    BACnetDailyStat,
    BACnetDevice,
    BACnetHourlyStat,
    BACnetPoint,
    BACnetReading,
    BACnetTask,
    BACnetWorker,
    CollectionGap,
    StatusFlags,
)
from discovery.outcomes import (
    Outcome,
    job_outcome,
    outcome_api_fields,
    outcome_label,
    summary_line,
)
from discovery.units import unit_symbol


def status_flag_names(mask: int | None) -> list[str]:
    """Names of the StatusFlags bits set in ``mask``."""
    return StatusFlags.flag_names(mask)


class DeviceSerializer(serializers.ModelSerializer):
    point_count = serializers.IntegerField(read_only=True)
    site: serializers.SlugRelatedField = serializers.SlugRelatedField(
        slug_field="slug", read_only=True
    )

    class Meta:
        model = BACnetDevice
        fields = [
            "id",
            "site",
            "device_instance",
            "name",
            "address",
            "network_number",
            "vendor_id",
            "vendor_name",
            "model_name",
            "firmware_revision",
            "application_software_version",
            "description",
            "location",
            "protocol_revision",
            "max_apdu_length",
            "segmentation",
            "supports_rpm",
            "is_online",
            "state",
            "in_fault",
            "conflict_addresses",
            "conflict_since",
            "address_history",
            "first_seen",
            "last_seen",
            "last_error",
            "point_count",
        ]
        read_only_fields = fields


class PointSerializer(serializers.ModelSerializer):
    """``units`` is the BACnet name (degrees-celsius), ``units_symbol`` as engineers write
    it (°C)."""

    device_instance = serializers.IntegerField(source="device.device_instance", read_only=True)
    units_symbol = serializers.SerializerMethodField()
    status_flag_names = serializers.SerializerMethodField()
    kept_as = serializers.CharField(
        read_only=True,
        help_text="How the point is kept: its own keeping, else its object type's rule, "
        "else polled. cov_state says whether a COV subscription stands (otherwise polled).",
    )

    class Meta:
        model = BACnetPoint
        fields = [
            "id",
            "device",
            "device_instance",
            "object_type",
            "object_instance",
            "name",
            "description",
            "units",
            "units_symbol",
            "state_texts",
            "last_value",
            "last_value_text",
            "last_status_flags",
            "status_flag_names",
            "last_read_at",
            "last_error",
            "polling_enabled",
            "keeping",
            "kept_as",
            "cov_state",
            "cov_renewed_at",
            "cov_note",
        ]
        read_only_fields = fields

    def get_units_symbol(self, point: BACnetPoint) -> str:
        return unit_symbol(point.units)

    def get_status_flag_names(self, point: BACnetPoint) -> list[str]:
        return status_flag_names(point.last_status_flags)


class ReadingSerializer(serializers.ModelSerializer):
    class Meta:
        model = BACnetReading
        fields = ["id", "point", "timestamp", "value", "value_text", "status_flags"]
        read_only_fields = fields


class HourlyStatSerializer(serializers.ModelSerializer):
    class Meta:
        model = BACnetHourlyStat
        fields = [
            "point",
            "bucket_start",
            "minimum",
            "maximum",
            "average",
            "time_average",
            "count",
        ]
        read_only_fields = fields


class DailyStatSerializer(serializers.ModelSerializer):
    class Meta:
        model = BACnetDailyStat
        fields = [
            "point",
            "bucket_start",
            "minimum",
            "maximum",
            "average",
            "time_average",
            "count",
        ]
        read_only_fields = fields


class FailedDeviceSerializer(serializers.Serializer):
    device_instance = serializers.IntegerField(allow_null=True)
    reason = serializers.CharField(help_text="In plain words, e.g. 'did not answer'.")
    detail = serializers.CharField(help_text="The BACnet client's own text.")


class JobSerializer(serializers.ModelSerializer):
    """The same fields as ``discovery.jobs.task_status`` (seed 001's task-status shape).

    ``outcome`` is the status with "completed" split: ``completed_with_errors`` when some
    devices failed; ``summary`` is the one line the pages show."""

    outcome = serializers.SerializerMethodField()
    outcome_label = serializers.SerializerMethodField()
    summary = serializers.SerializerMethodField()
    failed_devices = serializers.SerializerMethodField()
    site: serializers.SlugRelatedField = serializers.SlugRelatedField(
        slug_field="slug", read_only=True
    )

    class Meta:
        model = BACnetTask
        fields = [
            "id",
            "site",
            "kind",
            "status",
            "outcome",
            "outcome_label",
            "summary",
            "failed_devices",
            "trigger",
            "backend",
            "parameters",
            "progress",
            "result",
            "error_message",
            "created_at",
            "dispatched_at",
            "started_at",
            "completed_at",
            "worker_name",
            "attempts",
            "delivery",
            "window_start",
        ]
        read_only_fields = fields

    delivery = serializers.SerializerMethodField(
        help_text="sent: handed to the broker (or the database queue); waiting: not sent "
        "yet (broker unreachable), the sweeper sends it when it is back; done: not pending."
    )

    def get_delivery(self, task: BACnetTask) -> str:
        from discovery.jobs import delivery

        return delivery(task)

    @extend_schema_field(serializers.ChoiceField(choices=Outcome.CHOICES))
    def get_outcome(self, task: BACnetTask) -> str:
        return job_outcome(task)

    def get_outcome_label(self, task: BACnetTask) -> str:
        return outcome_label(task)

    def get_summary(self, task: BACnetTask) -> str:
        return summary_line(task)

    @extend_schema_field(FailedDeviceSerializer(many=True))
    def get_failed_devices(self, task: BACnetTask) -> list[dict]:
        return outcome_api_fields(task)["failed_devices"]


class CollectionGapSerializer(serializers.ModelSerializer):
    """A collection window of a site without a cycle, and why."""

    site: serializers.SlugRelatedField = serializers.SlugRelatedField(
        slug_field="slug", read_only=True
    )

    class Meta:
        model = CollectionGap
        fields = ["site", "window_start", "period_s", "reason", "detail", "recorded_at"]
        read_only_fields = fields


class WindowAccountSerializer(serializers.Serializer):
    """Windows from the first to the last of the range, and what each had."""

    hours = serializers.IntegerField()
    period_s = serializers.IntegerField()
    windows = serializers.IntegerField(source="account.windows")
    with_readings = serializers.IntegerField(source="account.with_readings")
    in_progress = serializers.IntegerField(source="account.in_progress")
    failed = serializers.IntegerField(source="account.failed")
    gaps = serializers.IntegerField(source="account.gaps")
    unexplained = serializers.ListField(
        child=serializers.DateTimeField(), source="account.unexplained"
    )


class JobCreateSerializer(serializers.Serializer):
    """A job request. Parameters by kind: discover {low, high, targets: [address]},
    collect {device_instances: [int]}, enumerate {device_instance: int}. Writes go
    through ``/api/points/<id>/write/`` (value checks, permission, audit trail)."""

    kind = serializers.ChoiceField(
        choices=[
            choice
            for choice in BACnetTask.Kind.choices
            if choice[0] not in (BACnetTask.Kind.WRITE, BACnetTask.Kind.READ_PRIORITY)
        ]
    )
    parameters = serializers.DictField(required=False, default=dict)
    site = serializers.SlugField(required=False, help_text="The site's slug (default site).")


class WorkerSerializer(serializers.ModelSerializer):
    site: serializers.SlugRelatedField = serializers.SlugRelatedField(
        slug_field="slug", read_only=True
    )

    class Meta:
        model = BACnetWorker
        fields = [
            "name",
            "site",
            "backend",
            "hostname",
            "pid",
            "interface",
            "started_at",
            "last_heartbeat",
        ]
        read_only_fields = fields


class BackendStatusSerializer(serializers.Serializer):
    backend = serializers.CharField()
    reason = serializers.CharField()
    worker_alive = serializers.BooleanField()
    message = serializers.CharField()
    workers = WorkerSerializer(many=True)


class TrendPointSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    # The API's key is "label", which is also an attribute of DRF's Field.
    label = serializers.CharField()  # type: ignore[assignment]
    units = serializers.CharField(help_text="As engineers write it: °C, %RH, kWh.")
    units_name = serializers.CharField(help_text="The BACnet name: degrees-celsius.")
    object_type = serializers.CharField()
    drawn_as = serializers.ChoiceField(
        choices=["line", "steps"], help_text="steps: a binary or multi-state point"
    )
    states = serializers.ListField(child=serializers.CharField())
    first_state = serializers.IntegerField(help_text="The value of states[0] (0 or 1).")


class TrendSummarySerializer(serializers.Serializer):
    """The range's statistics, time-weighted: each value weighs the seconds it held."""

    time_average = serializers.FloatField(
        allow_null=True, help_text="Each value weighted by how long it held (within its hold)."
    )
    minimum = serializers.FloatField(allow_null=True, help_text="Held values included.")
    maximum = serializers.FloatField(allow_null=True, help_text="Held values included.")
    readings = serializers.IntegerField(help_text="Stored readings in the range.")
    covered_seconds = serializers.FloatField(help_text="Seconds a value was known.")


class TrendSerializer(serializers.Serializer):
    """Downsampled readings: parallel lists, times in seconds since the epoch. Bucket
    averages are time-weighted: a value holds from its reading until the next one, for
    at most ``hold_seconds``; a bucket with no reading but a held value has count 0."""

    point = TrendPointSerializer()
    start = serializers.DateTimeField()
    end = serializers.DateTimeField()
    range = serializers.CharField()
    bucket_seconds = serializers.FloatField()
    max_buckets = serializers.IntegerField()
    t = serializers.ListField(child=serializers.FloatField())
    avg = serializers.ListField(child=serializers.FloatField())
    min = serializers.ListField(child=serializers.FloatField())
    max = serializers.ListField(child=serializers.FloatField())
    count = serializers.ListField(
        child=serializers.IntegerField(), help_text="Readings; 0: a value held from before."
    )
    hold_seconds = serializers.FloatField(
        help_text="The point's hold limit: how long a value holds with no reading after it."
    )
    summary = TrendSummarySerializer()
    raw_since = serializers.DateTimeField(
        allow_null=True, help_text="Raw readings before this are gone (retention)."
    )
    note = serializers.CharField(help_text="Where the chart shows statistics, and why.")


class AlarmSerializer(serializers.ModelSerializer):
    """A point's alarm: ``cleared_at`` null while it is active."""

    device_instance = serializers.IntegerField(
        source="point.device.device_instance", read_only=True
    )
    acknowledged_by = serializers.CharField(
        source="acknowledged_by.username", read_only=True, default=None
    )
    point_name = serializers.CharField(source="point.name", read_only=True)

    class Meta:
        model = Alarm
        fields = [
            "id",
            "point",
            "point_name",
            "device_instance",
            "source",
            "event_state",
            "from_state",
            "event_type",
            "priority",
            "notify_type",
            "ack_required",
            "notification_class",
            "event_time",
            "raised_at",
            "cleared_at",
            "message",
            "acknowledged_at",
            "acknowledged_by",
            "device_ack",
            "device_ack_note",
        ]
        read_only_fields = fields
