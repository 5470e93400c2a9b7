"""CSV export of readings for a point, a device or a time range (streamed)."""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, JsonResponse
from django.http.response import HttpResponseBase
from django.views.decorators.http import require_GET

from discovery.api.filters import ReadingFilter
from discovery.csv_export import (
    ExportError,
    export_filename,
    parse_every,
    readings_csv_response,
)
from discovery.models import BACnetReading
from discovery.sites import scoped


@login_required
@require_GET
def export_readings(request: HttpRequest) -> HttpResponseBase:
    # Only the readings of the sites the user may see (``?site=`` narrows to one).
    readings = scoped(
        BACnetReading.objects.all(), request.user, "point__device__site", request.GET.get("site")
    )
    selection = ReadingFilter(request.GET, queryset=readings)
    if not selection.is_valid():
        return JsonResponse({"errors": selection.errors.get_json_data()}, status=400)
    chosen = selection.form.cleaned_data
    try:
        # ?every=5m: regular intervals with held values (csv_export.held_rows).
        return readings_csv_response(
            selection.qs,
            export_filename(chosen),
            every=parse_every(request.GET.get("every")),
            start=chosen.get("start"),
            end=chosen.get("end"),
        )
    except ExportError as exc:
        return JsonResponse({"errors": {"every": [{"message": str(exc)}]}}, status=400)
