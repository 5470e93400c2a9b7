"""Pages of the discovery app; the REST API lives in discovery.api.urls."""

from django.urls import path

from discovery.views import (
    alarms,
    commanding,
    dashboard,
    devices,
    exports,
    health,
    history,
    jobs,
)

app_name = "discovery"
urlpatterns = [
    path("", dashboard.dashboard, name="dashboard"),
    path("fragments/devices/", dashboard.device_table, name="device-table"),
    path("fragments/recent-jobs/", dashboard.recent_jobs, name="recent-jobs"),
    path("discover/", dashboard.start_discovery, name="start-discovery"),
    path("devices/<int:instance>/", devices.device_detail, name="device-detail"),
    path("devices/<int:instance>/points/", devices.device_points, name="device-points"),
    path("devices/<int:instance>/enumerate/", devices.enumerate_points, name="enumerate-points"),
    path("points/", devices.point_list, name="point-list"),
    path("points/<int:pk>/", devices.point_detail, name="point-detail"),
    path("points/<int:pk>/command/", commanding.command_panel, name="command-panel"),
    path("points/<int:pk>/write/", commanding.write, name="point-write"),
    path("points/<int:pk>/relinquish/", commanding.relinquish, name="point-relinquish"),
    path("points/<int:pk>/priority-array/", commanding.read_priority, name="point-read-priority"),
    path("overrides/", commanding.overrides, name="overrides"),
    path("overrides/<int:command_id>/end/", commanding.end_override, name="override-end"),
    path("audit/", commanding.audit, name="audit"),
    path("alarms/", alarms.alarm_list, name="alarm-list"),
    path("alarms/<int:pk>/acknowledge/", alarms.acknowledge_alarm, name="alarm-acknowledge"),
    path(
        "devices/<int:instance>/register-alarms/",
        alarms.register_recipient,
        name="device-register-alarms",
    ),
    path("jobs/", jobs.job_list, name="job-list"),
    path("jobs/table/", jobs.job_table, name="job-table"),
    path("jobs/events/", jobs.job_events, name="job-events"),
    path("jobs/<int:pk>/", jobs.job_detail, name="job-detail"),
    path("jobs/<int:pk>/cancel/", jobs.cancel, name="job-cancel"),
    path("history/", history.history, name="history"),
    path("export/readings.csv", exports.export_readings, name="export-readings"),
    path("healthz", health.healthz, name="healthz"),
]
