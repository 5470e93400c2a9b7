"""Managing alert rules (API and admin, staff only, within their sites) and seeing each
alarm's notices on the alarms page."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.urls import reverse
from django.utils import timezone
from rest_framework.test import APIClient

from discovery.models import Alarm, AlertDelivery, AlertRule, Site, StatusFlags
from discovery.services.alarms import sync_alarms
from tests.web.factories import DeviceFactory, PointFactory, UserFactory

pytestmark = pytest.mark.django_db
HOOK = {"webhook_url": "https://hooks.example.com/bacnet", "webhook_secret": "s" * 24}


@pytest.fixture
def staff(user: Any) -> Any:
    user.is_staff = True
    user.save(update_fields=["is_staff"])
    return user


def test_it_creates_a_rule_and_never_shows_its_secret(api: APIClient, staff: Any) -> None:
    device = DeviceFactory(device_instance=4001)
    response = api.post(
        "/api/alert-rules/",
        {
            "name": "Night shift",
            "email_recipients": ["ops@example.com"],
            "device_instance": 4001,
            "on_clear": True,
            **HOOK,
        },
        format="json",
    )
    assert response.status_code == 201, response.json()
    body = response.json()
    assert "webhook_secret" not in body and body["has_webhook_secret"] is True
    assert body["device_instance"] == 4001 and body["site"] is None
    rule = AlertRule.objects.get()
    assert rule.device == device and rule.created_by == staff and rule.on_raise
    # An update that leaves the secret out keeps it.
    changed = api.patch(f"/api/alert-rules/{rule.pk}/", {"enabled": False}, format="json")
    assert changed.status_code == 200
    rule.refresh_from_db()
    assert not rule.enabled and rule.webhook_secret == HOOK["webhook_secret"]


@pytest.mark.parametrize(
    ("fields", "field", "words"),
    [
        ({"webhook_url": "ftp://example.com/x", "webhook_secret": "s" * 24}, "webhook_url", "http"),
        ({"webhook_url": "not a url", "webhook_secret": "s" * 24}, "webhook_url", "URL"),
        ({"webhook_url": "https://example.com/x"}, "webhook_secret", "shared secret"),
        ({"email_recipients": ["ops@example.com", "nobody"]}, "email_recipients", "nobody"),
        ({"email_recipients": "ops@example.com"}, "email_recipients", "list"),
        ({}, "email_recipients", "webhook URL, or both"),
        ({**HOOK, "on_raise": False}, "on_raise", "at least one event"),
        ({**HOOK, "device_instance": 99}, "device_instance", "No device 99"),
        ({**HOOK, "priority_at_most": 300}, "priority_at_most", "255"),
        ({**HOOK, "device_instance": 2**40}, "device_instance", "4194303"),
        ({**HOOK, "site": "nowhere"}, "site", "does not exist"),
    ],
)
def test_it_refuses_bad_rules_with_a_400_naming_the_field(
    api: APIClient, staff: Any, fields: dict, field: str, words: str
) -> None:
    response = api.post("/api/alert-rules/", {"name": "Bad", **fields}, format="json")
    assert response.status_code == 400
    assert words in " ".join(response.json()[field])
    assert not AlertRule.objects.exists()


def test_only_staff_manage_rules(api: APIClient, user: Any) -> None:
    assert api.get("/api/alert-rules/").status_code == 403
    response = api.post("/api/alert-rules/", {"name": "x", **HOOK}, format="json")
    assert response.status_code == 403
    assert api.get("/api/alert-deliveries/").status_code == 403


@pytest.mark.postgres
def test_a_user_limited_to_a_site_sees_and_makes_only_that_sites_rules(
    api: APIClient, staff: Any
) -> None:
    annex = Site.objects.create(name="Annex", slug="annex")
    annex.viewers.add(staff)
    AlertRule.objects.create(name="Every site", **HOOK)
    AlertRule.objects.create(name="HQ", site=Site.default(), **HOOK)
    AlertRule.objects.create(name="Annex", site=annex, **HOOK)
    names = [r["name"] for r in api.get("/api/alert-rules/").json()["results"]]
    assert names == ["Annex"]
    every = api.post("/api/alert-rules/", {"name": "Mine?", **HOOK}, format="json")
    assert every.status_code == 400 and "site" in every.json()
    other = api.post("/api/alert-rules/", {"name": "HQ2", "site": "default", **HOOK}, format="json")
    assert other.status_code == 400 and "site" in other.json()
    mine = api.post(
        "/api/alert-rules/", {"name": "Annex 2", "site": "annex", **HOOK}, format="json"
    )
    assert mine.status_code == 201
    hq = AlertRule.objects.get(name="HQ")
    assert api.delete(f"/api/alert-rules/{hq.pk}/").status_code == 404


def test_the_admin_refuses_a_bad_address_and_saves_a_good_rule(client: Any) -> None:
    admin = UserFactory(username="root", is_staff=True, is_superuser=True)
    client.force_login(admin)
    url = reverse("admin:discovery_alertrule_add")
    form = {"name": "Admin rule", "enabled": "on", "on_raise": "on", "webhook_url": ""}
    bad = client.post(url, {**form, "email_recipients": "ops@example.com\nnot-an-address"})
    assert bad.status_code == 200
    assert "Not an e-mail address: not-an-address" in bad.content.decode()
    assert not AlertRule.objects.exists()
    good = client.post(url, {**form, "email_recipients": "ops@example.com, chief@example.com"})
    assert good.status_code == 302
    rule = AlertRule.objects.get()
    assert rule.email_recipients == ["ops@example.com", "chief@example.com"]
    assert rule.created_by == admin


def test_the_alarms_page_shows_staff_each_alarms_notices(client: Any, settings: Any) -> None:
    settings.BACNET_BACKEND = "database"
    rule = AlertRule.objects.create(name="Night shift", **HOOK)
    point = PointFactory(name="Chiller trip")
    point.last_status_flags = StatusFlags.IN_ALARM
    point.last_read_at = timezone.now()
    point.save()
    sync_alarms()
    delivery = AlertDelivery.objects.get(rule=rule, alarm=Alarm.objects.get())
    AlertDelivery.objects.filter(pk=delivery.pk).update(
        status="retrying", attempts=2, last_error="HTTP 503 Service Unavailable"
    )
    viewer = UserFactory(username="viewer")
    client.force_login(viewer)
    assert "Night shift" not in client.get(reverse("discovery:alarm-list")).content.decode()
    client.force_login(UserFactory(username="boss", is_staff=True))
    page = client.get(reverse("discovery:alarm-list")).content.decode()
    assert "Webhook (Night shift, raised): retrying after 2 attempts" in page
    assert "HTTP 503 Service Unavailable" in page
    assert "overdue-notices" not in page
    # Nothing sends them (no worker on default, no send_alerts): the page says so.
    AlertDelivery.objects.update(next_attempt_at=timezone.now() - timedelta(minutes=10))
    page = client.get(reverse("discovery:alarm-list")).content.decode()
    assert "1 alarm notice waiting for more than 5 minutes" in page


def test_the_admin_lists_and_opens_rules_and_deliveries(admin_client: Any, settings: Any) -> None:
    settings.BACNET_BACKEND = "database"
    rule = AlertRule.objects.create(name="Night shift", email_recipients=["a@example.com"])
    point = PointFactory()
    point.last_status_flags = StatusFlags.IN_ALARM
    point.save()
    sync_alarms()
    delivery = AlertDelivery.objects.get()
    for model, pk in (("alertrule", rule.pk), ("alertdelivery", delivery.pk)):
        assert admin_client.get(reverse(f"admin:discovery_{model}_changelist")).status_code == 200
        change = admin_client.get(reverse(f"admin:discovery_{model}_change", args=[pk]))
        assert change.status_code == 200
    page = admin_client.get(reverse("admin:discovery_alertrule_change", args=[rule.pk]))
    assert "a@example.com" in page.content.decode()
