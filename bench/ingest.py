"""Ingest: readings stored per second in PostgreSQL, batches of 1,000 to 10,000.

The product path is ``store_readings`` (what every collection cycle calls: readings in
bulk plus each point's latest value); its readings insert alone (``bulk_create``) is
shown too. Baselines on the same table: row-by-row ``save()`` (on a 1,000-row slice)
and PostgreSQL ``COPY``. The input of ``store_readings`` (the client's
``DeviceReadResult`` objects) is built before the clock starts, as the client builds it."""

from __future__ import annotations

import io
import itertools
from collections.abc import Callable
from datetime import datetime, timedelta
from functools import partial

from django.db import connection, transaction
from django.utils import timezone

from bench import candidates
from bench.common import (
    Options,
    PartResult,
    Row,
    clear_all_data,
    log,
    rate_stat,
    repeat,
    thousands,
    truncate,
)
from bench.data import make_devices
from discovery.bacnet_types import DeviceReadResult, PointValue
from discovery.models import BACnetPoint, BACnetReading
from discovery.services import partitions
from discovery.services.storage import StoredReadings, store_readings

TITLE = "Ingest: readings stored per second"
POINTS_PER_DEVICE = 100
SAVE_SLICE = 1000
TARGET_RATE = 50_000
CLOSE_TO_COPY = 0.5  # "close to COPY": at least half its rate


class Cycles:
    """Collection-cycle inputs for the first ``size`` points, one new timestamp per call."""

    def __init__(self, points: list[tuple[int, int, str, int]]) -> None:
        self.points = points  # (point id, device instance, object type, object instance)
        start = timezone.now().replace(microsecond=0) - timedelta(days=30)
        self.times = (start + timedelta(minutes=k) for k in itertools.count())

    def cycle(self, size: int) -> tuple[list[DeviceReadResult], dict, datetime]:
        chosen = self.points[:size]
        by_device: dict[int, DeviceReadResult] = {}
        keys = {}
        for k, (pk, device, object_type, instance) in enumerate(chosen):
            result = by_device.setdefault(device, DeviceReadResult(instance=device))
            result.values.append(
                PointValue(object_type, instance, value=20.0 + (k % 97) / 10, status_flags=0)
            )
            keys[(device, object_type, instance)] = pk
        return list(by_device.values()), keys, next(self.times)


def _rows(size: int, cycles: Cycles) -> tuple[list[int], datetime]:
    return [p[0] for p in cycles.points[:size]], next(cycles.times)


def _on_rows(store: Callable[[list[int], datetime], int], cycles: Cycles, size: int) -> int:
    return store(*_rows(size, cycles))


def _product_store(cycles: Cycles, size: int) -> StoredReadings:
    return store_readings(*cycles.cycle(size))


def _orm_store(cycles: Cycles, size: int) -> StoredReadings:
    return candidates.store_readings_orm(*cycles.cycle(size))


def _save_one_by_one(point_ids: list[int], at: datetime) -> int:
    for k, pk in enumerate(point_ids):
        BACnetReading(
            point_id=pk, timestamp=at, value=20.0 + (k % 97) / 10, value_text="", status_flags=0
        ).save()
    return len(point_ids)


def _bulk_create(point_ids: list[int], at: datetime) -> int:
    with transaction.atomic():
        BACnetReading.objects.bulk_create(
            [
                BACnetReading(
                    point_id=pk,
                    timestamp=at,
                    value=20.0 + (k % 97) / 10,
                    value_text="",
                    status_flags=0,
                )
                for k, pk in enumerate(point_ids)
            ],
            batch_size=5000,
            ignore_conflicts=True,
        )
    return len(point_ids)


def _copy(point_ids: list[int], at: datetime) -> int:
    stamp = at.isoformat()
    buffer = io.StringIO()
    for k, pk in enumerate(point_ids):
        buffer.write(f"{pk}\t{stamp}\t{20.0 + (k % 97) / 10!r}\t\t0\n")
    buffer.seek(0)
    table = connection.ops.quote_name(BACnetReading._meta.db_table)
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.cursor.copy_expert(
            f"COPY {table} (point_id, timestamp, value, value_text, status_flags) FROM STDIN",
            buffer,
        )
    return len(point_ids)


def run(options: Options) -> PartResult:
    result = PartResult("ingest", TITLE)
    sizes = [1_000, 5_000, 10_000]
    runs = options.repeats(7 if options.full else 5)
    clear_all_data()
    devices = max(sizes) // POINTS_PER_DEVICE
    make_devices(devices, POINTS_PER_DEVICE)
    points = list(
        BACnetPoint.objects.order_by("id").values_list(
            "id", "device__device_instance", "object_type", "object_instance"
        )
    )
    cycles = Cycles(points)
    if partitions.is_partitioned():
        # The cycles' days get their partitions, as the maintenance task makes them ahead
        # in production (else they would all land in the default partition).
        start = timezone.now() - timedelta(days=31)
        partitions.ensure_partitions(start, start + timedelta(days=3))
    for size in sizes:
        log(f"ingest: batches of {size:,}")
        truncate(BACnetReading)
        product = rate_stat(repeat(partial(_product_store, cycles, size), runs, warmup=1), size)
        with candidates.points_fillfactor(candidates.DEFAULT_FILLFACTOR):
            no_hot = rate_stat(repeat(partial(_product_store, cycles, size), runs, warmup=1), size)
        inserts = rate_stat(repeat(partial(_on_rows, _bulk_create, cycles, size), runs), size)
        copy = rate_stat(repeat(partial(_on_rows, _copy, cycles, size), runs), size)
        slice_ = min(size, SAVE_SLICE)
        few = max(3, runs // 2)
        save = rate_stat(repeat(partial(_on_rows, _save_one_by_one, cycles, slice_), few), slice_)
        orm = rate_stat(
            repeat(partial(_orm_store, cycles, slice_), few),
            slice_,
        )
        label = f"batch {thousands(size)}"
        sizes_text = f"{thousands(size)} readings of {thousands(size)} points"
        met = product.median >= TARGET_RATE and product.median >= CLOSE_TO_COPY * copy.median
        target = f">= {TARGET_RATE:,} rows/s and >= {CLOSE_TO_COPY}x COPY"
        result.rows += [
            Row(
                f"store_readings, {label}", sizes_text, "rows/s", product, "COPY", copy, target, met
            ),
            Row(
                f"store_readings, {label}",
                sizes_text,
                "rows/s",
                product,
                f"save() one by one ({thousands(slice_)} rows)",
                save,
            ),
            Row(
                f"store_readings, {label}",
                sizes_text,
                "rows/s",
                product,
                f"previous store: bulk_create + bulk_update ({thousands(slice_)} rows)",
                orm,
            ),
            Row(
                f"store_readings, {label}",
                sizes_text,
                "rows/s",
                product,
                "same, points table at fillfactor 100 (no HOT updates)",
                no_hot,
            ),
            Row(
                f"readings bulk_create alone, {label}", sizes_text, "rows/s", inserts, "COPY", copy
            ),
        ]
    result.notes.append(
        "store_readings = the product's cycle store: COPY into a staging table, readings "
        "INSERT ... SELECT ... ON CONFLICT DO NOTHING, every point's latest value with one "
        "UPDATE ... FROM, the devices' online state, in one transaction. "
        "Each run is a new cycle timestamp on a table that keeps growing within a batch size."
    )
    result.notes.append(
        "previous store = bench/candidates.py::store_readings_orm, the cycle store before "
        "the COPY path (commit 26a9e5a), on a 1,000-row slice (its rate does not depend "
        "on the batch). fillfactor 100 = the points table rewritten at PostgreSQL's default "
        "for that measure (the product sets 50, migration 0004, so that the per-cycle "
        "update of each point's latest value is a HOT update)."
    )
    return result
