"""The database goes away under running workers. The PostgreSQL server is shared with
other work on this machine, so it is not restarted: every session of the test database
but the test's own is terminated (``pg_terminate_backend``), which is what the workers
see of a restart. They must reconnect by themselves; the job in flight is retried like
one whose worker died, never half-written."""

from __future__ import annotations

import time

import pytest

from discovery.jobs import request_job
from discovery.models import BACnetDevice, BACnetPoint, BACnetReading, BACnetTask
from tests.reliability.conftest import terminate_listeners, terminate_other_connections
from tests.site_fixtures import start_site
from tests.timing import scaled
from tests.worker_fixtures import (
    start_celery_worker,
    start_database_worker,
    wait_for_job,
    wait_until,
    worker_env,
)

pytestmark = [pytest.mark.postgres, pytest.mark.slow, pytest.mark.django_db(transaction=True)]


@pytest.fixture(scope="module")
def site():
    site = start_site(devices=2, objects=6, faults=True)
    yield site
    site.stop()


@pytest.fixture
def worker(request, site):
    backend = request.param
    env = worker_env(
        site,
        BACNET_BACKEND=backend,
        # The silent device holds a cycle for this long: the window to cut the database.
        BACNET_APDU_TIMEOUT_MS="3000",
        BACNET_REQUEST_DEADLINE_S="4",
        BACNET_DEVICE_DEADLINE_S="8",
    )
    if backend == "celery":
        import redis

        redis_url = request.getfixturevalue("redis_url")
        redis.Redis.from_url(redis_url).flushdb()
        env["REDIS_URL"] = redis_url
        process = start_celery_worker("rel-outage@localhost", "bacnet", env)
    else:
        process = start_database_worker("rel-outage@localhost", env, "--no-schedule")
    process.backend = backend  # type: ignore[attr-defined]
    yield process
    process.stop()


# The database worker waits for jobs on a LISTEN connection of its own: these tests
# found that its driver errors used to end the worker (fixed in discovery/events.py).
BACKENDS = ["database", "celery"]
# The database worker polls every second in these tests: long enough for it to be
# waiting for work when the connections are cut.
IDLE_S = 2.0


def _run(kind: str, backend: str) -> BACnetTask:
    return wait_for_job(request_job(kind, backend=backend).pk, scaled(30))


def _discover(backend: str) -> None:
    task = _run("discover", backend)
    assert task.status == "completed", task.error_message
    assert task.result["points"] > 0, task.result


def _assert_alive(worker) -> None:
    time.sleep(IDLE_S)  # a worker that is going to die of it has done so by now
    assert worker.proc.poll() is None, f"the worker exited:\n{worker.log()[-3000:]}"


def _readable_points(site) -> set[int]:
    normal = [d["instance"] for d in site.normal_devices]
    return set(
        BACnetPoint.objects.filter(device__device_instance__in=normal).values_list("pk", flat=True)
    )


@pytest.mark.parametrize("worker", ["database", "celery"], indirect=True)
def test_it_reconnects_after_losing_the_database_while_idle(site, worker):
    backend = worker.backend
    _discover(backend)
    time.sleep(IDLE_S)
    assert terminate_other_connections() >= 1, "the worker held no connection"
    _assert_alive(worker)
    job = _run("collect", backend)
    assert job.status == "completed", job.error_message
    assert worker.proc.poll() is None, worker.log()
    assert BACnetReading.objects.filter(timestamp=job.parameters["cycle_at"]).count() >= len(
        _readable_points(site)
    )


@pytest.mark.parametrize("worker", BACKENDS, indirect=True)
def test_it_retries_a_cycle_that_loses_the_database_mid_cycle(site, worker):
    """GIVEN a collection in flight, held by a silent device
    WHEN every database session of the worker is terminated (what a PostgreSQL restart
    looks like to it)
    THEN the cycle is put back and retried, like one whose worker died: it completes on
    its second attempt with each reading stored once; the worker lives on."""
    backend = worker.backend
    _discover(backend)
    silent = BACnetDevice.objects.get(device_instance=site.device("silent")["instance"])
    BACnetPoint.objects.get_or_create(device=silent, object_type="analog-input", object_instance=1)
    readable = _readable_points(site)

    job = request_job("collect", backend=backend)
    wait_until(
        lambda: BACnetTask.objects.get(pk=job.pk).status == "running", scaled(20), "job running"
    )
    assert terminate_other_connections() >= 1
    job = wait_for_job(job.pk, scaled(40))
    stored = list(
        BACnetReading.objects.filter(timestamp=job.parameters["cycle_at"]).values_list(
            "point_id", flat=True
        )
    )
    assert job.status == "completed", job.error_message
    assert job.attempts == 2, (job.attempts, worker.log()[-3000:])
    assert len(stored) == len(set(stored)), "a reading stored twice"
    assert set(stored) >= readable
    assert len(stored) == job.result["readings"]
    assert f"Job {job.pk} retried: database connection lost" in worker.log()

    _assert_alive(worker)
    after = _run("collect", backend)
    assert after.status == "completed", after.error_message
    assert worker.proc.poll() is None, worker.log()


@pytest.mark.parametrize("worker", ["database"], indirect=True)
def test_it_listens_again_after_losing_only_its_listen_connection(site, worker):
    """A proxy or firewall that drops the idle LISTEN connection must not end the worker."""
    _discover("database")
    time.sleep(IDLE_S)
    assert terminate_listeners() == 1
    _assert_alive(worker)
    job = _run("collect", "database")
    assert job.status == "completed", job.error_message
