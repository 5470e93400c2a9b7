"""Sites in the pages and the API: filtering by site, and users limited to some sites."""

from __future__ import annotations

import csv
import io

import pytest
from django.urls import reverse

from discovery.models import Site
from tests.web.factories import DeviceFactory, PointFactory, ReadingFactory

pytestmark = [pytest.mark.django_db, pytest.mark.postgres]


@pytest.fixture
def two_sites(user):
    """Device 1001 at both sites, with one point and one reading each; the operator is
    limited to the annex."""
    default = Site.default()
    annex = Site.objects.create(name="Annex", slug="annex")
    annex.viewers.add(user)
    for site, name in ((default, "HQ-AHU"), (annex, "Annex-AHU")):
        device = DeviceFactory(site=site, device_instance=1001, name=name)
        point = PointFactory(device=device, name=f"{name} temperature")
        ReadingFactory(point=point)


def csv_rows(response) -> list[list[str]]:
    text = b"".join(response.streaming_content).decode()
    return list(csv.reader(io.StringIO(text)))


def test_it_shows_a_limited_user_only_their_sites_devices(logged_in, two_sites):
    response = logged_in.get(reverse("discovery:dashboard"))
    page = response.content.decode()
    assert "Annex-AHU" in page
    assert "HQ-AHU" not in page
    assert response.context["counts"]["total"] == 1  # not the other site's device too
    detail = logged_in.get(reverse("discovery:device-detail", args=[1001])).content.decode()
    assert "Annex-AHU" in detail  # the same instance at the other site is not theirs
    assert (
        logged_in.get(reverse("discovery:device-detail", args=[1001]) + "?site=default").status_code
        == 404
    )


def test_it_exports_to_a_limited_user_only_their_sites_readings(logged_in, api, two_sites):
    rows = csv_rows(logged_in.get(reverse("discovery:export-readings")))
    assert len(rows) == 2  # the header and the annex's one reading
    assert "Annex-AHU" in ",".join(rows[1])
    via_api = csv_rows(api.get("/api/readings/export/"))
    assert len(via_api) == 2


def test_it_limits_the_api_to_the_users_sites(api, two_sites):
    devices = api.get("/api/devices/").json()
    assert [(d["site"], d["name"]) for d in devices["results"]] == [("annex", "Annex-AHU")]
    assert api.get("/api/devices/1001/").json()["name"] == "Annex-AHU"
    assert api.get("/api/devices/?site=default").json()["results"] == []
    points = api.get("/api/points/").json()["results"]
    assert [p["name"] for p in points] == ["Annex-AHU temperature"]
    refused = api.post("/api/jobs/", {"kind": "discover", "site": "default"}, format="json")
    assert refused.status_code == 400
    assert "No site 'default'" in refused.json()["detail"]


def test_it_filters_by_site_for_a_user_limited_to_none(client, two_sites, django_user_model):
    everyone = django_user_model.objects.create_user("manager", password="x")
    client.force_login(everyone)
    page = client.get(reverse("discovery:dashboard")).content.decode()
    assert "HQ-AHU" in page and "Annex-AHU" in page
    assert 'data-site="annex"' in page  # the per-site status lines
    only_hq = client.get(reverse("discovery:dashboard") + "?site=default").content.decode()
    assert "HQ-AHU" in only_hq and "Annex-AHU" not in only_hq
    detail = client.get(reverse("discovery:device-detail", args=[1001]) + "?site=annex")
    assert "Annex-AHU" in detail.content.decode()


@pytest.fixture
def alarms_at_two_sites(two_sites):
    """An active alarm on each site's point."""
    from django.utils import timezone

    from discovery.models import Alarm, BACnetPoint

    for point in BACnetPoint.objects.select_related("device"):
        Alarm.objects.create(point=point, raised_at=timezone.now(), message=point.name)


def test_it_shows_and_acknowledges_only_the_alarms_of_the_users_sites(
    logged_in, api, alarms_at_two_sites
):
    from discovery.models import Alarm

    page = logged_in.get(reverse("discovery:alarm-list")).content.decode()
    assert "Annex-AHU temperature" in page
    assert "HQ-AHU temperature" not in page
    listed = api.get("/api/alarms/").json()["results"]
    assert [a["message"] for a in listed] == ["Annex-AHU temperature"]
    theirs = Alarm.objects.get(point__device__site__slug="default")
    acknowledged = logged_in.post(reverse("discovery:alarm-acknowledge", args=[theirs.pk]))
    assert acknowledged.status_code == 404
    assert api.post(f"/api/alarms/{theirs.pk}/acknowledge/").status_code == 404
    theirs.refresh_from_db()
    assert theirs.acknowledged_at is None


def test_it_never_lets_a_limited_user_reach_another_sites_point_to_command(
    logged_in, api, two_sites
):
    from discovery.models import BACnetPoint

    theirs = BACnetPoint.objects.get(device__site__slug="default")
    assert api.get(f"/api/points/{theirs.pk}/priority-array/").status_code == 404
    assert api.post(f"/api/points/{theirs.pk}/priority-array/").status_code == 404
    read = logged_in.post(reverse("discovery:point-read-priority", args=[theirs.pk]))
    assert read.status_code == 404
