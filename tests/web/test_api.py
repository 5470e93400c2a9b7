"""The REST API: every endpoint, and bad input answered with a clear 4xx in JSON."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from discovery.models import BACnetTask
from tests.web.factories import (
    DailyStatFactory,
    DeviceFactory,
    HourlyStatFactory,
    PointFactory,
    ReadingFactory,
    TaskFactory,
    UserFactory,
    WorkerFactory,
)

pytestmark = [pytest.mark.django_db, pytest.mark.postgres]

ENDPOINTS = [
    "/api/devices/",
    "/api/points/",
    "/api/readings/",
    "/api/stats/hourly/",
    "/api/stats/daily/",
    "/api/jobs/",
    "/api/status/",
    "/api/schema/",
]


@pytest.fixture
def point():
    point = PointFactory(device=DeviceFactory(device_instance=5, name="VAV-5"))
    now = timezone.now()
    for minutes in range(1, 11):
        ReadingFactory(point=point, timestamp=now - timedelta(minutes=minutes), value=minutes)
    return point


def assert_json_error(response, status: int) -> dict:
    assert response.status_code == status, response.content
    assert response["Content-Type"].startswith("application/json")
    return response.json()


def test_it_refuses_anonymous_requests_with_401_and_a_challenge_in_json(db):
    anonymous = APIClient()
    for url in ENDPOINTS:
        response = anonymous.get(url)
        assert_json_error(response, 401)
        assert response["WWW-Authenticate"] == "Token", url
    bad_token = APIClient()
    bad_token.credentials(HTTP_AUTHORIZATION="Token not-a-real-token")
    response = bad_token.get("/api/devices/")
    assert_json_error(response, 401)
    assert response["WWW-Authenticate"] == "Token"


def test_it_answers_invalid_filter_values_with_400_naming_the_parameter(api, point):
    cases = {
        "/api/devices/?online=maybe": "online",
        "/api/points/?online=perhaps": "online",
        "/api/points/?polling_enabled=sometimes": "polling_enabled",
        "/api/devices/?limit=abc": "limit",
        "/api/devices/?limit=0": "limit",
        "/api/jobs/?offset=-1": "offset",
        "/api/readings/?page_size=abc": "page_size",
        "/api/readings/?page_size=0": "page_size",
        "/api/readings/?cursor=garbage": "cursor",
        "/api/devices/?ordering=colour": "ordering",
        "/api/devices/?device_instance=abc": "device_instance",
        "/api/jobs/?outcome=exploded": "outcome",
    }
    for url, parameter in cases.items():
        body = assert_json_error(api.get(url), 400)
        assert list(body) == [parameter], (url, body)
        assert isinstance(body[parameter], list) and body[parameter][0], (url, body)
    assert api.get("/api/devices/?online=true&ordering=-name").status_code == 200
    assert api.get("/api/readings/?page_size=5000").status_code == 200


def test_it_accepts_a_token_from_the_token_endpoint(db):
    UserFactory(username="robot")
    anonymous = APIClient()
    response = anonymous.post(
        "/api/auth/token/", {"username": "robot", "password": "correct horse battery"}
    )
    assert response.status_code == 200
    token = response.json()["token"]
    with_token = APIClient()
    with_token.credentials(HTTP_AUTHORIZATION=f"Token {token}")
    assert with_token.get("/api/devices/").status_code == 200


def test_it_lists_and_filters_devices(api):
    DeviceFactory(name="Boiler", vendor_name="Heatco", is_online=True)
    DeviceFactory(name="Chiller", vendor_name="Coolco", is_online=False)
    assert api.get("/api/devices/").json()["count"] == 2
    assert [d["name"] for d in api.get("/api/devices/?name=boil").json()["results"]] == ["Boiler"]
    assert [d["name"] for d in api.get("/api/devices/?vendor=cool").json()["results"]] == [
        "Chiller"
    ]
    assert [d["name"] for d in api.get("/api/devices/?online=false").json()["results"]] == [
        "Chiller"
    ]
    assert [d["name"] for d in api.get("/api/devices/?search=heat").json()["results"]] == ["Boiler"]


def test_it_retrieves_a_device_by_its_instance_and_answers_404_json_for_unknown_ones(api, point):
    device = point.device
    body = api.get(f"/api/devices/{device.device_instance}/").json()
    assert body["device_instance"] == 5
    assert body["point_count"] == 1
    assert_json_error(api.get("/api/devices/999999/"), 404)
    assert_json_error(api.get("/api/devices/not-a-number/"), 404)
    assert_json_error(api.get("/api/points/99999999999999999999999/"), 404)
    assert_json_error(api.get("/api/jobs/999999/"), 404)
    assert_json_error(api.get("/api/nothing-here/"), 404)


def test_it_filters_points_by_device_type_and_name(api, point):
    PointFactory(device=point.device, object_type="binary-output", name="Fan start")
    PointFactory(object_type="analog-input", name="Outside air")
    assert api.get(f"/api/points/?device={point.device.pk}").json()["count"] == 2
    results = api.get("/api/points/?object_type=binary-output").json()["results"]
    assert [p["name"] for p in results] == ["Fan start"]
    results = api.get("/api/points/?name=outside").json()["results"]
    assert [p["name"] for p in results] == ["Outside air"]
    assert api.get("/api/points/?device_instance=5").json()["count"] == 2


def test_it_names_the_status_flags_of_a_point(api):
    point = PointFactory(last_status_flags=2 | 8)
    body = api.get(f"/api/points/{point.pk}/").json()
    assert body["status_flag_names"] == ["fault", "out-of-service"]


def test_it_pages_readings_by_cursor_in_time_order(api, point):
    first = api.get(f"/api/readings/?point={point.pk}&page_size=4").json()
    assert [r["value"] for r in first["results"]] == [10, 9, 8, 7]
    second = api.get(first["next"]).json()
    assert [r["value"] for r in second["results"]] == [6, 5, 4, 3]
    newest = api.get(f"/api/readings/?point={point.pk}&page_size=2&ordering=-timestamp").json()
    assert [r["value"] for r in newest["results"]] == [1, 2]


def test_it_filters_readings_by_device_and_time_range(api, point):
    PointFactory()  # another device's point, with no readings in range
    start = (timezone.now() - timedelta(minutes=5, seconds=30)).isoformat()
    response = api.get("/api/readings/", {"device": point.device.pk, "start": start})
    assert sorted(r["value"] for r in response.json()["results"]) == [1, 2, 3, 4, 5]


def test_it_rejects_bad_time_ranges_with_400_json(api, point):
    body = assert_json_error(api.get("/api/readings/?start=yesterday"), 400)
    assert "start" in body
    body = assert_json_error(
        api.get("/api/readings/?start=2026-02-01T00:00:00Z&end=2026-01-01T00:00:00Z"), 400
    )
    assert "start must be before end." in str(body)
    assert_json_error(api.get("/api/stats/hourly/?end=not-a-date"), 400)
    assert_json_error(api.get(f"/api/points/{point.pk}/trend/?range=decade"), 400)
    assert_json_error(
        api.get(f"/api/points/{point.pk}/trend/?start=2026-02-01&end=2026-01-01"), 400
    )
    assert_json_error(api.get(f"/api/points/{point.pk}/trend/?buckets=lots"), 400)
    assert_json_error(api.get("/api/readings/?point=abc"), 400)
    assert_json_error(api.get("/api/readings/?cursor=garbage"), 400)


def test_it_caps_huge_page_sizes_instead_of_failing(api, point):
    DeviceFactory.create_batch(3)
    response = api.get("/api/devices/?limit=1000000000000&offset=99999999999999999999999")
    assert response.status_code == 200
    response = api.get("/api/devices/?limit=99999999999999999999999")
    assert response.status_code == 200
    assert len(response.json()["results"]) == 4
    response = api.get(f"/api/readings/?page_size=99999999999999999999&point={point.pk}")
    assert response.status_code == 200
    assert len(response.json()["results"]) == 10


def test_it_answers_empty_lists_for_out_of_range_ids_in_filters(api):
    for url in [
        "/api/readings/?point=99999999999999999999",
        "/api/points/?device=99999999999999999999",
        "/api/devices/?q=99999999999999999999",
        "/api/devices/?device_instance=99999999999999999999",
    ]:
        response = api.get(url)
        assert response.status_code in (200, 400), url
        assert response["Content-Type"].startswith("application/json")


def test_it_lists_hourly_and_daily_stats_for_a_point(api, point):
    hour = timezone.now().replace(minute=0, second=0, microsecond=0)
    for hours_ago in (1, 2, 3):
        HourlyStatFactory(point=point, bucket_start=hour - timedelta(hours=hours_ago))
    for days_ago in (1, 2):
        DailyStatFactory(point=point, bucket_start=hour - timedelta(days=days_ago))
    HourlyStatFactory()  # another point
    assert api.get(f"/api/stats/hourly/?point={point.pk}").json()["count"] == 3
    assert api.get(f"/api/stats/daily/?point={point.pk}").json()["count"] == 2
    start = (hour - timedelta(hours=2, minutes=30)).isoformat()
    assert api.get("/api/stats/hourly/", {"point": point.pk, "start": start}).json()["count"] == 2


def test_it_creates_a_discover_job_and_reports_its_status(api):
    response = api.post(
        "/api/jobs/",
        {"kind": "discover", "parameters": {"low": 1, "high": 100}},
        format="json",
    )
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["status"] == "pending"
    assert body["parameters"] == {"low": 1, "high": 100}
    task = BACnetTask.objects.get(pk=body["id"])
    assert task.trigger == BACnetTask.Trigger.API
    status = api.get(f"/api/task-status/{task.pk}/").json()
    assert status["id"] == task.pk
    assert status["kind"] == "discover"
    assert api.get(f"/api/jobs/{task.pk}/").json()["id"] == task.pk


def test_it_creates_a_collect_job(api, point):
    response = api.post(
        "/api/jobs/", {"kind": "collect", "parameters": {"device_instances": [5]}}, format="json"
    )
    assert response.status_code == 201, response.content
    assert response.json()["kind"] == "collect"


def test_it_rejects_bad_job_requests_with_clear_400_json(api):
    cases = [
        {"kind": "reboot"},
        {},
        {"kind": "discover", "parameters": {"low": 10, "high": 1}},
        {"kind": "discover", "parameters": {"targets": ["not an address"]}},
        {"kind": "discover", "parameters": {"colour": "blue"}},
        {"kind": "discover", "parameters": ["low", 1]},
        {"kind": "enumerate", "parameters": {"device_instance": 424242}},
        {"kind": "enumerate", "parameters": {}},
        {"kind": "collect", "parameters": {"device_instances": [424242]}},
    ]
    for payload in cases:
        body = assert_json_error(api.post("/api/jobs/", payload, format="json"), 400)
        assert body, payload
    assert_json_error(api.post("/api/jobs/", "{not json", content_type="application/json"), 400)
    assert BACnetTask.objects.count() == 0


def test_it_answers_404_json_for_an_unknown_task_status(api):
    body = assert_json_error(api.get("/api/task-status/424242/"), 404)
    assert "detail" in body
    assert_json_error(api.get("/api/task-status/99999999999999999999999/"), 404)


def test_it_filters_jobs_by_kind_and_status(api):
    TaskFactory(kind="discover", status="failed")
    TaskFactory(kind="collect", status="completed")
    results = api.get("/api/jobs/?kind=collect&status=completed").json()["results"]
    assert [(j["kind"], j["status"]) for j in results] == [("collect", "completed")]
    assert_json_error(api.get("/api/jobs/?status=exploded"), 400)


def test_it_reports_the_backend_and_its_live_workers(api, settings):
    WorkerFactory(name="bacnet@site", backend=settings.BACNET_BACKEND)
    WorkerFactory(
        name="bacnet@gone",
        backend=settings.BACNET_BACKEND,
        last_heartbeat=timezone.now() - timedelta(hours=1),
    )
    body = api.get("/api/status/").json()
    assert body["backend"] == settings.BACNET_BACKEND
    assert body["worker_alive"] is True
    assert [w["name"] for w in body["workers"]] == ["bacnet@site"]


def test_it_enforces_csrf_for_session_authenticated_posts(user):
    browser = APIClient(enforce_csrf_checks=True)
    browser.force_login(user)
    response = browser.post("/api/jobs/", {"kind": "discover"}, format="json")
    body = assert_json_error(response, 403)
    assert "CSRF" in body["detail"]


def test_it_refuses_writes_to_read_only_endpoints(api, point):
    assert_json_error(api.delete(f"/api/devices/{point.device.device_instance}/"), 405)
    assert_json_error(api.post("/api/readings/", {}, format="json"), 405)


def test_it_lists_a_hundred_devices_in_a_bounded_number_of_queries(
    django_assert_max_num_queries,
):
    """GIVEN 100 devices WHEN the API lists them THEN each row's site comes with it (no
    query per device)."""
    for instance in range(100):
        DeviceFactory(device_instance=10_000 + instance)
    client = APIClient()
    client.force_authenticate(UserFactory())
    with django_assert_max_num_queries(12):
        response = client.get("/api/devices/", {"limit": 100})
    assert response.status_code == 200
    assert len(response.json()["results"]) == 100
