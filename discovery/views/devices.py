"""Device and point pages: properties, points with their latest values, trends."""

from __future__ import annotations

from urllib.parse import urlencode

from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_POST

from discovery.api.filters import PointFilter
from discovery.api.ranges import RANGE_LABELS, RangeError, TimeRange, resolve_range
from discovery.api.trends import retention_note
from discovery.jobs import JobError, request_job
from discovery.models import (
    BACnetDailyStat,
    BACnetDevice,
    BACnetHourlyStat,
    BACnetPoint,
    BACnetTask,
    CovState,
    Keeping,
)
from discovery.services.commanding import can_command
from discovery.services.cov import kept_as
from discovery.sites import device_by_instance, scoped
from discovery.units import unit_symbol
from discovery.views.commanding import command_panel_context
from discovery.views.display import (
    device_properties,
    format_value,
    is_no_number,
    paginate,
    point_rows,
    query_without_page,
)
from discovery.views.forms import RangeForm

POINTS_PER_PAGE = 100
HOURLY_ROWS = 48
DAILY_ROWS = 62


def _device(request: HttpRequest, instance: int) -> BACnetDevice:
    """The device of ``instance`` at a site the user may see (``?site=`` says which;
    instances repeat between sites), or 404."""
    slug = request.GET.get("site") or request.POST.get("site")
    device = device_by_instance(request.user, instance, slug)
    if device is None:
        raise Http404(f"No device {instance}.")
    return device


def _device_points(device: BACnetDevice) -> list:
    return point_rows(device.points.order_by("object_type", "object_instance"))


@login_required
@require_GET
def device_detail(request: HttpRequest, instance: int) -> HttpResponse:
    device = _device(request, instance)
    return render(
        request,
        "discovery/device_detail.html",
        {
            "device": device,
            "properties": device_properties(device),
            "points": _device_points(device),
            "can_command": can_command(request.user),
        },
    )


@login_required
@require_GET
def point_list(request: HttpRequest) -> HttpResponse:
    """Points across devices, searchable by name, type, vendor and device state."""
    points = scoped(
        BACnetPoint.objects.select_related("device"),
        request.user,
        "device__site",
        request.GET.get("site"),
    ).order_by("device__device_instance", "object_type", "object_instance")
    point_filter = PointFilter(request.GET, queryset=points)
    types = BACnetPoint.objects.order_by("object_type").values_list("object_type", flat=True)
    point_filter.form.fields["object_type"].widget = forms.Select(
        choices=[("", "All types"), *((t, t) for t in types.distinct())]
    )
    page = paginate(
        request, point_filter.qs if point_filter.is_valid() else points, POINTS_PER_PAGE
    )
    return render(
        request,
        "discovery/point_list.html",
        {
            "filter": point_filter,
            "page": page,
            "rows": point_rows(page.object_list),
            "query": query_without_page(request),
        },
    )


@login_required
@require_GET
def device_points(request: HttpRequest, instance: int) -> HttpResponse:
    device = _device(request, instance)
    return render(
        request, "discovery/_point_table.html", {"device": device, "points": _device_points(device)}
    )


@login_required
@require_POST
def enumerate_points(request: HttpRequest, instance: int) -> HttpResponse:
    device = _device(request, instance)
    try:
        task = request_job(
            BACnetTask.Kind.ENUMERATE,
            {"device_instance": device.device_instance},
            user=request.user,
            site=device.site,
        )
    except JobError as exc:
        messages.error(request, f"Re-enumeration not started: {exc}")
    else:
        messages.success(request, f"Job {task.pk} re-enumerates the points of this device.")
    return redirect("discovery:device-detail", instance=device.device_instance)


def _range_query(window: TimeRange) -> dict[str, str]:
    if window.name == "custom":
        return {"start": window.start.isoformat(), "end": window.end.isoformat()}
    return {"range": window.name}


def keeping_context(point: BACnetPoint) -> dict[str, object]:
    """How the point is kept, for its page: the mode, where it comes from, and the
    subscription's state (renewed when subscribed, otherwise why it is polled)."""
    keeping, source = kept_as(point)
    return {
        "label": Keeping(keeping).label,
        "source": {"point": "set on the point", "rule": "the object type's rule"}.get(source, ""),
        "cov": keeping != Keeping.POLLED,
        "subscribed": point.cov_state == CovState.SUBSCRIBED,
        "state": point.get_cov_state_display() if point.cov_state else "",
    }


@login_required
@require_GET
def point_detail(request: HttpRequest, pk: int) -> HttpResponse:
    points = scoped(BACnetPoint.objects.select_related("device"), request.user, "device__site")
    point = get_object_or_404(points, pk=pk)
    error = ""
    try:
        window = resolve_range(request.GET)
    except RangeError as exc:
        error = str(exc)
        window = resolve_range({})
    in_window = {"point": point, "bucket_start__gte": window.start, "bucket_start__lt": window.end}
    hourly = BACnetHourlyStat.objects.filter(**in_window).order_by("-bucket_start")[:HOURLY_ROWS]
    daily = BACnetDailyStat.objects.filter(**in_window).order_by("-bucket_start")[:DAILY_ROWS]
    export_query = {
        "point": point.pk,
        "start": window.start.isoformat(),
        "end": window.end.isoformat(),
    }
    return render(
        request,
        "discovery/point_detail.html",
        {
            "point": point,
            "device": point.device,
            "keeping": keeping_context(point),
            "value": format_value(point.last_value, point.last_value_text),
            "no_number": is_no_number(point.last_value, point.last_value_text),
            "units": unit_symbol(point.units),
            "window": window,
            "range_label": RANGE_LABELS[window.name],
            "range_names": list(RANGE_LABELS.items()),
            "range_form": RangeForm(
                initial={"range": window.name, "start": window.start, "end": window.end}
            ),
            "range_error": error,
            "retention_note": retention_note(window.start)[1],
            "chart_url": reverse("api:point-trend", args=[point.pk])
            + "?"
            + urlencode(_range_query(window)),
            "export_url": reverse("discovery:export-readings") + "?" + urlencode(export_query),
            "hourly": hourly,
            "daily": daily,
            **command_panel_context(point, request.user),
        },
    )
