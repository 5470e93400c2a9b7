"""Commanding points from the pages and the API: who may write, checks before anything
is sent, CSRF, the audit trail (page, CSV, API, admin) and the active overrides. The
writes themselves run over real BACnet in tests/pipeline/test_commanding.py."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.contrib.auth.models import Group, Permission
from django.test import Client
from django.urls import reverse
from django.utils import timezone
from rest_framework.test import APIClient

from discovery.models import BACnetTask, PointCommand, PointCommandState
from discovery.services.commanding import relinquish_due_overrides
from tests.web.factories import PointFactory, UserFactory

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _database_backend(settings):
    settings.BACNET_BACKEND = "database"  # recorded and "sent" without a broker


@pytest.fixture
def setpoint():
    point = PointFactory(object_type="analog-value", object_instance=1, name="Zone Setpoint")
    PointCommandState.objects.create(
        point=point, min_present_value=10, max_present_value=30, relinquish_default=22,
        slots=[{"priority": 8, "value": 19.5, "text": ""}], current_priority=8,
        present_value=19.5,
    )  # fmt: skip
    return point


@pytest.fixture
def operator():
    group, _ = Group.objects.get_or_create(name="Operators")
    group.permissions.add(Permission.objects.get(codename="command_point"))
    user = UserFactory(username="olga")
    user.groups.add(group)
    return user


def test_it_gives_the_operators_group_the_command_permission():
    assert Group.objects.get(name="Operators").permissions.filter(codename="command_point")


def test_it_shows_a_viewer_the_priority_array_but_no_write_controls(logged_in, setpoint):
    page = logged_in.get(reverse("discovery:point-detail", args=[setpoint.pk])).content.decode()
    assert 'id="priority-array"' in page and "8 (in control)" in page
    assert 'id="write-form"' not in page and 'id="view-only"' in page


def test_it_refuses_a_viewer_with_403_in_the_page_and_the_api(logged_in, api, setpoint):
    url = reverse("discovery:point-write", args=[setpoint.pk])
    assert logged_in.post(url, {"value": "20", "priority": 8, "reason": "x"}).status_code == 403
    answer = api.post(f"/api/points/{setpoint.pk}/write/", {"value": "20", "reason": "x"})
    assert answer.status_code == 403
    relinquish = api.post(f"/api/points/{setpoint.pk}/relinquish/", {"priority": 8})
    assert relinquish.status_code == 403
    assert not PointCommand.objects.exists() and not BACnetTask.objects.exists()


def test_it_lets_an_operator_write_from_the_page_as_a_job(client: Client, operator, setpoint):
    client.force_login(operator)
    page = client.get(reverse("discovery:point-detail", args=[setpoint.pk])).content.decode()
    assert 'id="write-form"' in page
    url = reverse("discovery:point-write", args=[setpoint.pk])
    answer = client.post(url, {"value": "21.5", "priority": 8, "duration": "1h", "reason": "hot"})
    assert answer.status_code == 302
    command = PointCommand.objects.get()
    assert (command.value, command.priority, command.username) == (21.5, 8, "olga")
    assert command.expires_at is not None and command.override_state == "active"
    assert command.task is not None and command.task.kind == BACnetTask.Kind.WRITE
    assert command.task.parameters == {"command_id": command.pk}
    listing = client.get(reverse("discovery:overrides")).content.decode()
    assert "Zone Setpoint" in listing and "olga" in listing


def test_it_needs_the_csrf_token_on_the_page(operator, setpoint):
    browser = Client(enforce_csrf_checks=True)
    browser.force_login(operator)
    url = reverse("discovery:point-write", args=[setpoint.pk])
    assert browser.post(url, {"value": "20", "priority": 8, "reason": "x"}).status_code == 403


def test_it_refuses_bad_values_through_the_api_without_a_job(operator, setpoint):
    api = APIClient()
    api.force_authenticate(operator)
    for body, words in [
        ({"value": "45", "reason": "x"}, "above the point's maximum (30)"),
        ({"value": "warm", "reason": "x"}, "not a number"),
        ({"value": "20", "priority": 6, "reason": "x"}, "reserved"),
        ({"value": "20"}, "Say why"),
    ]:
        answer = api.post(f"/api/points/{setpoint.pk}/write/", body, format="json")
        assert answer.status_code == 400, answer.content
        assert words in answer.json()["detail"]
    assert not BACnetTask.objects.exists()
    assert PointCommand.objects.filter(result="rejected").count() == 4


def test_it_writes_through_the_api_and_shows_it_in_the_audit(operator, setpoint):
    api = APIClient()
    api.force_authenticate(operator)
    answer = api.post(
        f"/api/points/{setpoint.pk}/write/",
        {"value": "20", "priority": 9, "reason": "tuning"},
        format="json",
    )
    assert answer.status_code == 202, answer.content
    assert answer.json()["result"] == "pending" and answer.json()["job"]
    audit = api.get("/api/commands/", {"user": "olga"}).json()
    assert audit["count"] == 1 and audit["results"][0]["reason"] == "tuning"
    assert api.get(f"/api/points/{setpoint.pk}/priority-array/").json()["current_priority"] == 8
    # The trail cannot be edited or deleted through the API.
    row = audit["results"][0]["id"]
    assert api.delete(f"/api/commands/{row}/").status_code == 405
    assert api.patch(f"/api/commands/{row}/", {"reason": "x"}).status_code == 405
    jobs = api.post(
        "/api/jobs/", {"kind": "write", "parameters": {"command_id": row}}, format="json"
    )
    assert jobs.status_code == 400  # writes only through the checked endpoint


def test_it_exports_the_audit_as_csv_and_filters_it(client: Client, operator, setpoint):
    client.force_login(operator)
    client.post(
        reverse("discovery:point-write", args=[setpoint.pk]),
        {"value": "=cmd", "priority": 8, "reason": "@x"},
    )
    page = client.get(reverse("discovery:audit"), {"result": "rejected"}).content.decode()
    assert "Rejected before sending" in page
    csv_text = b"".join(
        client.get(reverse("discovery:audit"), {"format": "csv"}).streaming_content
    ).decode()
    assert csv_text.splitlines()[0].startswith("id,created_at,username")
    assert "'=cmd" in csv_text and "'@x" in csv_text  # neutralised for spreadsheets


def test_it_requests_the_relinquish_of_a_due_override_once(operator, setpoint):
    from discovery.services.commanding import request_write

    command = request_write(
        setpoint, "20", 8, user=operator, reason="x",
        expires_at=timezone.now() + timedelta(minutes=30),
    )  # fmt: skip
    assert relinquish_due_overrides(timezone.now()) == 0
    later = timezone.now() + timedelta(minutes=31)
    assert relinquish_due_overrides(later) == 1
    assert relinquish_due_overrides(later) == 0  # claimed: never twice
    command.refresh_from_db()
    assert command.override_state == "ending" and command.relinquished_by is not None
    assert command.relinquished_by.action == "relinquish" and command.relinquished_by.task


def test_it_shows_the_audit_read_only_in_the_admin(client: Client, setpoint, operator):
    from discovery.services.commanding import request_write

    request_write(setpoint, "20", 8, user=operator, reason="x")
    admin = UserFactory(username="root", is_staff=True, is_superuser=True)
    client.force_login(admin)
    row = PointCommand.objects.get()
    assert client.get("/admin/discovery/pointcommand/").status_code == 200
    change = client.get(f"/admin/discovery/pointcommand/{row.pk}/change/")
    assert change.status_code == 200 and b'type="submit"' not in change.content.split(b"<form")[-1]
    assert client.get("/admin/discovery/pointcommand/add/").status_code == 403
