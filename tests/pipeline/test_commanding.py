"""Commanding points end to end: the request checked and recorded here, the job carried
by a real worker (database backend, and Celery on Redis), real WriteProperty packets to
the simulator's commandable objects, the value and priority array read back."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from django.contrib.auth.models import Group, Permission, User
from django.db import transaction
from django.utils import timezone

from discovery.models import BACnetDevice, BACnetPoint, BACnetTask, PointCommand
from discovery.services.commanding import (
    CommandRefused,
    NotAllowed,
    end_override,
    request_relinquish,
    request_write,
)
from tests.site_fixtures import SimulatedSite, start_site
from tests.timing import scaled
from tests.worker_fixtures import (
    start_celery_worker,
    start_database_worker,
    wait_for_job,
    wait_until,
    worker_env,
)

pytestmark = [pytest.mark.postgres, pytest.mark.slow, pytest.mark.django_db(transaction=True)]

Result = PointCommand.Result


@pytest.fixture(scope="module")
def site() -> Iterator[SimulatedSite]:
    running = start_site(devices=1, objects=12, vary=False)
    yield running
    running.stop()


def known_points(site: SimulatedSite) -> dict[tuple[str, int], BACnetPoint]:
    """The simulated device and its points, stored as discovery would store them."""
    spec = site.device("normal")
    device = BACnetDevice.objects.create(
        device_instance=spec["instance"], address=spec["address"], name=spec["name"]
    )
    points = {}
    for obj in spec["objects"]:
        texts = obj["state_texts"] or [t for t in (obj["inactive_text"], obj["active_text"]) if t]
        points[(obj["object_type"], obj["instance"])] = BACnetPoint.objects.create(
            device=device,
            object_type=obj["object_type"],
            object_instance=obj["instance"],
            name=obj["name"],
            state_texts=texts,
        )
    return points


def operator() -> User:
    # The migration creates the group; a transactional test's flush removed it.
    group, _ = Group.objects.get_or_create(name="Operators")
    group.permissions.add(Permission.objects.get(codename="command_point"))
    user = User.objects.create_user("olga", password="x")
    user.groups.add(group)
    return User.objects.get(pk=user.pk)  # a fresh permission cache


def finished(command: PointCommand) -> PointCommand:
    assert command.task is not None
    wait_for_job(command.task.pk, scaled(30))
    return PointCommand.objects.get(pk=command.pk)


@pytest.fixture
def database_worker(site: SimulatedSite, settings: Any) -> Iterator[Any]:
    settings.BACNET_BACKEND = "database"
    worker = start_database_worker(
        "db-commander", worker_env(site, BACNET_BACKEND="database", BACNET_OVERRIDE_CHECK_S="1")
    )
    yield worker
    worker.stop()


def _priority_rules_hold(points: dict[tuple[str, int], BACnetPoint], user: User) -> None:
    setpoint = points[("analog-value", 1)]
    written = finished(request_write(setpoint, "19.5", 8, user=user, reason="too warm"))
    assert written.result == Result.WRITTEN, written.message
    assert (written.read_back_value, written.read_back_priority) == (19.5, 8)
    assert written.read_back_slots == [{"priority": 8, "value": 19.5, "text": ""}]
    assert written.task is not None and written.task.status == BACnetTask.Status.COMPLETED

    lower = finished(request_write(setpoint, "25", 10, user=user, reason="test"))
    assert lower.result == Result.NOT_IN_CONTROL
    assert "priority 8 is in control: the value did not change" in lower.message
    assert lower.read_back_value == 19.5

    back = finished(request_relinquish(setpoint, 8, user=user, reason="done"))
    assert back.result == Result.RELINQUISHED
    assert (back.read_back_value, back.read_back_priority) == (25.0, 10)
    default = finished(request_relinquish(setpoint, 10, user=user, reason="done"))
    state = setpoint.__class__.objects.get(pk=setpoint.pk).command_state
    assert default.read_back_priority is None and state.slots == []
    assert default.read_back_value == state.relinquish_default


def test_it_writes_reads_back_and_follows_the_priority_rules_with_the_database_worker(
    site: SimulatedSite, database_worker: Any
) -> None:
    _priority_rules_hold(known_points(site), operator())


def test_it_writes_through_celery_on_the_bacnet_queue(
    site: SimulatedSite, redis_url: str, settings: Any
) -> None:
    import redis

    redis.Redis.from_url(redis_url).flushdb()
    settings.BACNET_BACKEND = "celery"
    env = worker_env(site, REDIS_URL=redis_url, BACNET_BACKEND="celery")
    worker = start_celery_worker("bacnet-commander@localhost", "bacnet", env)
    try:
        _priority_rules_hold(known_points(site), operator())
    finally:
        worker.stop()
    assert "write_point_value[" in worker.log()


def test_it_reports_the_devices_refusal_in_plain_words(
    site: SimulatedSite, database_worker: Any
) -> None:
    points = known_points(site)
    denied = finished(
        request_write(points[("analog-value", 2)], "40", user=operator(), reason="try")
    )
    assert denied.result == Result.REFUSED
    assert "the device refused the write (write access denied)" in denied.message
    assert denied.task is not None
    task = BACnetTask.objects.get(pk=denied.task.pk)
    assert task.status == BACnetTask.Status.FAILED
    assert "write access denied" in task.error_message


def test_it_refuses_bad_writes_before_any_packet(site: SimulatedSite) -> None:
    points = known_points(site)
    user = operator()
    cases = [
        (points[("analog-input", 1)], "20", 8, "cannot be commanded"),
        (points[("analog-value", 1)], "warm", 8, "is not a number"),
        (points[("binary-value", 1)], "maybe", 8, "active or inactive"),
        (points[("multi-state-value", 1)], "7", 8, "has states 1-"),
        (points[("analog-value", 1)], "20", 6, "reserved"),
        (points[("analog-value", 1)], "20", 17, "1-16"),
    ]
    for point, value, priority, words in cases:
        with pytest.raises(CommandRefused, match=words):
            request_write(point, value, priority, user=user, reason="test")
    rejected = PointCommand.objects.filter(result=Result.REJECTED)
    assert rejected.count() == len(cases)
    assert not rejected.filter(task__isnull=False).exists()  # no job: nothing sent
    assert not BACnetTask.objects.exists()
    viewer = User.objects.create_user("vic", password="x")
    with pytest.raises(NotAllowed):
        request_write(points[("analog-value", 1)], "20", user=viewer, reason="test")


def test_it_relinquishes_a_timed_override_at_its_time_across_a_worker_restart(
    site: SimulatedSite, settings: Any
) -> None:
    settings.BACNET_BACKEND = "database"
    points = known_points(site)
    setpoint = points[("analog-value", 1)]
    env = worker_env(site, BACNET_BACKEND="database", BACNET_OVERRIDE_CHECK_S="1")
    worker = start_database_worker("db-override", env)
    expires = timezone.now() + timedelta(seconds=scaled(4))
    try:
        override = finished(
            request_write(setpoint, "18", 8, user=operator(), reason="hour", expires_at=expires)
        )
        assert override.result == Result.WRITTEN and override.read_back_priority == 8
    finally:
        worker.kill()  # down when the override expires
    wait_until(lambda: timezone.now() > expires + timedelta(seconds=1), scaled(20), "expiry")
    assert PointCommand.objects.get(pk=override.pk).override_state == "active"
    worker = start_database_worker("db-override", env)
    try:
        ended = wait_until(
            lambda: PointCommand.objects.filter(
                pk=override.pk, override_state=PointCommand.Override.ENDED
            ).first(),
            scaled(30),
            "the override relinquished",
        )
    finally:
        worker.stop()
    relinquish = ended.relinquished_by
    assert relinquish is not None and relinquish.result == Result.RELINQUISHED
    assert relinquish.username == "" and "expired" in relinquish.reason
    assert relinquish.read_back_priority is None


def test_it_ends_an_override_early(site: SimulatedSite, database_worker: Any) -> None:
    points = known_points(site)
    user = operator()
    later = timezone.now() + timedelta(hours=1)
    override = finished(
        request_write(
            points[("multi-state-value", 1)], "2", 8, user=user, reason="x", expires_at=later
        )
    )
    assert override.result == Result.WRITTEN
    relinquish = end_override(override, user=user, reason="no longer needed")
    assert relinquish is not None
    assert finished(relinquish).result == Result.RELINQUISHED
    ended = PointCommand.objects.get(pk=override.pk)
    assert (ended.override_state, ended.override_ended_by) == ("ended", "olga")


def test_it_fails_the_job_and_says_so_when_the_device_does_not_answer(
    site: SimulatedSite, database_worker: Any
) -> None:
    from tests.site_fixtures import free_udp_port

    silent = BACnetDevice.objects.create(
        device_instance=4000, address=f"127.0.0.1:{free_udp_port()}", name="gone"
    )
    point = BACnetPoint.objects.create(device=silent, object_type="binary-value", object_instance=1)
    command = finished(request_write(point, "active", 8, user=operator(), reason="x"))
    assert command.result == Result.FAILED
    assert command.message.startswith("the device did not answer")
    assert command.task is not None
    task = BACnetTask.objects.get(pk=command.task.pk)
    assert task.status == BACnetTask.Status.FAILED and "did not answer" in task.error_message


def test_it_never_writes_twice_once_the_device_confirmed(
    site: SimulatedSite, database_worker: Any
) -> None:
    """GIVEN a write the device already acknowledged (its worker died before the end)
    WHEN its job runs again
    THEN it only reads back: nothing is written a second time."""
    points = known_points(site)
    setpoint = points[("analog-value", 1)]
    user = operator()
    with transaction.atomic():  # the worker sees the job only once confirmed_at is set
        command = request_write(setpoint, "23", 12, user=user, reason="x")
        PointCommand.objects.filter(pk=command.pk).update(confirmed_at=timezone.now())
    again = finished(command)
    # Had it been written, priority 12 would hold 23: the device holds nothing.
    assert again.read_back_slots == [] and again.read_back_priority is None


def test_it_overrides_a_setpoint_for_an_hour_from_the_point_page(
    site: SimulatedSite, database_worker: Any
) -> None:
    """GIVEN an operator on the point page of a setpoint
    WHEN they write 20.5 at priority 8 for 1 h
    THEN the panel shows priority 8 in control with 20.5, the override until then, and
    the audit page shows who did it and the value read back."""
    from django.test import Client
    from django.urls import reverse

    setpoint = known_points(site)[("analog-value", 1)]
    browser = Client()
    browser.force_login(operator())
    answer = browser.post(
        reverse("discovery:point-write", args=[setpoint.pk]),
        {"value": "20.5", "priority": 8, "duration": "1h", "reason": "zone too warm"},
    )
    assert answer.status_code == 302
    command = finished(PointCommand.objects.get(point=setpoint))
    assert command.result == Result.WRITTEN, command.message
    panel = browser.get(reverse("discovery:command-panel", args=[setpoint.pk])).content.decode()
    assert "8 (in control)" in panel and "20.5" in panel and "zone too warm" in panel
    overrides = browser.get(reverse("discovery:overrides")).content.decode()
    assert setpoint.name in overrides and "olga" in overrides
    audit = browser.get(reverse("discovery:audit"), {"user": "olga"}).content.decode()
    assert "Written" in audit and "20.5 @8" in audit
    # The site is shared by this module's tests: leave the slot empty.
    user = User.objects.get(username="olga")
    assert finished(request_relinquish(setpoint, 8, user=user, reason="x")).result == (
        Result.RELINQUISHED
    )


def test_it_relinquishes_a_due_override_when_the_celery_worker_comes_back(
    site: SimulatedSite, redis_url: str, settings: Any
) -> None:
    """The BACnet worker's start sweeps: an override that expired while it was down is
    relinquished as it comes back (beat's "Relinquish overrides" does it meanwhile)."""
    import redis

    redis.Redis.from_url(redis_url).flushdb()
    settings.BACNET_BACKEND = "celery"
    env = worker_env(site, REDIS_URL=redis_url, BACNET_BACKEND="celery")
    setpoint = known_points(site)[("analog-value", 1)]
    worker = start_celery_worker("bacnet-override@localhost", "bacnet", env)
    expires = timezone.now() + timedelta(seconds=scaled(3))
    try:
        override = finished(
            request_write(setpoint, "18", 7, user=operator(), reason="x", expires_at=expires)
        )
        assert override.result == Result.WRITTEN and override.read_back_priority == 7
    finally:
        worker.kill()
    wait_until(lambda: timezone.now() > expires, scaled(20), "expiry")
    worker = start_celery_worker("bacnet-override@localhost", "bacnet", env)
    try:
        ended = wait_until(
            lambda: PointCommand.objects.filter(
                pk=override.pk, override_state=PointCommand.Override.ENDED
            ).first(),
            scaled(30),
            "the override relinquished",
        )
    finally:
        worker.stop()
    assert ended.relinquished_by is not None
    assert ended.relinquished_by.result == Result.RELINQUISHED
    assert 7 not in [slot["priority"] for slot in ended.relinquished_by.read_back_slots]
