"""The jobs pages and the job event stream that keeps every open page up to date."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.db import connection
from django.http import HttpRequest, HttpResponse, StreamingHttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_GET, require_POST

from discovery.api.filters import JobFilter
from discovery.events import task_changes
from discovery.jobs import backend_status
from discovery.models import BACnetTask
from discovery.outcomes import cancel_job, failed_devices
from discovery.sites import UnknownSite, scoped, site_for_request
from discovery.views.display import job_rows, paginate, query_without_page
from discovery.windows import recent_summary

JOBS_PER_PAGE = 50
RETRY_MS = 3000


def _keepalive_s() -> float:
    """A keep-alive comment this often stops proxies from closing an idle stream, and
    is how the server notices a browser that went away (the write fails)."""
    return float(getattr(settings, "BACNET_EVENTS_KEEPALIVE_S", 15.0))


def _stream_max_s() -> float:
    """Each stream holds a server thread and, on PostgreSQL, a LISTEN connection: end it
    now and then; the browser's EventSource reconnects by itself after ``retry`` ms."""
    return float(getattr(settings, "BACNET_EVENTS_MAX_S", 300.0))


def _job_table_context(request: HttpRequest) -> dict:
    jobs = scoped(BACnetTask.objects.all(), request.user, "site", request.GET.get("site"))
    job_filter = JobFilter(request.GET, queryset=jobs)
    shown = job_filter.qs if job_filter.is_valid() else jobs
    page = paginate(request, shown, JOBS_PER_PAGE)
    return {
        "filter": job_filter,
        "page": page,
        "rows": job_rows(page.object_list),
        "query": query_without_page(request),
    }


def _windows_of(request: HttpRequest) -> dict | None:
    """The window account of the site asked for (else the user's first site)."""
    try:
        site = site_for_request(request.user, request.GET.get("site"))
    except UnknownSite:
        return None
    return recent_summary(site=site)


@login_required
@require_GET
def job_list(request: HttpRequest) -> HttpResponse:
    context = _job_table_context(request)
    # Flower shows Celery's workers and queues: with the database backend there are none.
    flower = settings.BACNET_BACKEND == "celery"
    context.update(
        backend=backend_status(),
        flower_url=settings.FLOWER_URL if flower else "",
        windows=_windows_of(request),
    )
    return render(request, "discovery/jobs.html", context)


@login_required
@require_GET
def job_table(request: HttpRequest) -> HttpResponse:
    return render(request, "discovery/_job_table.html", _job_table_context(request))


@login_required
@require_GET
def job_detail(request: HttpRequest, pk: int) -> HttpResponse:
    job = get_object_or_404(scoped(BACnetTask.objects.all(), request.user, "site"), pk=pk)
    return render(
        request,
        "discovery/job_detail.html",
        {
            "job": job,
            "row": job_rows([job])[0],
            "failed_devices": failed_devices(job.result),
            "parameters": json.dumps(job.parameters, indent=2, sort_keys=True),
            "result": json.dumps(job.result, indent=2, sort_keys=True)
            if job.result is not None
            else "",
        },
    )


@login_required
@require_POST
def cancel(request: HttpRequest, pk: int) -> HttpResponse:
    """Cancel a pending job, then go back to the page the button was on."""
    job = get_object_or_404(scoped(BACnetTask.objects.all(), request.user, "site"), pk=pk)
    if cancel_job(job.pk):
        messages.success(request, f"Job {job.pk} cancelled.")
    else:
        job.refresh_from_db()
        messages.error(
            request,
            f"Job {job.pk} is {job.get_status_display().lower()}: only a pending "
            "job can be cancelled.",
        )
    # Back to the page the button was on (the Referer: a row may have been swapped in
    # by htmx from a fragment URL, which is no page to return to).
    back = request.POST.get("next") or request.headers.get("Referer", "")
    if back and url_has_allowed_host_and_scheme(back, allowed_hosts={request.get_host()}):
        return redirect(back)
    return redirect("discovery:job-detail", pk=job.pk)


def _event_stream(user: Any, max_s: float, keepalive_s: float) -> Iterator[str]:
    yield f"retry: {RETRY_MS}\n\n"
    deadline = time.monotonic() + max_s
    changes = task_changes(timeout_s=keepalive_s)
    listening = False
    try:
        for ids in changes:
            if ids:
                jobs = [
                    {
                        "id": job.pk,
                        "kind": job.kind,
                        "status": job.status,
                        "finished": job.is_finished,
                    }
                    # A user limited to some sites hears of their jobs only.
                    for job in scoped(BACnetTask.objects.filter(pk__in=ids), user, "site").only(
                        "id", "kind", "status"
                    )
                ]
                yield f"event: jobs\ndata: {json.dumps(jobs)}\n\n"
            elif not listening:
                # The listener started with the first pass: a change made before then
                # was not streamed, so the page catches up once.
                yield "event: catch-up\ndata: {}\n\n"
            else:
                yield ": keep-alive\n\n"
            listening = True
            if time.monotonic() >= deadline:
                break
    finally:
        changes.close()
        # The stream may idle for minutes: do not hold this thread's connection too.
        connection.close()


@login_required
@require_GET
def job_events(request: HttpRequest) -> HttpResponse | StreamingHttpResponse:
    """Server-Sent Events: a ``jobs`` event with the changed jobs' id, kind and status.

    A stream occupies its server thread for minutes. A server with one thread per
    process (gunicorn's sync workers) would stop serving anything else, so there the
    answer is 204, which tells EventSource not to reconnect: the page polls instead."""
    if not request.META.get("wsgi.multithread", False):
        return HttpResponse(status=204)
    response = StreamingHttpResponse(
        _event_stream(request.user, _stream_max_s(), _keepalive_s()),
        content_type="text/event-stream",
    )
    response["Cache-Control"] = "no-cache"
    # Tell nginx-style proxies not to buffer the stream.
    response["X-Accel-Buffering"] = "no"
    return response
