"""Every page asks for a login, then shows what it is for."""

from __future__ import annotations

import pytest
from django.urls import reverse

from discovery.models import BACnetTask
from tests.web.factories import (
    DailyStatFactory,
    DeviceFactory,
    HourlyStatFactory,
    PointFactory,
    TaskFactory,
    WorkerFactory,
)

pytestmark = pytest.mark.django_db


@pytest.fixture
def site():
    device = DeviceFactory(name="AHU-1", device_instance=101, vendor_name="Acme Controls")
    point = PointFactory(device=device, name="Supply air", last_status_flags=1 | 4)
    HourlyStatFactory(point=point)
    DailyStatFactory(point=point)
    job = TaskFactory(status=BACnetTask.Status.COMPLETED, progress="3 devices found")
    return {"device": device, "point": point, "job": job}


def page_urls(site) -> list[str]:
    return [
        reverse("discovery:dashboard"),
        reverse("discovery:device-table"),
        reverse("discovery:recent-jobs"),
        reverse("discovery:device-detail", args=[site["device"].device_instance]),
        reverse("discovery:device-points", args=[site["device"].device_instance]),
        reverse("discovery:point-list"),
        reverse("discovery:point-detail", args=[site["point"].pk]),
        reverse("discovery:job-list"),
        reverse("discovery:job-table"),
        reverse("discovery:job-detail", args=[site["job"].pk]),
        reverse("api:docs"),
    ]


def test_it_sends_logged_out_visitors_to_the_login_page(client, site):
    for url in page_urls(site):
        response = client.get(url)
        assert response.status_code == 302, url
        assert response["Location"].startswith(reverse("login")), url


def test_it_shows_every_page_to_a_logged_in_user(logged_in, site):
    for url in page_urls(site):
        response = logged_in.get(url)
        assert response.status_code == 200, url


def test_it_logs_in_with_the_login_form(client, user):
    page = client.get(reverse("login"))
    assert page.status_code == 200
    response = client.post(
        reverse("login"), {"username": "operator", "password": "correct horse battery"}
    )
    assert response.status_code == 302
    assert client.get(reverse("discovery:dashboard")).status_code == 200


def test_it_logs_out_with_a_post(logged_in):
    response = logged_in.post(reverse("logout"))
    assert response.status_code == 302
    assert logged_in.get(reverse("discovery:dashboard")).status_code == 302


def test_it_counts_online_and_offline_devices_on_the_dashboard(logged_in):
    DeviceFactory.create_batch(3, is_online=True)
    DeviceFactory.create_batch(2, is_online=False)
    response = logged_in.get(reverse("discovery:dashboard"))
    assert response.context["counts"] == {"total": 5, "online": 3, "fault": 0, "offline": 2}
    assert b"Start Discovery" in response.content


def test_it_filters_devices_by_name_vendor_and_state(logged_in):
    DeviceFactory(name="Boiler plant", vendor_name="Heatco", is_online=True)
    DeviceFactory(name="Chiller 2", vendor_name="Coolco", is_online=False)
    DeviceFactory(name="Boiler spare", vendor_name="Heatco", is_online=False)

    def names(**query) -> list[str]:
        response = logged_in.get(reverse("discovery:device-table"), query)
        return sorted(d.name for d in response.context["page"])

    assert names(q="boiler") == ["Boiler plant", "Boiler spare"]
    assert names(vendor="cool") == ["Chiller 2"]
    assert names(online="false") == ["Boiler spare", "Chiller 2"]
    assert names(q="boiler", online="true") == ["Boiler plant"]


def test_it_searches_points_by_name_type_vendor_and_device_state(logged_in):
    boiler = DeviceFactory(name="Boiler", vendor_name="Heatco", is_online=True)
    chiller = DeviceFactory(name="Chiller", vendor_name="Coolco", is_online=False)
    PointFactory(device=boiler, name="Flow temp", object_type="analog-input")
    PointFactory(device=boiler, name="Pump run", object_type="binary-output")
    PointFactory(device=chiller, name="Flow temp", object_type="analog-input")

    def shown(**query) -> list[tuple[str, str]]:
        response = logged_in.get(reverse("discovery:point-list"), query)
        assert response.status_code == 200
        return sorted((r.point.device.name, r.point.name) for r in response.context["rows"])

    assert shown(q="flow") == [("Boiler", "Flow temp"), ("Chiller", "Flow temp")]
    assert shown(object_type="binary-output") == [("Boiler", "Pump run")]
    assert shown(vendor="cool") == [("Chiller", "Flow temp")]
    assert shown(q="flow", online="true") == [("Boiler", "Flow temp")]
    assert shown(q="chiller") == [("Chiller", "Flow temp")]


def test_it_keeps_the_address_bar_in_step_with_the_device_filter(logged_in):
    response = logged_in.get(reverse("discovery:device-table"), {"q": "ahu"})
    assert response["HX-Replace-Url"] == "/?q=ahu"


def test_it_shows_point_values_units_and_status_flag_names(logged_in, site):
    response = logged_in.get(
        reverse("discovery:device-detail", args=[site["device"].device_instance])
    )
    content = response.content.decode()
    assert "Supply air" in content
    assert "21.5" in content
    assert "degreesCelsius" in content
    assert "in-alarm" in content and "overridden" in content
    assert "Re-enumerate points" in content


def test_it_answers_404_for_an_unknown_device_or_point(logged_in):
    assert logged_in.get(reverse("discovery:device-detail", args=[999999])).status_code == 404
    assert logged_in.get(reverse("discovery:point-detail", args=[999999])).status_code == 404
    huge = 10**25
    for name in ["device-detail", "device-points", "point-detail", "job-detail"]:
        assert logged_in.get(reverse(f"discovery:{name}", args=[huge])).status_code == 404, name


def test_it_points_the_chart_at_the_trend_data_for_the_chosen_range(logged_in, site):
    url = reverse("discovery:point-detail", args=[site["point"].pk])
    response = logged_in.get(url, {"range": "week"})
    assert response.context["chart_url"].endswith(
        f"/api/points/{site['point'].pk}/trend/?range=week"
    )
    assert len(response.context["hourly"]) == 1
    assert len(response.context["daily"]) == 1


def test_it_says_where_the_chart_shows_statistics_because_raw_readings_are_gone(
    logged_in, site, settings
):
    url = reverse("discovery:point-detail", args=[site["point"].pk])
    assert "Raw readings are kept" not in logged_in.get(url, {"range": "week"}).content.decode()
    settings.BACNET_RETENTION_RAW_DAYS = 3
    page = logged_in.get(url, {"range": "week"}).content.decode()
    assert "Raw readings are kept 3 days" in page


def test_it_explains_a_bad_range_and_shows_the_last_day(logged_in, site):
    url = reverse("discovery:point-detail", args=[site["point"].pk])
    response = logged_in.get(url, {"start": "2026-01-02", "end": "2026-01-01"})
    assert response.status_code == 200
    assert "start must be before end" in response.content.decode()
    assert response.context["window"].name == "day"


def test_it_shows_the_backend_the_workers_and_a_link_to_flower(logged_in, settings):
    settings.FLOWER_URL = "http://flower.example:5555"
    WorkerFactory(name="bacnet@plant-room", backend=settings.BACNET_BACKEND)
    response = logged_in.get(reverse("discovery:job-list"))
    content = response.content.decode()
    assert "bacnet@plant-room" in content
    assert "http://flower.example:5555" in content
    assert 'id="no-worker"' not in content


def test_it_warns_when_no_worker_serves_the_backend(logged_in):
    response = logged_in.get(reverse("discovery:job-list"))
    assert 'id="no-worker"' in response.content.decode()
    dashboard = logged_in.get(reverse("discovery:dashboard"))
    assert "No BACnet worker" in dashboard.content.decode()


def test_it_filters_jobs_by_kind_and_status(logged_in):
    TaskFactory(kind=BACnetTask.Kind.DISCOVER, status=BACnetTask.Status.FAILED)
    TaskFactory(kind=BACnetTask.Kind.COLLECT, status=BACnetTask.Status.COMPLETED)
    TaskFactory(kind=BACnetTask.Kind.COLLECT, status=BACnetTask.Status.FAILED)
    response = logged_in.get(
        reverse("discovery:job-table"), {"kind": "collect", "status": "failed"}
    )
    jobs = list(response.context["page"])
    assert [(j.kind, j.status) for j in jobs] == [("collect", "failed")]


def test_it_shows_a_jobs_parameters_and_result(logged_in):
    job = TaskFactory(
        status=BACnetTask.Status.COMPLETED, parameters={"low": 1, "high": 9}, result={"found": 3}
    )
    content = logged_in.get(reverse("discovery:job-detail", args=[job.pk])).content.decode()
    assert "&quot;found&quot;: 3" in content
    assert "&quot;high&quot;: 9" in content


def test_it_serves_the_api_docs_from_its_own_static_files(logged_in):
    content = logged_in.get(reverse("api:docs")).content.decode()
    assert "/static/discovery/vendor/swagger-ui/swagger-ui-bundle.js" in content
    assert "cdn" not in content.lower()


def test_it_starts_a_discovery_from_the_dashboard_button(logged_in, user):
    response = logged_in.post(
        reverse("discovery:start-discovery"),
        {"low": "1", "high": "500", "targets": "192.168.1.20, 192.168.1.21:47809"},
        HTTP_HX_REQUEST="true",
    )
    assert response.status_code == 200
    assert response["HX-Trigger"] == "jobs-changed"
    task = BACnetTask.objects.get()
    assert (task.kind, task.status, task.trigger) == ("discover", "pending", "manual")
    assert task.parameters == {
        "low": 1,
        "high": 500,
        "targets": ["192.168.1.20", "192.168.1.21:47809"],
    }
    assert task.created_by == user
    assert f'Discovery job <a href="/jobs/{task.pk}/">{task.pk}</a> requested' in (
        response.content.decode()
    )


def test_it_explains_why_a_discovery_was_not_started(logged_in):
    response = logged_in.post(
        reverse("discovery:start-discovery"), {"low": "9", "high": "1"}, HTTP_HX_REQUEST="true"
    )
    assert "low must not be greater than high" in response.content.decode()
    response = logged_in.post(
        reverse("discovery:start-discovery"),
        {"targets": "<script>alert(1)</script>"},
        HTTP_HX_REQUEST="true",
    )
    assert "not a BACnet/IP address" in response.content.decode()
    assert "<script>alert(1)</script>" not in response.content.decode()
    assert not BACnetTask.objects.exists()


def test_it_starts_a_discovery_without_javascript_too(logged_in):
    response = logged_in.post(reverse("discovery:start-discovery"), {}, follow=True)
    assert response.redirect_chain == [("/", 302)]
    assert "Discovery job" in response.content.decode()
    assert BACnetTask.objects.filter(kind="discover").count() == 1


def test_it_refuses_a_discovery_without_the_csrf_token(user):
    from django.test import Client

    browser = Client(enforce_csrf_checks=True)
    browser.force_login(user)
    assert browser.post(reverse("discovery:start-discovery"), {}).status_code == 403
    assert browser.get(reverse("discovery:start-discovery")).status_code == 405
    assert not BACnetTask.objects.exists()


def test_it_re_enumerates_a_devices_points(logged_in, site):
    instance = site["device"].device_instance
    response = logged_in.post(reverse("discovery:enumerate-points", args=[instance]), follow=True)
    assert response.redirect_chain == [(f"/devices/{instance}/", 302)]
    task = BACnetTask.objects.get(kind="enumerate")
    assert task.parameters == {"device_instance": instance}
    assert "re-enumerates the points" in response.content.decode()
    assert logged_in.post(reverse("discovery:enumerate-points", args=[999999])).status_code == 404
