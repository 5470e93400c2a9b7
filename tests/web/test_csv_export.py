"""CSV export: streamed, filtered like the API, and inert in spreadsheets."""

from __future__ import annotations

import csv
import io
from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from discovery.csv_export import neutralise
from tests.web.factories import DeviceFactory, PointFactory, ReadingFactory

pytestmark = [pytest.mark.django_db, pytest.mark.postgres]


def rows_of(response) -> list[list[str]]:
    assert response.streaming
    assert response["Content-Type"].startswith("text/csv")
    text = b"".join(response.streaming_content).decode()
    return list(csv.reader(io.StringIO(text)))


@pytest.mark.parametrize(
    ("cell", "expected"),
    [
        ('=HYPERLINK("http://x")', '\'=HYPERLINK("http://x")'),
        ("+41 22", "'+41 22"),
        ("-1+2", "'-1+2"),
        ("@SUM(A1)", "'@SUM(A1)"),
        ("\t=1", "'\t=1"),
        ("\r=1", "'\r=1"),
        ("AHU-1", "AHU-1"),
        ("", ""),
        (-5.5, -5.5),
        (None, None),
    ],
)
def test_it_neutralises_cells_that_start_a_formula(cell, expected):
    assert neutralise(cell) == expected


def test_it_exports_a_points_readings_with_formula_cells_neutralised(logged_in):
    device = DeviceFactory(name="=cmd|' /C calc'!A0", device_instance=77)
    point = PointFactory(device=device, name="@risky", units="+units")
    ReadingFactory(point=point, value=-3.5, value_text="-inactive", status_flags=1)
    ReadingFactory(point=point, value=4.0)
    ReadingFactory(value=99.0)  # another point's reading
    response = logged_in.get(reverse("discovery:export-readings"), {"point": point.pk})
    assert f"readings-point-{point.pk}.csv" in response["Content-Disposition"]
    header, *rows = rows_of(response)
    assert header[:3] == ["timestamp", "device_instance", "device_name"]
    assert len(rows) == 2
    assert [row[6] for row in rows] == ["-3.5", "4.0"] or [row[6] for row in rows] == [
        "4.0",
        "-3.5",
    ]
    by_value = {row[6]: row for row in rows}
    assert by_value["-3.5"][2] == "'=cmd|' /C calc'!A0"
    assert by_value["-3.5"][5] == "'@risky"
    assert by_value["-3.5"][7] == "'-inactive"
    assert by_value["-3.5"][8] == "'+units"


def test_it_exports_a_device_or_a_time_range(logged_in):
    now = timezone.now()
    point = PointFactory()
    other = PointFactory()
    ReadingFactory(point=point, timestamp=now - timedelta(hours=3))
    ReadingFactory(point=point, timestamp=now - timedelta(minutes=5))
    ReadingFactory(point=other, timestamp=now - timedelta(minutes=5))
    by_device = logged_in.get(reverse("discovery:export-readings"), {"device": point.device.pk})
    assert len(rows_of(by_device)) == 1 + 2
    start = (now - timedelta(hours=1)).isoformat()
    by_time = logged_in.get(reverse("discovery:export-readings"), {"start": start})
    assert len(rows_of(by_time)) == 1 + 2


def test_it_streams_the_same_export_from_the_api(api):
    point = PointFactory()
    ReadingFactory.create_batch(3, point=point)
    response = api.get("/api/readings/export/", {"point": point.pk})
    assert len(rows_of(response)) == 1 + 3


def test_it_rejects_a_bad_export_range_with_400_json(logged_in):
    response = logged_in.get(
        reverse("discovery:export-readings"), {"start": "2026-02-01", "end": "2026-01-01"}
    )
    assert response.status_code == 400
    assert "start must be before end." in str(response.json())
    response = logged_in.get(reverse("discovery:export-readings"), {"start": "soon"})
    assert response.status_code == 400


def test_it_asks_for_a_login_before_exporting(client):
    response = client.get(reverse("discovery:export-readings"))
    assert response.status_code == 302


def test_it_names_the_status_flags_of_each_reading(logged_in):
    point = PointFactory()
    ReadingFactory(point=point, value=1.0, status_flags=1 | 4)
    header, row = rows_of(logged_in.get(reverse("discovery:export-readings"), {"point": point.pk}))
    assert header[-2:] == ["status_flags", "status_flag_names"]
    assert row[-2:] == ["5", "in-alarm;overridden"]


def test_it_names_a_devices_export_by_its_instance(logged_in, api):
    device = DeviceFactory(device_instance=4242)
    ReadingFactory(point=PointFactory(device=device))
    page = logged_in.get(reverse("discovery:device-detail", args=[4242])).content.decode()
    assert "?device_instance=4242" in page
    for response in (
        logged_in.get(reverse("discovery:export-readings"), {"device_instance": 4242}),
        logged_in.get(reverse("discovery:export-readings"), {"device": device.pk}),
        api.get("/api/readings/export/", {"device": device.pk}),
    ):
        assert 'filename="readings-device-4242.csv"' in response["Content-Disposition"]
