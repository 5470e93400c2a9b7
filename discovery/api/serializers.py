"""Serializers: what the API shows of each model. Device strings go out as JSON strings;
clients render them as text."""

from __future__ import annotations

from rest_framework import serializers

from discovery.models import (
    BACnetDailyStat,
    BACnetDevice,
    BACnetHourlyStat,
    BACnetPoint,
    BACnetReading,
    BACnetTask,
    BACnetWorker,
    StatusFlags,
)


def status_flag_names(mask: int | None) -> list[str]:
    """Names of the StatusFlags bits set in ``mask``."""
    return StatusFlags.flag_names(mask)


class DeviceSerializer(serializers.ModelSerializer):
    point_count = serializers.IntegerField(read_only=True)

    class Meta:
        model = BACnetDevice
        fields = [
            "id",
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
    device_instance = serializers.IntegerField(source="device.device_instance", read_only=True)
    status_flag_names = serializers.SerializerMethodField()

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
            "state_texts",
            "last_value",
            "last_value_text",
            "last_status_flags",
            "status_flag_names",
            "last_read_at",
            "last_error",
            "polling_enabled",
        ]
        read_only_fields = fields

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
        fields = ["point", "bucket_start", "minimum", "maximum", "average", "count"]
        read_only_fields = fields


class DailyStatSerializer(serializers.ModelSerializer):
    class Meta:
        model = BACnetDailyStat
        fields = ["point", "bucket_start", "minimum", "maximum", "average", "count"]
        read_only_fields = fields


class JobSerializer(serializers.ModelSerializer):
    """The same fields as ``discovery.jobs.task_status`` (seed 001's task-status shape)."""

    class Meta:
        model = BACnetTask
        fields = [
            "id",
            "kind",
            "status",
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
        ]
        read_only_fields = fields


class JobCreateSerializer(serializers.Serializer):
    """A job request. Parameters by kind: discover {low, high, targets: [address]},
    collect {device_instances: [int]}, enumerate {device_instance: int}."""

    kind = serializers.ChoiceField(choices=BACnetTask.Kind.choices)
    parameters = serializers.DictField(required=False, default=dict)


class WorkerSerializer(serializers.ModelSerializer):
    class Meta:
        model = BACnetWorker
        fields = ["name", "backend", "hostname", "pid", "interface", "started_at", "last_heartbeat"]
        read_only_fields = fields


class BackendStatusSerializer(serializers.Serializer):
    backend = serializers.CharField()
    reason = serializers.CharField()
    worker_alive = serializers.BooleanField()
    message = serializers.CharField()
    workers = WorkerSerializer(many=True)


class TrendPointSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    label = serializers.CharField()
    units = serializers.CharField()


class TrendSerializer(serializers.Serializer):
    """Downsampled readings: parallel lists, times in seconds since the epoch."""

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
    count = serializers.ListField(child=serializers.IntegerField())
