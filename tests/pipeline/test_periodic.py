"""Nobody touches anything: beat (or the database worker) collects and rolls up."""

from __future__ import annotations

import sys

import pytest
from django_celery_beat.models import IntervalSchedule, PeriodicTask

from discovery.jobs import request_job
from discovery.models import BACnetHourlyStat, BACnetReading, BACnetTask
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

PERIOD_S = 3


@pytest.fixture(scope="module")
def site():
    site = start_site(devices=2, objects=4, vary=True)
    yield site
    site.stop()


def scheduled_cycles() -> int:
    return BACnetTask.objects.filter(
        kind="collect", trigger="scheduled", status="completed"
    ).count()


def test_beat_sends_collection_cycles_and_rollups_on_its_own(site, redis_url):
    import redis

    redis.Redis.from_url(redis_url).flushdb()
    fast, _ = IntervalSchedule.objects.get_or_create(every=PERIOD_S, period="seconds")
    PeriodicTask.objects.filter(name__in=["Collect readings", "Hourly statistics"]).update(
        interval=fast, crontab=None, expire_seconds=PERIOD_S
    )
    env = worker_env(site, REDIS_URL=redis_url)
    bacnet = start_celery_worker("bacnet-beat@localhost", "bacnet", env)
    default = start_celery_worker("default-beat@localhost", "default", env)
    beat = spawn(
        "beat", [sys.executable, "-m", "celery", "-A", "bacnet_project", "beat", "-l", "INFO"], env
    )
    try:
        assert wait_for_job(request_job("discover", backend="celery").pk).status == "completed"
        wait_until(lambda: scheduled_cycles() >= 2, scaled(20), "two scheduled collection cycles")
        wait_until(BACnetHourlyStat.objects.exists, scaled(10), "hourly statistics")
    finally:
        for process in (beat, bacnet, default):
            process.stop()
    # One job per cycle, each cycle's readings under its own timestamp.
    keys = BACnetTask.objects.filter(trigger="scheduled").values_list("dedupe_key", flat=True)
    assert len(set(keys)) == len(keys)
    assert BACnetReading.objects.values("timestamp").distinct().count() >= 2


def test_the_database_worker_collects_and_rolls_up_without_beat_or_broker(site):
    # The period is the schedule's, in this mode too (one source of truth).
    fast, _ = IntervalSchedule.objects.get_or_create(every=PERIOD_S, period="seconds")
    PeriodicTask.objects.filter(name="Collect readings").update(interval=fast)
    env = worker_env(
        site,
        BACNET_BACKEND="database",
        BACNET_ROLLUP_INTERVAL_S=str(PERIOD_S),
        REDIS_URL="redis://127.0.0.1:1/0",  # no broker needed: this one is never reached
    )
    worker = start_database_worker("db-periodic", env)
    try:
        assert wait_for_job(request_job("discover", backend="database").pk).status == "completed"
        wait_until(lambda: scheduled_cycles() >= 2, scaled(20), "two scheduled collection cycles")
        wait_until(BACnetHourlyStat.objects.exists, scaled(10), "hourly statistics")
    finally:
        worker.stop()
    assert BACnetReading.objects.exists()
