"""Jobs of sites without the BACnet network: each carries its site, a worker claims only
its site's rows, a job for a site with no live worker says so and may fail after a while."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from discovery.jobs import JobError, request_job
from discovery.models import BACnetDevice, BACnetTask, BACnetWorker, Site
from discovery.worker import claim_next, sweep_jobs

pytestmark = [pytest.mark.django_db, pytest.mark.postgres]


@pytest.fixture
def annex():
    return Site.objects.create(name="Annex", slug="annex")


def test_it_gives_existing_and_new_rows_the_default_site_whose_queue_is_bacnet():
    device = BACnetDevice.objects.create(device_instance=1001, address="10.0.0.1")
    assert device.site.slug == "default"
    assert device.site.queue == "bacnet"
    assert Site(slug="annex").queue == "bacnet.annex"


def test_it_keeps_one_device_per_site_and_instance(annex):
    BACnetDevice.objects.create(device_instance=1001, address="10.0.0.1")
    BACnetDevice.objects.create(site=annex, device_instance=1001, address="10.0.0.1")
    with pytest.raises(Exception, match="unique_site_instance"):
        BACnetDevice.objects.create(site=annex, device_instance=1001, address="10.0.0.2")


def test_it_lets_a_database_worker_claim_only_its_sites_jobs(annex):
    mine = request_job("discover", backend="database", site=annex)
    request_job("discover", {"low": 1, "high": 2}, backend="database")  # the default site's
    claimed = claim_next("db-annex", "database", annex.pk)
    assert claimed is not None and claimed.pk == mine.pk
    assert claim_next("db-annex", "database", annex.pk) is None


def test_it_checks_a_jobs_devices_within_its_site(annex):
    BACnetDevice.objects.create(device_instance=1001, address="10.0.0.1")
    with pytest.raises(JobError, match="Annex"):
        request_job("enumerate", {"device_instance": 1001}, backend="database", site=annex)


def test_it_says_a_job_waits_for_its_sites_worker_and_fails_it_after_the_configured_time(
    annex, settings
):
    settings.BACNET_JOB_NO_WORKER_FAIL_S = 30
    BACnetWorker.objects.create(name="db-hq", backend="database", site=Site.default())
    waiting = request_job("discover", backend="database", site=annex)
    served = request_job("discover", {"low": 1, "high": 2}, backend="database")
    assert "no BACnet worker of site 'annex'" in waiting.progress
    assert served.progress == ""
    later = timezone.now() + timedelta(seconds=31)
    BACnetWorker.objects.filter(name="db-hq").update(last_heartbeat=later)
    assert sweep_jobs(later)["no_worker"] == 1
    waiting.refresh_from_db()
    assert waiting.status == "failed"
    assert "No BACnet worker of site 'annex'" in waiting.error_message
    assert BACnetTask.objects.get(pk=served.pk).status == "pending"
