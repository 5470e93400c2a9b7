"""The broker goes down while a user clicks Start Discovery: the job is recorded and the
page says it is queued, the pages keep working, and once the broker is back the sweeper
sends the job and the BACnet worker runs it, once.

The broker is a redis-server of the test's own (no persistence), stopped and started by
the test: the shared Redis is never touched."""

from __future__ import annotations

import re
import time
from datetime import timedelta

import pytest
from django.contrib.auth import get_user_model
from django.test import Client, override_settings
from django.urls import reverse
from django.utils import timezone

from discovery.backends import BROKER_DOWN_NOTE
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
            job = wait_for_job(job.pk, 120)
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
