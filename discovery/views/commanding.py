"""Commanding pages: the point page's command panel (priority array, write, relinquish,
timed overrides, the point's audit trail), the active overrides and the audit page.

Thin: every rule is in ``discovery.services.commanding``. Only users with the
``discovery.command_point`` permission (the Operators group) see write controls, and
every POST checks it again (403 otherwise)."""

from __future__ import annotations

import csv
from datetime import datetime
from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.db.models import Q
from django.http import HttpRequest, HttpResponse, StreamingHttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils import timezone
from django.views.decorators.http import require_GET, require_POST

from discovery.csv_export import neutralise
from discovery.models import BACnetPoint, BACnetTask, PointCommand, PointCommandState
from discovery.services import commanding
from discovery.sites import scoped, visible_points
from discovery.views.display import paginate, query_without_page
from discovery.views.forms import RelinquishForm, WriteForm, form_errors

# From an audit row (or an alarm) to the site of its point.
_POINT_SITE = "point__device__site"

AUDIT_ROWS_ON_POINT = 20
AUDIT_PER_PAGE = 100


def command_panel_context(point: BACnetPoint, user: Any) -> dict[str, Any]:
    """What the point page's command panel shows (empty for points that are not
    commandable)."""
    if not commanding.is_commandable(point):
        return {"commandable": False}
    state = PointCommandState.objects.filter(point=point).first()
    commands = PointCommand.objects.filter(point=point).select_related("task")
    running = BACnetTask.objects.filter(
        status__in=[BACnetTask.Status.PENDING, BACnetTask.Status.RUNNING]
    ).filter(
        Q(kind=BACnetTask.Kind.READ_PRIORITY, parameters__point_id=point.pk)
        | Q(pk__in=commands.filter(result=PointCommand.Result.PENDING).values("task_id"))
    )
    names = commanding.state_names(point)
    return {
        "commandable": True,
        "can_command": commanding.can_command(user),
        "state": state,
        "overrides": commands.filter(
            override_state__in=[PointCommand.Override.ACTIVE, PointCommand.Override.ENDING]
        ).order_by("expires_at"),
        "audit": commands[:AUDIT_ROWS_ON_POINT],
        "running": list(running),
        "write_form": WriteForm(initial={"priority": commanding.DEFAULT_PRIORITY}),
        "relinquish_form": RelinquishForm(initial={"priority": commanding.DEFAULT_PRIORITY}),
        "state_choices": list(enumerate(names, start=1))
        if point.object_type.startswith("multi-state")
        else [],
        "binary_choices": point.object_type.startswith("binary"),
        "binary_texts": names if len(names) == 2 else ["inactive", "active"],
        "reason_required": commanding.settings.BACNET_COMMAND_REASON_REQUIRED,
    }


def _commandable_point(request: HttpRequest, pk: int) -> BACnetPoint:
    if not commanding.can_command(request.user):
        raise PermissionDenied("You may not command points (the Operators group may).")
    return get_object_or_404(visible_points(request.user), pk=pk)


@login_required
@require_GET
def command_panel(request: HttpRequest, pk: int) -> HttpResponse:
    """The panel alone, fetched again by htmx while a write job runs."""
    point = get_object_or_404(visible_points(request.user), pk=pk)
    context = {"point": point, **command_panel_context(point, request.user)}
    return render(request, "discovery/_command_panel.html", context)


@login_required
@require_POST
def write(request: HttpRequest, pk: int) -> HttpResponse:
    point = _commandable_point(request, pk)
    form = WriteForm(request.POST)
    if not form.is_valid():
        messages.error(request, f"Not written: {form_errors(form)}")
        return redirect("discovery:point-detail", pk=point.pk)
    data = form.cleaned_data
    try:
        until = data["until"] if data["duration"] == "until" else None
        duration = data["duration"] if data["duration"] != "until" else None
        expires = commanding.expiry(duration, until)
        command = commanding.request_write(
            point,
            data["value"],
            data["priority"],
            user=request.user,
            reason=data["reason"],
            expires_at=expires,
        )
    except commanding.CommandRefused as exc:
        messages.error(request, f"Not written: {exc}")
    else:
        messages.success(
            request,
            f"Job {command.task_id}: writing {command.value_text} at priority {command.priority}.",
        )
    return redirect("discovery:point-detail", pk=point.pk)


@login_required
@require_POST
def relinquish(request: HttpRequest, pk: int) -> HttpResponse:
    point = _commandable_point(request, pk)
    form = RelinquishForm(request.POST)
    if not form.is_valid():
        messages.error(request, f"Not relinquished: {form_errors(form)}")
        return redirect("discovery:point-detail", pk=point.pk)
    try:
        command = commanding.request_relinquish(
            point, form.cleaned_data["priority"], user=request.user,
            reason=form.cleaned_data["reason"],
        )  # fmt: skip
    except commanding.CommandRefused as exc:
        messages.error(request, f"Not relinquished: {exc}")
    else:
        messages.success(
            request, f"Job {command.task_id}: relinquishing priority {command.priority}."
        )
    return redirect("discovery:point-detail", pk=point.pk)


@login_required
@require_POST
def read_priority(request: HttpRequest, pk: int) -> HttpResponse:
    """Read the priority array fresh from the device (viewers may: it writes nothing)."""
    point = get_object_or_404(visible_points(request.user), pk=pk)
    try:
        task = commanding.request_priority_read(point, user=request.user)
    except commanding.CommandRefused as exc:
        messages.error(request, str(exc))
    else:
        messages.success(request, f"Job {task.pk} reads the priority array.")
    return redirect("discovery:point-detail", pk=point.pk)


@login_required
@require_POST
def end_override(request: HttpRequest, command_id: int) -> HttpResponse:
    if not commanding.can_command(request.user):
        raise PermissionDenied("You may not command points (the Operators group may).")
    commands = scoped(PointCommand.objects.select_related("point"), request.user, _POINT_SITE)
    override = get_object_or_404(commands, pk=command_id)
    try:
        ended = commanding.end_override(
            override, user=request.user, reason=request.POST.get("reason", "ended early")
        )
    except commanding.CommandRefused as exc:
        messages.error(request, f"Not ended: {exc}")
        ended = None
    else:
        if ended is None:
            messages.info(request, "That override had already ended.")
        else:
            messages.success(request, f"Job {ended.task_id} ends the override now.")
    target = request.POST.get("next", "")
    if target == "overrides":
        return redirect("discovery:overrides")
    if override.point_id:
        return redirect("discovery:point-detail", pk=override.point_id)
    return redirect("discovery:overrides")


@login_required
@require_GET
def overrides(request: HttpRequest) -> HttpResponse:
    """Every active timed override: which point, what value, by whom, until when."""
    return render(
        request,
        "discovery/overrides.html",
        {
            "overrides": scoped(commanding.active_overrides(), request.user, _POINT_SITE),
            "can_command": commanding.can_command(request.user),
        },
    )


def audit_rows(params: Any) -> Any:
    """The audit trail filtered by ``user``, ``device_instance``, ``point``, ``action``,
    ``result``, ``start`` and ``end`` (ISO dates) - shared by the page, CSV and API."""
    rows = PointCommand.objects.all()
    if params.get("user"):
        rows = rows.filter(username__icontains=params["user"])
    if str(params.get("device_instance", "")).isdigit():
        rows = rows.filter(device_instance=int(params["device_instance"]))
    if str(params.get("point", "")).isdigit():
        rows = rows.filter(point_id=int(params["point"]))
    if params.get("action") in PointCommand.Action.values:
        rows = rows.filter(action=params["action"])
    if params.get("result") in PointCommand.Result.values:
        rows = rows.filter(result=params["result"])
    for name, lookup in (("start", "created_at__gte"), ("end", "created_at__lt")):
        when = _date(params.get(name))
        if when is not None:
            rows = rows.filter(**{lookup: when})
    return rows


def _date(text: Any) -> Any:
    from django.utils.dateparse import parse_date, parse_datetime

    if not text:
        return None
    moment = parse_datetime(str(text))
    if moment is None:
        day = parse_date(str(text))
        if day is None:
            return None
        moment = datetime(day.year, day.month, day.day)
    if timezone.is_naive(moment):
        moment = timezone.make_aware(moment)
    return moment


AUDIT_COLUMNS = [
    "id", "created_at", "username", "device_instance", "object_type", "object_instance",
    "point_name", "action", "value_text", "priority", "expires_at", "reason", "result",
    "message", "read_back_text", "read_back_value", "read_back_priority", "finished_at",
]  # fmt: skip


@login_required
@require_GET
def audit(request: HttpRequest) -> HttpResponse | StreamingHttpResponse:
    rows = scoped(audit_rows(request.GET), request.user, _POINT_SITE)
    if request.GET.get("format") == "csv":
        return _audit_csv(rows)
    page = paginate(request, rows, AUDIT_PER_PAGE)
    return render(
        request,
        "discovery/audit.html",
        {
            "page": page,
            "query": query_without_page(request),
            "filters": request.GET,
            "actions": PointCommand.Action.choices,
            "results": PointCommand.Result.choices,
        },
    )


class _Echo:
    def write(self, value: str) -> str:
        return value


def _audit_csv(rows: Any) -> StreamingHttpResponse:
    writer = csv.writer(_Echo())

    def lines() -> Any:
        yield writer.writerow(AUDIT_COLUMNS)
        for row in rows.iterator(chunk_size=1000):
            values = []
            for column in AUDIT_COLUMNS:
                value = getattr(row, column)
                if hasattr(value, "isoformat"):
                    value = timezone.localtime(value).isoformat()
                values.append(neutralise("" if value is None else str(value)))
            yield writer.writerow(values)

    response = StreamingHttpResponse(lines(), content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = 'attachment; filename="command-audit.csv"'
    return response
