"""Large sites read as their engineer wants: include/exclude rules at discovery, and
per-point poll intervals over several scheduled cycles. A simulated site over BACnet/IP
and a real database-backend worker; nothing is mocked."""

from __future__ import annotations

from datetime import timedelta
from itertools import pairwise

import pytest
from django.utils import timezone

from discovery.jobs import request_job
from discovery.models import BACnetPoint, BACnetReading, BACnetTask, Site
from tests.site_fixtures import start_site
from tests.timing import scaled
from tests.worker_fixtures import start_database_worker, wait_for_job, wait_until, worker_env

pytestmark = [pytest.mark.postgres, pytest.mark.slow, pytest.mark.django_db(transaction=True)]

PERIOD_S = 2


@pytest.fixture(scope="module")
def simulated():
    # Twelve objects per device: two of each of the six types, instances 1 and 2.
    site = start_site(devices=2, objects=12, vary=True)
    yield site
    site.stop()


@pytest.fixture
def big_site():
    return Site.objects.create(name="Tower", slug="tower", collect_interval_s=PERIOD_S)


@pytest.fixture
def tower_worker(simulated, big_site):
    worker = start_database_worker(
        "db-tower", worker_env(simulated, BACNET_BACKEND="database"), "--site", "tower"
    )
    yield worker
    worker.stop()


def discover(site: Site) -> BACnetTask:
    task = wait_for_job(request_job("discover", backend="database", site=site).pk, scaled(90))
    assert task.status == "completed", task.error_message
    return task


def test_it_stores_only_the_objects_the_sites_rules_keep(simulated, big_site, tower_worker):
    big_site.point_rules = {
        "exclude_types": ["binary-value"],
        "exclude_names": ["msi-*"],  # shell-style, any case: the multi-state inputs
        "include_instances": [[1, 1]],
    }
    big_site.full_clean()
    big_site.save()
    discover(big_site)
    kept = {"analog-input", "analog-value", "binary-input", "multi-state-value"}
    for device in simulated.devices:
        stored = set(
            BACnetPoint.objects.filter(
                device__site=big_site, device__device_instance=device["instance"]
            ).values_list("object_type", "object_instance")
        )
        assert stored == {(object_type, 1) for object_type in kept}


def test_it_reads_each_point_at_its_own_interval_over_several_cycles(
    simulated, big_site, tower_worker
):
    """GIVEN a site collected every 2 s, one point to read every 6 s, one never
    WHEN the site's worker runs its cycles for a while
    THEN the other points are read in every completed cycle, the 6-s point at least 6 s
    apart, and the disabled point not at all."""
    discover(big_site)
    points = BACnetPoint.objects.filter(device__site=big_site).order_by("id")
    slow, never = points[0], points[1]
    BACnetPoint.objects.filter(pk=slow.pk).update(poll_interval_s=3 * PERIOD_S)
    BACnetPoint.objects.filter(pk=never.pk).update(polling_enabled=False)
    since = timezone.now()

    def cycles():
        return BACnetTask.objects.filter(
            site=big_site, window_start__gt=since, status="completed"
        ).order_by("window_start")

    wait_until(lambda: cycles().count() >= 7, scaled(60), "seven completed cycles")
    completed = list(cycles().values_list("window_start", flat=True))
    every = points[2]
    read_at = set(
        BACnetReading.objects.filter(point=every, timestamp__gt=since).values_list(
            "timestamp", flat=True
        )
    )
    assert set(completed) <= read_at
    slow_times = sorted(
        BACnetReading.objects.filter(point=slow, timestamp__gt=since).values_list(
            "timestamp", flat=True
        )
    )
    assert 2 <= len(slow_times) < len(completed)
    gaps = [later - earlier for earlier, later in pairwise(slow_times)]
    assert all(gap >= timedelta(seconds=3 * PERIOD_S) for gap in gaps), gaps
    assert not BACnetReading.objects.filter(point=never, timestamp__gt=since).exists()
