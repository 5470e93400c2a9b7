"""Times and units as an engineer reads them: one zone (TIME_ZONE) shown everywhere,
units as engineers write them with the BACnet name at hand, state points as named steps,
and a value that is no number said so in plain words."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime

import pytest
from django.urls import reverse
from django.utils import timezone

from discovery.units import unit_symbol
from tests.web.factories import DeviceFactory, PointFactory, ReadingFactory, TaskFactory

pytestmark = [pytest.mark.django_db, pytest.mark.postgres]

# 10:41 UTC is 11:41 in Zurich in winter.
MOMENT = datetime(2026, 11, 23, 10, 41, 0, tzinfo=UTC)


@pytest.fixture
def zurich(settings):
    settings.TIME_ZONE = "Europe/Zurich"
    timezone.activate("Europe/Zurich")
    yield
    timezone.deactivate()


def test_it_writes_units_as_engineers_do():
    assert unit_symbol("degrees-celsius") == "°C"
    assert unit_symbol("degreesCelsius") == "°C"
    assert unit_symbol("percent-relative-humidity") == "%RH"
    assert unit_symbol("kilowatt-hours") == "kWh"
    assert unit_symbol("pascals") == "Pa"
    assert unit_symbol("liters-per-second") == "L/s"
    assert unit_symbol("no-units") == ""
    assert unit_symbol("furlongs-per-fortnight") == "furlongs-per-fortnight"


def test_it_shows_units_with_the_bacnet_name_on_hover_and_in_the_api(logged_in, api):
    point = PointFactory(units="percent-relative-humidity")
    for url in (
        reverse("discovery:device-detail", args=[point.device.device_instance]),
        reverse("discovery:point-list"),
        reverse("discovery:point-detail", args=[point.pk]),
    ):
        html = logged_in.get(url).content.decode()
        assert '<span class="units" title="percent-relative-humidity">%RH</span>' in html, url
    body = api.get(f"/api/points/{point.pk}/").json()
    assert (body["units"], body["units_symbol"]) == ("percent-relative-humidity", "%RH")
    trend = api.get(f"/api/points/{point.pk}/trend/").json()["point"]
    assert (trend["units"], trend["units_name"]) == ("%RH", "percent-relative-humidity")


def test_it_shows_nan_and_infinity_as_no_number(logged_in):
    nan = PointFactory(last_value=None, last_value_text="nan", name="NaN sensor")
    inf = PointFactory(device=nan.device, last_value=None, last_value_text="-inf")
    html = logged_in.get(reverse("discovery:device-detail", args=[nan.device.device_instance]))
    text = html.content.decode()
    assert text.count('<span class="no-number">no number</span>') == 2
    assert ">nan<" not in text and ">-inf<" not in text
    page = logged_in.get(reverse("discovery:point-detail", args=[inf.pk])).content.decode()
    assert '<span class="no-number">no number</span>' in page


def test_it_describes_a_binary_point_for_a_step_chart_with_its_state_names(api):
    fan = PointFactory(object_type="binary-input", units="", state_texts=["Off", "On"])
    mode = PointFactory(object_type="multi-state-value", state_texts=["Unoccupied", "Occupied"])
    temp = PointFactory(object_type="analog-input")
    fan_chart = api.get(f"/api/points/{fan.pk}/trend/").json()["point"]
    assert (fan_chart["drawn_as"], fan_chart["states"], fan_chart["first_state"]) == (
        "steps",
        ["Off", "On"],
        0,
    )
    assert api.get(f"/api/points/{mode.pk}/trend/").json()["point"]["first_state"] == 1
    assert api.get(f"/api/points/{temp.pk}/trend/").json()["point"]["drawn_as"] == "line"


def test_it_shows_every_page_time_in_the_site_zone_with_the_zone(logged_in, zurich):
    device = DeviceFactory(last_seen=MOMENT, first_seen=MOMENT)
    PointFactory(device=device, last_read_at=MOMENT)
    job = TaskFactory(created_at=MOMENT)
    for url in (
        reverse("discovery:dashboard"),
        reverse("discovery:device-detail", args=[device.device_instance]),
        reverse("discovery:point-list"),
        reverse("discovery:job-list"),
        reverse("discovery:job-detail", args=[job.pk]),
    ):
        html = logged_in.get(url).content.decode()
        assert "Times in Europe/Zurich" in html, url
        assert "2026-11-23 11:41:00 CET" in html, url
        assert "10:41:00" not in html, url
        assert "a.m." not in html and "p.m." not in html, url


def test_it_gives_csv_and_api_times_in_the_site_zone(logged_in, api, zurich):
    point = PointFactory()
    ReadingFactory(point=point, timestamp=MOMENT)
    job = TaskFactory(created_at=MOMENT)
    response = logged_in.get(reverse("discovery:export-readings"), {"point": point.pk})
    text = b"".join(response.streaming_content).decode()
    _, row = list(csv.reader(io.StringIO(text)))
    assert row[0] == "2026-11-23T11:41:00+01:00"
    assert (
        api.get(f"/api/task-status/{job.pk}/")
        .json()["created_at"]
        .startswith("2026-11-23T11:41:00+01:00")
    )
    assert (
        api.get(f"/api/jobs/{job.pk}/").json()["created_at"].startswith("2026-11-23T11:41:00+01:00")
    )
    assert (
        api.get(f"/api/readings/?point={point.pk}")
        .json()["results"][0]["timestamp"]
        .startswith("2026-11-23T11:41:00+01:00")
    )


def test_it_labels_the_date_pickers_and_the_chart_with_the_zone(logged_in, zurich):
    point = PointFactory()
    html = logged_in.get(reverse("discovery:point-detail", args=[point.pk])).content.decode()
    assert "From (Europe/Zurich)" in html
    assert 'data-time-zone="Europe/Zurich"' in html
