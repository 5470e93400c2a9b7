"""Everything a device sends is untrusted: it renders as text on every page and in the
chart data, never as markup."""

from __future__ import annotations

from pathlib import Path

import pytest
from django.conf import settings
from django.urls import reverse

from discovery.models import BACnetTask
from tests.web.factories import DeviceFactory, PointFactory, TaskFactory, WorkerFactory

pytestmark = [pytest.mark.django_db, pytest.mark.postgres]

HOSTILE = "<script>alert(1)</script>"
ESCAPED = "&lt;script&gt;alert(1)&lt;/script&gt;"


@pytest.fixture
def hostile_site():
    device = DeviceFactory(
        name=HOSTILE,
        vendor_name=HOSTILE,
        model_name=HOSTILE,
        description=HOSTILE,
        location=HOSTILE,
        last_error=HOSTILE,
    )
    point = PointFactory(
        device=device,
        name=HOSTILE,
        description=HOSTILE,
        units=HOSTILE,
        last_value=None,
        last_value_text=HOSTILE,
    )
    job = TaskFactory(
        status=BACnetTask.Status.FAILED,
        progress=HOSTILE,
        error_message=HOSTILE,
        worker_name=HOSTILE,
        parameters={"targets": [HOSTILE]},
        result={"error": HOSTILE},
    )
    WorkerFactory(name=HOSTILE, hostname=HOSTILE, backend=settings.BACNET_BACKEND)
    return {"device": device, "point": point, "job": job}


def test_it_escapes_a_hostile_device_name_on_every_page(logged_in, hostile_site):
    device, point, job = hostile_site["device"], hostile_site["point"], hostile_site["job"]
    urls = [
        reverse("discovery:dashboard"),
        reverse("discovery:dashboard") + "?q=%3Cscript%3E",
        reverse("discovery:device-table"),
        reverse("discovery:recent-jobs"),
        reverse("discovery:device-detail", args=[device.device_instance]),
        reverse("discovery:device-points", args=[device.device_instance]),
        reverse("discovery:point-list"),
        reverse("discovery:point-list") + "?q=%3Cscript%3E",
        reverse("discovery:point-detail", args=[point.pk]),
        reverse("discovery:job-list"),
        reverse("discovery:job-table"),
        reverse("discovery:job-detail", args=[job.pk]),
    ]
    for url in urls:
        content = logged_in.get(url).content.decode()
        assert HOSTILE not in content, url
        assert ESCAPED in content or "&quot;&lt;script&gt;" in content, url


def test_it_sends_hostile_strings_to_the_chart_as_json_data(logged_in, hostile_site):
    point = hostile_site["point"]
    response = logged_in.get(reverse("api:point-trend", args=[point.pk]))
    assert response["Content-Type"] == "application/json"
    assert response["X-Content-Type-Options"] == "nosniff"
    body = response.json()
    assert HOSTILE in body["point"]["label"]
    assert body["point"]["units"] == HOSTILE


def test_it_never_inserts_strings_as_html_in_its_scripts():
    script = (Path(settings.BASE_DIR) / "discovery/static/discovery/app.js").read_text()
    for sink in ("innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval("):
        assert sink not in script
    assert "textContent" in script
