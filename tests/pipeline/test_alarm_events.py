"""Alarms end to end: a real BACnet worker (both backends) registers as a recipient of
simulated devices that report intrinsically, stores their event notifications as
alarms without any polling, sends AcknowledgeAlarm when the product acknowledges,
learns by GetEventInformation what was raised before it listened, and survives garbage,
unknown objects, a storm and the alarms table going away. Nothing is mocked: the test
moves the simulated sensors with WriteProperty, as the field would."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from typing import Any

import pytest
from django.contrib.auth.models import Permission, User
from django.db import connection
from django.test import Client

from discovery.bacnet_client import BACnetClient
from discovery.jobs import request_job
from discovery.models import Alarm, BACnetDevice, BACnetPoint, BACnetWorker, PointCommand
from discovery.services.alarm_events import request_event_polls
from discovery.services.alarms import acknowledge, request_registration
from discovery.simulator.events import (
    ALARM_AI,
    ALARM_BI,
    HIDDEN_AI,
    HIGH_LIMIT,
    NORMAL_VALUE,
    raw_event_notification,
)
from tests.bacnet.conftest import fast_config
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

EVENT_ENV = {"BACNET_COV_FLUSH_S": "0.2", "BACNET_EVENT_POLL_S": "0"}


@pytest.fixture(scope="module")
def site() -> Iterator[SimulatedSite]:
    running = start_site(devices=2, objects=2, extra_args=["--events"])
    yield running
    running.stop()


@pytest.fixture(scope="module")
def field(site: SimulatedSite) -> Iterator[BACnetClient]:
    """The field: moves the simulated sensors (WriteProperty of their present value)."""
    bacnet = BACnetClient(fast_config(bbmd_address=site.bbmd, bbmd_ttl=60))
    bacnet.start()
    yield bacnet
    bacnet.stop()


def _set(field: BACnetClient, device: dict[str, Any], object_type: str, instance: int, value):
    field.write_present_value(
        device["instance"], device["address"], object_type, instance, value, 16
    )


def _operator() -> User:
    user = User.objects.create_user("olga", password="x")
    user.user_permissions.add(Permission.objects.get(codename="command_point"))
    return User.objects.get(pk=user.pk)  # permissions cache fresh


def _discover(backend: str) -> None:
    task = wait_for_job(request_job("discover", backend=backend).pk, scaled(90))
    assert task.status == "completed", task.error_message


def _register(device: dict[str, Any], user: User) -> None:
    row = BACnetDevice.objects.get(device_instance=device["instance"])
    command = request_registration(row, user=user)
    task = wait_for_job(command.task_id, scaled(60))
    assert task.status == "completed", task.error_message
    command.refresh_from_db()
    assert command.action == PointCommand.Action.REGISTER and command.username == "olga"
    assert command.result == PointCommand.Result.WRITTEN, command.message
    assert "1: added" in command.message or "1: already there" in command.message


def _open_alarm(device: dict[str, Any], object_type: str, instance: int) -> Alarm | None:
    return Alarm.objects.filter(
        point__device__device_instance=device["instance"],
        point__object_type=object_type,
        point__object_instance=instance,
        cleared_at__isnull=True,
    ).first()


def _check_raise_ack_clear(site: SimulatedSite, field: BACnetClient, backend: str) -> None:
    device = site.normal_devices[0]
    user = _operator()
    _discover(backend)
    _register(device, user)

    # Out of range: an alarm without any poll.
    _set(field, device, "analog-input", ALARM_AI, HIGH_LIMIT + 5)
    alarm = wait_until(
        lambda: _open_alarm(device, "analog-input", ALARM_AI), scaled(10), "the alarm"
    )
    assert alarm.source == Alarm.Source.NOTIFICATION
    assert alarm.event_state == "high-limit" and alarm.from_state == "normal"
    assert alarm.priority == 100 and alarm.ack_required and alarm.notify_type == "alarm"
    assert alarm.message == "Zone temperature out of range"
    assert alarm.notification_class == 1 and alarm.event_stamp.startswith("time:")

    browser = Client()
    browser.force_login(user)
    page = browser.get("/alarms/").content.decode()
    assert "Zone Temp Alarmed" in page and "high-limit" in page and "Event notification" in page
    [row] = [r for r in browser.get("/api/alarms/").json()["results"] if r["id"] == alarm.pk]
    assert row["event_state"] == "high-limit" and row["priority"] == 100 and row["ack_required"]

    # Acknowledged in the product, and on the device (it asked for it).
    assert acknowledge(alarm, user)
    wait_until(
        lambda: Alarm.objects.get(pk=alarm.pk).device_ack == Alarm.DeviceAck.SENT,
        scaled(30),
        "AcknowledgeAlarm sent",
    )
    assert "AcknowledgeAlarm accepted: analog-input,9001 high-limit by 'olga'" in site.log
    audit = PointCommand.objects.get(alarm=alarm, action=PointCommand.Action.ACKNOWLEDGE)
    assert audit.username == "olga" and audit.result == PointCommand.Result.WRITTEN
    assert audit.task is not None and audit.task.status == "completed"

    # Back to normal: cleared.
    _set(field, device, "analog-input", ALARM_AI, NORMAL_VALUE)
    wait_until(lambda: Alarm.objects.get(pk=alarm.pk).cleared_at is not None, scaled(10), "cleared")
    alarm.refresh_from_db()
    assert alarm.event_state == "normal" and alarm.acknowledged_by == user

    # Change of state.
    _set(field, device, "binary-input", ALARM_BI, "active")
    state = wait_until(
        lambda: _open_alarm(device, "binary-input", ALARM_BI), scaled(10), "the filter alarm"
    )
    assert state.event_state == "offnormal" and state.event_type == "change-of-state"
    assert state.message == "Filter dirty"
    _set(field, device, "binary-input", ALARM_BI, "inactive")
    wait_until(lambda: _open_alarm(device, "binary-input", ALARM_BI) is None, scaled(10), "cleared")


def test_it_raises_acknowledges_and_clears_alarms_with_the_database_worker(
    site, field, settings
) -> None:
    settings.BACNET_BACKEND = "database"
    env = worker_env(site, BACNET_BACKEND="database", **EVENT_ENV)
    worker = start_database_worker("bacnet-alarms-db", env, "--no-schedule")
    try:
        _check_raise_ack_clear(site, field, "database")
    finally:
        worker.stop()


def test_it_raises_acknowledges_and_clears_alarms_with_the_celery_worker(
    site, field, redis_url, settings
) -> None:
    import redis

    settings.BACNET_BACKEND = "celery"
    redis.Redis.from_url(redis_url).flushdb()
    env = worker_env(site, REDIS_URL=redis_url, BACNET_BACKEND="celery", **EVENT_ENV)
    worker = start_celery_worker("bacnet-alarms@localhost", "bacnet", env)
    try:
        # Between tasks the solo worker waits on the broker; notifications still land.
        _check_raise_ack_clear(site, field, "celery")
    finally:
        worker.stop()


def test_it_learns_polls_faults_and_storms(site, field, settings) -> None:
    """GIVEN the database worker WHEN a device was in alarm before anyone listened, an
    object it never listed reports, garbage arrives, a storm of transitions comes and
    the alarms table is briefly away THEN each is handled and visible."""
    settings.BACNET_BACKEND = "database"
    device = site.normal_devices[1]
    env = worker_env(site, BACNET_BACKEND="database", BACNET_EVENT_BUFFER="1000", **EVENT_ENV)
    port = int(env["BACNET_INTERFACE"].rsplit(":", 1)[1])
    worker = start_database_worker("bacnet-alarms-faults", env, "--no-schedule")
    try:
        _discover("database")
        user = _operator()

        # Raised before the product listened: learnt by GetEventInformation.
        _set(field, device, "analog-input", ALARM_AI, 2.0)
        assert request_event_polls() == 1
        learnt = wait_until(
            lambda: _open_alarm(device, "analog-input", ALARM_AI), scaled(30), "polled alarm"
        )
        assert learnt.source == Alarm.Source.EVENT_INFO and learnt.event_state == "low-limit"
        assert learnt.priority == 100 and learnt.ack_required
        row = BACnetDevice.objects.get(device_instance=device["instance"])
        assert row.alarm_services == "event-information" and row.events_polled_at

        # An object the device never listed: recorded as a point of its own, visibly.
        _register(device, user)
        _set(field, device, "analog-input", HIDDEN_AI, 99.0)
        hidden = wait_until(
            lambda: _open_alarm(device, "analog-input", HIDDEN_AI), scaled(10), "unlisted alarm"
        )
        assert "Not in the device's object list" in hidden.point.description
        assert not hidden.point.polling_enabled

        # Back to normal: the notification (it is registered now) clears the polled alarm.
        _set(field, device, "analog-input", ALARM_AI, NORMAL_VALUE)
        wait_until(
            lambda: Alarm.objects.get(pk=learnt.pk).cleared_at is not None,
            scaled(10),
            "cleared by the notification",
        )

        # Garbage: counted on the worker's row, dropped, the worker lives on.
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            for bad in (
                raw_event_notification(device["instance"], "analog-input", ALARM_AI, to_state=77),
                raw_event_notification(device["instance"], "analog-input", ALARM_AI, priority=999),
            ):
                sock.sendto(bad, ("127.0.0.1", port))
        wait_until(
            lambda: BACnetWorker.objects.get(name="bacnet-alarms-faults").event_counts.get(
                "garbage", 0
            )
            >= 2,
            scaled(10),
            "garbage counted",
        )

        # A storm: every transition stored, in batches (more rows than transactions).
        before = Alarm.objects.count()
        flips = 60
        for _ in range(flips):
            _set(field, device, "binary-input", ALARM_BI, "active")
            _set(field, device, "binary-input", ALARM_BI, "inactive")
        bi = BACnetPoint.objects.get(
            device__device_instance=device["instance"], object_type="binary-input",
            object_instance=ALARM_BI,
        )  # fmt: skip
        wait_until(
            lambda: Alarm.objects.filter(point=bi, cleared_at__isnull=False).count() >= flips,
            scaled(30),
            "the storm stored",
        )
        assert Alarm.objects.filter(point=bi, cleared_at__isnull=True).count() == 0
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT count(*), count(DISTINCT xmin::text) FROM discovery_alarm "
                "WHERE point_id = %s",
                [bi.pk],
            )
            rows, transactions = cursor.fetchone()
        assert rows >= flips and transactions < rows
        assert Alarm.objects.count() >= before + flips

        # The alarms table away for a moment: the notifications wait and are applied.
        with connection.cursor() as cursor:
            cursor.execute("ALTER TABLE discovery_alarm RENAME TO discovery_alarm_away")
        try:
            _set(field, device, "analog-input", ALARM_AI, HIGH_LIMIT + 10)
            worker.wait_for_log("database unreachable", scaled(10))
        finally:
            with connection.cursor() as cursor:
                cursor.execute("ALTER TABLE discovery_alarm_away RENAME TO discovery_alarm")
        back = wait_until(
            lambda: _open_alarm(device, "analog-input", ALARM_AI), scaled(10), "after the outage"
        )
        assert back.event_state == "high-limit" and back.source == Alarm.Source.NOTIFICATION
        assert worker.proc.poll() is None
    finally:
        worker.stop()
        for object_type, instance, value in (
            ("analog-input", ALARM_AI, NORMAL_VALUE),
            ("analog-input", HIDDEN_AI, NORMAL_VALUE),
            ("binary-input", ALARM_BI, "inactive"),
        ):
            _set(field, device, object_type, instance, value)
