"""Collection windows with real processes: beat and a Celery BACnet worker over Redis, and
the database worker on its own. Short periods (1-2 s) keep the runs quick.

What is counted, in both modes: every window from the first cycle to the last has a
cycle or a recorded gap with a reason; each cycle's readings are stored at its window's
start, once; a message delayed past the next window's start (a slow discovery ahead of
it on the solo worker) keeps its own window."""

from __future__ import annotations

import sys
import time
from datetime import timedelta

import pytest
from django.utils import timezone
from django_celery_beat.models import IntervalSchedule, PeriodicTask

from discovery import windows
from discovery.jobs import request_job
from discovery.models import BACnetReading, BACnetTask, CollectionGap
from tests.site_fixtures import free_udp_port, start_site
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

# A directed Who-Is for an address nobody answers waits the whole discovery limit: a
# job that holds the solo worker for longer than a window.
SLOW_DISCOVERY_S = 5


@pytest.fixture(scope="module")
def site():
    site = start_site(devices=2, objects=4, vary=True)
    yield site
    site.stop()


def set_period(period_s: int) -> None:
    """As the admin does it: save the schedule row (beat notices the change)."""
    every, _ = IntervalSchedule.objects.get_or_create(every=period_s, period="seconds")
    task = PeriodicTask.objects.get(name="Collect readings")
    task.interval = every
    task.expire_seconds = period_s
    task.save()


def completed_cycles() -> list[BACnetTask]:
    return list(
        BACnetTask.objects.filter(trigger="scheduled", status="completed").order_by("window_start")
    )


def slow_discovery(backend: str) -> BACnetTask:
    return request_job("discover", {"targets": [f"127.0.0.1:{free_udp_port()}"]}, backend=backend)


def assert_each_cycle_stored_once_at_its_window() -> None:
    cycles = completed_cycles()
    # Cycles opened before the first discovery found the devices read nothing.
    assert sum(cycle.result["readings"] for cycle in cycles) > 0
    for cycle in cycles:
        assert cycle.parameters["cycle_at"] == cycle.window_start.isoformat()
        stored = list(
            BACnetReading.objects.filter(timestamp=cycle.window_start).values_list(
                "point_id", flat=True
            )
        )
        assert len(stored) == len(set(stored)), f"cycle {cycle.pk}: a reading stored twice"
        assert len(stored) == cycle.result["readings"], cycle.pk


def assert_every_window_accounted_for() -> windows.WindowAccount:
    account = windows.account()
    assert account.unexplained == [], (account, list(CollectionGap.objects.values()))
    assert account.windows == (
        account.with_readings + account.in_progress + account.failed + account.gaps
    )
    return account


def test_beat_and_a_celery_worker_fill_every_window_through_a_delay_and_a_period_change(
    site, redis_url
):
    """GIVEN beat at 2 s and a Celery BACnet worker
    WHEN a slow discovery holds the worker across window starts, then the admin changes
    the period to 1 s
    THEN delayed messages are stored as their own windows, the next windows still get
    theirs, and every window has a cycle or a recorded gap."""
    import redis

    redis.Redis.from_url(redis_url).flushdb()
    set_period(2)
    env = worker_env(
        site,
        REDIS_URL=redis_url,
        BACNET_BACKEND="celery",
        BACNET_DISCOVERY_MAX_S=str(SLOW_DISCOVERY_S),
    )
    bacnet = start_celery_worker("bacnet-windows@localhost", "bacnet", env)
    beat = spawn(
        "beat", [sys.executable, "-m", "celery", "-A", "bacnet_project", "beat", "-l", "INFO"], env
    )
    try:
        discover = request_job("discover", backend="celery")
        assert wait_for_job(discover.pk, scaled(30)).status == "completed"
        wait_until(lambda: len(completed_cycles()) >= 2, scaled(20), "two cycles at 2 s")
        slow = slow_discovery("celery")
        assert wait_for_job(slow.pk, scaled(30)).status == "completed"
        before_change = len(completed_cycles())
        wait_until(lambda: len(completed_cycles()) >= before_change + 2, scaled(20), "cycles")

        set_period(1)
        changed_at = timezone.now()
        wait_until(
            lambda: BACnetTask.objects.filter(
                window_period_s=1, status="completed", window_start__gte=changed_at
            ).count()
            >= 4,
            scaled(30),
            "four cycles at 1 s",
        )
    finally:
        beat.stop()
        time.sleep(1)  # the last message beat sent is taken
        bacnet.stop()

    cycles = completed_cycles()
    # The windows that started while the discovery held the worker were read after the
    # next window had started, and still stored as their own.
    slow = BACnetTask.objects.get(pk=slow.pk)
    delayed = [
        c
        for c in cycles
        if slow.started_at <= c.window_start < slow.completed_at
        and c.started_at >= c.window_start + timedelta(seconds=c.window_period_s)
    ]
    assert delayed, [(c.window_start, c.started_at) for c in cycles]
    assert {c.window_period_s for c in cycles} == {1, 2}
    assert_each_cycle_stored_once_at_its_window()
    account = assert_every_window_accounted_for()
    assert account.with_readings >= 8
    assert "already ran" not in bacnet.log()


def test_the_database_worker_opens_every_window_on_time_without_drift(site):
    """GIVEN the database worker with short windows (1 s on a quiet machine, scaled)
    WHEN it runs for a while, with a discovery longer than several windows in between
    THEN every window has a cycle or a gap (the ones the discovery overran), and the
    number of windows is the time elapsed over the period: nothing skipped, no drift."""
    # Scaled: on a starved machine a 1 s window can pass before the worker is scheduled
    # at all, which the product rightly records as a gap of another kind.
    period = max(1, round(scaled(1)))
    set_period(period)
    env = worker_env(
        site,
        BACNET_BACKEND="database",
        BACNET_DISCOVERY_MAX_S=str(2 * period + 1),  # overruns whole windows
        REDIS_URL="redis://127.0.0.1:1/0",  # no broker in this mode
    )
    worker = start_database_worker("db-windows", env)
    try:
        discover = request_job("discover", backend="database")
        assert wait_for_job(discover.pk, scaled(30)).status == "completed"
        wait_until(lambda: len(completed_cycles()) >= 3, scaled(20), "three cycles")
        slow = wait_for_job(slow_discovery("database").pk, scaled(30))
        assert slow.status == "completed"
        after = len(completed_cycles())
        wait_until(lambda: len(completed_cycles()) >= after + 4, scaled(20), "four more cycles")
    finally:
        worker.stop()

    assert_each_cycle_stored_once_at_its_window()
    account = assert_every_window_accounted_for()
    gaps = CollectionGap.objects.all()
    assert gaps.exists() and {gap.reason for gap in gaps} == {"overrun"}
    assert all(f"job {slow.pk}" in gap.detail for gap in gaps)
    starts = sorted(
        BACnetTask.objects.filter(window_start__isnull=False).values_list("window_start", flat=True)
    )
    # No drift: as many windows as periods between the first and the last.
    assert account.windows == (starts[-1] - starts[0]).total_seconds() / period + 1
    # Each cycle started within its window's bound (a busy worker may start one late,
    # never past the bound: that window would be a gap).
    bound = timedelta(seconds=windows.late_bound_s(period))
    for cycle in completed_cycles():
        assert cycle.started_at - cycle.window_start < bound, cycle.pk


def test_it_skips_a_collection_message_that_comes_after_its_windows_bound(site, redis_url):
    """A message for a window whose bound has passed (a worker back after a long outage,
    a retried message) is not stored as that window's history: it is skipped and the
    window recorded as a gap, whether Celery drops it as expired or the worker does."""
    import redis

    from bacnet_project.celery import app

    redis.Redis.from_url(redis_url).flushdb()
    set_period(2)
    env = worker_env(site, REDIS_URL=redis_url, BACNET_BACKEND="celery")
    bacnet = start_celery_worker("bacnet-late@localhost", "bacnet", env)
    try:
        now = timezone.now()
        expired_window = windows.window_start(now - timedelta(minutes=10), 2)
        late_window = windows.window_start(now - timedelta(minutes=5), 2)
        # As beat sends it: with its expiry (the bound); a worker back later drops it.
        app.send_task(
            windows.COLLECT_TASK,
            kwargs={"window_start": expired_window.isoformat(), "period_s": 2},
            expires=expired_window + timedelta(seconds=windows.late_bound_s(2)),
        )
        # Without an expiry (an older sender): the worker itself finds it too late.
        app.send_task(
            windows.COLLECT_TASK,
            kwargs={"window_start": late_window.isoformat(), "period_s": 2},
        )
        wait_until(lambda: CollectionGap.objects.count() == 2, scaled(20), "two late gaps")
    finally:
        bacnet.stop()
    gaps = {gap.window_start: gap for gap in CollectionGap.objects.all()}
    assert gaps[expired_window].reason == gaps[late_window].reason == "late"
    assert gaps[expired_window].detail == "message expired unread"
    assert not BACnetTask.objects.filter(kind="collect").exists()
    assert not BACnetReading.objects.exists()
