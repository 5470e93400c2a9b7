"""What a job amounts to, in plain sight: completed with errors, a one-line summary in
every list and in the API, the failed devices with their reasons, manual jobs apart
from scheduled cycles, cancelling a pending job, and one job for two clicks."""

from __future__ import annotations

import threading

import pytest
from django.db import connection
from django.urls import reverse

from discovery.models import BACnetTask
from discovery.outcomes import outcome_fields, plain_reason, request_discovery, summarise
from discovery.worker import claim
from tests.web.factories import DeviceFactory, TaskFactory

pytestmark = pytest.mark.django_db

DISCOVERY_RESULT = {
    "devices_found": 14,
    "devices_new": 14,
    "points": 240,
    "points_new": 240,
    "devices_failed": {
        "1007": "device 1007: read device 1007 object-list: no answer (apdu timeout, "
        "retries exhausted)",
        "1009": "device 1009: AbortPDU: segmentation-not-supported",
    },
}
COLLECTION_RESULT = {
    "devices": 14,
    "points": 240,
    "readings": 229,
    "point_errors": 0,
    "devices_ok": 12,
    "devices_failed": 2,
    "device_errors": {
        "1007": "device 1007: not finished within its 30 s deadline",
        "1009": "device 1009: no answer",
    },
}


def partly_failed_discovery() -> BACnetTask:
    DeviceFactory(device_instance=1007)
    DeviceFactory(device_instance=1009)
    return TaskFactory(
        kind=BACnetTask.Kind.DISCOVER,
        status=BACnetTask.Status.COMPLETED,
        result=DISCOVERY_RESULT,
        **outcome_fields("discover", DISCOVERY_RESULT),
    )


def test_it_summarises_a_discovery_and_a_collection_in_one_line():
    assert summarise("discover", DISCOVERY_RESULT) == "14 devices, 240 points, 2 failed"
    assert summarise("collect", COLLECTION_RESULT) == "229 of 240 readings, 2 devices failed"
    assert outcome_fields("collect", COLLECTION_RESULT)["failed_devices"] == 2
    clean = {**DISCOVERY_RESULT, "devices_failed": {}}
    assert summarise("discover", clean) == "14 devices, 240 points"
    assert outcome_fields("discover", clean)["failed_devices"] == 0


def test_it_says_why_a_device_failed_in_plain_words():
    assert plain_reason("device 5: read x: no answer (apdu timeout, retries exhausted)") == (
        "did not answer"
    )
    assert plain_reason("device 5: not finished within its 30 s deadline") == (
        "took too long to answer"
    )
    assert "segmentation" in plain_reason("AbortPDU: segmentation-not-supported")


def test_it_shows_a_partly_failed_job_as_completed_with_errors_in_every_list(logged_in):
    job = partly_failed_discovery()
    for url in (
        reverse("discovery:dashboard"),
        reverse("discovery:recent-jobs"),
        reverse("discovery:job-list"),
        reverse("discovery:job-table"),
    ):
        html = logged_in.get(url).content.decode()
        row = html[html.index(f'id="job-{job.pk}"') :]
        row = row[: row.index("</tr>")]
        assert 'data-outcome="completed_with_errors"' in row, url
        assert "Completed with errors" in row, url
        assert "14 devices, 240 points, 2 failed" in row, url


def test_it_lists_the_failed_devices_of_a_job_with_their_reasons(logged_in):
    job = partly_failed_discovery()
    html = logged_in.get(reverse("discovery:job-detail", args=[job.pk])).content.decode()
    assert "Completed with errors" in html
    assert "14 devices, 240 points, 2 failed" in html
    table = html[html.index('id="failed-devices"') :]
    assert 'data-device-instance="1007"' in table
    assert "Did not answer" in table
    assert 'data-device-instance="1009"' in table
    assert "segmentation" in table


def test_it_filters_jobs_by_outcome_in_the_page_and_the_api(logged_in, api):
    job = partly_failed_discovery()
    clean = TaskFactory(
        status=BACnetTask.Status.COMPLETED, result={**DISCOVERY_RESULT, "devices_failed": {}}
    )
    page = logged_in.get(reverse("discovery:job-table") + "?outcome=completed_with_errors")
    assert f'id="job-{job.pk}"' in page.content.decode()
    assert f'id="job-{clean.pk}"' not in page.content.decode()
    results = api.get("/api/jobs/?outcome=completed").json()["results"]
    assert [j["id"] for j in results] == [clean.pk]


def test_it_gives_the_outcome_summary_and_failed_devices_in_the_api(api):
    job = partly_failed_discovery()
    for url in (f"/api/jobs/{job.pk}/", f"/api/task-status/{job.pk}/"):
        body = api.get(url).json()
        assert body["status"] == "completed", url
        assert body["outcome"] == "completed_with_errors", url
        assert body["summary"] == "14 devices, 240 points, 2 failed", url
        assert [d["device_instance"] for d in body["failed_devices"]] == [1007, 1009], url
        assert body["failed_devices"][0]["reason"] == "did not answer", url
    listed = api.get("/api/jobs/").json()["results"][0]
    assert listed["summary"] == "14 devices, 240 points, 2 failed"


def test_it_shows_manual_jobs_apart_from_scheduled_cycles(logged_in):
    manual = TaskFactory(kind=BACnetTask.Kind.DISCOVER, trigger=BACnetTask.Trigger.MANUAL)
    for _ in range(30):
        TaskFactory(kind=BACnetTask.Kind.COLLECT, trigger=BACnetTask.Trigger.SCHEDULED)
    html = logged_in.get(reverse("discovery:recent-jobs")).content.decode()
    mine = html[html.index('id="recent-jobs-table"') : html.index('id="scheduled-jobs-table"')]
    cycles = html[html.index('id="scheduled-jobs-table"') :]
    assert f'id="job-{manual.pk}"' in mine
    assert "Collect readings" not in mine
    assert cycles.count("data-job-id=") == 5


def test_it_cancels_a_pending_job_from_its_page_and_no_worker_takes_it(logged_in):
    job = TaskFactory(status=BACnetTask.Status.PENDING)
    page = logged_in.get(reverse("discovery:job-detail", args=[job.pk])).content.decode()
    assert 'id="cancel-job"' in page
    response = logged_in.post(reverse("discovery:job-cancel", args=[job.pk]))
    assert response.status_code == 302
    job.refresh_from_db()
    assert job.status == BACnetTask.Status.CANCELLED
    assert job.is_finished
    assert claim(job.pk, "worker@test") is None
    page = logged_in.get(reverse("discovery:job-detail", args=[job.pk])).content.decode()
    assert 'id="cancel-job"' not in page
    assert "Cancelled" in page


def test_it_does_not_cancel_a_running_job(logged_in):
    job = TaskFactory(status=BACnetTask.Status.RUNNING)
    logged_in.post(reverse("discovery:job-cancel", args=[job.pk]))
    job.refresh_from_db()
    assert job.status == BACnetTask.Status.RUNNING


def test_it_cancels_a_pending_job_through_the_api(api):
    job = TaskFactory(status=BACnetTask.Status.PENDING)
    response = api.post(f"/api/jobs/{job.pk}/cancel/")
    assert response.status_code == 200, response.content
    assert response.json()["status"] == "cancelled"
    again = api.post(f"/api/jobs/{job.pk}/cancel/")
    assert again.status_code == 409
    assert "only a pending job" in again.json()["detail"]


def test_it_makes_one_job_of_two_clicks_on_start_discovery(logged_in):
    url = reverse("discovery:start-discovery")
    first = logged_in.post(url, HTTP_HX_REQUEST="true")
    second = logged_in.post(url, HTTP_HX_REQUEST="true")
    assert BACnetTask.objects.filter(kind=BACnetTask.Kind.DISCOVER).count() == 1
    assert "requested" in first.content.decode()
    assert "already pending" in second.content.decode()
    # Other parameters are another discovery.
    logged_in.post(url, {"low": 1, "high": 10}, HTTP_HX_REQUEST="true")
    assert BACnetTask.objects.filter(kind=BACnetTask.Kind.DISCOVER).count() == 2


def test_it_disables_the_start_discovery_button_while_a_click_is_sent(logged_in):
    html = logged_in.get(reverse("discovery:dashboard")).content.decode()
    assert 'hx-disabled-elt="#start-discovery"' in html


def test_it_answers_a_second_discovery_request_in_the_api_with_the_first_job(api):
    first = api.post("/api/jobs/", {"kind": "discover"}, format="json")
    second = api.post("/api/jobs/", {"kind": "discover"}, format="json")
    assert first.status_code == 201
    assert second.status_code == 200
    assert second.json()["id"] == first.json()["id"]


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_it_makes_one_job_of_two_simultaneous_clicks():
    barrier = threading.Barrier(2)
    created: list[bool] = []

    def click() -> None:
        try:
            barrier.wait(5)
            created.append(request_discovery({}, trigger="manual")[1])
        finally:
            connection.close()

    threads = [threading.Thread(target=click) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert sorted(created) == [False, True]
    assert BACnetTask.objects.filter(kind=BACnetTask.Kind.DISCOVER).count() == 1


@pytest.mark.slow
@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_it_records_a_real_discovery_with_a_broken_device_as_completed_with_errors(settings):
    """GIVEN a simulated site with fault devices and a database-backend BACnet worker
    WHEN a discovery runs
    THEN the job is completed with errors, its summary counts the failed devices, and
    the failed devices are listed with a reason."""
    from discovery.jobs import request_job
    from discovery.outcomes import failed_devices, job_outcome
    from tests.site_fixtures import start_site
    from tests.worker_fixtures import start_database_worker, wait_for_job, worker_env

    settings.BACNET_BACKEND = "database"
    site = start_site(devices=2, objects=4, faults=True)
    worker = None
    try:
        worker = start_database_worker(
            "outcome-test@localhost", worker_env(site, BACNET_BACKEND="database")
        )
        job = wait_for_job(request_job("discover").pk)
    finally:
        if worker is not None:
            worker.stop()
        site.stop()
    assert job.status == BACnetTask.Status.COMPLETED, job.error_message
    assert job.failed_devices >= 1, job.result
    assert job_outcome(job) == "completed_with_errors"
    assert job.summary.endswith(f", {job.failed_devices} failed")
    assert len(failed_devices(job.result)) == job.failed_devices


def test_it_links_flower_only_where_there_is_one_and_says_why_not(logged_in, settings):
    settings.BACNET_BACKEND = "celery"
    settings.FLOWER_URL = "http://127.0.0.1:5555/"
    html = logged_in.get(reverse("discovery:job-list")).content.decode()
    assert 'id="flower-link"' in html
    settings.BACNET_BACKEND = "database"
    html = logged_in.get(reverse("discovery:job-list")).content.decode()
    assert 'id="flower-link"' not in html
    assert "database backend" in html


def test_it_shows_the_last_collections_summary_on_the_dashboard(logged_in):
    from django.utils import timezone

    TaskFactory(
        kind=BACnetTask.Kind.COLLECT,
        trigger=BACnetTask.Trigger.SCHEDULED,
        status=BACnetTask.Status.COMPLETED,
        completed_at=timezone.now(),
        result=COLLECTION_RESULT,
        **outcome_fields("collect", COLLECTION_RESULT),
    )
    html = logged_in.get(reverse("discovery:device-table")).content.decode()
    summary = html[html.index('id="last-collection"') :]
    summary = summary[: summary.index("</span>\n")]
    assert "229 of 240 readings, 2 devices failed" in summary
    assert "with errors" in summary


def test_it_returns_to_the_page_the_cancel_button_was_on(logged_in):
    job = TaskFactory(status=BACnetTask.Status.PENDING)
    dashboard = "http://testserver" + reverse("discovery:dashboard")
    response = logged_in.post(
        reverse("discovery:job-cancel", args=[job.pk]), HTTP_REFERER=dashboard
    )
    assert response["Location"] == dashboard
    elsewhere = logged_in.post(
        reverse("discovery:job-cancel", args=[job.pk]), HTTP_REFERER="https://evil.example/"
    )
    assert elsewhere["Location"] == reverse("discovery:job-detail", args=[job.pk])
