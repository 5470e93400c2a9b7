"""The dashboard: device list with search, counts, Start Discovery and recent jobs.

The device table and the recent-jobs table are also served alone as fragments, which
the page swaps in (htmx) when the job event stream says something changed."""

from __future__ import annotations

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.db.models import Count
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_POST

from discovery.api.filters import DeviceFilter
from discovery.jobs import JobError, backend_status
from discovery.models import BACnetDevice, BACnetTask
from discovery.outcomes import request_discovery
from discovery.site_status import site_statuses
from discovery.sites import UnknownSite, scoped, site_for_request
from discovery.views.display import (
    device_counts,
    job_rows,
    last_collection,
    paginate,
    query_without_page,
)
from discovery.views.forms import DiscoverForm

DEVICES_PER_PAGE = 100
RECENT_JOBS = 10
RECENT_CYCLES = 5


def _site(request: HttpRequest) -> str | None:
    """The site asked for (``?site=<slug>``); none: every site the user may see."""
    return request.GET.get("site") or request.POST.get("site") or None


def _device_table_context(request: HttpRequest) -> dict:
    devices = BACnetDevice.objects.select_related("site").annotate(point_count=Count("points"))
    site = _site(request)
    devices = scoped(devices, request.user, "site", site)
    devices = devices.order_by("device_instance", "site_id")
    device_filter = DeviceFilter(request.GET, queryset=devices)
    # An invalid filter (e.g. online=maybe) shows everything rather than an error page.
    shown = device_filter.qs if device_filter.is_valid() else devices
    return {
        "filter": device_filter,
        "page": paginate(request, shown, DEVICES_PER_PAGE),
        "query": query_without_page(request),
        # The counts and the last cycle of the sites shown, not of every site.
        "counts": device_counts(scoped(BACnetDevice.objects.all(), request.user, "site", site)),
        "last_collection": last_collection(
            scoped(BACnetTask.objects.all(), request.user, "site", site)
        ),
    }


def _recent_jobs(request: HttpRequest) -> dict:
    """Jobs people started apart from the scheduled cycles: one collection a minute
    would otherwise push a discovery out of sight within minutes."""
    jobs = scoped(BACnetTask.objects.all(), request.user, "site", _site(request))
    jobs = jobs.order_by("-created_at", "-id")
    by_people = [BACnetTask.Trigger.MANUAL, BACnetTask.Trigger.API]
    return {
        "jobs": job_rows(jobs.filter(trigger__in=by_people)[:RECENT_JOBS]),
        "cycles": job_rows(jobs.filter(trigger=BACnetTask.Trigger.SCHEDULED)[:RECENT_CYCLES]),
    }


@login_required
@require_GET
def dashboard(request: HttpRequest) -> HttpResponse:
    context = _device_table_context(request)
    context.update(
        _recent_jobs(request),
        discover_form=DiscoverForm(),
        backend=backend_status(),
        sites=site_statuses(request.user, settings.BACNET_BACKEND),
    )
    return render(request, "discovery/dashboard.html", context)


@login_required
@require_GET
def device_table(request: HttpRequest) -> HttpResponse:
    response = render(request, "discovery/_device_table.html", _device_table_context(request))
    # Keep the address bar in step with the filters without adding history entries.
    query = query_without_page(request)
    response["HX-Replace-Url"] = reverse("discovery:dashboard") + (f"?{query}" if query else "")
    return response


@login_required
@require_GET
def recent_jobs(request: HttpRequest) -> HttpResponse:
    return render(request, "discovery/_recent_jobs.html", _recent_jobs(request))


@login_required
@require_POST
def start_discovery(request: HttpRequest) -> HttpResponse:
    form = DiscoverForm(request.POST)
    task, created, error = None, False, ""
    if form.is_valid():
        try:
            site = site_for_request(request.user, _site(request))
            # A second click while the first discovery is pending or running gets it.
            task, created = request_discovery(
                form.job_parameters(),
                trigger=BACnetTask.Trigger.MANUAL,
                user=request.user,
                site=site,
            )
        except (JobError, UnknownSite) as exc:
            error = str(exc)
    else:
        error = form.error_text()
    if request.headers.get("HX-Request"):
        response = render(
            request,
            "discovery/_discovery_feedback.html",
            {"task": task, "created": created, "error": error},
        )
        if task:
            response["HX-Trigger"] = "jobs-changed"
        return response
    if task and created:
        messages.success(request, f"Discovery job {task.pk} requested.")
    elif task:
        messages.info(request, f"Discovery job {task.pk} is already {task.status}.")
    else:
        messages.error(request, f"Discovery not started: {error}")
    return redirect("discovery:dashboard")
