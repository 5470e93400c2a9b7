"""The pipeline end to end: real worker processes, real Redis and PostgreSQL, and a
simulated site spoken to over BACnet/IP. Nothing is mocked."""

from __future__ import annotations

import statistics
import subprocess
import sys
from collections import defaultdict

import pytest
from django.conf import settings

from discovery.jobs import request_job
from discovery.models import (
    BACnetDevice,
    BACnetHourlyStat,
    BACnetPoint,
    BACnetReading,
    BACnetTask,
    BACnetWorker,
)
from tests.site_fixtures import start_site
from tests.timing import scaled
from tests.worker_fixtures import (
    REPO,
    start_celery_worker,
    start_database_worker,
    wait_for_job,
    wait_until,
    worker_env,
)

pytestmark = [pytest.mark.postgres, pytest.mark.slow, pytest.mark.django_db(transaction=True)]

DEVICES, OBJECTS = 3, 6


@pytest.fixture(scope="module")
def site():
    site = start_site(devices=DEVICES, objects=OBJECTS, vary=True)
    yield site
    site.stop()


@pytest.fixture
def celery_workers(site, redis_url):
    """One solo worker on ``bacnet`` and one on ``default``, on a queue-clean Redis db."""
    import redis

    redis.Redis.from_url(redis_url).flushdb()
    env = worker_env(site, REDIS_URL=redis_url, BACNET_BACKEND="celery")
    bacnet = start_celery_worker("bacnet-test@localhost", "bacnet", env)
    default = start_celery_worker(
        "default-test@localhost", "default", worker_env(REDIS_URL=redis_url)
    )
    yield bacnet, default
    for worker in (bacnet, default):
        worker.stop()


def simulated_points(site) -> int:
    # The simulator's BBMD is a device too, with no points of interest.
    return sum(len(d["objects"]) for d in site.devices)


def test_discover_collect_and_roll_up_through_the_routed_queues(site, celery_workers, redis_url):
    """GIVEN a solo worker on bacnet, a worker on default and the simulated site
    WHEN discovery, a collection and the hourly rollup are requested
    THEN devices, points, readings and exact statistics are stored, each by its worker."""
    bacnet, default = celery_workers
    task = wait_for_job(request_job("discover", backend="celery").pk)
    assert task.status == "completed", task.error_message
    assert task.worker_name == "bacnet-test@localhost"  # the routed worker, no other
    found = {d["instance"] for d in site.devices}
    assert set(BACnetDevice.objects.values_list("device_instance", flat=True)) == found | {
        site.bbmd_device_instance
    }
    assert task.result["devices_found"] == len(found) + 1
    assert BACnetPoint.objects.count() == simulated_points(site) == task.result["points"]
    device = BACnetDevice.objects.get(device_instance=site.devices[0]["instance"])
    assert (device.name, device.vendor_id) == (
        site.devices[0]["name"],
        site.devices[0]["vendor_id"],
    )

    collect = wait_for_job(request_job("collect", backend="celery").pk)
    assert collect.status == "completed", collect.error_message
    assert (
        BACnetReading.objects.count() == BACnetPoint.objects.count() == collect.result["readings"]
    )

    from bacnet_project.celery import app

    app.send_task("discovery.tasks.calculate_hourly_stats")
    wait_until(BACnetHourlyStat.objects.exists, scaled(10), "hourly statistics")
    by_point = defaultdict(list)
    for point_id, value in BACnetReading.objects.filter(value__isnull=False).values_list(
        "point_id", "value"
    ):
        by_point[point_id].append(value)
    stats = {s.point_id: s for s in BACnetHourlyStat.objects.all()}
    assert set(stats) == set(by_point)
    for point_id, values in by_point.items():
        stat = stats[point_id]
        assert (stat.minimum, stat.maximum, stat.count) == (min(values), max(values), len(values))
        assert stat.average == pytest.approx(statistics.fmean(values))
    # Celery logs "Task <name>[<id>] received" for each task a worker takes.
    assert "calculate_hourly_stats[" in default.log()
    assert "calculate_hourly_stats[" not in bacnet.log()
    assert "discover_devices[" in bacnet.log()
    assert "discover_devices[" not in default.log()


def test_a_bacnet_task_sent_to_the_wrong_queue_fails_loudly(site, celery_workers):
    from bacnet_project.celery import app

    task = request_job("discover", backend="database")  # recorded but not dispatched
    app.send_task("discovery.tasks.discover_devices", args=[task.pk], queue="default")
    task = wait_for_job(task.pk, scaled(10))
    assert task.status == "failed"
    assert task.worker_name == "default-test@localhost"
    assert "not a BACnet worker" in task.error_message


def test_the_database_backend_with_two_competing_workers_runs_each_job_once(site):
    env = worker_env(site, BACNET_BACKEND="database")
    workers = [
        start_database_worker(name, worker_env(site, BACNET_BACKEND="database"), "--no-schedule")
        for name in ("db-worker-a", "db-worker-b")
    ]
    try:
        assert env["BACNET_BACKEND"] == "database"
        first = wait_for_job(request_job("discover", backend="database").pk)
        assert first.status == "completed", first.error_message
        jobs = [request_job("collect", backend="database") for _ in range(6)]
        done = [wait_for_job(job.pk) for job in jobs]
    finally:
        for worker in workers:
            worker.stop()
    assert all(job.status == "completed" and job.attempts == 1 for job in done)
    assert {job.worker_name for job in [first, *done]} <= {"db-worker-a", "db-worker-b"}
    # Each cycle's timestamp is fixed when it is requested (to the second): cycles
    # requested in the same second share it, and each (point, timestamp) is stored once.
    cycles = {job.parameters["cycle_at"] for job in done}
    assert BACnetReading.objects.count() == len(cycles) * BACnetPoint.objects.count()
    assert not BACnetWorker.objects.get(name="db-worker-a").is_alive(60)  # said goodbye


def test_a_waiting_database_worker_wakes_on_notify_not_on_its_poll(site):
    worker = start_database_worker(
        "db-notify", worker_env(site, BACNET_BACKEND="database"), "--no-schedule", "--poll", "120"
    )
    try:
        worker.wait_for_log("ready")
        task = wait_for_job(request_job("discover", backend="database").pk, scaled(20))
    finally:
        worker.stop()
    assert task.status == "completed"
    # Its safety-net poll is 120 s: only NOTIFY can have woken it this early.
    assert (task.started_at - task.created_at).total_seconds() < 60


def test_a_worker_killed_mid_collection_is_recovered_and_stores_each_reading_once():
    """GIVEN a collection that waits on a silent device WHEN its worker is SIGKILLed
    THEN the restarted worker takes the job up again and every reading is stored once."""
    site = start_site(devices=2, objects=4, faults=True)
    try:
        env = worker_env(site, BACNET_BACKEND="database", BACNET_DEVICE_DEADLINE_S="4")
        worker = start_database_worker("db-killed", env, "--no-schedule")
        discover = wait_for_job(request_job("discover", backend="database").pk)
        assert discover.status == "completed", discover.error_message
        # Poll the silent device too, so that the cycle lasts its deadline.
        silent = site.device("silent")["instance"]
        device = BACnetDevice.objects.get(device_instance=silent)
        BACnetPoint.objects.create(device=device, object_type="analog-input", object_instance=1)
        job = request_job("collect", backend="database")
        wait_until(
            lambda: BACnetTask.objects.get(pk=job.pk).status == "running", scaled(10), "job running"
        )
        worker.kill()
        assert BACnetTask.objects.get(pk=job.pk).status == "running"
        assert BACnetReading.objects.count() == 0
        worker = start_database_worker("db-killed", env, "--no-schedule")  # same name
        job = wait_for_job(job.pk)
        worker.stop()
    finally:
        site.stop()
    assert job.status == "completed" and job.attempts == 2
    readable = BACnetPoint.objects.exclude(device__device_instance=silent).exclude(
        device__is_online=False
    )
    counts = set(BACnetReading.objects.values_list("point_id", flat=True))
    assert BACnetReading.objects.count() == len(counts)  # never twice
    assert counts >= set(readable.filter(last_error="").values_list("pk", flat=True))


def test_the_embedded_mode_sqlite_and_the_file_broker_run_a_discovery(tmp_path, site):
    """SQLite in a data folder and kombu's filesystem:// broker: no server at all."""
    data = tmp_path / "data"
    env = worker_env(
        site,
        BACNET_DATA_DIR=str(data),
        DATABASE_URL="",
        REDIS_URL="",
        CELERY_BROKER_URL="",
        BACNET_BACKEND="celery",
    )
    for name in ("DATABASE_URL", "REDIS_URL", "CELERY_BROKER_URL"):
        env.pop(name)
    subprocess.run([sys.executable, "manage.py", "migrate", "-v0"], cwd=REPO, env=env, check=True)
    worker = start_celery_worker("bacnet-fs@localhost", "bacnet", env)
    try:
        code = (
            "from discovery.jobs import request_job;"
            "from tests.worker_fixtures import wait_for_job;"
            "t = wait_for_job(request_job('discover').pk);"
            "from discovery.models import BACnetDevice;"
            "print(t.status, t.worker_name, BACnetDevice.objects.count(), t.error_message)"
        )
        out = subprocess.run(
            [sys.executable, "manage.py", "shell", "-c", code],
            cwd=REPO, env=env, capture_output=True, text=True, timeout=120, check=True,
        )  # fmt: skip
    finally:
        worker.stop()
    status, worker_name, devices = out.stdout.strip().splitlines()[-1].split()[:3]
    assert (status, worker_name) == ("completed", "bacnet-fs@localhost")
    assert int(devices) == len(site.devices) + 1
    assert list(data.glob("*.sqlite3")) and (data / "broker").is_dir()
    assert settings.DATABASES["default"]["ENGINE"].endswith("postgresql")
