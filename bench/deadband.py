"""Store on change: readings written in a day of minute cycles for the simulator's site
(its own point plan and values, without the BACnet round trips) with realistic rules,
against storing every reading, through the product's ``store_readings``."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any

from django.conf import settings

from bench.common import Options, PartResult, Row, Stat, clear_all_data, log, thousands, timed
from discovery.bacnet_types import DeviceReadResult, PointInfo, PointValue
from discovery.models import BACnetDevice, BACnetPoint, BACnetReading
from discovery.services.storage import store_readings, upsert_points
from discovery.simulator.plan import plan_site
from discovery.simulator.spec import SiteSpec

TITLE = "Store on change: readings written per day, simulator's site"
START = datetime(2026, 6, 1, tzinfo=UTC)
# Realistic: analog within 1 % of the last stored value is noise; everything at least
# every 15 minutes (analog) or hourly (states, which store any change anyway).
ANALOG = ("analog-input", "analog-value")
RULES = {
    **{t: {"deadband_relative": 0.01, "heartbeat_minutes": 15} for t in ANALOG},
    **{
        t: {"heartbeat_minutes": 60}
        for t in ("binary-input", "binary-value", "multi-state-input", "multi-state-value")
    },
}  # fmt: skip


def _site(vary: bool) -> tuple[list[Any], dict[tuple[int, str, int], int]]:
    clear_all_data()
    devices = plan_site(SiteSpec(devices=10, objects=20, vary=vary))
    keys: dict[tuple[int, str, int], int] = {}
    for spec in devices:
        device = BACnetDevice.objects.create(
            device_instance=spec.instance, address=f"127.0.0.1:{47809 + len(keys)}"
        )
        upsert_points(device, [PointInfo(p.object_type, p.instance) for p in spec.points])
    for pk, instance, object_type, object_instance in BACnetPoint.objects.values_list(
        "pk", "device__device_instance", "object_type", "object_instance"
    ):
        keys[(instance, object_type, object_instance)] = pk
    return devices, keys


def _value(point: Any, t: float) -> float:
    value = point.value_at(t)
    if value == "active":
        return 1.0
    if value == "inactive":
        return 0.0
    return float(value)


def _day(vary: bool, rules: dict, minutes: int) -> tuple[int, float]:
    """Readings written and seconds spent storing ``minutes`` cycles."""
    settings.BACNET_STORE_RULES = rules
    devices, keys = _site(vary)
    spent = 0.0
    for minute in range(minutes):
        at = START + timedelta(minutes=minute)
        results = [
            DeviceReadResult(
                spec.instance,
                values=[
                    PointValue(p.object_type, p.instance, _value(p, at.timestamp()))
                    for p in spec.points
                ],
            )
            for spec in devices
        ]
        seconds, _ = timed(partial(store_readings, results, keys, at))
        spent += seconds
    return BACnetReading.objects.count(), spent / minutes


def run(options: Options) -> PartResult:
    result = PartResult("deadband", TITLE)
    minutes = 1440 if options.full else 360
    saved = settings.BACNET_STORE_RULES
    try:
        for vary, label in ((False, "steady values"), (True, "--vary values")):
            log(f"deadband: {label}, every reading")
            every, every_s = _day(vary, {}, minutes)
            log(f"deadband: {label}, with rules")
            kept, kept_s = _day(vary, RULES, minutes)
            scale = 1440 / minutes
            sizes = f"200 points, {minutes} minute cycles (x{scale:g} to a day)"
            result.rows += [
                Row(f"readings written per day, {label}", sizes, "count",
                    Stat([kept * scale]), "every reading stored", Stat([every * scale])),
                Row(f"cycle store time, {label}", sizes, "s", Stat([kept_s]),
                    "every reading stored", Stat([every_s])),
            ]  # fmt: skip
    finally:
        settings.BACNET_STORE_RULES = saved
    result.notes.append(
        f"Rules: {RULES}. The simulator's analog values change with periods of 30-120 s "
        "when --vary is on (faster than the minute cycle: close to the worst case for a "
        "deadband); without it they hold steady (the best case)."
    )
    result.notes.append(f"{thousands(200)} points = 10 devices x 20 objects (six object types).")
    return result
