"""A BACnet worker killed with SIGKILL in the middle of collections, again and again:
every scheduled cycle's readings end up stored exactly once, and the job records say
what happened (attempts, outcome).

REL_KILLS sets how many cycles are killed per backend (default 3, 20 with REL_FULL=1)."""

from __future__ import annotations

import random
import time
from datetime import timedelta

import pytest
from django.conf import settings
from django.utils import timezone

from discovery.backends import get_backend
from discovery.jobs import request_job
from discovery.models import BACnetDevice, BACnetPoint, BACnetReading, BACnetTask
from discovery.windows import window_start
from discovery.worker import scheduled_collection
from tests.reliability.conftest import env_int
from tests.site_fixtures import start_site
from tests.timing import scaled
from tests.worker_fixtures import (
    Process,
    start_celery_worker,
    start_database_worker,
    wait_for_job,
    wait_until,
    worker_env,
)

pytestmark = [pytest.mark.postgres, pytest.mark.slow, pytest.mark.django_db(transaction=True)]

KILLS = env_int("REL_KILLS", 3, full=20)
# The silent device holds each cycle for one APDU timeout: the window to kill in.
APDU_TIMEOUT_S = scaled(2.5)


@pytest.fixture(scope="module")
def site():
    site = start_site(devices=2, objects=6, faults=True)
    yield site
    site.stop()


# The cycles are opened for windows minutes in the past (one per kill): allow them.
MAX_LATE_S = 86400


@pytest.fixture(autouse=True)
def _old_windows_allowed(settings):
    settings.BACNET_COLLECT_MAX_LATE_S = MAX_LATE_S


def _env(site, backend: str, **extra: str) -> dict[str, str]:
    return worker_env(
        site,
        BACNET_BACKEND=backend,
        BACNET_COLLECT_MAX_LATE_S=str(MAX_LATE_S),
        BACNET_APDU_TIMEOUT_MS=str(int(APDU_TIMEOUT_S * 1000)),
        BACNET_REQUEST_DEADLINE_S=str(APDU_TIMEOUT_S + 1),
        BACNET_DEVICE_DEADLINE_S="8",
        **extra,
    )


class WorkerUnderTest:
    """One named worker that the test kills and starts again under the same name."""

    def __init__(self, backend: str, name: str, env: dict[str, str]) -> None:
        self.backend, self.name, self.env = backend, name, env
        self.process: Process | None = None
        self.logs: list[str] = []

    def start(self) -> None:
        if self.backend == "celery":
            self.process = start_celery_worker(self.name, "bacnet", self.env)
        else:
            self.process = start_database_worker(self.name, self.env, "--no-schedule")

    def kill(self) -> None:
        assert self.process is not None
        self.process.kill()
        self.logs.append(self.process.log())

    def stop(self) -> None:
        if self.process is not None:
            self.process.stop()
            self.logs.append(self.process.log())
            self.process = None


def _discover(worker: WorkerUnderTest) -> None:
    task = wait_for_job(request_job("discover", backend=worker.backend).pk, scaled(40))
    assert task.status == "completed", task.error_message


def _poll_the_silent_device(site) -> None:
    """The silent device answers Who-Is only: poll a point of it anyway, so that every
    cycle waits on it for a request deadline."""
    device = BACnetDevice.objects.get(device_instance=site.device("silent")["instance"])
    BACnetPoint.objects.get_or_create(device=device, object_type="analog-input", object_instance=1)
    BACnetDevice.objects.filter(pk=device.pk).update(is_online=True)


def _start_cycle(worker: WorkerUnderTest, seen: set[int], cycle_at) -> BACnetTask:
    """A cycle as the scheduler starts it: beat's message without a job id (Celery), or
    the cycle's row plus NOTIFY (the database worker's own schedule)."""
    if worker.backend == "celery":
        from bacnet_project.celery import app

        # As beat sends it: stamped with the window it is meant for.
        start = window_start(cycle_at, 60)
        app.send_task(
            "discovery.tasks.read_device_points",
            kwargs={"window_start": start.isoformat(), "period_s": 60},
        )

        def new_cycle() -> BACnetTask | None:
            return (
                BACnetTask.objects.filter(kind="collect", trigger="scheduled")
                .exclude(pk__in=seen)
                .first()
            )

        task = wait_until(new_cycle, scaled(20), "the worker to open the cycle's job")
    else:
        task = scheduled_collection("database", now=cycle_at)
        assert task is not None
        get_backend("database").dispatch(task.pk)
    seen.add(task.pk)
    return task


def _assert_stored_exactly_once(job: BACnetTask, readable: set[int]) -> None:
    cycle_at = job.parameters["cycle_at"]
    readings = BACnetReading.objects.filter(timestamp=cycle_at)
    points = list(readings.values_list("point_id", flat=True))
    assert len(points) == len(set(points)), f"job {job.pk}: a reading stored twice"
    assert set(points) >= readable, f"job {job.pk}: readings missing"
    assert len(points) == job.result["readings"]


@pytest.fixture
def celery_queue(redis_url):
    import redis

    redis.Redis.from_url(redis_url).flushdb()
    return redis_url


@pytest.mark.parametrize("backend", ["database", "celery"])
def test_it_stores_each_cycle_once_when_the_worker_is_killed_mid_collection(site, backend, request):
    """GIVEN a worker collecting from a site with a silent device
    WHEN it is SIGKILLed mid-cycle, REL_KILLS times, and started again each time
    THEN each cycle completes on its second attempt with each reading stored once."""
    extra = {}
    if backend == "celery":
        extra = {"REDIS_URL": request.getfixturevalue("celery_queue")}
    worker = WorkerUnderTest(
        backend, f"rel-killed-{backend}@localhost", _env(site, backend, **extra)
    )
    rng = random.Random(8)
    worker.start()
    jobs: list[BACnetTask] = []
    try:
        _discover(worker)
        _poll_the_silent_device(site)
        readable = set(
            BACnetPoint.objects.filter(
                device__device_instance__in=[d["instance"] for d in site.normal_devices]
            ).values_list("pk", flat=True)
        )
        seen: set[int] = set()
        first_cycle = timezone.now() - timedelta(seconds=60 * (KILLS + 1))
        for n in range(KILLS):
            cycle = first_cycle + timedelta(seconds=60 * n)
            job = _start_cycle(worker, seen, cycle)
            wait_until(
                lambda job=job: BACnetTask.objects.get(pk=job.pk).status == "running",
                scaled(20),
                f"cycle {n} running",
            )
            # Anywhere inside the cycle: during the reads, or as they are stored.
            time.sleep(rng.uniform(0.0, APDU_TIMEOUT_S * 0.6))
            worker.kill()
            assert BACnetTask.objects.get(pk=job.pk).status == "running", "killed too late"
            worker.start()  # same name: it takes its orphaned job up again
            jobs.append(wait_for_job(job.pk, scaled(40)))
    finally:
        worker.stop()

    for job in jobs:
        assert job.status == "completed", job.error_message
        assert job.attempts == 2, (job.pk, job.attempts)
        assert job.worker_name == worker.name
        _assert_stored_exactly_once(job, readable)
    assert BACnetReading.objects.count() == sum(job.result["readings"] for job in jobs)
    logs = "\n".join(worker.logs)
    for job in jobs:
        assert f"Job {job.pk} retried: worker {worker.name} restarted while running it" in logs


def test_it_gives_up_on_a_cycle_whose_worker_dies_every_time(site):
    """A cycle that kills its worker on every attempt is failed after the attempt limit,
    with the reason on the row and nothing stored, instead of looping forever."""
    worker = WorkerUnderTest("database", "rel-doomed@localhost", _env(site, "database"))
    worker.start()
    try:
        _discover(worker)
        _poll_the_silent_device(site)
        job = scheduled_collection("database", now=timezone.now() - timedelta(hours=1))
        assert job is not None
        get_backend("database").dispatch(job.pk)
        for attempt in range(1, settings.BACNET_JOB_MAX_ATTEMPTS + 1):
            wait_until(
                lambda attempt=attempt: BACnetTask.objects.filter(
                    pk=job.pk, status="running", attempts=attempt
                ).exists(),
                scaled(20),
                f"attempt {attempt} running",
            )
            worker.kill()
            worker.start()
        job = wait_for_job(job.pk, scaled(20))
    finally:
        worker.stop()
    assert job.status == "failed"
    assert job.attempts == settings.BACNET_JOB_MAX_ATTEMPTS
    assert f"Gave up after {job.attempts} attempts" in job.error_message
    assert "restarted while running it" in job.error_message
    assert not BACnetReading.objects.filter(timestamp=job.parameters["cycle_at"]).exists()
