"""REST viewsets: lists of attributes; the few actions call the same functions as the
pages (``request_job``, ``task_status``, ``backend_status``, ``downsample``)."""

from __future__ import annotations

from typing import Any

from django.db.models import Count, F
from django.http import HttpRequest, JsonResponse, StreamingHttpResponse
from django.utils import timezone
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import mixins, status, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import NotFound, PermissionDenied, ValidationError
from rest_framework.generics import get_object_or_404
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from discovery.api import filters, serializers
from discovery.api.pagination import CappedLimitOffsetPagination, ReadingCursorPagination
from discovery.api.ranges import RangeError, resolve_range
from discovery.api.trends import DEFAULT_BUCKETS, downsample, trend_point
from discovery.csv_export import (
    ExportError,
    export_filename,
    parse_every,
    readings_csv_response,
)
from discovery.jobs import JobError, backend_status, request_job, task_status
from discovery.models import (
    Alarm,
    BACnetDailyStat,
    BACnetDevice,
    BACnetHourlyStat,
    BACnetPoint,
    BACnetReading,
    BACnetTask,
    CollectionGap,
)
from discovery.outcomes import cancel_job, request_discovery
from discovery.services.alarms import acknowledge, request_registration
from discovery.services.commanding import NotAllowed
from discovery.services.cov import with_keeping
from discovery.sites import UnknownSite, device_by_instance, scoped, site_for_request
from discovery.windows import recent_summary

RANGE_PARAMETERS = [
    OpenApiParameter("range", str, enum=["hour", "day", "week", "month", "year", "custom"]),
    OpenApiParameter("start", OpenApiTypes.DATETIME, description="ISO 8601; custom range"),
    OpenApiParameter("end", OpenApiTypes.DATETIME, description="ISO 8601; default now"),
    OpenApiParameter("buckets", int, description="at most this many chart points (<= 5000)"),
]


class SiteScoped:
    """Only the rows of the sites the user may see; ``?site=<slug>`` narrows to one site.
    ``site_field`` leads from the rows to their site."""

    site_field = "site"

    def get_queryset(self) -> Any:
        queryset = super().get_queryset()  # type: ignore[misc]
        request: Request = self.request  # type: ignore[attr-defined]
        return scoped(queryset, request.user, self.site_field, request.query_params.get("site"))


class DeviceViewSet(SiteScoped, viewsets.ReadOnlyModelViewSet):
    """Devices, each at ``/api/devices/<device instance>/`` as on the pages
    (``/devices/<instance>/``): the instance is how BACnet and engineers name a device."""

    lookup_field = "device_instance"
    lookup_value_regex = r"[0-9]+"
    # The site with each device: its slug is in every row (no query per device).
    queryset = BACnetDevice.objects.select_related("site").annotate(point_count=Count("points"))
    serializer_class = serializers.DeviceSerializer
    pagination_class = CappedLimitOffsetPagination
    filterset_class = filters.DeviceFilter
    search_fields = ["name", "vendor_name", "model_name", "address", "description"]
    ordering_fields = ["device_instance", "name", "vendor_name", "last_seen", "is_online"]

    def get_object(self) -> BACnetDevice:
        # Instances repeat between sites: ``?site=`` says which; else the default site's.
        try:
            instance = int(self.kwargs["device_instance"])
        except ValueError:
            raise NotFound() from None
        device = device_by_instance(
            self.request.user,
            instance,
            self.request.query_params.get("site"),
            devices=self.queryset,
        )
        if device is None:
            raise NotFound()
        self.check_object_permissions(self.request, device)
        return device

    @extend_schema(request=None, responses={202: OpenApiTypes.OBJECT})
    @action(detail=True, methods=["post"], url_path="register-alarms")
    def register_alarms(self, request: Request, device_instance: str | None = None) -> Response:
        """Add the BACnet worker to the recipient list of each of the device's
        notification classes (``{"confirmed": false}`` for unconfirmed notifications):
        a write, with the commanding permission; 202 with the audit row and its job."""
        device = self.get_object()
        data = request.data if isinstance(request.data, dict) else {}
        confirmed = data.get("confirmed", True) not in (False, "false", "0", 0)
        try:
            command = request_registration(device, user=request.user, confirmed=confirmed)
        except NotAllowed as refused:
            raise PermissionDenied(str(refused)) from None
        return Response(
            {"command": command.pk, "job": command.task_id, "device": device.device_instance},
            status=status.HTTP_202_ACCEPTED,
        )


class PointViewSet(SiteScoped, viewsets.ReadOnlyModelViewSet):
    site_field = "device__site"
    queryset = with_keeping(BACnetPoint.objects.select_related("device"))
    serializer_class = serializers.PointSerializer
    pagination_class = CappedLimitOffsetPagination
    filterset_class = filters.PointFilter
    search_fields = ["name", "description", "device__name"]
    ordering_fields = ["device", "object_type", "object_instance", "name", "last_read_at"]

    @extend_schema(parameters=RANGE_PARAMETERS, responses=serializers.TrendSerializer)
    @action(detail=True, methods=["get"], filter_backends=[], pagination_class=None)
    def trend(self, request: Request, pk: str | None = None) -> Response:
        """Readings of the point over a range, downsampled for a chart."""
        point = self.get_object()
        try:
            window = resolve_range(request.query_params)
        except RangeError as exc:
            raise ValidationError({"detail": str(exc)}) from exc
        try:
            buckets = int(request.query_params.get("buckets", DEFAULT_BUCKETS))
        except ValueError:
            raise ValidationError({"detail": "buckets must be an integer."}) from None
        data = downsample(point.pk, window.start, window.end, buckets)
        # The range's ends in the site's zone, like every time the API shows.
        ends = {
            key: timezone.localtime(getattr(window, key)).isoformat() for key in ("start", "end")
        }
        return Response({**data, **ends, "range": window.name, "point": trend_point(point)})


class AlarmViewSet(SiteScoped, viewsets.ReadOnlyModelViewSet):
    """Alarms, active first (``cleared_at`` null), newest first. POST
    ``acknowledge/`` records who acknowledged it (409 if someone already did; 403
    without the commanding permission) and, where the device asks for it, sends
    AcknowledgeAlarm (``device_ack`` follows it; the audit row is in the commands)."""

    queryset = Alarm.objects.select_related("point__device", "acknowledged_by").order_by(
        F("cleared_at").desc(nulls_first=True), "-raised_at"
    )
    site_field = "point__device__site"
    serializer_class = serializers.AlarmSerializer
    pagination_class = CappedLimitOffsetPagination
    filter_backends: list[Any] = []

    @extend_schema(request=None, responses=serializers.AlarmSerializer)
    @action(detail=True, methods=["post"])
    def acknowledge(self, request: Request, pk: str | None = None) -> Response:
        alarm = self.get_object()
        try:
            done = acknowledge(alarm, request.user)
        except NotAllowed as refused:
            raise PermissionDenied(str(refused)) from None
        if not done:
            return Response(
                {"detail": f"Alarm {alarm.pk} was already acknowledged."},
                status=status.HTTP_409_CONFLICT,
            )
        return Response(serializers.AlarmSerializer(alarm).data)


class ReadingViewSet(SiteScoped, mixins.ListModelMixin, viewsets.GenericViewSet):
    """Readings in time order (keyset pagination: follow ``next``). ``ordering=-timestamp``
    pages from the newest. ``export/`` streams the same selection as CSV."""

    site_field = "point__device__site"
    queryset = BACnetReading.objects.all()
    serializer_class = serializers.ReadingSerializer
    pagination_class = ReadingCursorPagination
    filterset_class = filters.ReadingFilter
    ordering_fields = ["timestamp"]
    search_fields: list[str] = []

    @extend_schema(
        parameters=[
            OpenApiParameter(
                "every",
                str,
                description="e.g. 5m: one row per point every 5 minutes, the value held "
                "from its last reading (read_at), instead of the stored readings",
            )
        ],
        responses={(200, "text/csv"): OpenApiTypes.STR},
    )
    @action(detail=False, methods=["get"], pagination_class=None)
    def export(self, request: Request) -> StreamingHttpResponse:
        filterset = filters.ReadingFilter(request.query_params, queryset=self.get_queryset())
        if not filterset.is_valid():
            raise ValidationError(filterset.errors)
        chosen = filterset.form.cleaned_data
        try:
            return readings_csv_response(
                filterset.qs.select_related(None),
                export_filename(chosen),
                every=parse_every(request.query_params.get("every")),
                start=chosen.get("start"),
                end=chosen.get("end"),
            )
        except ExportError as exc:
            raise ValidationError({"every": str(exc)}) from exc


class HourlyStatViewSet(SiteScoped, mixins.ListModelMixin, viewsets.GenericViewSet):
    site_field = "point__device__site"
    queryset = BACnetHourlyStat.objects.all()
    serializer_class = serializers.HourlyStatSerializer
    pagination_class = CappedLimitOffsetPagination
    filterset_class = filters.HourlyStatFilter
    ordering_fields = ["bucket_start"]


class DailyStatViewSet(SiteScoped, mixins.ListModelMixin, viewsets.GenericViewSet):
    site_field = "point__device__site"
    queryset = BACnetDailyStat.objects.all()
    serializer_class = serializers.DailyStatSerializer
    pagination_class = CappedLimitOffsetPagination
    filterset_class = filters.DailyStatFilter
    ordering_fields = ["bucket_start"]


class JobViewSet(SiteScoped, mixins.CreateModelMixin, viewsets.ReadOnlyModelViewSet):
    """BACnet jobs. POST {kind, parameters, site} requests one: discover {low, high,
    targets}, collect {device_instances}, enumerate {device_instance}; ``site`` (a slug)
    defaults to the default site."""

    queryset = BACnetTask.objects.all()
    serializer_class = serializers.JobSerializer
    pagination_class = CappedLimitOffsetPagination
    filterset_class = filters.JobFilter
    search_fields = ["progress", "error_message", "worker_name"]
    ordering_fields = ["created_at", "completed_at", "status", "kind"]

    @extend_schema(
        request=serializers.JobCreateSerializer, responses={201: serializers.JobSerializer}
    )
    def create(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        """201 with the new job; for a discovery while one with the same parameters is
        pending or running, 200 with that one (two clicks make one job)."""
        incoming = serializers.JobCreateSerializer(data=request.data)
        incoming.is_valid(raise_exception=True)
        kind, parameters = incoming.validated_data["kind"], incoming.validated_data["parameters"]
        trigger, created = BACnetTask.Trigger.API, True
        try:
            site = site_for_request(request.user, incoming.validated_data.get("site"))
            if kind == BACnetTask.Kind.DISCOVER:
                task, created = request_discovery(
                    parameters, trigger=trigger, user=request.user, site=site
                )
            else:
                task = request_job(kind, parameters, trigger=trigger, user=request.user, site=site)
        except (JobError, UnknownSite) as exc:
            raise ValidationError({"detail": str(exc)}) from exc
        code = status.HTTP_201_CREATED if created else status.HTTP_200_OK
        return Response(task_status(task), status=code)

    @extend_schema(request=None, responses={200: serializers.JobSerializer})
    @action(detail=True, methods=["post"], filter_backends=[])
    def cancel(self, request: Request, pk: str | None = None) -> Response:
        """Cancel a pending job (409 once a worker has taken it, or it has ended)."""
        task = self.get_object()
        if not cancel_job(task.pk):
            task.refresh_from_db()
            return Response(
                {"detail": f"Job {task.pk} is {task.status}: only a pending job can be cancelled."},
                status=status.HTTP_409_CONFLICT,
            )
        task.refresh_from_db()
        return Response(task_status(task))


class CollectionGapViewSet(SiteScoped, viewsets.ReadOnlyModelViewSet):
    """Collection windows that have no cycle, newest first, with the reason."""

    queryset = CollectionGap.objects.all()
    serializer_class = serializers.CollectionGapSerializer
    pagination_class = CappedLimitOffsetPagination
    filterset_fields = ["reason"]
    ordering_fields = ["window_start"]


class CollectionWindowsView(APIView):
    """The window account of the last ``hours`` (default 24, at most 744)."""

    @extend_schema(
        parameters=[OpenApiParameter("hours", int)], responses=serializers.WindowAccountSerializer
    )
    def get(self, request: Request) -> Response:
        try:
            hours = int(request.query_params.get("hours", 24))
        except ValueError:
            raise ValidationError({"detail": "hours must be an integer."}) from None
        if not 1 <= hours <= 744:
            raise ValidationError({"detail": "hours must be between 1 and 744."})
        try:
            site = site_for_request(request.user, request.query_params.get("site"))
        except UnknownSite as exc:
            raise NotFound(str(exc)) from exc
        summary = recent_summary(hours, gaps_shown=0, site=site)
        return Response(serializers.WindowAccountSerializer(summary).data)


class HistorySizeView(APIView):
    """Rows and bytes of the readings history, growth per day, and the points and
    devices that write the most (over the last ``days``, default 14, at most 366)."""

    @extend_schema(parameters=[OpenApiParameter("days", int)], responses=OpenApiTypes.OBJECT)
    def get(self, request: Request) -> Response:
        from discovery.services.history_size import history_size

        try:
            days = int(request.query_params.get("days", 14))
        except ValueError:
            raise ValidationError({"detail": "days must be an integer."}) from None
        if not 1 <= days <= 366:
            raise ValidationError({"detail": "days must be between 1 and 366."})
        return Response(history_size(days))


class TaskStatusView(APIView):
    """Seed 001's task status by id."""

    @extend_schema(responses=serializers.JobSerializer)
    def get(self, request: Request, task_id: int) -> Response:
        task = get_object_or_404(scoped(BACnetTask.objects.all(), request.user, "site"), pk=task_id)
        return Response(task_status(task))


class BackendStatusView(APIView):
    """The backend that carries BACnet jobs and the workers alive by heartbeat."""

    @extend_schema(responses=serializers.BackendStatusSerializer)
    def get(self, request: Request) -> Response:
        return Response(serializers.BackendStatusSerializer(backend_status()).data)


def api_not_found(request: HttpRequest, *args: Any, **kwargs: Any) -> JsonResponse:
    """Unknown paths under /api/ answer in JSON like the rest of the API."""
    return JsonResponse({"detail": NotFound.default_detail}, status=404)
