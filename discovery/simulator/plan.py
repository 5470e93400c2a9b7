"""The plan of a simulated site: which devices, which objects, what they are called.

Deterministic for a given `SiteSpec` (the seed only sets the phases and periods of the
values), so two runs with the same options describe the same site.
"""

from __future__ import annotations

import math
import random
from typing import Any

from .spec import (
    BIG,
    HOSTILE,
    HOSTILE_LONG,
    HOSTILE_NUL,
    HOSTILE_SCRIPT,
    HOSTILE_UNICODE,
    MALFORMED,
    NO_RPM,
    NO_SEGMENTATION,
    NO_SEGMENTATION_MAX_APDU,
    NO_SEGMENTATION_OBJECTS,
    NORMAL,
    ROUTED,
    ROUTED_DEVICES,
    ROUTED_NETWORK,
    SILENT,
    DeviceSpec,
    PointSpec,
    SiteSpec,
)

# Point templates, cycled per object type: (label, units or texts, base, amplitude).
_ANALOG_INPUTS = [
    ("Zone Temp", "degrees-celsius", 21.0, 2.0),
    ("Humidity", "percent-relative-humidity", 45.0, 8.0),
    ("Power", "kilowatts", 120.0, 30.0),
    ("Supply Air Temp", "degrees-celsius", 14.0, 1.5),
    ("CO2", "parts-per-million", 600.0, 150.0),
    ("Static Pressure", "pascals", 250.0, 40.0),
]
_ANALOG_VALUES = [
    ("Setpoint", "degrees-celsius", 22.0, 0.5),
    ("Valve Position", "percent", 50.0, 25.0),
    ("Energy Today", "kilowatt-hours", 800.0, 100.0),
    ("Fan Speed Command", "percent", 70.0, 20.0),
]
_BINARY_INPUTS = [
    ("Fan Status", "Off", "On"),
    ("Filter Alarm", "Normal", "Alarm"),
    ("Occupancy Sensor", "Unoccupied", "Occupied"),
]
_BINARY_VALUES = [
    ("Fan Enable", "Disabled", "Enabled"),
    ("Night Mode", "Day", "Night"),
    ("Pump Command", "Stop", "Start"),
]
_MULTI_STATE_INPUTS = [
    ("Operating Mode", ["Off", "Heat", "Cool", "Auto"]),
    ("Fan Speed", ["Off", "Low", "Medium", "High"]),
]
_MULTI_STATE_VALUES = [
    ("Occupancy Mode", ["Occupied", "Unoccupied", "Standby"]),
    ("Season", ["Winter", "Spring", "Summer", "Autumn"]),
]

OBJECT_TYPES = (
    "analog-input",
    "analog-value",
    "binary-input",
    "binary-value",
    "multi-state-input",
    "multi-state-value",
)
_PREFIX = {
    "analog-input": "AI",
    "analog-value": "AV",
    "binary-input": "BI",
    "binary-value": "BV",
    "multi-state-input": "MSI",
    "multi-state-value": "MSV",
}

_MODELS = ["SIM-VAV-100", "SIM-AHU-200", "SIM-MTR-300", "SIM-FCU-400"]
_LOCATIONS = ["Building A, Floor 1", "Building A, Floor 2", "Building B, Roof", "Plant Room"]


def make_points(
    count: int,
    *,
    device_instance: int,
    vary: bool,
    rng: random.Random,
    flags: bool,
    offset: float = 0.0,
) -> list[PointSpec]:
    """`count` objects cycling through the six object types."""
    points: list[PointSpec] = []
    per_type: dict[str, int] = dict.fromkeys(OBJECT_TYPES, 0)
    for k in range(count):
        object_type = OBJECT_TYPES[k % len(OBJECT_TYPES)]
        per_type[object_type] += 1
        inst = per_type[object_type]
        prefix = f"{_PREFIX[object_type]}-{inst}"
        phase = rng.uniform(0, 2 * math.pi)
        period = rng.choice([30.0, 45.0, 60.0, 90.0, 120.0])
        if object_type == "analog-input" or object_type == "analog-value":
            analog = _ANALOG_INPUTS if object_type == "analog-input" else _ANALOG_VALUES
            label, units, base, amplitude = analog[(inst - 1) % len(analog)]
            point = PointSpec(
                object_type,
                inst,
                f"{prefix} {label}",
                f"{label} of device {device_instance}",
                units=units,
                base=base + offset,
                amplitude=amplitude,
            )
        elif object_type in ("binary-input", "binary-value"):
            binary = _BINARY_INPUTS if object_type == "binary-input" else _BINARY_VALUES
            label, inactive, active = binary[(inst - 1) % len(binary)]
            point = PointSpec(
                object_type,
                inst,
                f"{prefix} {label}",
                f"{label} of device {device_instance}",
                inactive_text=inactive,
                active_text=active,
            )
        else:
            states = (
                _MULTI_STATE_INPUTS if object_type == "multi-state-input" else _MULTI_STATE_VALUES
            )
            label, texts = states[(inst - 1) % len(states)]
            point = PointSpec(
                object_type,
                inst,
                f"{prefix} {label}",
                f"{label} of device {device_instance}",
                state_texts=list(texts),
            )
        if object_type == "analog-value":
            # Commandable values keep to a range around their base; every second
            # analog value (Valve Position: under automatic control) refuses writes.
            point.min_present_value = round(point.base - 10 - 2 * point.amplitude)
            point.max_present_value = round(point.base + 10 + 2 * point.amplitude)
            point.write_denied = inst % 4 == 2
        point.vary = vary
        point.phase = phase
        point.period_s = period
        points.append(point)
    if flags:
        # A few points carry status flags: the first analog value is overridden (a
        # hand-off switch), the first binary input is in fault.
        for point in points:
            if point.object_type == "analog-value" and point.instance == 1:
                point.status_flags = (False, False, True, False)
            if point.object_type == "binary-input" and point.instance == 1:
                point.status_flags = (False, True, False, False)
    return points


def make_outputs(device_instance: int) -> list[PointSpec]:
    """Commandable outputs: a damper (0-100 %), a fan command and a fan speed command."""
    return [
        PointSpec(
            "analog-output", 1, "AO-1 Damper Command",
            f"Damper command of device {device_instance}",
            units="percent", base=50.0, min_present_value=0.0, max_present_value=100.0,
        ),
        PointSpec(
            "binary-output", 1, "BO-1 Fan Command", f"Fan command of device {device_instance}",
            inactive_text="Off", active_text="On",
        ),
        PointSpec(
            "multi-state-output", 1, "MSO-1 Fan Speed Command",
            f"Fan speed command of device {device_instance}",
            state_texts=["Off", "Low", "Medium", "High"],
        ),
    ]  # fmt: skip


def _add_alarm_limit(points: list[PointSpec]) -> None:
    """The first analog input goes out of range (above its base) half of every 20 s,
    so that an alarm comes and goes within a test."""
    for point in points:
        if point.object_type == "analog-input" and point.instance == 1:
            point.high_limit = point.base
            point.period_s = 20.0
            return


def plan_site(spec: SiteSpec) -> list[DeviceSpec]:
    """Every simulated device, in instance order: normal ones, then faults, then big."""
    spec.validate()
    rng = random.Random(spec.seed)  # noqa: S311 - value phases, not secrets
    devices: list[DeviceSpec] = []
    instance = spec.first_instance

    def new_device(role: str, objects: int, **overrides: Any) -> DeviceSpec:
        nonlocal instance
        n = len(devices)
        dev = DeviceSpec(
            instance=instance,
            role=role,
            name=spec.name_pattern.format(instance=instance),
            vendor_id=spec.vendor_id,
            vendor_name=spec.vendor_name,
            model_name=_MODELS[n % len(_MODELS)],
            firmware_revision=f"{1 + n % 3}.{n % 10}.{(7 * n) % 10}",
            application_software_version=f"sim-{2024 + n % 3}.{1 + n % 12}",
            description=f"Simulated {role} device {instance}",
            location=_LOCATIONS[n % len(_LOCATIONS)],
        )
        for key, value in overrides.items():
            setattr(dev, key, value)
        dev.points = make_points(
            objects,
            device_instance=instance,
            vary=spec.vary,
            rng=rng,
            flags=spec.vary and role == NORMAL,
            offset=spec.value_offset,
        )
        if spec.alarms and role == NORMAL:
            _add_alarm_limit(dev.points)
        devices.append(dev)
        instance += 1
        return dev

    for _ in range(spec.devices):
        dev = new_device(NORMAL, spec.objects)
        if spec.outputs:
            dev.points.extend(make_outputs(dev.instance))

    if spec.faults:
        new_device(
            NO_SEGMENTATION,
            NO_SEGMENTATION_OBJECTS,
            max_apdu=NO_SEGMENTATION_MAX_APDU,
            segmentation="no-segmentation",
        )
        new_device(NO_RPM, spec.objects)
        new_device(SILENT, spec.objects)
        new_device(MALFORMED, spec.objects)
        hostile = new_device(HOSTILE, max(spec.objects, 6))
        _make_hostile(hostile)
        for _ in range(ROUTED_DEVICES):
            new_device(ROUTED, spec.objects, network_number=ROUTED_NETWORK)

    if spec.big_object_list:
        new_device(BIG, spec.big_object_list)
    return devices


def _make_hostile(dev: DeviceSpec) -> None:
    """Names and descriptions a UI or a database could trip over."""
    dev.name = f"{HOSTILE_SCRIPT} {dev.instance}"
    dev.description = HOSTILE_NUL
    dev.location = HOSTILE_UNICODE
    dev.model_name = HOSTILE_LONG
    texts = [HOSTILE_SCRIPT, HOSTILE_NUL, HOSTILE_LONG, HOSTILE_UNICODE]
    for i, point in enumerate(dev.points):
        text = texts[i % len(texts)]
        # Object names must stay unique within the device.
        point.name = f"{point.name} {text}"
        point.description = texts[(i + 1) % len(texts)]
    analogs = [p for p in dev.points if p.is_analog]
    if len(analogs) >= 2:
        analogs[0].fixed_value = math.nan
        analogs[1].fixed_value = math.inf
