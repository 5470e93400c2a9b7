"""Runs of short collection windows with faults injected: the database worker, 1 s
windows, SIGKILLed and restarted, and its database sessions terminated, again and again;
beat and a Celery worker through a frozen broker and a killed worker.
At the end every window from the first to the last has a cycle or a recorded gap with
its reason, and each cycle's readings are stored once, at its window's start.

REL_WINDOW_S sets the length of the run (default 20 s, 120 s with REL_FULL=1)."""

from __future__ import annotations

import os
import signal
import sys
import time

import pytest
from django_celery_beat.models import IntervalSchedule, PeriodicTask

from discovery import windows
from discovery.jobs import request_job
from discovery.models import BACnetReading, BACnetTask, CollectionGap
from tests.reliability.conftest import celery_broker, env_int, terminate_other_connections
from tests.site_fixtures import start_site
from tests.timing import scaled
from tests.worker_fixtures import (
    spawn,
    start_celery_worker,
    start_database_worker,
    wait_for_job,
    wait_until,
    worker_env,
)

pytestmark = [pytest.mark.postgres, pytest.mark.slow, pytest.mark.django_db(transaction=True)]

RUN_S = env_int("REL_WINDOW_S", 20, full=120)
FAULT_EVERY_S = 4


@pytest.fixture(scope="module")
def site():
    site = start_site(devices=2, objects=4, vary=True)
    yield site
    site.stop()


def test_it_accounts_for_every_window_through_worker_kills_and_database_outages(site):
    """GIVEN the database worker collecting every second
    WHEN it is SIGKILLed (and started again) and loses its database sessions, in turn
    THEN windows with a cycle + recorded gaps = windows, no cycle is stored twice, and
    the cycles interrupted are retried."""
    every, _ = IntervalSchedule.objects.get_or_create(every=1, period="seconds")
    PeriodicTask.objects.filter(name="Collect readings").update(interval=every)
    env = worker_env(site, BACNET_BACKEND="database", REDIS_URL="redis://127.0.0.1:1/0")
    name = "rel-windows@localhost"
    worker = start_database_worker(name, env)
    faults = {"kill": 0, "database": 0}
    try:
        assert wait_for_job(request_job("discover", backend="database").pk, scaled(30)).status == (
            "completed"
        )
        # A number of faults, not a run time: on a loaded machine a restart takes long.
        fault = 0
        while fault < RUN_S // FAULT_EVERY_S:
            time.sleep(FAULT_EVERY_S)
            if fault % 2 == 0:
                worker.kill()
                worker = start_database_worker(name, env)
                faults["kill"] += 1
            else:
                faults["database"] += terminate_other_connections() > 0
            fault += 1
        # A few quiet windows at the end, so the last faults' windows are settled.
        cycles = BACnetTask.objects.filter(status="completed", window_start__isnull=False)
        settled = cycles.count() + 2
        wait_until(lambda: cycles.count() >= settled, scaled(20), "two cycles after the faults")
    finally:
        worker.stop()

    account = windows.account()
    print(f"faults {faults}: {account}")
    assert faults["kill"] >= 1 and faults["database"] >= 1
    assert account.unexplained == [], (account, list(CollectionGap.objects.values()))
    assert account.windows == (
        account.with_readings + account.in_progress + account.failed + account.gaps
    )
    assert account.failed == 0, list(
        BACnetTask.objects.filter(status="failed").values("window_start", "error_message")
    )
    reasons = set(CollectionGap.objects.values_list("reason", flat=True))
    assert reasons <= {"worker_down", "overrun", "no_message", "late"}, reasons
    for cycle in BACnetTask.objects.filter(status="completed", window_start__isnull=False):
        stored = list(
            BACnetReading.objects.filter(timestamp=cycle.window_start).values_list(
                "point_id", flat=True
            )
        )
        assert len(stored) == len(set(stored)) == cycle.result["readings"], cycle.pk


def test_it_accounts_for_every_window_through_a_frozen_broker_and_a_killed_worker(site, own_redis):
    """GIVEN beat and a Celery BACnet worker on a Redis of the test's own, 1 s windows
    WHEN the broker is frozen (SIGSTOP) for a few windows, then the worker is SIGKILLed
    and started again
    THEN every window has a cycle or a recorded gap, and no cycle is stored twice."""
    every, _ = IntervalSchedule.objects.get_or_create(every=1, period="seconds")
    PeriodicTask.objects.filter(name="Collect readings").update(interval=every)
    url = own_redis.url()
    env = worker_env(site, BACNET_BACKEND="celery", REDIS_URL=url, CELERY_BROKER_URL=url)
    name = "rel-celery-windows@localhost"
    worker = start_celery_worker(name, "bacnet", env)
    beat = spawn(
        "beat", [sys.executable, "-m", "celery", "-A", "bacnet_project", "beat", "-l", "INFO"], env
    )
    cycles = BACnetTask.objects.filter(status="completed", window_start__isnull=False)
    try:
        with celery_broker(url):
            job = request_job("discover", backend="celery")
            assert wait_for_job(job.pk, scaled(30)).status == "completed"
        wait_until(lambda: cycles.count() >= 3, scaled(20), "three cycles")

        os.kill(own_redis.process.pid, signal.SIGSTOP)
        time.sleep(FAULT_EVERY_S)
        os.kill(own_redis.process.pid, signal.SIGCONT)
        settled = cycles.count() + 3
        wait_until(lambda: cycles.count() >= settled, scaled(30), "cycles after the thaw")

        worker.kill()
        worker = start_celery_worker(name, "bacnet", env)
        settled = cycles.count() + 3
        wait_until(lambda: cycles.count() >= settled, scaled(30), "cycles after the restart")
    finally:
        beat.stop()
        worker.stop()

    account = windows.account()
    reasons = list(CollectionGap.objects.values_list("reason", "detail"))
    print(f"frozen broker and a kill: {account}, gaps {reasons}")
    assert account.unexplained == [], (account, list(CollectionGap.objects.values()))
    assert account.windows == (
        account.with_readings + account.in_progress + account.failed + account.gaps
    )
    for cycle in cycles:
        stored = list(
            BACnetReading.objects.filter(timestamp=cycle.window_start).values_list(
                "point_id", flat=True
            )
        )
        assert len(stored) == len(set(stored)) == cycle.result["readings"], cycle.pk
