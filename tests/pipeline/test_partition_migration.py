"""Migration 0010 on an installation that already has readings: back to the plain table,
readings written there, forward again; every reading ends in its day's partition once."""

from datetime import UTC, datetime, timedelta

import pytest
from django.core.management import call_command
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

from discovery.models import BACnetDevice, BACnetPoint, BACnetReading
from discovery.services import partitions

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(connection.vendor != "postgresql", reason="PostgreSQL partitions"),
]

BEFORE = [("discovery", "0008_device_field_state")]
T0 = datetime(2026, 10, 1, tzinfo=UTC)


def migrate_to(target):
    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate(target)


def test_it_moves_an_existing_installations_readings_into_partitions():
    device = BACnetDevice.objects.create(device_instance=1001, address="127.0.0.1:47809")
    point = BACnetPoint.objects.create(device=device, object_type="analog-input", object_instance=1)
    try:
        migrate_to(BEFORE)
        assert not partitions.is_partitioned()
        with connection.cursor() as cursor:
            cursor.execute(
                "INSERT INTO discovery_bacnetreading (point_id, timestamp, value, value_text) "
                "SELECT %s, %s + i * interval '2 hours', i, '' FROM generate_series(0, 59) i",
                [point.pk, T0],
            )
        call_command("migrate", verbosity=0)
        assert partitions.is_partitioned()
        assert BACnetReading.objects.count() == 60
        assert sorted(BACnetReading.objects.values_list("value", flat=True)) == [
            float(i) for i in range(60)
        ]
        days = {p.start for p in partitions.partitions() if p.start < T0 + timedelta(days=6)}
        assert days == {T0 + timedelta(days=d) for d in range(5)}  # 60 x 2 h = 5 days
        with connection.cursor() as cursor:
            cursor.execute(f"SELECT count(*) FROM {partitions.DEFAULT_PARTITION}")  # noqa: S608
            assert cursor.fetchone()[0] == 0
        # New readings get new ids after the moved ones.
        new = BACnetReading.objects.create(point=point, timestamp=T0 + timedelta(days=9), value=1)
        assert new.pk > max(BACnetReading.objects.exclude(pk=new.pk).values_list("pk", flat=True))
        # And back: every reading copied into one plain table again.
        migrate_to(BEFORE)
        assert not partitions.is_partitioned()
        with connection.cursor() as cursor:
            cursor.execute("SELECT count(*) FROM discovery_bacnetreading")
            assert cursor.fetchone()[0] == 61
    finally:
        call_command("migrate", verbosity=0)
