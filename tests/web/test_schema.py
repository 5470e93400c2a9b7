"""The OpenAPI schema validates and describes every endpoint."""

from __future__ import annotations

import pytest
import yaml
from django.core.management import call_command

pytestmark = pytest.mark.django_db


def test_it_generates_a_valid_schema_without_warnings(tmp_path):
    target = tmp_path / "schema.yaml"
    call_command("spectacular", "--validate", "--fail-on-warn", "--file", str(target))
    schema = yaml.safe_load(target.read_text())
    paths = set(schema["paths"])
    for expected in [
        "/api/devices/",
        "/api/devices/{device_instance}/",
        "/api/points/",
        "/api/points/{id}/trend/",
        "/api/readings/",
        "/api/readings/export/",
        "/api/stats/hourly/",
        "/api/stats/daily/",
        "/api/jobs/",
        "/api/jobs/{id}/",
        "/api/task-status/{task_id}/",
        "/api/status/",
    ]:
        assert expected in paths, expected


def test_it_serves_the_schema_as_json_to_logged_in_users(api):
    response = api.get("/api/schema/")
    assert response.status_code == 200
    assert response.json()["info"]["title"] == "BACnet Monitor API"
    assert api.get("/api/schema/?format=yaml")["Content-Type"].startswith(
        "application/vnd.oai.openapi"
    )
