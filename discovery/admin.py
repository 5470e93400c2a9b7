from typing import Any

from django import forms
from django.contrib import admin

from discovery.models import (
    AlertDelivery,
    AlertRule,
    BACnetDailyStat,
    BACnetDevice,
    BACnetHourlyStat,
    BACnetPoint,
    BACnetReading,
    BACnetTask,
    BACnetWorker,
    Keeping,
    KeepingRule,
    PointCommand,
    PointCommandState,
    Site,
)
from discovery.services.alert_rules import scope_errors, visible_deliveries, visible_rules
from discovery.services.alerts import resend_failed
from discovery.sites import visible_sites


@admin.register(Site)
class SiteAdmin(admin.ModelAdmin):
    list_display = ["name", "slug", "queue", "time_zone", "collect_interval_s", "bbmd_address"]
    search_fields = ["name", "slug"]
    prepopulated_fields = {"slug": ["name"]}
    filter_horizontal = ["viewers"]


@admin.register(BACnetDevice)
class BACnetDeviceAdmin(admin.ModelAdmin):
    list_display = [
        "device_instance",
        "site",
        "name",
        "address",
        "vendor_name",
        "is_online",
        "in_fault",
        "conflict_addresses",
        "last_seen",
    ]
    list_filter = ["site", "is_online", "in_fault", "vendor_name", "segmentation"]
    search_fields = ["name", "address", "vendor_name", "model_name", "=device_instance"]
    readonly_fields = ["first_seen", "last_seen", "address_history", "conflict_since"]
    actions = ["keep_current_binding"]

    @admin.action(description="Duplicate instance resolved: keep the current address")
    def keep_current_binding(self, request, queryset) -> None:
        for device in queryset.exclude(conflict_addresses=[]):
            device.resolve_conflict()


@admin.register(BACnetPoint)
class BACnetPointAdmin(admin.ModelAdmin):
    list_display = [
        "device",
        "object_type",
        "object_instance",
        "name",
        "last_value",
        "units",
        "keeping",
        "cov_state",
        "cov_renewed_at",
    ]
    list_filter = ["object_type", "polling_enabled", "keeping", "cov_state"]
    list_select_related = ["device"]
    search_fields = ["name", "description", "device__name"]
    raw_id_fields = ["device"]
    # Kept by the cycle store for the deadband, and set by the BACnet worker for the COV
    # subscription: editing them would only mislead both.
    readonly_fields = [
        *("stored_value", "stored_value_text", "stored_status_flags", "stored_at"),
        *("cov_state", "cov_renewed_at", "cov_note"),
    ]
    actions = ["keep_polled", "keep_by_cov", "keep_by_cov_check", "keep_by_rule"]

    def _keep(self, request, queryset, keeping: str) -> None:
        count = queryset.update(keeping=keeping)
        self.message_user(request, f"{count} points: keeping set to {keeping or 'rule'}.")

    @admin.action(description="Keep by polling")
    def keep_polled(self, request, queryset) -> None:
        self._keep(request, queryset, Keeping.POLLED)

    @admin.action(description="Keep by change of value")
    def keep_by_cov(self, request, queryset) -> None:
        self._keep(request, queryset, Keeping.COV)

    @admin.action(description="Keep by change of value, with a slow check poll")
    def keep_by_cov_check(self, request, queryset) -> None:
        self._keep(request, queryset, Keeping.COV_CHECK)

    @admin.action(description="Keep as the object type's rule says")
    def keep_by_rule(self, request, queryset) -> None:
        self._keep(request, queryset, "")


@admin.register(KeepingRule)
class KeepingRuleAdmin(admin.ModelAdmin):
    list_display = ["object_type", "keeping"]


@admin.register(BACnetReading)
class BACnetReadingAdmin(admin.ModelAdmin):
    list_display = ["point", "timestamp", "value", "value_text", "status_flags"]
    list_select_related = ["point"]
    raw_id_fields = ["point"]
    date_hierarchy = "timestamp"
    # Counting a table of millions of rows on every page load is what makes admins slow.
    show_full_result_count = False


@admin.register(BACnetHourlyStat, BACnetDailyStat)
class StatAdmin(admin.ModelAdmin):
    list_display = ["point", "bucket_start", "minimum", "maximum", "average", "count"]
    list_select_related = ["point"]
    raw_id_fields = ["point"]
    show_full_result_count = False


@admin.register(BACnetTask)
class BACnetTaskAdmin(admin.ModelAdmin):
    list_display = [
        "id",
        "kind",
        "status",
        "summary",
        "failed_devices",
        "trigger",
        "backend",
        "created_at",
        "worker_name",
    ]
    list_filter = ["kind", "status", "trigger", "backend"]
    readonly_fields = ["created_at", "started_at", "heartbeat_at", "completed_at"]


@admin.register(BACnetWorker)
class BACnetWorkerAdmin(admin.ModelAdmin):
    list_display = ["name", "backend", "hostname", "interface", "last_heartbeat", "event_counts"]


@admin.register(PointCommand)
class PointCommandAdmin(admin.ModelAdmin):
    """The audit trail: shown, never added, changed or deleted here."""

    list_display = [
        "created_at",
        "username",
        "device_instance",
        "point_name",
        "action",
        "value_text",
        "priority",
        "expires_at",
        "result",
        "read_back_text",
        "override_state",
    ]
    list_filter = ["action", "result", "override_state"]
    search_fields = ["username", "point_name", "reason", "=device_instance"]
    date_hierarchy = "created_at"

    def has_add_permission(self, request, obj=None) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False


@admin.register(PointCommandState)
class PointCommandStateAdmin(admin.ModelAdmin):
    list_display = ["point", "read_at", "present_text", "current_priority", "relinquish_default"]
    list_select_related = ["point"]
    raw_id_fields = ["point"]


class AlertRuleForm(forms.ModelForm):
    """E-mail recipients typed one per line (or comma-separated); the rule's own checks
    (``AlertRule.clean``) and the user's sites (``scope_errors``) say what is wrong."""

    email_recipients = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 3}),
        required=False,
        help_text="One address per line, or separated by commas.",
    )
    webhook_url = forms.URLField(max_length=500, required=False, assume_scheme="https")
    request: Any = None

    class Meta:
        model = AlertRule
        fields = [
            "name", "enabled", "site", "device", "object_type", "priority_at_most",
            "email_recipients", "webhook_url", "webhook_secret",
            "on_raise", "on_clear", "on_acknowledge",
        ]  # fmt: skip
        widgets = {"webhook_secret": forms.PasswordInput(render_value=True)}

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if self.instance.pk:
            self.initial["email_recipients"] = "\n".join(self.instance.email_recipients)

    def clean_email_recipients(self) -> list[str]:
        text = self.cleaned_data.get("email_recipients") or ""
        return [part.strip() for part in text.replace(",", "\n").splitlines() if part.strip()]

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        for field, messages in scope_errors(
            self.request.user, cleaned.get("site"), cleaned.get("device")
        ).items():
            self.add_error(field, messages)
        return cleaned


@admin.register(AlertRule)
class AlertRuleAdmin(admin.ModelAdmin):
    form = AlertRuleForm
    list_display = ["name", "enabled", "site", "device", "object_type", "on_raise", "on_clear"]
    list_filter = ["enabled", "site"]
    search_fields = ["name"]
    raw_id_fields = ["device"]

    def get_queryset(self, request):
        return visible_rules(request.user)

    def get_form(self, request, obj=None, change=False, **kwargs):
        form = super().get_form(request, obj, change=change, **kwargs)
        return type(form.__name__, (form,), {"request": request})

    def formfield_for_foreignkey(self, db_field, request, **kwargs):
        if db_field.name == "site":
            kwargs["queryset"] = visible_sites(request.user)
        return super().formfield_for_foreignkey(db_field, request, **kwargs)

    def save_model(self, request, obj, form, change) -> None:
        if not change:
            obj.created_by = request.user
        super().save_model(request, obj, form, change)


@admin.register(AlertDelivery)
class AlertDeliveryAdmin(admin.ModelAdmin):
    """Every notice sent or tried: an operator sees here what failed and why."""

    list_display = [
        "created_at", "rule", "alarm", "event", "channel", "status", "attempts",
        "last_error", "delivered_at",
    ]  # fmt: skip
    list_filter = ["status", "channel", "event", "rule"]
    list_select_related = ["rule", "alarm__point"]
    search_fields = ["=alarm__id", "rule__name", "last_error"]
    actions = ["send_again"]

    def get_queryset(self, request):
        return visible_deliveries(request.user)

    def has_add_permission(self, request, obj=None) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    @admin.action(description="Send again (failed notices)")
    def send_again(self, request, queryset) -> None:
        count = resend_failed(queryset.values_list("pk", flat=True))
        self.message_user(request, f"{count} notices queued again.")
