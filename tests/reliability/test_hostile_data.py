"""Hostile data from devices, discovered and read over BACnet by a real worker: markup
and script in names, 10 kB strings, NUL bytes, odd Unicode, NaN and infinity. Stored
safely, shown escaped on every page, exported inert in CSV."""

from __future__ import annotations

import csv
import io

import pytest
from django.contrib.auth import get_user_model
from django.test import Client
from django.urls import reverse

from discovery.csv_export import FORMULA_PREFIXES
from discovery.jobs import request_job
from discovery.models import BACnetDevice, BACnetReading, BACnetTask
from discovery.simulator.spec import HOSTILE_LONG, HOSTILE_SCRIPT, HOSTILE_UNICODE
from tests.site_fixtures import start_site
from tests.timing import scaled
from tests.worker_fixtures import start_database_worker, wait_for_job, worker_env

pytestmark = [pytest.mark.postgres, pytest.mark.slow, pytest.mark.django_db(transaction=True)]

ESCAPED = "&lt;script&gt;alert(1)&lt;/script&gt;"
# Device names a spreadsheet would run as formulas (the simulator's --name-pattern).
FORMULA_NAME = '=HYPERLINK("http://evil.example/?x=1","open") {instance}'


@pytest.fixture(scope="module")
def sites():
    hostile = start_site(devices=1, objects=4, faults=True)
    formula = start_site(
        devices=1,
        objects=3,
        extra_args=[f"--name-pattern={FORMULA_NAME}", "--first-instance=9001"],
    )
    yield hostile, formula
    formula.stop()
    hostile.stop()


def _job(kind: str, parameters: dict | None = None) -> BACnetTask:
    task = wait_for_job(request_job(kind, parameters, backend="database").pk, scaled(60))
    assert task.status == "completed", task.error_message
    return task


@pytest.fixture
def collected(sites):
    """The sites discovered and read once by a database-backend worker."""
    hostile, formula = sites
    worker = start_database_worker("rel-hostile", worker_env(hostile, BACNET_BACKEND="database"))
    try:
        discovery = _job("discover")
        _job("discover", {"targets": [formula.devices[0]["address"]]})
        cycle = _job("collect")
    finally:
        worker.stop()
    device = BACnetDevice.objects.get(device_instance=hostile.device("hostile")["instance"])
    return {"device": device, "discovery": discovery, "cycle": cycle}


@pytest.fixture
def browser(db) -> Client:
    user = get_user_model().objects.create_user("operator", password="unused-password-1")
    client = Client()
    client.force_login(user)
    return client


def test_it_stores_hostile_device_strings_safely(collected):
    device = collected["device"]
    assert device.name.startswith(HOSTILE_SCRIPT)  # kept as text: escaping is the page's job
    assert device.description == "beforeafter"  # PostgreSQL takes no NUL: dropped
    assert device.location == HOSTILE_UNICODE
    assert device.model_name == HOSTILE_LONG[:255]
    points = device.points.all()
    assert points.count() == 6  # the simulator gives the hostile device six objects
    descriptions = {p.description for p in points}
    assert HOSTILE_LONG in descriptions  # a 10 kB description is kept whole
    assert not any("\x00" in p.name or "\x00" in p.description for p in points)


def test_it_keeps_nan_and_infinity_out_of_the_numbers(collected):
    device = collected["device"]
    readings = BACnetReading.objects.filter(point__device=device, point__object_type="analog-input")
    values = {r.point.object_instance: (r.value, r.value_text) for r in readings}
    assert values, "no analog readings from the hostile device"
    odd = [(v, text) for v, text in values.values() if v is None]
    assert len(odd) >= 1
    assert all(text for _, text in odd)  # said in words instead
    assert collected["cycle"].result["readings"] >= device.points.count()


def test_it_escapes_hostile_strings_on_every_page(collected, browser):
    device = collected["device"]
    urls = [
        reverse("discovery:dashboard"),
        reverse("discovery:dashboard") + "?q=%3Cscript%3E",
        reverse("discovery:device-table"),
        reverse("discovery:device-detail", args=[device.device_instance]),
        reverse("discovery:device-points", args=[device.device_instance]),
        reverse("discovery:point-list"),
        reverse("discovery:job-list"),
        reverse("discovery:job-detail", args=[collected["discovery"].pk]),
        reverse("discovery:job-detail", args=[collected["cycle"].pk]),
    ]
    urls += [reverse("discovery:point-detail", args=[p.pk]) for p in device.points.all()]
    shown = 0
    for url in urls:
        response = browser.get(url)
        assert response.status_code == 200, url
        content = response.content.decode()
        assert "<script>alert" not in content, url
        shown += ESCAPED in content
    # The name is on the list, the device page and each point page at least.
    assert shown >= 2 + device.points.count()


def test_it_serves_hostile_strings_as_json_data_in_the_api(collected, browser):
    device = collected["device"]
    response = browser.get(reverse("api:device-detail", args=[device.device_instance]))
    assert response.status_code == 200
    assert response["Content-Type"].startswith("application/json")
    assert response["X-Content-Type-Options"] == "nosniff"
    assert response.json()["name"] == device.name


def _csv(browser: Client, **query: object) -> list[list[str]]:
    response = browser.get(reverse("discovery:export-readings"), query)
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/csv")
    body = b"".join(response.streaming_content).decode("utf-8")
    return list(csv.reader(io.StringIO(body)))


def test_it_exports_hostile_and_formula_strings_inert(collected, browser, sites):
    _, formula = sites
    device = collected["device"]
    rows = _csv(browser, device=device.pk)
    header, data = rows[0], rows[1:]
    assert len(data) == BACnetReading.objects.filter(point__device=device).count()
    assert len({len(row) for row in rows}) == 1  # NUL, newlines, quotes: no broken row
    name = header.index("device_name")
    assert {row[name] for row in data} == {device.name}

    formula_device = BACnetDevice.objects.get(device_instance=formula.devices[0]["instance"])
    assert formula_device.name.startswith("=")
    formula_rows = _csv(browser, device=formula_device.pk)[1:]
    assert formula_rows
    for row in rows[1:] + formula_rows:
        for cell in row:
            assert not cell.startswith(FORMULA_PREFIXES) or _is_number(cell), cell
    assert {row[name] for row in formula_rows} == {"'" + formula_device.name}


def _is_number(cell: str) -> bool:
    try:
        float(cell)
    except ValueError:
        return False
    return True
