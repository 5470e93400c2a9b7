from django.contrib import admin

from discovery.models import (
    BACnetDailyStat,
    BACnetDevice,
    BACnetHourlyStat,
    BACnetPoint,
    BACnetReading,
    BACnetTask,
    BACnetWorker,
    Site,
)


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
    list_display = ["device", "object_type", "object_instance", "name", "last_value", "units"]
    list_filter = ["object_type", "polling_enabled"]
    list_select_related = ["device"]
    search_fields = ["name", "description", "device__name"]
    raw_id_fields = ["device"]


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
    list_display = ["name", "backend", "hostname", "interface", "last_heartbeat"]
