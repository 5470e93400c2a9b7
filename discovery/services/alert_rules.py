"""Who may see and change which alert rules: staff, within the sites they may see.

A rule of one site tells of that site's alarms only, so a user limited to some sites
sees and edits only their sites' rules, and may not make a rule of every site (it would
tell them of alarms of sites they may not see)."""

from __future__ import annotations

from typing import Any

from django.db.models import QuerySet

from discovery.models import AlertDelivery, AlertRule
from discovery.sites import is_limited, visible_sites


def visible_rules(user: Any) -> QuerySet[AlertRule]:
    rules = AlertRule.objects.select_related("site", "device")
    if not is_limited(user):
        return rules
    return rules.filter(site__in=visible_sites(user))


def visible_deliveries(user: Any) -> QuerySet[AlertDelivery]:
    deliveries = AlertDelivery.objects.select_related("rule", "alarm__point__device")
    if not is_limited(user):
        return deliveries
    return deliveries.filter(alarm__point__device__site__in=visible_sites(user))


def scope_errors(user: Any, site: Any, device: Any) -> dict[str, list[str]]:
    """The problems of a rule's site and device for this user, by field."""
    errors: dict[str, list[str]] = {}
    if not is_limited(user):
        return errors
    sites = visible_sites(user)
    if site is None:
        errors["site"] = [
            "Choose one of your sites: a rule of every site is for those who see them all."
        ]
    elif not sites.filter(pk=site.pk).exists():
        errors["site"] = [f"No site {site.slug!r} that you may see."]
    if device is not None and not sites.filter(pk=device.site_id).exists():
        errors["device"] = ["No such device at a site that you may see."]
    return errors
