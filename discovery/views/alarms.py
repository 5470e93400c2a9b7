"""The alarms page: active alarms first, then history; acknowledge; register the worker
as a device's alarm recipient (a write: the commanding permission and audit)."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_GET, require_POST

from discovery.models import Alarm
from discovery.services.alarms import (
    acknowledge,
    alarms_for_page,
    needs_device_ack,
    request_registration,
)
from discovery.services.alerts import deliveries_by_alarm, overdue_count
from discovery.services.commanding import NotAllowed, can_command
from discovery.sites import device_by_instance, scoped


@login_required
@require_GET
def alarm_list(request: HttpRequest) -> HttpResponse:
    active, cleared = alarms_for_page(request.user)
    staff = request.user.is_staff
    if staff:  # who was told, and what failed: for the operators who manage the rules
        notices = deliveries_by_alarm(a.pk for a in [*active, *cleared])
        for alarm in [*active, *cleared]:
            alarm.notices = notices.get(alarm.pk, [])  # type: ignore[attr-defined]
    context = {
        "active": active,
        "cleared": cleared,
        "staff": staff,
        "can_acknowledge": can_command(request.user),
    }
    if staff:
        context["overdue_notices"] = overdue_count()
    return render(request, "discovery/alarms.html", context)


@login_required
@require_POST
def acknowledge_alarm(request: HttpRequest, pk: int) -> HttpResponse:
    alarm = get_object_or_404(
        scoped(Alarm.objects.select_related("point__device"), request.user, "point__device__site"),
        pk=pk,
    )
    try:
        done = acknowledge(alarm, request.user)
    except NotAllowed as refused:
        raise PermissionDenied(str(refused)) from None
    if not done:
        messages.info(request, f"Alarm of {alarm.point} was already acknowledged.")
    elif needs_device_ack(alarm):
        messages.success(
            request,
            f"Alarm of {alarm.point} acknowledged; sending the acknowledgement to the device.",
        )
    else:
        messages.success(request, f"Alarm of {alarm.point} acknowledged.")
    return redirect("discovery:alarm-list")


@login_required
@require_POST
def register_recipient(request: HttpRequest, instance: int) -> HttpResponse:
    device = device_by_instance(request.user, instance, request.POST.get("site") or None)
    if device is None:
        raise Http404(f"No device {instance}.")
    confirmed = request.POST.get("confirmed", "1") != "0"
    try:
        command = request_registration(device, user=request.user, confirmed=confirmed)
    except NotAllowed as refused:
        raise PermissionDenied(str(refused)) from None
    messages.success(request, f"Registering for the alarms of {device} (job {command.task_id}).")
    return redirect("discovery:device-detail", instance=device.device_instance)
