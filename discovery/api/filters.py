"""FilterSets shared by the API and the pages (the device search, the CSV export)."""

from __future__ import annotations

from datetime import UTC
from typing import Any

import django_filters
from django import forms
from django.db.models import Q, QuerySet
from rest_framework.exceptions import ValidationError
from rest_framework.filters import OrderingFilter
from rest_framework.request import Request
from rest_framework.views import APIView

from discovery.models import (
    BACnetDailyStat,
    BACnetDevice,
    BACnetHourlyStat,
    BACnetPoint,
    BACnetReading,
    BACnetTask,
)
from discovery.outcomes import Outcome, outcome_q


class StartBeforeEndForm(forms.Form):
    """Rejects a range whose start is not before its end: a clear 400, not an empty page."""

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        for name in ("start", "end"):
            if cleaned.get(name) is not None:
                try:
                    # ISO 8601 allows offsets up to 23:59, PostgreSQL stores 15:59 at
                    # most: queries get UTC.
                    cleaned[name] = cleaned[name].astimezone(UTC)
                except OverflowError:
                    self.add_error(name, "This date-time is out of range.")
        start, end = cleaned.get("start"), cleaned.get("end")
        if start and end and start >= end:
            raise forms.ValidationError("start must be before end.")
        return cleaned


class StrictNullBooleanField(forms.NullBooleanField):
    """true/false (also 1/0, yes/no) or empty; anything else is an error, where Django's
    field reads ``online=maybe`` as "no filter" and answers with everything."""

    # NullBooleanSelect would turn an unknown word into "no filter" before we see it.
    widget = forms.TextInput
    TRUE = {"true", "1", "yes", "on"}
    FALSE = {"false", "0", "no", "off"}

    # None for empty, as NullBooleanField itself; the stubs type it as BooleanField.
    def to_python(self, value: Any) -> bool | None:  # type: ignore[override]
        if isinstance(value, bool):
            return value
        if value in (None, ""):
            return None
        text = str(value).strip().lower()
        if text in self.TRUE:
            return True
        if text in self.FALSE:
            return False
        raise forms.ValidationError("Use true or false.", code="invalid")

    def validate(self, value: Any) -> None:
        pass


class StrictBooleanFilter(django_filters.BooleanFilter):
    field_class = StrictNullBooleanField


ONLINE_CHOICES = [("", "Online and offline"), ("true", "Online"), ("false", "Offline")]


class StrictOrderingFilter(OrderingFilter):
    """``ordering`` by a field the endpoint does not offer is a 400 naming the fields
    (DRF would silently ignore it)."""

    def get_ordering(self, request: Request, queryset: QuerySet, view: APIView) -> Any:
        params = request.query_params.get(self.ordering_param)
        if params:
            fields = [param.strip() for param in params.split(",")]
            valid = {
                name for name, _ in self.get_valid_fields(queryset, view, {"request": request})
            }
            wrong = [f for f in fields if f.lstrip("-") not in valid]
            if wrong:
                raise ValidationError(
                    {
                        self.ordering_param: [
                            f"Cannot order by {', '.join(wrong)}: use one of "
                            f"{', '.join(sorted(valid))}, with - for descending."
                        ]
                    }
                )
        return super().get_ordering(request, queryset, view)


class DeviceFilter(django_filters.FilterSet):
    q = django_filters.CharFilter(method="filter_text", label="Name, vendor, model or address")
    name = django_filters.CharFilter(lookup_expr="icontains")
    vendor = django_filters.CharFilter(field_name="vendor_name", lookup_expr="icontains")
    online = StrictBooleanFilter(
        field_name="is_online", widget=forms.Select(choices=ONLINE_CHOICES)
    )

    class Meta:
        model = BACnetDevice
        fields = ["device_instance", "vendor_id"]

    def filter_text(self, queryset: QuerySet, name: str, value: str) -> QuerySet:
        match = (
            Q(name__icontains=value)
            | Q(vendor_name__icontains=value)
            | Q(model_name__icontains=value)
            | Q(address__icontains=value)
        )
        if value.strip().isdigit():
            match |= Q(device_instance=int(value))
        return queryset.filter(match)


class PointFilter(django_filters.FilterSet):
    q = django_filters.CharFilter(method="filter_text", label="Name, description or device")
    name = django_filters.CharFilter(lookup_expr="icontains")
    device_instance = django_filters.NumberFilter(field_name="device__device_instance")
    object_type = django_filters.CharFilter()
    vendor = django_filters.CharFilter(field_name="device__vendor_name", lookup_expr="icontains")
    online = StrictBooleanFilter(
        field_name="device__is_online", widget=forms.Select(choices=ONLINE_CHOICES)
    )

    polling_enabled = StrictBooleanFilter()

    class Meta:
        model = BACnetPoint
        fields = ["device", "object_type", "object_instance", "polling_enabled"]

    def filter_text(self, queryset: QuerySet, name: str, value: str) -> QuerySet:
        return queryset.filter(
            Q(name__icontains=value)
            | Q(description__icontains=value)
            | Q(device__name__icontains=value)
        )


class ReadingFilter(django_filters.FilterSet):
    point = django_filters.NumberFilter(field_name="point_id")
    device = django_filters.NumberFilter(field_name="point__device_id")
    device_instance = django_filters.NumberFilter(field_name="point__device__device_instance")
    start = django_filters.IsoDateTimeFilter(field_name="timestamp", lookup_expr="gte")
    end = django_filters.IsoDateTimeFilter(field_name="timestamp", lookup_expr="lt")

    class Meta:
        model = BACnetReading
        fields: list[str] = []
        form = StartBeforeEndForm


class StatFilter(django_filters.FilterSet):
    point = django_filters.NumberFilter(field_name="point_id")
    device = django_filters.NumberFilter(field_name="point__device_id")
    start = django_filters.IsoDateTimeFilter(field_name="bucket_start", lookup_expr="gte")
    end = django_filters.IsoDateTimeFilter(field_name="bucket_start", lookup_expr="lt")

    class Meta:
        fields: list[str] = []
        form = StartBeforeEndForm


class HourlyStatFilter(StatFilter):
    class Meta(StatFilter.Meta):
        model = BACnetHourlyStat


class DailyStatFilter(StatFilter):
    class Meta(StatFilter.Meta):
        model = BACnetDailyStat


class JobFilter(django_filters.FilterSet):
    kind = django_filters.ChoiceFilter(choices=BACnetTask.Kind.choices)
    status = django_filters.ChoiceFilter(choices=BACnetTask.Status.choices)
    # The status with "completed" split in two: completed_with_errors has failed devices.
    outcome = django_filters.ChoiceFilter(choices=Outcome.CHOICES, method="filter_outcome")
    trigger = django_filters.ChoiceFilter(choices=BACnetTask.Trigger.choices)

    class Meta:
        model = BACnetTask
        fields = ["kind", "status", "outcome", "trigger", "backend"]

    def filter_outcome(self, queryset: QuerySet, name: str, value: str) -> QuerySet:
        return queryset.filter(outcome_q(value))
