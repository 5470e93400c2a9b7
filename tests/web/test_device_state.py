"""A device's state as people see it: online, in fault (answers but its reads fail) or
offline, and a duplicate instance, on the device list, the device page and the API."""

from __future__ import annotations

import pytest
from django.urls import reverse

from tests.web.factories import DeviceFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def devices():
    return {
        "ok": DeviceFactory(device_instance=11, name="Fine"),
        "fault": DeviceFactory(
            device_instance=12, name="Sick", in_fault=True, last_error="reads time out"
        ),
        "offline": DeviceFactory(device_instance=13, name="Gone", is_online=False),
        "conflict": DeviceFactory(
            device_instance=14,
            name="Twin",
            address="10.0.0.5",
            conflict_addresses=["10.0.0.9"],
            address_history=[{"address": "10.0.0.4", "until": "2026-12-01T10:00:00", "how": "x"}],
        ),
    }


def _row(html: str, instance: int) -> str:
    start = html.index(f'data-device-instance="{instance}"')
    return html[start : html.index("</tr>", start)]


def test_it_shows_a_device_in_fault_as_such_in_the_device_list(logged_in, devices):
    response = logged_in.get(reverse("discovery:device-table"))
    html = response.content.decode()
    assert response.context["counts"] == {"total": 4, "online": 2, "fault": 1, "offline": 1}
    assert "status-fault" in _row(html, 12) and "reads time out" in _row(html, 12)
    assert "status-online" in _row(html, 11) and "status-offline" in _row(html, 13)
    assert "status-conflict" in _row(html, 14) and "10.0.0.9" in _row(html, 14)


def test_it_shows_the_conflict_and_earlier_addresses_on_the_device_page(logged_in, devices):
    html = logged_in.get(reverse("discovery:device-detail", args=[14])).content.decode()
    assert "also claimed by 10.0.0.9" in html
    assert "10.0.0.4" in html


def test_it_gives_state_conflict_and_address_history_in_the_api(logged_in, devices):
    rows = {d["device_instance"]: d for d in logged_in.get("/api/devices/").json()["results"]}
    assert [rows[i]["state"] for i in (11, 12, 13)] == ["online", "fault", "offline"]
    assert rows[14]["conflict_addresses"] == ["10.0.0.9"]
    assert rows[14]["address_history"][0]["address"] == "10.0.0.4"


def test_it_lets_an_admin_settle_a_duplicate_instance_keeping_the_binding(admin_client, devices):
    response = admin_client.post(
        reverse("admin:discovery_bacnetdevice_changelist"),
        {"action": "keep_current_binding", "_selected_action": [devices["conflict"].pk]},
    )
    assert response.status_code == 302
    devices["conflict"].refresh_from_db()
    assert (devices["conflict"].address, devices["conflict"].conflict_addresses) == (
        "10.0.0.5",
        [],
    )
