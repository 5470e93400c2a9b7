"""Two buildings side by side: two simulated sites (each its own BBMD on loopback) with
the same device instances, each served by its own BACnet worker on its own queue, on
real Redis and PostgreSQL (and on the database backend). Nothing is mocked."""

from __future__ import annotations

import subprocess
import sys

import pytest
from django.db.models import QuerySet
from django.utils import timezone
from django_celery_beat.models import IntervalSchedule, PeriodicTask

from bacnet_project.celery import app
from discovery.backends import TASK_FOR_KIND
from discovery.jobs import live_workers, request_job
from discovery.models import BACnetDevice, BACnetPoint, BACnetReading, BACnetTask, Site
from tests.site_fixtures import start_site
from tests.timing import scaled
from tests.worker_fixtures import (
    REPO,
    spawn,
    start_celery_worker,
    start_database_worker,
    wait_for_job,
    wait_until,
    worker_env,
)

pytestmark = [pytest.mark.postgres, pytest.mark.slow, pytest.mark.django_db(transaction=True)]

# Same instances at both sites; a different number of objects tells them apart.
DEVICES, HQ_OBJECTS, ANNEX_OBJECTS = 2, 3, 5


@pytest.fixture(scope="module")
def buildings():
    hq = start_site(devices=DEVICES, objects=HQ_OBJECTS, vary=True)
    annex = start_site(devices=DEVICES, objects=ANNEX_OBJECTS, vary=True)
    yield hq, annex
    hq.stop()
    annex.stop()


@pytest.fixture
def sites():
    """The default site (queue ``bacnet``) is the HQ; the annex is ``bacnet.annex``."""
    return Site.default(), Site.objects.create(name="Annex", slug="annex")


@pytest.fixture
def celery_workers(buildings, sites, redis_url):
    import redis

    redis.Redis.from_url(redis_url).flushdb()
    hq, annex = buildings
    common = {"REDIS_URL": redis_url, "BACNET_BACKEND": "celery"}
    workers = {
        "hq": start_celery_worker("bacnet-hq@localhost", "bacnet", worker_env(hq, **common)),
        "annex": start_celery_worker(
            "bacnet-annex@localhost", "bacnet.annex", worker_env(annex, **common)
        ),
    }
    yield workers
    for worker in workers.values():
        worker.stop()


def simulated(site) -> tuple[set[int], int]:
    """The instances and the number of objects a simulated site holds."""
    return {d["instance"] for d in site.devices}, sum(len(d["objects"]) for d in site.devices)


def discover_both(default, annex, backend: str) -> tuple[BACnetTask, BACnetTask]:
    first = request_job("discover", backend=backend, site=default)
    second = request_job("discover", backend=backend, site=annex)
    return wait_for_job(first.pk, scaled(90)), wait_for_job(second.pk, scaled(90))


def assert_each_site_holds_only_its_own(buildings, sites) -> None:
    for simulated_site, site in zip(buildings, sites, strict=True):
        instances, objects = simulated(simulated_site)
        stored = set(site.devices.values_list("device_instance", flat=True))
        assert stored == instances | {simulated_site.bbmd_device_instance}
        assert BACnetPoint.objects.filter(device__site=site).count() == objects


def test_it_discovers_and_collects_each_site_by_its_own_worker(buildings, sites, celery_workers):
    """GIVEN two buildings with the same device instances, a worker on each site's queue
    WHEN discovery and collection are requested at each site
    THEN each site's worker ran its site's jobs, and each site holds only its devices,
    points and readings, though their instances are the same."""
    default, annex = sites
    first, second = discover_both(default, annex, "celery")
    assert (first.status, second.status) == ("completed", "completed")
    assert first.worker_name == "bacnet-hq@localhost"
    assert second.worker_name == "bacnet-annex@localhost"
    assert_each_site_holds_only_its_own(buildings, sites)
    shared = buildings[0].devices[0]["instance"]
    assert BACnetDevice.objects.filter(device_instance=shared).count() == 2  # one per site

    for site, worker in ((default, "bacnet-hq@localhost"), (annex, "bacnet-annex@localhost")):
        task = wait_for_job(request_job("collect", backend="celery", site=site).pk)
        assert task.status == "completed", task.error_message
        assert task.worker_name == worker
        points = BACnetPoint.objects.filter(device__site=site, device__device_instance=shared)
        assert task.result["readings"] == BACnetPoint.objects.filter(device__site=site).count()
        assert BACnetReading.objects.filter(point__in=points).count() == points.count()
    # No reading of one site was written to the other's points.
    assert BACnetReading.objects.filter(point__device__site=annex).count() == (
        BACnetPoint.objects.filter(device__site=annex).count()
    )


def test_it_refuses_a_job_that_reaches_another_sites_worker(buildings, sites, celery_workers):
    """GIVEN a job of the annex WHEN its message reaches the HQ's queue by mistake
    THEN the HQ worker refuses it (nothing read on the HQ's LAN) and sends it on to the
    annex's queue, where the annex's worker runs it."""
    _, annex = sites
    task = BACnetTask.objects.create(site=annex, kind="discover", backend="celery")
    app.send_task(TASK_FOR_KIND["discover"], args=[task.pk], queue="bacnet")
    celery_workers["hq"].wait_for_log("Refused by bacnet-hq@localhost", scaled(30))
    task = wait_for_job(task.pk, scaled(90))
    assert task.status == "completed", task.error_message
    assert task.worker_name == "bacnet-annex@localhost"
    assert not BACnetDevice.objects.filter(site=Site.default()).exists()


def test_it_goes_on_reading_one_site_when_the_other_sites_worker_is_killed(
    buildings, sites, celery_workers
):
    """GIVEN both sites discovered WHEN the HQ's worker is killed
    THEN the annex's collection still runs, and a job for the HQ says it waits for a worker."""
    default, annex = sites
    discover_both(default, annex, "celery")
    celery_workers["hq"].kill()
    wait_until(
        lambda: not live_workers("celery", default), scaled(15), "the HQ worker's heartbeat stale"
    )
    waiting = request_job("collect", backend="celery", site=default)
    assert "no BACnet worker of site 'default'" in waiting.progress
    for _ in range(2):
        task = wait_for_job(request_job("collect", backend="celery", site=annex).pk)
        assert task.status == "completed", task.error_message
        assert task.result["readings"] > 0
    assert BACnetTask.objects.get(pk=waiting.pk).status == "pending"


def set_default_period(period_s: int) -> None:
    every, _ = IntervalSchedule.objects.get_or_create(every=period_s, period="seconds")
    task = PeriodicTask.objects.get(name="Collect readings")
    task.interval, task.expire_seconds = every, period_s
    task.save()


def scheduled_cycles(site, **more) -> QuerySet:
    return BACnetTask.objects.filter(site=site, trigger="scheduled", status="completed", **more)


def test_it_sends_each_sites_collection_on_its_schedule_even_with_one_worker_down(
    buildings, sites, celery_workers, redis_url
):
    """GIVEN beat, both sites collected every 2 s on their own schedules
    WHEN the HQ's worker is killed
    THEN each site's cycles ran on its own worker, and the annex's go on."""
    default, annex = sites
    discover_both(default, annex, "celery")
    set_default_period(2)
    annex.collect_interval_s = 2
    annex.save()  # its schedule follows
    beat = spawn(
        "beat",
        [sys.executable, "-m", "celery", "-A", "bacnet_project", "beat", "-l", "INFO"],
        worker_env(REDIS_URL=redis_url, BACNET_BACKEND="celery"),
    )
    try:
        for site in (default, annex):
            wait_until(lambda s=site: scheduled_cycles(s).count() >= 2, scaled(30), "cycles")
        for site, worker in ((default, "bacnet-hq@localhost"), (annex, "bacnet-annex@localhost")):
            assert set(scheduled_cycles(site).values_list("worker_name", flat=True)) == {worker}
        celery_workers["hq"].kill()
        killed_at = timezone.now()
        wait_until(
            lambda: scheduled_cycles(annex, window_start__gt=killed_at).count() >= 3,
            scaled(30),
            "the annex's cycles after the HQ's worker died",
        )
        assert not scheduled_cycles(default, started_at__gt=killed_at).exists()
    finally:
        beat.stop()


def test_it_serves_each_site_by_its_own_database_worker(buildings, sites):
    """The database backend: each worker claims only its site's rows."""
    hq, annex_site = buildings
    default, annex = sites
    env = {"BACNET_BACKEND": "database"}
    workers = [
        start_database_worker("db-hq", worker_env(hq, **env), "--no-schedule"),
        start_database_worker(
            "db-annex", worker_env(annex_site, **env), "--no-schedule", "--site", "annex"
        ),
    ]
    try:
        first, second = discover_both(default, annex, "database")
        assert (first.worker_name, second.worker_name) == ("db-hq", "db-annex")
        assert_each_site_holds_only_its_own(buildings, sites)
    finally:
        for worker in workers:
            worker.stop()


def test_it_stops_at_once_when_started_for_a_site_that_does_not_exist(sites):
    for command in (
        [sys.executable, "manage.py", "bacnet_worker", "--site", "nowhere", "--once"],
        [sys.executable, "bacnet_worker_windows.py", "--check", "--site", "nowhere"],
    ):
        done = subprocess.run(
            command,
            cwd=REPO,
            env=worker_env(BACNET_BACKEND="database"),
            capture_output=True,
            text=True,
            timeout=scaled(60),
        )
        assert done.returncode != 0
        assert "No site 'nowhere'" in done.stdout + done.stderr
        assert "annex" in done.stdout + done.stderr  # it says which sites exist
