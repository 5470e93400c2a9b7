"""CSV export of readings for a point, a device or a time range (streamed)."""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, JsonResponse
from django.http.response import HttpResponseBase
from django.views.decorators.http import require_GET

from discovery.api.filters import ReadingFilter
from discovery.csv_export import readings_csv_response
from discovery.models import BACnetReading


@login_required
@require_GET
def export_readings(request: HttpRequest) -> HttpResponseBase:
    selection = ReadingFilter(request.GET, queryset=BACnetReading.objects.all())
    if not selection.is_valid():
        return JsonResponse({"errors": selection.errors.get_json_data()}, status=400)
    parts = [
        f"{name}-{selection.form.cleaned_data[name]}"
        for name in ("point", "device", "device_instance")
        if selection.form.cleaned_data.get(name) is not None
    ]
    filename = "-".join(["readings", *parts]) + ".csv"
    return readings_csv_response(selection.qs, filename)
