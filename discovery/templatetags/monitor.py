"""Template filters for the one way the product shows times: in the site's ``TIME_ZONE``,
as ``2026-11-23 10:41:00 CET``, the zone always written."""

from __future__ import annotations

from datetime import datetime

from django import template
from django.utils import timezone

from discovery.views.display import format_when

register = template.Library()


@register.filter
def when(value: datetime | None) -> str:
    """A time in the site's zone with the zone's abbreviation; empty for none."""
    return format_when(value)


@register.simple_tag
def site_time_zone() -> str:
    """The name of the zone every time is shown in (``TIME_ZONE``, e.g. Europe/Zurich)."""
    return str(timezone.get_current_timezone_name())
