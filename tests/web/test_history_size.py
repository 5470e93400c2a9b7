"""The size of the readings history in the API: rows, bytes, growth per day, the points
and devices that write the most, without counting the readings table."""

from datetime import timedelta

import pytest
from django.db import connection
from django.utils import timezone

from discovery.models import BACnetReading
from discovery.services.rollups import roll_up
from tests.web.factories import PointFactory

pytestmark = pytest.mark.django_db


def test_it_reports_rows_bytes_and_growth_per_day_and_per_point(api):
    busy, quiet = PointFactory(), PointFactory()
    today = timezone.now().replace(hour=0, minute=0, second=0, microsecond=0)
    for day in (1, 2):
        start = today - timedelta(days=day)
        BACnetReading.objects.bulk_create(
            BACnetReading(point=busy, timestamp=start + timedelta(minutes=m), value=1.0)
            for m in range(60)
        )
        BACnetReading.objects.create(point=quiet, timestamp=start, value=2.0)
    roll_up("day")
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute("ANALYZE discovery_bacnetreading")
    data = api.get("/api/history-size/", {"days": 7}).json()
    assert data["rows_per_day"] == 61
    assert [d["rows"] for d in data["per_day"]] == [61, 61]
    assert [p["point"] for p in data["points"]] == [busy.pk, quiet.pk]
    assert data["points"][0]["rows"] == 120
    if connection.vendor == "postgresql":
        assert data["partitioned"] and data["bytes"] > 0
        assert data["points"][0]["bytes"] > 0


def test_it_refuses_a_bad_number_of_days(api):
    assert api.get("/api/history-size/", {"days": 0}).status_code == 400


def test_it_shows_the_history_size_on_a_page(logged_in):
    point = PointFactory(name="Supply temperature")
    BACnetReading.objects.create(
        point=point, timestamp=timezone.now() - timedelta(days=1), value=1.0
    )
    roll_up("day")
    page = logged_in.get("/history/").content.decode()
    assert "Readings history" in page and "Supply temperature" in page
