"""The alarms page: active alarms first, then history; acknowledge."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_GET, require_POST

from discovery.models import Alarm
from discovery.services.alarms import acknowledge, alarms_for_page
from discovery.services.alerts import deliveries_by_alarm, overdue_count
from discovery.sites import scoped


@login_required
@require_GET
def alarm_list(request: HttpRequest) -> HttpResponse:
    active, cleared = alarms_for_page(request.user)
    staff = request.user.is_staff
    if staff:  # who was told, and what failed: for the operators who manage the rules
        notices = deliveries_by_alarm(a.pk for a in [*active, *cleared])
        for alarm in [*active, *cleared]:
            alarm.notices = notices.get(alarm.pk, [])  # type: ignore[attr-defined]
    context = {"active": active, "cleared": cleared, "staff": staff}
    if staff:
        context["overdue_notices"] = overdue_count()
    return render(request, "discovery/alarms.html", context)


@login_required
@require_POST
def acknowledge_alarm(request: HttpRequest, pk: int) -> HttpResponse:
    alarm = get_object_or_404(
        scoped(Alarm.objects.all(), request.user, "point__device__site"), pk=pk
    )
    if acknowledge(alarm, request.user):
        messages.success(request, f"Alarm of {alarm.point} acknowledged.")
    else:
        messages.info(request, f"Alarm of {alarm.point} was already acknowledged.")
    return redirect("discovery:alarm-list")
