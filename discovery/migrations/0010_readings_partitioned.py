"""Readings in a table partitioned by time (PostgreSQL only; SQLite keeps its plain table).

The plain table is renamed ``discovery_bacnetreading_legacy``, the partitioned table takes
its name (same columns, constraint and index names, so Django's state is unchanged), and
the old rows move over in batches, each its own transaction. Non-atomic on purpose: if
the move is interrupted (a large installation), run ``migrate`` again, or
``manage.py partition_readings``, and it goes on from where it stopped.

Reverse: every reading is copied back into one plain table (in one go).
"""

from django.db import migrations


def partition_readings(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    from django.db import transaction
    from django.utils import timezone

    from discovery.services import partitions

    with transaction.atomic(), schema_editor.connection.cursor() as cursor:
        partitions.create_partitioned_table(cursor)
    partitions.ensure_ahead(timezone.now())
    partitions.migrate_legacy()


def unpartition_readings(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    from django.db import transaction

    from discovery.services import partitions

    with transaction.atomic(), schema_editor.connection.cursor() as cursor:
        partitions.create_plain_table(cursor)


class Migration(migrations.Migration):
    atomic = False

    dependencies = [
        ("discovery", "0009_sites"),
    ]

    operations = [migrations.RunPython(partition_readings, unpartition_readings)]
