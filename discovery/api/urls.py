"""Routes under /api/."""

from django.contrib.auth.decorators import login_required
from django.urls import path, re_path
from drf_spectacular.renderers import (
    OpenApiJsonRenderer,
    OpenApiJsonRenderer2,
    OpenApiYamlRenderer,
    OpenApiYamlRenderer2,
)
from drf_spectacular.views import SpectacularAPIView
from rest_framework.authtoken.views import ObtainAuthToken
from rest_framework.parsers import FormParser, MultiPartParser
from rest_framework.permissions import IsAuthenticated
from rest_framework.routers import DefaultRouter

from discovery.api import alerts, commanding, views
from discovery.api.docs import OfflineSwaggerView
from discovery.api.parsers import DepthLimitedJSONParser

router = DefaultRouter()
router.register("devices", views.DeviceViewSet, basename="device")
router.register("points", views.PointViewSet, basename="point")
router.register("readings", views.ReadingViewSet, basename="reading")
router.register("alarms", views.AlarmViewSet, basename="alarm")
router.register("alert-rules", alerts.AlertRuleViewSet, basename="alert-rule")
router.register("alert-deliveries", alerts.AlertDeliveryViewSet, basename="alert-delivery")
router.register("stats/hourly", views.HourlyStatViewSet, basename="hourly-stat")
router.register("stats/daily", views.DailyStatViewSet, basename="daily-stat")
router.register("jobs", views.JobViewSet, basename="job")
router.register("collection-gaps", views.CollectionGapViewSet, basename="collection-gap")
router.register("commands", commanding.CommandViewSet, basename="command")
router.register("overrides", commanding.OverrideViewSet, basename="override")

app_name = "api"
urlpatterns = [
    path("task-status/<int:task_id>/", views.TaskStatusView.as_view(), name="task-status"),
    path("points/<int:pk>/write/", commanding.PointWriteView.as_view(), name="point-write"),
    path(
        "points/<int:pk>/relinquish/",
        commanding.PointRelinquishView.as_view(),
        name="point-relinquish",
    ),
    path(
        "points/<int:pk>/priority-array/",
        commanding.PointPriorityArrayView.as_view(),
        name="point-priority-array",
    ),
    path("status/", views.BackendStatusView.as_view(), name="backend-status"),
    path("history-size/", views.HistorySizeView.as_view(), name="history-size"),
    path("collection-windows/", views.CollectionWindowsView.as_view(), name="collection-windows"),
    # DRF's token view names its own parsers: give it the depth-limited JSON one too.
    path(
        "auth/token/",
        ObtainAuthToken.as_view(
            parser_classes=[FormParser, MultiPartParser, DepthLimitedJSONParser]
        ),
        name="token",
    ),
    path(
        "schema/",
        SpectacularAPIView.as_view(
            permission_classes=[IsAuthenticated],
            # JSON first, so errors are JSON like the rest of the API; ?format=yaml works.
            renderer_classes=[
                OpenApiJsonRenderer2,
                OpenApiJsonRenderer,
                OpenApiYamlRenderer,
                OpenApiYamlRenderer2,
            ],
        ),
        name="schema",
    ),
    path(
        "docs/",
        login_required(OfflineSwaggerView.as_view(url_name="api:schema")),
        name="docs",
    ),
    *router.urls,
    re_path(r"^.*$", views.api_not_found),
]
