"""Alert rules and their deliveries over the REST API: staff only, within their sites.

A rule's webhook secret is write-only (``has_webhook_secret`` says whether one is set;
leaving it out of an update keeps it). Bad input is a 400 naming the field."""

from __future__ import annotations

from typing import Any

from django.db.models import QuerySet
from rest_framework import permissions, serializers, viewsets

from discovery.alerts import rule_errors
from discovery.api.pagination import CappedLimitOffsetPagination
from discovery.models import AlertDelivery, AlertRule, Site
from discovery.services.alert_rules import scope_errors, visible_deliveries, visible_rules
from discovery.sites import device_by_instance

EDITABLE = [
    "name",
    "enabled",
    "site",
    "object_type",
    "priority_at_most",
    "email_recipients",
    "webhook_url",
    "webhook_secret",
    "on_raise",
    "on_clear",
    "on_acknowledge",
]


class AlertRuleSerializer(serializers.ModelSerializer):
    site: serializers.SlugRelatedField = serializers.SlugRelatedField(
        slug_field="slug", queryset=Site.objects.all(), allow_null=True, required=False
    )
    device_instance = serializers.IntegerField(
        source="device.device_instance",
        allow_null=True,
        required=False,
        min_value=0,
        max_value=4194303,
    )
    email_recipients = serializers.ListField(
        child=serializers.CharField(max_length=254), required=False, max_length=100
    )
    webhook_secret = serializers.CharField(
        write_only=True, required=False, allow_blank=True, max_length=200
    )
    has_webhook_secret = serializers.SerializerMethodField()

    class Meta:
        model = AlertRule
        fields = ["id", *EDITABLE, "device_instance", "has_webhook_secret", "created_at"]
        read_only_fields = ["id", "created_at"]

    def get_has_webhook_secret(self, rule: AlertRule) -> bool:
        return bool(rule.webhook_secret)

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        user = self.context["request"].user
        current = self.instance
        merged = {
            name: attrs.get(name, getattr(current, name, None) if current else None)
            for name in EDITABLE
        }
        if current is None:
            for name in ("on_raise", "enabled"):
                merged[name] = attrs.get(name, True)
        device = current.device if current else None
        if "device" in attrs:
            instance = (attrs.pop("device") or {}).get("device_instance")
            device = None
            if instance is not None:
                site = merged["site"]
                device = device_by_instance(user, instance, site.slug if site else None)
                if device is None:
                    raise serializers.ValidationError(
                        {"device_instance": [f"No device {instance} at a site you may see."]}
                    )
        attrs["device"] = device
        errors = {
            **rule_errors({**merged, "device": device}),
            **scope_errors(user, merged["site"], device),
        }
        if errors:
            raise serializers.ValidationError(errors)
        return attrs

    def create(self, validated_data: dict[str, Any]) -> AlertRule:
        return super().create({**validated_data, "created_by": self.context["request"].user})


class AlertRuleViewSet(viewsets.ModelViewSet):
    """Alert rules (e-mail and webhook notices of alarms): staff, within their sites."""

    serializer_class = AlertRuleSerializer
    permission_classes = [permissions.IsAdminUser]
    pagination_class = CappedLimitOffsetPagination
    filter_backends: list[Any] = []

    def get_queryset(self) -> QuerySet[AlertRule]:
        return visible_rules(self.request.user)


class AlertDeliverySerializer(serializers.ModelSerializer):
    rule_name = serializers.CharField(source="rule.name", read_only=True)

    class Meta:
        model = AlertDelivery
        fields = [
            "id",
            "rule",
            "rule_name",
            "alarm",
            "event",
            "channel",
            "status",
            "attempts",
            "last_error",
            "created_at",
            "next_attempt_at",
            "delivered_at",
        ]
        read_only_fields = fields


class AlertDeliveryViewSet(viewsets.ReadOnlyModelViewSet):
    """Every notice sent or tried, newest first; ``?alarm=<id>`` for one alarm's."""

    serializer_class = AlertDeliverySerializer
    permission_classes = [permissions.IsAdminUser]
    pagination_class = CappedLimitOffsetPagination
    filter_backends: list[Any] = []

    def get_queryset(self) -> QuerySet[AlertDelivery]:
        deliveries = visible_deliveries(self.request.user)
        alarm = self.request.query_params.get("alarm")
        if alarm is not None:
            if not alarm.isdigit():
                raise serializers.ValidationError({"alarm": ["An alarm id."]})
            deliveries = deliveries.filter(alarm_id=int(alarm))
        return deliveries
