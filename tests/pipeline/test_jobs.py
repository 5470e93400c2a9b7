"""Requesting jobs: validation, the row first, dispatch after commit, events, recovery."""

import os
import subprocess
import sys
import threading
import time
from datetime import timedelta
from pathlib import Path

import pytest
from django.conf import settings
from django.db import transaction
from django.utils import timezone

from discovery.events import JOB_WAITING, TASK_CHANGED, Listener
from discovery.jobs import JobError, backend_status, request_job, task_status, validate_parameters
from discovery.models import BACnetDevice, BACnetTask, BACnetWorker
from discovery.worker import claim, claim_next, scheduled_collection, sweep_jobs
from tests.timing import scaled

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(
    ("kind", "params", "message"),
    [
        ("explode", {}, "Unknown job kind"),
        ("discover", {"low": 10, "high": 5}, "low must not be greater"),
        ("discover", {"low": -1}, "between 0 and 4194303"),
        ("discover", {"low": "ten"}, "between 0 and 4194303"),
        ("discover", {"targets": ["<script>"]}, "is not a BACnet/IP address"),
        ("discover", {"targets": ["10.0.0.1:99999"]}, "invalid UDP port"),
        ("discover", {"targets": ["10.0.0.1"] * 300}, "At most 256"),
        ("discover", {"colour": "red"}, "Unknown parameter"),
        ("collect", {"device_instances": "all"}, "must be a list"),
        ("enumerate", {}, "needs device_instance"),
    ],
)
@pytest.mark.django_db
def test_it_refuses_bad_parameters_with_a_clear_message(kind, params, message):
    with pytest.raises(JobError, match=message):
        validate_parameters(kind, params)


@pytest.mark.django_db
def test_it_accepts_ranges_and_directed_addresses_in_the_forms_users_type():
    cleaned = validate_parameters(
        "discover", {"low": "5", "targets": "10.0.0.9, 10.0.0.8:47809 20:0x0a"}
    )
    assert cleaned == {
        "low": 5,
        "high": 4194303,
        "targets": ["10.0.0.9", "10.0.0.8:47809", "20:0x0a"],
    }


@pytest.mark.django_db
def test_enumerate_needs_a_known_device():
    with pytest.raises(JobError, match="No known device"):
        validate_parameters("enumerate", {"device_instance": 5})
    BACnetDevice.objects.create(device_instance=5, address="10.0.0.5")
    assert validate_parameters("enumerate", {"device_instance": 5}) == {"device_instance": 5}


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_the_database_backend_is_woken_by_notify_only_after_commit():
    listener = Listener([JOB_WAITING, TASK_CHANGED])
    try:
        with transaction.atomic():
            task = request_job("discover", backend="database")
            assert listener.wait(0.3) == []  # nothing before commit
        # The row's change and the wake-up are committed separately: wait for both.
        events = []
        deadline = time.monotonic() + scaled(10)
        while len(events) < 2 and time.monotonic() < deadline:
            events += listener.wait(0.5)
    finally:
        listener.close()
    assert (JOB_WAITING, str(task.pk)) in events
    assert (TASK_CHANGED, str(task.pk)) in events
    task.refresh_from_db()
    assert task.status == "pending" and task.dispatched_at is not None


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_two_workers_never_claim_the_same_job():
    tasks = [request_job("discover", backend="database") for _ in range(20)]
    claimed: dict[str, list[int]] = {"a": [], "b": []}

    def take(name):
        from django.db import connection

        while (task := claim_next(name)) is not None:
            claimed[name].append(task.pk)
        connection.close()

    threads = [threading.Thread(target=take, args=(n,)) for n in claimed]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    taken = claimed["a"] + claimed["b"]
    assert sorted(taken) == sorted(t.pk for t in tasks)  # each once, none twice
    assert BACnetTask.objects.filter(status="running", attempts=1).count() == 20


@pytest.mark.django_db
def test_a_job_claimed_once_cannot_be_claimed_again():
    task = request_job("collect", backend="database")
    assert claim(task.pk, "w1") is not None
    assert claim(task.pk, "w2") is None
    task.refresh_from_db()
    assert (task.worker_name, task.attempts) == ("w1", 1)
    assert task_status(task)["status"] == "running"


@pytest.mark.django_db
def test_a_job_whose_worker_died_is_retried_then_failed_with_the_reason(settings):
    settings.BACNET_JOB_MAX_ATTEMPTS = 2
    task = request_job("discover", backend="database")
    for attempt in (1, 2):
        claim(task.pk, "dead-worker")
        BACnetTask.objects.filter(pk=task.pk).update(
            heartbeat_at=timezone.now() - timedelta(seconds=settings.BACNET_JOB_STALE_AFTER_S + 5)
        )
        sweep_jobs()
        task.refresh_from_db()
        if attempt == 1:
            assert task.status == "pending" and "dead-worker" in task.progress
    assert task.status == "failed"
    assert "Gave up after 2 attempts" in task.error_message
    assert "dead-worker sent no heartbeat" in task.error_message


@pytest.mark.django_db
def test_a_collection_cycle_gets_one_job_however_often_it_is_asked_for(settings):
    settings.BACNET_COLLECT_INTERVAL_S = 60
    now = timezone.now()
    first = scheduled_collection("celery", now)
    again = scheduled_collection("celery", now + timedelta(seconds=1))
    assert first is not None and again is not None and first.pk == again.pk
    claim(first.pk, "w")
    assert scheduled_collection("celery", now) is None  # already running: nothing to do


@pytest.mark.django_db
def test_backend_status_says_plainly_when_no_worker_serves_the_backend(settings):
    settings.BACNET_BACKEND = "database"
    status = backend_status()
    assert (
        not status.worker_alive
        and "No BACnet worker serving the database backend" in status.message
    )
    BACnetWorker.objects.create(name="w", backend="celery")
    assert "BACNET_BACKEND to the same value" in backend_status().message
    BACnetWorker.objects.create(name="w2", backend="database")
    status = backend_status()
    assert status.worker_alive and status.message == ""


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_a_job_requested_while_the_broker_is_down_is_kept_and_sent_later(redis_url):
    """GIVEN a web process whose broker does not answer WHEN a user starts a discovery
    THEN the job is recorded as queued AND the sweeper sends it once the broker is back."""
    db = settings.DATABASES["default"]
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "tests.settings",
        "DATABASE_URL": f"postgres://{db['USER']}@{db['HOST']}:{db['PORT']}/{db['NAME']}",
        "REDIS_URL": "redis://127.0.0.1:1/0",  # nothing listens on port 1
        "BACNET_BACKEND": "celery",
    }
    env.pop("CELERY_BROKER_URL", None)
    code = "from discovery.jobs import request_job; print(request_job('discover').pk)"
    out = subprocess.run(
        [sys.executable, "manage.py", "shell", "-c", code],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    task = BACnetTask.objects.get(pk=int(out.stdout.strip().splitlines()[-1]))
    assert task.status == "pending" and task.dispatched_at is None
    assert "broker is not reachable" in task.progress

    import redis

    queue_len_before = redis.Redis.from_url(redis_url).llen("bacnet")
    BACnetTask.objects.filter(pk=task.pk).update(created_at=timezone.now() - timedelta(minutes=1))
    with transaction.atomic():
        assert sweep_jobs()["redispatched"] == 1
    task.refresh_from_db()
    assert task.dispatched_at is not None
    assert redis.Redis.from_url(redis_url).llen("bacnet") == queue_len_before + 1
    redis.Redis.from_url(redis_url).delete("bacnet")
