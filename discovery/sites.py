"""Sites: which site a process serves, each site's collection schedule, who may see
which sites.

A BACnet worker serves exactly one site (``--site``; the default site when none is
named): it consumes that site's queue, claims that site's rows, and refuses a job of
another site that reaches it by mistake (``discovery.worker.run_job``).
"""

from __future__ import annotations

import json
import os
from typing import Any

from django.conf import settings
from django.db.models import QuerySet

from discovery.models import BACNET_QUEUE, DEFAULT_SITE_SLUG, Site


class UnknownSite(LookupError):
    """A site named on a command line or in a message does not exist (the message says
    which ones do)."""


def get_site(slug: str | None) -> Site:
    """The site of ``slug`` (the default site for none), or ``UnknownSite`` saying which
    sites exist: a worker started for a site that does not exist must stop at once."""
    if not slug or slug == DEFAULT_SITE_SLUG:
        return Site.default()
    site = Site.objects.filter(slug=slug).first()
    if site is None:
        known = ", ".join(Site.objects.order_by("slug").values_list("slug", flat=True))
        raise UnknownSite(
            f"No site {slug!r}: the sites are {known or '(none)'}. Create it in the admin "
            "(Sites) first, or start the worker with one of these."
        )
    return site


def site_of_queue(queue: str) -> str | None:
    """The site slug a BACnet queue belongs to (``bacnet`` -> default), None for others."""
    if queue == BACNET_QUEUE:
        return DEFAULT_SITE_SLUG
    prefix = f"{BACNET_QUEUE}."
    return queue[len(prefix) :] if queue.startswith(prefix) else None


def apply_site_bacnet_settings(site: Site) -> None:
    """The site's interface hint and BBMD are the worker's, unless the environment (or
    the command line, applied after this) names its own."""
    if site.bacnet_interface and not os.environ.get("BACNET_INTERFACE"):
        settings.BACNET_INTERFACE = site.bacnet_interface
    if site.bbmd_address and not os.environ.get("BACNET_BBMD_ADDRESS"):
        settings.BACNET_BBMD_ADDRESS = site.bbmd_address


def collection_schedule_name(site: Site) -> str:
    return "Collect readings" if site.is_default else f"Collect readings ({site.slug})"


def install_site_schedule(site: Site) -> Any:
    """Create a (non-default) site's collection schedule, or set its period when the
    site's ``collect_interval_s`` changes. The default site's is installed on migrate."""
    from django_celery_beat.models import IntervalSchedule, PeriodicTask

    from discovery.windows import COLLECT_TASK, collection_schedule

    if site.is_default:
        return None
    every = site.collect_interval_s or settings.BACNET_COLLECT_INTERVAL_S
    interval, _ = IntervalSchedule.objects.get_or_create(
        every=every, period=IntervalSchedule.SECONDS
    )
    schedule = collection_schedule(site)
    if schedule is None:
        return PeriodicTask.objects.create(
            name=collection_schedule_name(site),
            task=COLLECT_TASK,
            interval=interval,
            expire_seconds=every,
            args=json.dumps([]),
            kwargs=json.dumps({"site": site.slug}),
        )
    if site.collect_interval_s and schedule.interval_id != interval.pk:
        schedule.interval = interval
        schedule.expire_seconds = every
        schedule.save(update_fields=["interval", "expire_seconds"])
    return schedule


def on_site_saved(sender: Any, instance: Site, raw: bool = False, **_: Any) -> None:
    if not raw:
        install_site_schedule(instance)


def visible_sites(user: Any) -> QuerySet[Site]:
    """The sites a user may see: those that list them, else (listed nowhere, or a
    superuser) all of them."""
    sites = Site.objects.all()
    if user is None or getattr(user, "is_superuser", False):
        return sites
    if not getattr(user, "is_authenticated", False):
        return sites.none()
    limited = sites.filter(viewers=user)
    return limited if limited.exists() else sites


def is_limited(user: Any) -> bool:
    """True if some site lists the user: they see only those sites."""
    if user is None or getattr(user, "is_superuser", False):
        return False
    if not getattr(user, "is_authenticated", False):
        return True
    return Site.objects.filter(viewers=user).exists()


def scoped(queryset: QuerySet, user: Any, field: str, slug: str | None = None) -> QuerySet:
    """Only the rows of the sites ``user`` may see, and of site ``slug`` if one is asked
    for (a site not visible to the user gives no rows). ``field`` leads from the rows to
    their site: ``site``, ``device__site``, ``point__device__site``."""
    if not slug and not is_limited(user):
        return queryset  # no subquery on the big tables for the common case
    sites = visible_sites(user)
    if slug:
        sites = sites.filter(slug=slug)
    return queryset.filter(**{f"{field}__in": sites})


def site_for_request(user: Any, slug: str | None) -> Site:
    """The site a user asks a job (or a page) for: ``slug``, which must be one they may
    see; none named, the default site if they may see it, else their first site."""
    sites = visible_sites(user)
    if slug:
        site = sites.filter(slug=slug).first()
        if site is None:
            raise UnknownSite(f"No site {slug!r} that you may see.")
        return site
    if not is_limited(user):
        # The default site always exists for who may see every site (made again if a
        # database was emptied, as a test's flush does).
        return Site.default()
    default = sites.filter(slug=DEFAULT_SITE_SLUG).first()
    site = default or sites.first()
    if site is None:
        raise UnknownSite("You may see no site.")
    return site


def device_by_instance(
    user: Any, instance: int, slug: str | None = None, devices: QuerySet | None = None
) -> Any:
    """The device with ``instance`` among the sites the user may see (of site ``slug``
    if named). Instances repeat between sites: without a site, the default site's device
    comes first, then the other sites' in the order they were created. None if none."""
    from django.db.models import Case, IntegerField, Value, When

    from discovery.models import BACnetDevice

    devices = scoped(
        devices if devices is not None else BACnetDevice.objects.all(), user, "site", slug
    )
    first_default = Case(
        When(site__slug=DEFAULT_SITE_SLUG, then=Value(0)),
        default=Value(1),
        output_field=IntegerField(),
    )
    return devices.filter(device_instance=instance).order_by(first_default, "site_id").first()


def visible_points(user: Any) -> QuerySet:
    """The points of the sites ``user`` may see (with their device): what a page or API
    call may look up by a point's id."""
    from discovery.models import BACnetPoint

    return scoped(BACnetPoint.objects.select_related("device"), user, "device__site")
