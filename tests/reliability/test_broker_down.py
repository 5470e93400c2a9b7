"""The broker goes down while a user clicks Start Discovery: the job is recorded and the
page says it is queued, the pages keep working, and once the broker is back the sweeper
sends the job and the BACnet worker runs it, once.

The broker is a redis-server of the test's own (no persistence), stopped and started by
the test: the shared Redis is never touched."""

from __future__ import annotations

import os
import re
import signal
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

import pytest
from django.contrib.auth import get_user_model
from django.db import connection
from django.test import Client, override_settings
from django.urls import reverse
from django.utils import timezone

from discovery import backends
from discovery.backends import BROKER_DOWN_NOTE, broker_send_timeout_s
from discovery.models import BACnetDevice, BACnetTask
from discovery.worker import sweep_jobs
from tests.reliability.conftest import celery_broker
from tests.site_fixtures import start_site
from tests.timing import scaled
from tests.worker_fixtures import start_celery_worker, wait_for_job, worker_env

pytestmark = [
    pytest.mark.postgres,
    pytest.mark.redis,
    pytest.mark.slow,
    pytest.mark.django_db(transaction=True),
]

# Generous: the click must not hang on a dead broker (a browser would give up).
CLICK_DEADLINE_S = scaled(5)


@pytest.fixture
def site():
    site = start_site(devices=2, objects=4)
    yield site
    site.stop()


def _browser() -> Client:
    """A logged-in browser that must send the CSRF token like the page does."""
    user = get_user_model().objects.create_user("operator", password="unused-password-1")
    browser = Client(enforce_csrf_checks=True)
    browser.force_login(user)
    assert browser.get(reverse("discovery:dashboard")).status_code == 200
    return browser


def test_it_queues_a_discovery_while_the_broker_is_down_and_runs_it_once_it_is_back(
    site, own_redis
):
    """GIVEN a BACnet worker on a broker that then goes down
    WHEN a user clicks Start Discovery
    THEN the job waits as queued, the pages answer, and after the broker is back the
    sweeper sends it and the worker runs it exactly once."""
    url = own_redis.url()
    env = worker_env(site, BACNET_BACKEND="celery", REDIS_URL=url, CELERY_BROKER_URL=url)
    worker = start_celery_worker("rel-broker@localhost", "bacnet", env)
    try:
        with celery_broker(url), override_settings(BACNET_BACKEND="celery"):
            browser = _browser()
            own_redis.stop()

            started = time.monotonic()
            response = browser.post(
                reverse("discovery:start-discovery"),
                {"low": "", "high": "", "targets": ""},
                HTTP_HX_REQUEST="true",
                HTTP_X_CSRFTOKEN=browser.cookies["csrftoken"].value,
            )
            assert time.monotonic() - started < CLICK_DEADLINE_S
            assert response.status_code == 200
            job = BACnetTask.objects.get()
            assert "Discovery job" in response.content.decode()
            assert (job.status, job.dispatched_at, job.progress) == (
                "pending",
                None,
                BROKER_DOWN_NOTE,
            )

            # The web keeps working without its broker.
            for page in (
                reverse("discovery:dashboard"),
                reverse("discovery:recent-jobs"),
                reverse("discovery:job-list"),
                reverse("discovery:job-detail", args=[job.pk]),
            ):
                page_response = browser.get(page)
                assert page_response.status_code == 200, page
                assert "Queued: the message broker is not reachable" in (
                    page_response.content.decode()
                ), page
            status = browser.get(reverse("api:task-status", args=[job.pk]))
            assert status.status_code == 200
            assert status.json()["status"] == "pending"
            # Sweeping while the broker is still down sends nothing and loses nothing.
            later = timezone.now() + timedelta(seconds=10)
            assert sweep_jobs(now=later)["redispatched"] == 1
            job.refresh_from_db()
            assert (job.status, job.dispatched_at) == ("pending", None)
            assert worker.proc.poll() is None, "the worker died with its broker"

            own_redis.start()  # same port, empty: what was in it is gone
            assert sweep_jobs(now=timezone.now() + timedelta(seconds=10))["redispatched"] == 1
            job = wait_for_job(job.pk, scaled(40))
            # Nothing left to send: a second sweep sends no duplicate.
            assert sweep_jobs(now=timezone.now() + timedelta(seconds=10))["redispatched"] == 0
    finally:
        worker.stop()
    assert job.status == "completed", job.error_message
    assert job.attempts == 1
    assert job.dispatched_at is not None
    assert job.worker_name == "rel-broker@localhost"
    assert BACnetDevice.objects.filter(
        device_instance__in=[d["instance"] for d in site.devices]
    ).count() == len(site.devices)
    # Celery logs "Task <name>[<id>] received" once per message the worker takes.
    received = re.findall(r"discover_devices\[[0-9a-f-]+\] received", worker.log())
    assert len(received) == 1, worker.log()


def test_it_answers_at_once_while_the_broker_is_frozen_and_runs_the_job_once_it_thaws(
    site, own_redis
):
    """GIVEN a BACnet worker on a broker that then freezes (SIGSTOP: it still accepts
    connections but answers nothing, like a paused container or a full disk)
    WHEN a user clicks Start Discovery and a client posts a job
    THEN both answer within the send bound saying the job waits, the web keeps
    answering, and after SIGCONT the sweeper sends the jobs, oldest first, and the
    worker runs each exactly once."""
    url = own_redis.url()
    env = worker_env(site, BACNET_BACKEND="celery", REDIS_URL=url, CELERY_BROKER_URL=url)
    worker = start_celery_worker("rel-frozen@localhost", "bacnet", env)
    bound_s = broker_send_timeout_s()
    try:
        with celery_broker(url), override_settings(BACNET_BACKEND="celery"):
            browser = _browser()
            os.kill(own_redis.process.pid, signal.SIGSTOP)
            try:
                started = time.monotonic()
                response = browser.post(
                    reverse("discovery:start-discovery"),
                    {"low": "", "high": "", "targets": ""},
                    HTTP_HX_REQUEST="true",
                    HTTP_X_CSRFTOKEN=browser.cookies["csrftoken"].value,
                )
                click_s = time.monotonic() - started
                print(f"Start Discovery answered in {click_s:.2f} s with the broker frozen")
                assert response.status_code == 200
                assert click_s < scaled(bound_s), f"the click waited {click_s:.1f} s"
                assert "Waiting: Queued: the message broker is not reachable" in (
                    response.content.decode()
                )

                # The next request does not wait the timeout again: it answers at once.
                started = time.monotonic()
                api = browser.post(
                    reverse("api:job-list"),
                    # Another range: the same one would be the first job again.
                    {"kind": "discover", "parameters": {"low": 1, "high": 1}},
                    content_type="application/json",
                    HTTP_X_CSRFTOKEN=browser.cookies["csrftoken"].value,
                )
                api_s = time.monotonic() - started
                assert api.status_code == 201, api.content
                assert api.json()["delivery"] == "waiting"
                assert api.json()["dispatched_at"] is None
                assert api_s < scaled(1), f"the API waited {api_s:.1f} s"
                assert browser.get(reverse("discovery:healthz")).status_code == 200
                assert browser.get(reverse("discovery:job-list")).status_code == 200

                # A burst of clients at once, more than the producer pool holds, each
                # trying the broker itself (as other web processes would): every one
                # answers within the bound, none waits for another's timeout.
                backends._broker_down_until = 0.0
                burst_s = _burst_of_job_requests(BURST)
                print(f"{BURST} concurrent job requests answered in {max(burst_s):.2f} s at most")
                assert max(burst_s) < scaled(bound_s), burst_s
                jobs = list(BACnetTask.objects.order_by("created_at", "id"))
                assert [job.status for job in jobs] == ["pending"] * (2 + BURST)
                assert all(job.dispatched_at is None for job in jobs)
                assert worker.proc.poll() is None, "the worker died with its broker frozen"
            finally:
                os.kill(own_redis.process.pid, signal.SIGCONT)

            own_redis.wait_answering()
            counts = sweep_jobs(now=timezone.now() + timedelta(seconds=10))
            assert counts["redispatched"] == len(jobs)
            sent = [BACnetTask.objects.get(pk=job.pk).dispatched_at for job in jobs]
            assert None not in sent
            assert sent == sorted(sent), "not sent oldest first"
            done = [wait_for_job(job.pk, scaled(40)) for job in jobs]
            assert sweep_jobs(now=timezone.now() + timedelta(seconds=10))["redispatched"] == 0
    finally:
        worker.stop()
    for job in done:
        assert job.status == "completed", job.error_message
        assert job.attempts == 1
        # A send that timed out may still have reached the broker when it woke: a second
        # message for the job then finds it taken. Either way it ran once.
        assert len(re.findall(rf"Job {job.pk} \(discover\) started", worker.log())) == 1


BURST = 12


def _burst_of_job_requests(count: int) -> list[float]:
    """``count`` clients post a job at the same moment, each on its own thread and
    database connection; returns how long each waited for its answer."""
    from rest_framework.authtoken.models import Token

    user = get_user_model().objects.create_user("burst", password="unused-password-1")
    token = Token.objects.create(user=user).key
    start = threading.Barrier(count)

    def one(k: int) -> float:
        try:
            client = Client(HTTP_AUTHORIZATION=f"Token {token}")
            start.wait()
            began = time.monotonic()
            # A range of its own each: identical discoveries would make one job.
            job = {"kind": "discover", "parameters": {"low": 100 + k, "high": 100 + k}}
            response = client.post(reverse("api:job-list"), job, content_type="application/json")
            assert response.status_code == 201, response.content
            assert response.json()["delivery"] == "waiting"
            return time.monotonic() - began
        finally:
            connection.close()

    with ThreadPoolExecutor(count) as pool:
        return list(pool.map(one, range(count)))


def test_it_bounds_every_broker_operation_and_never_stops_retrying_the_broker(settings):
    """The settings that the two tests above rely on, as Celery reads them: socket and
    connect timeouts on the transport and the result backend, and no retry limit for
    workers reconnecting to the broker (Celery's default gives up after ~45 minutes)."""
    from bacnet_project.celery import app

    assert app.conf.broker_connection_max_retries is None
    timeout = settings.BACNET_BROKER_TIMEOUT_S
    if not app.conf.broker_url.startswith("filesystem://"):
        options = app.conf.broker_transport_options
        assert options["socket_timeout"] == options["socket_connect_timeout"] == timeout
    assert app.conf.broker_connection_timeout == timeout
    assert app.conf.redis_socket_timeout == app.conf.redis_socket_connect_timeout == timeout
