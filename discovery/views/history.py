"""The readings history's size and growth (the same figures as /api/history-size/)."""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET

from discovery.services.history_size import history_size


@login_required
@require_GET
def history(request: HttpRequest) -> HttpResponse:
    return render(request, "discovery/history.html", {"size": history_size(14)})
