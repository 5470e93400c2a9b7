"""Collection windows where people look: the jobs page and the API show every skipped
window with its reason and the count of windows; a job's API answer says whether it
reached the broker or waits for it."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from discovery import windows
from discovery.models import BACnetTask, CollectionGap
from discovery.worker import claim, scheduled_collection

pytestmark = [pytest.mark.django_db, pytest.mark.postgres]


@pytest.fixture
def gap_between_two_cycles():
    """Three 60 s windows: a cycle, a skipped one (late), a cycle."""
    now = timezone.now()
    start = windows.window_start(now, 60) - timedelta(seconds=120)
    first = scheduled_collection("database", start + timedelta(seconds=1), start=start, period_s=60)
    claim(first.pk, "w")
    BACnetTask.objects.filter(pk=first.pk).update(status="completed")
    windows.record_gap(start + timedelta(seconds=60), 60, "late", "message processed at 10:00")
    last = start + timedelta(seconds=120)
    scheduled_collection("database", last + timedelta(seconds=1), start=last, period_s=60)
    return start


def test_it_shows_skipped_windows_and_the_window_count_on_the_jobs_page(
    logged_in, gap_between_two_cycles
):
    page = logged_in.get(reverse("discovery:job-list")).content.decode()
    assert 'id="collection-windows"' in page
    assert "<strong>3</strong> windows, 1 with readings" in page
    assert "1 in progress, 0 failed" in page
    assert "1 skipped with a reason" in page
    assert "The cycle&#x27;s message came after the window&#x27;s bound" in page
    assert "message processed at 10:00" in page


def test_it_lists_gaps_and_the_window_account_in_the_api(api, gap_between_two_cycles):
    gaps = api.get("/api/collection-gaps/").json()
    assert gaps["count"] == 1
    gap = gaps["results"][0]
    assert (gap["reason"], gap["period_s"]) == ("late", 60)
    assert api.get("/api/collection-gaps/", {"reason": "overrun"}).json()["count"] == 0
    account = api.get("/api/collection-windows/").json()
    assert account["windows"] == 3
    assert (account["with_readings"], account["in_progress"], account["gaps"]) == (1, 1, 1)
    assert account["unexplained"] == []
    assert api.get("/api/collection-windows/", {"hours": "x"}).status_code == 400
    assert api.get("/api/collection-windows/", {"hours": "100000"}).status_code == 400


def test_it_says_in_the_jobs_api_which_window_a_cycle_is_and_whether_it_was_sent(
    api, gap_between_two_cycles
):
    jobs = {job["window_start"]: job for job in api.get("/api/jobs/").json()["results"]}
    assert len(jobs) == 2
    assert {job["delivery"] for job in jobs.values()} == {"done", "sent"}
    waiting = BACnetTask.objects.create(kind="discover", backend="celery")
    assert api.get(f"/api/jobs/{waiting.pk}/").json()["delivery"] == "waiting"
    status = api.get(f"/api/task-status/{waiting.pk}/").json()
    assert (status["delivery"], status["window_start"]) == ("waiting", None)
    assert CollectionGap.objects.count() == 1
