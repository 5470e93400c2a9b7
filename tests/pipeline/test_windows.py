"""Collection windows: a scheduled cycle belongs to its window whenever its message is
processed, every window has a cycle or a recorded reason, and a cycle past its window's
bound is skipped, not stored as old history (``discovery.windows``).

These run the window rules on the real database; the tests with real workers, beat and
Redis are in ``test_window_runs.py``."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from django.utils import timezone
from django_celery_beat.models import IntervalSchedule, PeriodicTask

from discovery import windows
from discovery.models import BACnetTask, BACnetWorker, CollectionGap
from discovery.schedules import WindowEntry
from discovery.worker import claim, scheduled_collection, sweep_jobs

pytestmark = pytest.mark.django_db

PERIOD = 10
# A window start well in the past, so that "late" is the test's choice, not the clock's.
W0 = datetime(2026, 11, 23, 10, 41, 0, tzinfo=UTC)


def at(window: int, seconds: float = 0) -> datetime:
    return W0 + timedelta(seconds=window * PERIOD + seconds)


@pytest.fixture(autouse=True)
def _period(settings):
    settings.BACNET_COLLECT_MAX_LATE_S = 30
    set_schedule(PERIOD)


def set_schedule(period_s: int, enabled: bool = True) -> None:
    every, _ = IntervalSchedule.objects.get_or_create(every=period_s, period="seconds")
    PeriodicTask.objects.filter(name="Collect readings").update(interval=every, enabled=enabled)


def test_it_keeps_a_late_message_in_its_own_window_and_leaves_the_next_one_alone():
    # Window 0's message is processed in window 1 (a discovery job was ahead of it).
    late = scheduled_collection("celery", at(1, 3), start=at(0), period_s=PERIOD)
    assert late is not None
    assert late.window_start == at(0)
    assert late.parameters["cycle_at"] == at(0).isoformat()
    claim(late.pk, "w")
    # Window 1's own message then finds its own window, not "already ran".
    own = scheduled_collection("celery", at(1, 4), start=at(1), period_s=PERIOD)
    assert own is not None and own.pk != late.pk
    assert own.window_start == at(1)
    assert windows.account().unexplained == []


def test_it_opens_one_job_per_window_however_often_it_is_asked_for():
    first = scheduled_collection("database", at(0, 1), start=at(0), period_s=PERIOD)
    again = scheduled_collection("celery", at(0, 2), start=at(0), period_s=PERIOD)
    assert first is not None and again is not None and first.pk == again.pk
    claim(first.pk, "w")
    assert scheduled_collection("celery", at(0, 3), start=at(0), period_s=PERIOD) is None


def test_it_skips_a_window_whose_bound_has_passed_and_records_why():
    # The bound is max(period, BACNET_COLLECT_MAX_LATE_S) = 30 s after the window starts.
    assert windows.late_bound_s(PERIOD) == 30
    assert scheduled_collection("celery", at(0, 31), start=at(0), period_s=PERIOD) is None
    gap = CollectionGap.objects.get(window_start=at(0))
    assert gap.reason == "late"
    assert not BACnetTask.objects.exists()


def test_it_records_every_window_between_two_cycles_as_a_gap_with_a_reason():
    BACnetWorker.objects.create(name="w", backend="database", started_at=at(3))
    scheduled_collection("database", at(0, 1), start=at(0), period_s=PERIOD)
    # Windows 1 and 2: no worker yet; window 3: a discovery was running; then window 5.
    discovery = BACnetTask.objects.create(
        kind="discover", backend="database", status="completed", started_at=at(3, -1)
    )
    BACnetTask.objects.filter(pk=discovery.pk).update(completed_at=at(4, 5))
    scheduled_collection("database", at(5, 1), start=at(5), period_s=PERIOD)
    gaps = dict(CollectionGap.objects.values_list("window_start", "reason"))
    assert gaps == {
        at(1): "worker_down",
        at(2): "worker_down",
        at(3): "overrun",
        at(4): "overrun",
    }
    account = windows.account()
    assert (account.windows, account.in_progress, account.gaps) == (6, 2, 4)
    assert account.unexplained == []


def test_it_counts_windows_without_a_cycle_or_a_gap_as_unexplained():
    for window in (0, 1, 4):
        BACnetTask.objects.create(
            kind="collect",
            trigger="scheduled",
            status="completed",
            window_start=at(window),
            window_period_s=PERIOD,
            dedupe_key=f"collect:{at(window).isoformat()}",
        )
    account = windows.account()
    assert account.windows == 5 and account.with_readings == 3
    assert account.unexplained == [at(2), at(3)]


def test_it_takes_the_period_from_the_schedule_the_admin_edits(settings):
    settings.BACNET_COLLECT_INTERVAL_S = 60
    assert windows.collection_period_s() == PERIOD
    set_schedule(2)
    assert windows.collection_period_s() == 2
    now = timezone.now()
    task = scheduled_collection("database", now)
    assert task is not None
    assert task.window_period_s == 2
    assert task.window_start == windows.window_start(now, 2)


def test_it_follows_a_period_change_without_unexplained_windows():
    scheduled_collection("database", at(0, 1), start=at(0), period_s=PERIOD)
    # The admin changes 10 s to 5 s at 10:41:12: the next windows are 5 s ones.
    five = [at(2) + timedelta(seconds=5 * n) for n in range(3)]
    for start in five:
        assert scheduled_collection("database", start, start=start, period_s=5) is not None
    # Between the last 10 s window and the first 5 s one, windows count in the new
    # period: 10:41:10 and 10:41:15 had no message.
    gaps = sorted(CollectionGap.objects.values_list("window_start", flat=True))
    assert gaps == [at(1), at(1, 5)]
    assert windows.account().unexplained == []


def test_it_records_windows_passed_while_collection_is_disabled():
    scheduled_collection("database", at(0, 1), start=at(0), period_s=PERIOD)
    set_schedule(PERIOD, enabled=False)
    assert windows.record_disabled_windows(at(3, 2)) == 2
    assert set(CollectionGap.objects.values_list("reason", flat=True)) == {"disabled"}
    set_schedule(PERIOD, enabled=True)
    assert scheduled_collection("database", at(3, 2), start=at(3), period_s=PERIOD)
    assert windows.account().unexplained == []


def test_the_sweeper_skips_a_retried_cycle_whose_window_has_passed(settings):
    """A cycle whose worker died is retried while its window's bound lasts; after it, the
    retry would store today's values as old history: it is skipped with the reason."""
    settings.BACNET_JOB_STALE_AFTER_S = 5
    now = timezone.now()
    start = windows.window_start(now, PERIOD) - timedelta(seconds=60)
    task = scheduled_collection("database", now - timedelta(seconds=58), start=start)
    assert task is not None
    claim(task.pk, "dead-worker")
    BACnetTask.objects.filter(pk=task.pk).update(heartbeat_at=now - timedelta(seconds=30))
    counts = sweep_jobs(now)
    task.refresh_from_db()
    assert counts["failed"] == 1
    assert task.status == "failed"
    assert task.error_message.startswith("Skipped at")
    assert CollectionGap.objects.get(window_start=start).reason == "late"


def test_a_retried_message_expires_at_its_windows_bound():
    task = scheduled_collection("database", at(0, 1), start=at(0), period_s=PERIOD)
    assert windows.expiry_of(task) == at(3)  # 30 s bound
    assert windows.is_too_late(task, at(3, 1))
    assert not windows.is_too_late(task, at(2, 9))


def test_beat_sends_collection_once_per_window_at_its_start():
    """Beat's interval schedule counts from the last send and drifts; the collection
    entry is due at each window's start instead, once per window."""
    set_schedule(5)
    model = PeriodicTask.objects.get(name="Collect readings")
    model.last_run_at = timezone.now() - timedelta(seconds=30)
    entry = WindowEntry(model)
    due, wait_s = entry.is_due()
    assert due and 0 < wait_s <= 5
    entry = next(entry)  # sent now: not due again before the next window starts
    due, wait_s = entry.is_due()
    assert not due and 0 < wait_s <= 5
