"""Alarms from the in-alarm status flag: raised, shown, acknowledged (page and API),
cleared. The flags are what every poll and COV notification stores on the point.
Acknowledging is a write: the commanding permission, a row in the audit trail."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.contrib.auth.models import Permission
from django.urls import reverse
from django.utils import timezone

from discovery.models import Alarm, PointCommand, StatusFlags
from discovery.services.alarms import sync_alarms
from tests.web.factories import PointFactory, UserFactory


@pytest.fixture
def user(db):
    """An operator: acknowledging needs the permission every write needs."""
    person = UserFactory(username="operator")
    person.user_permissions.add(Permission.objects.get(codename="command_point"))
    return person


def _flag(point, mask: int, at) -> None:
    point.last_status_flags = mask
    point.last_read_at = at
    point.save(update_fields=["last_status_flags", "last_read_at"])


def test_it_raises_an_alarm_once_and_clears_it_when_the_flag_drops(db):
    raised_at = timezone.now() - timedelta(minutes=3)
    point = PointFactory()
    quiet = PointFactory(last_status_flags=StatusFlags.OVERRIDDEN)
    _flag(point, StatusFlags.IN_ALARM | StatusFlags.FAULT, raised_at)
    assert sync_alarms() == (1, 0)
    assert sync_alarms() == (0, 0)  # idempotent: still one open alarm
    alarm = Alarm.objects.get()
    assert alarm.point == point and alarm.active and alarm.raised_at == raised_at
    assert not quiet.alarms.exists()
    cleared_at = timezone.now()
    _flag(point, 0, cleared_at)
    assert sync_alarms() == (0, 1)
    alarm.refresh_from_db()
    assert alarm.cleared_at == cleared_at and not alarm.active
    # In alarm again: a new alarm, the old one stays in the history.
    _flag(point, StatusFlags.IN_ALARM, timezone.now())
    assert sync_alarms() == (1, 0)
    assert point.alarms.count() == 2


def test_it_shows_active_alarms_first_and_acknowledges_them_from_the_page(logged_in, user, db):
    point = PointFactory(name="Supply fan trip")
    old = PointFactory(name="Old high temp")
    _flag(old, StatusFlags.IN_ALARM, timezone.now() - timedelta(hours=2))
    sync_alarms()
    _flag(old, 0, timezone.now() - timedelta(hours=1))
    _flag(point, StatusFlags.IN_ALARM, timezone.now())
    sync_alarms()
    page = logged_in.get(reverse("discovery:alarm-list")).content.decode()
    assert page.index("Supply fan trip") < page.index("Old high temp")
    assert "Acknowledge</button>" in page
    active = Alarm.objects.get(point=point)
    response = logged_in.post(reverse("discovery:alarm-acknowledge", args=[active.pk]))
    assert response.status_code == 302
    active.refresh_from_db()
    assert active.acknowledged_by == user and active.acknowledged_at is not None
    page = logged_in.get(reverse("discovery:alarm-list")).content.decode()
    assert f"by {user.username}" in page
    assert "Acknowledge</button>" not in page


def test_it_refuses_an_acknowledgement_without_login_or_csrf(client, db):
    point = PointFactory()
    _flag(point, StatusFlags.IN_ALARM, timezone.now())
    sync_alarms()
    alarm = Alarm.objects.get()
    response = client.post(reverse("discovery:alarm-acknowledge", args=[alarm.pk]))
    assert response.status_code == 302 and "login" in response["Location"]
    alarm.refresh_from_db()
    assert alarm.acknowledged_at is None


def test_it_lists_and_acknowledges_alarms_in_the_api(api, user, db):
    point = PointFactory()
    _flag(point, StatusFlags.IN_ALARM, timezone.now())
    sync_alarms()
    [row] = api.get("/api/alarms/").json()["results"]
    assert row["point"] == point.pk and row["cleared_at"] is None
    assert row["acknowledged_by"] is None
    done = api.post(f"/api/alarms/{row['id']}/acknowledge/")
    assert done.status_code == 200
    assert done.json()["acknowledged_by"] == user.username
    again = api.post(f"/api/alarms/{row['id']}/acknowledge/")
    assert again.status_code == 409


def test_it_puts_every_acknowledgement_in_the_audit_trail(api, user, db):
    point = PointFactory(name="AHU trip")
    _flag(point, StatusFlags.IN_ALARM, timezone.now())
    sync_alarms()
    alarm = Alarm.objects.get()
    assert api.post(f"/api/alarms/{alarm.pk}/acknowledge/").status_code == 200
    audit = PointCommand.objects.get(alarm=alarm)
    assert audit.action == PointCommand.Action.ACKNOWLEDGE and audit.username == user.username
    assert audit.priority is None and audit.task is None  # the device did not ask for it
    assert audit.result == PointCommand.Result.WRITTEN


def test_it_refuses_an_acknowledgement_without_the_permission(client, db):
    viewer = UserFactory(username="viewer")
    point = PointFactory()
    _flag(point, StatusFlags.IN_ALARM, timezone.now())
    sync_alarms()
    alarm = Alarm.objects.get()
    client.force_login(viewer)
    page = client.get(reverse("discovery:alarm-list")).content.decode()
    assert "Acknowledge</button>" not in page
    assert client.post(reverse("discovery:alarm-acknowledge", args=[alarm.pk])).status_code == 403
    from rest_framework.test import APIClient

    api = APIClient()
    api.force_authenticate(user=viewer)
    assert api.post(f"/api/alarms/{alarm.pk}/acknowledge/").status_code == 403
    alarm.refresh_from_db()
    assert alarm.acknowledged_at is None and not PointCommand.objects.exists()


def test_it_does_not_raise_again_from_flags_read_before_the_device_cleared_it(db):
    """GIVEN a point whose last poll said in alarm WHEN the device's notification
    cleared its alarm after that poll THEN the old flags raise nothing new."""
    read_at = timezone.now() - timedelta(seconds=30)
    point = PointFactory()
    _flag(point, StatusFlags.IN_ALARM, read_at)
    Alarm.objects.create(
        point=point,
        source=Alarm.Source.NOTIFICATION,
        raised_at=read_at - timedelta(minutes=1),
        cleared_at=read_at + timedelta(seconds=10),
    )
    assert sync_alarms() == (0, 0)


@pytest.fixture
def database_backend(settings):
    settings.BACNET_BACKEND = "database"  # jobs recorded and "sent" without a broker


def test_it_creates_alarms_in_one_place_one_open_per_point(db):
    from discovery.services.alarms import raise_alarms

    point, other = PointFactory(), PointFactory()
    now = timezone.now()
    created = raise_alarms(
        [
            Alarm(point=point, raised_at=now, source=Alarm.Source.NOTIFICATION),
            Alarm(point=point, raised_at=now, source=Alarm.Source.EVENT_INFO),  # second: no
            Alarm(point=other, raised_at=now, cleared_at=now),  # history may be added
        ]
    )
    assert [(a.point_id, a.source) for a in created] == [
        (point.pk, Alarm.Source.NOTIFICATION),
        (other.pk, Alarm.Source.STATUS_FLAGS),
    ]
    assert all(a.pk for a in created)
    assert raise_alarms([Alarm(point=point, raised_at=now)]) == []
    assert Alarm.objects.filter(point=point, cleared_at__isnull=True).count() == 1


def test_it_sends_the_acknowledgement_to_the_device_when_it_asks(api, user, database_backend):
    point = PointFactory(name="Zone Temp Alarmed", object_type="analog-input")
    alarm = Alarm.objects.create(
        point=point,
        source=Alarm.Source.NOTIFICATION,
        raised_at=timezone.now(),
        event_state="high-limit",
        ack_required=True,
        event_stamp="time:10,0,0,0",
        priority=100,
    )
    done = api.post(f"/api/alarms/{alarm.pk}/acknowledge/").json()
    assert done["device_ack"] == "pending" and done["acknowledged_by"] == user.username
    audit = PointCommand.objects.get(alarm=alarm)
    assert audit.result == PointCommand.Result.PENDING
    assert audit.task is not None and audit.task.kind == "ack_alarm"
    assert audit.task.parameters == {"command_id": audit.pk}


def test_it_registers_for_a_devices_alarms_from_the_page_and_the_api(
    logged_in, api, user, database_backend
):
    from tests.web.factories import DeviceFactory

    device = DeviceFactory()
    page = logged_in.get(reverse("discovery:device-detail", args=[device.device_instance]))
    assert 'id="register-alarms"' in page.content.decode()
    response = logged_in.post(
        reverse("discovery:device-register-alarms", args=[device.device_instance])
    )
    assert response.status_code == 302
    first = PointCommand.objects.get(action=PointCommand.Action.REGISTER)
    assert first.username == user.username and first.task.kind == "register"
    assert first.task.parameters == {
        "command_id": first.pk,
        "device_id": device.pk,
        "confirmed": True,
    }
    answer = api.post(
        f"/api/devices/{device.device_instance}/register-alarms/",
        {"confirmed": False},
        format="json",
    )
    assert answer.status_code == 202
    second = PointCommand.objects.get(pk=answer.json()["command"])
    assert second.task.parameters["confirmed"] is False and second.value_text == "unconfirmed"


def test_it_refuses_a_registration_without_the_permission(client, db):
    from rest_framework.test import APIClient

    from tests.web.factories import DeviceFactory

    viewer = UserFactory(username="viewer")
    device = DeviceFactory()
    client.force_login(viewer)
    page = client.get(reverse("discovery:device-detail", args=[device.device_instance]))
    assert 'id="register-alarms"' not in page.content.decode()
    url = reverse("discovery:device-register-alarms", args=[device.device_instance])
    assert client.post(url).status_code == 403
    api = APIClient()
    api.force_authenticate(user=viewer)
    assert api.post(f"/api/devices/{device.device_instance}/register-alarms/").status_code == 403
    assert not PointCommand.objects.exists()
