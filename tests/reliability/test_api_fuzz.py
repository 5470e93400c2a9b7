"""Bad input to the product: the REST API fuzzed against its own OpenAPI schema
(/api/schema/, fetched with a token like any client) answers no request with a server
error, and the Start Discovery form answers bad input with a clear message.

REL_FUZZ_EXAMPLES sets the examples per API operation (default 15, 150 with REL_FULL=1)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.contrib.auth import get_user_model
from django.core.wsgi import get_wsgi_application
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from discovery.models import BACnetTask
from tests.conftest import skip_or_fail
from tests.reliability.conftest import env_int

try:
    import schemathesis
    from hypothesis import HealthCheck, settings
    from schemathesis.checks import not_a_server_error
except ImportError:  # pragma: no cover - listed in requirements-dev.txt
    skip_or_fail("needs schemathesis (pip install schemathesis)")

pytestmark = [pytest.mark.postgres]
# Each request commits on its own (transactional tests): one request's database error
# cannot poison the next as it would inside a test-wide transaction.

EXAMPLES = env_int("REL_FUZZ_EXAMPLES", 15, full=150)


@pytest.fixture
def token(transactional_db, settings):
    # Jobs the fuzzer requests stay rows: no broker, no worker needed.
    settings.BACNET_BACKEND = "database"
    from rest_framework.authtoken.models import Token

    from tests.web.factories import DeviceFactory, PointFactory, ReadingFactory, TaskFactory

    user = get_user_model().objects.create_user("fuzzer", password="unused-password-1")
    point = PointFactory(device=DeviceFactory())
    now = timezone.now().replace(microsecond=0)
    for minutes in range(5):
        ReadingFactory(point=point, timestamp=now - timedelta(minutes=minutes))
    TaskFactory()
    return Token.objects.create(user=user).key


@pytest.fixture
def wsgi_app(transactional_db):
    """The project's WSGI application, minus the connection closing at each request's
    start and end (as Django's test client does): the test's transaction must live."""
    from django.core import signals
    from django.db import close_old_connections

    signals.request_started.disconnect(close_old_connections)
    signals.request_finished.disconnect(close_old_connections)
    try:
        yield get_wsgi_application()
    finally:
        signals.request_started.connect(close_old_connections)
        signals.request_finished.connect(close_old_connections)


@pytest.fixture
def api_schema(token, wsgi_app):
    return schemathesis.openapi.from_wsgi(
        "/api/schema/", wsgi_app, headers={"Authorization": f"Token {token}"}
    )


schema = schemathesis.pytest.from_fixture("api_schema")


@schema.parametrize()
@settings(
    max_examples=EXAMPLES,
    deadline=None,
    database=None,  # no .hypothesis folder in the checkout
    suppress_health_check=list(HealthCheck),
)
def test_it_answers_fuzzed_api_requests_without_server_errors(case, token):
    case.call_and_validate(headers={"Authorization": f"Token {token}"}, checks=[not_a_server_error])


BAD_DISCOVERY_INPUT = [
    ({"low": "10", "high": "5"}, "greater than high"),
    ({"low": "-1"}, "Lowest instance"),
    ({"high": "4194304"}, "Highest instance"),
    ({"low": "abc"}, "Lowest instance"),
    ({"targets": "not-an-address"}, "not a BACnet/IP address"),
    ({"targets": "192.168.1.300"}, "not a BACnet/IP address"),
    ({"targets": "10.0.0.1:99999"}, "invalid UDP port"),
    ({"targets": "70000:0x0a"}, "network number"),
    ({"targets": " ".join(f"10.0.{i // 250}.{i % 250 + 1}" for i in range(300))}, "At most"),
    ({"targets": "x" * 9000}, "Target addresses"),
    ({"targets": "<script>alert(1)</script>"}, "not a BACnet/IP address"),
    ({"targets": "10.0.0.1\x00"}, ""),
    # Unicode digits pass str.isdigit() but not int(): these were 500s.
    ({"targets": "\u00b2:10.0.0.1"}, "network number"),
    ({"targets": "10.0.0.1:\u00b2"}, "invalid UDP port"),
    ({"targets": "\u0663:10.0.0.1"}, "network number"),
    ({"targets": "10.0.0.1:\u0663\u0664"}, "invalid UDP port"),
    ({"targets": "1" * 5000 + ":10.0.0.1"}, "at most 64 characters"),
    ({"targets": "10.0.0.1:" + "9" * 5000}, "at most 64 characters"),
    ({"targets": "20:" + "1" * 40}, "not a valid NET:ADDR"),
    ({"low": "\u00b2"}, "Lowest instance"),
    ({"high": "9" * 5000}, "Highest instance"),
]


@pytest.mark.django_db
@pytest.mark.parametrize(("data", "message"), BAD_DISCOVERY_INPUT)
def test_it_answers_bad_discovery_input_with_a_clear_error(data, message, settings):
    settings.BACNET_BACKEND = "database"
    user = get_user_model().objects.create_user("operator", password="unused-password-1")
    browser = Client()
    browser.force_login(user)
    response = browser.post(reverse("discovery:start-discovery"), data, HTTP_HX_REQUEST="true")
    assert response.status_code in (200, 400)
    content = response.content.decode()
    assert "Discovery not started" in content
    assert message in content
    assert "<script>alert" not in content
    assert not BACnetTask.objects.exists()


# Found by the fuzzing above: start/end with a UTC offset beyond PostgreSQL's +-15:59
# (valid ISO 8601) used to reach the database unconverted, a 500. Queries now get UTC.
@pytest.mark.parametrize(
    "where", ["api:reading-list", "api:hourly-stat-list", "api:point-trend", "export"]
)
def test_it_refuses_utc_offsets_postgresql_cannot_store_with_a_400(where, transactional_db):
    from tests.web.factories import PointFactory

    point = PointFactory()
    user = get_user_model().objects.create_user("operator", password="unused-password-1")
    browser = Client(raise_request_exception=False)
    browser.force_login(user)
    path = {
        "api:point-trend": reverse("api:point-trend", args=[point.pk]),
        "export": reverse("discovery:export-readings"),
    }.get(where) or reverse(where)
    # The first is a moment like any other once in UTC; the second is before year 1 in
    # UTC, which no datetime can hold: a clear 400.
    for start, status in (("2026-01-01T00:00:00+21:50", 200), ("0001-01-01T00:10:00+23:00", 400)):
        response = browser.get(path, {"start": start})
        assert response.status_code == status, (where, start, response.status_code)


BAD_TARGETS = [
    "\u00b2:10.0.0.1",
    "10.0.0.1:\u00b2",
    "\u0663\u0664:0x0a",
    "1" * 5000 + ":10.0.0.1",
    "10.0.0.1:" + "1" * 5000,
    "10.0.0.1:" + "1" * 60,
]


@pytest.mark.django_db
@pytest.mark.parametrize("target", BAD_TARGETS)
def test_it_answers_unicode_digits_and_huge_numbers_in_api_targets_with_a_400(target, settings):
    settings.BACNET_BACKEND = "database"
    user = get_user_model().objects.create_user("operator", password="unused-password-1")
    browser = Client(raise_request_exception=False)
    browser.force_login(user)
    response = browser.post(
        reverse("api:job-list"),
        {"kind": "discover", "parameters": {"targets": [target]}},
        content_type="application/json",
    )
    assert response.status_code == 400, response.content[:300]
    assert response.json()["detail"]
    assert not BACnetTask.objects.exists()


def _nested(depth: int) -> str:
    return '{"kind": "discover", "parameters": ' + "[" * depth + "]" * depth + "}"


@pytest.mark.django_db
@pytest.mark.parametrize("depth", [40, 950, 5000, 100_000])
def test_it_answers_deeply_nested_json_with_a_400_on_jobs_and_token(depth, settings):
    settings.BACNET_BACKEND = "database"
    user = get_user_model().objects.create_user("operator", password="unused-password-1")
    browser = Client(raise_request_exception=False)
    browser.force_login(user)
    response = browser.post(
        reverse("api:job-list"), _nested(depth), content_type="application/json"
    )
    assert response.status_code == 400, response.content[:300]
    assert "nested deeper than" in response.json()["detail"]
    # The token endpoint answers strangers: it must not 500 either.
    stranger = Client(raise_request_exception=False)
    body = '{"username": ' + "[" * depth + "]" * depth + ', "password": "x"}'
    response = stranger.post(reverse("api:token"), body, content_type="application/json")
    assert response.status_code == 400, response.content[:300]
    assert "nested deeper than" in response.json()["detail"]
    assert not BACnetTask.objects.exists()


@pytest.mark.django_db
def test_it_still_reads_ordinary_json_and_brackets_inside_strings():
    from discovery.api.parsers import MAX_DEPTH, json_depth

    assert json_depth('{"a": "[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[["}') == 1
    assert json_depth('["\\"", [[]]]') == 3
    assert json_depth("[" * MAX_DEPTH + "]" * MAX_DEPTH) == MAX_DEPTH
