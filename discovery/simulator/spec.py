"""What the simulated site contains, as plain data (no bacpypes3 here).

`SiteSpec` holds the options of `simulate_site`; `plan_site()` turns it into one
`DeviceSpec` per simulated device, each with its `PointSpec` objects. The same plan
drives the bacpypes3 objects and the ready file, so the two cannot disagree.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field
from typing import Any

# Roles, as written in the ready file.
NORMAL = "normal"
NO_SEGMENTATION = "no-segmentation"
NO_RPM = "no-rpm"
SILENT = "silent"
MALFORMED = "malformed"
HOSTILE = "hostile"
ROUTED = "routed"
BIG = "big"
FAULT_ROLES = (NO_SEGMENTATION, NO_RPM, SILENT, MALFORMED, HOSTILE, ROUTED)

MAX_INSTANCE = 4194302  # 4194303 is the wildcard instance

LOOPBACK = "loopback"
BRIDGE = "bridge"

ROUTED_NETWORK = 20
ROUTED_DEVICES = 2
NO_SEGMENTATION_OBJECTS = 120
NO_SEGMENTATION_MAX_APDU = 480

# Strings a careless UI would render as markup or choke on.
HOSTILE_SCRIPT = "<script>alert(1)</script>"
HOSTILE_NUL = "before\x00after"
HOSTILE_LONG = "L" * 10_000
# Right-to-left override, an emoji (by code point: the code base itself has none) and
# combining marks.
HOSTILE_UNICODE = "\u202eevil\u202c \U0001f525 Z\u0351\u0334\u0358alg\u0335o"


@dataclass
class SiteSpec:
    """The options of one simulated site (the `simulate_site` command's arguments)."""

    devices: int = 10
    objects: int = 20
    host: str = "127.0.0.1"
    bbmd_port: int = 47808
    base_port: int = 47809
    first_instance: int = 1001
    faults: bool = False
    vary: bool = False
    big_object_list: int = 0
    seed: int = 0
    mode: str = LOOPBACK
    bbmd_instance: int = 4194000
    bbmd_name: str = "Simulator BBMD"
    name_pattern: str = "SimDevice-{instance}"
    vendor_id: int = 999
    vendor_name: str = "Simulated Controls Inc."
    # Foreign-device time-to-live (seconds) the devices register with.
    fd_ttl: int = 300

    def validate(self) -> None:
        if self.mode not in (LOOPBACK, BRIDGE):
            raise ValueError(f"mode must be {LOOPBACK!r} or {BRIDGE!r}, not {self.mode!r}")
        if self.devices < 0 or self.objects < 0 or self.big_object_list < 0:
            raise ValueError("device and object counts must not be negative")
        last = self.first_instance + self.device_count() - 1
        if self.first_instance < 0 or last > MAX_INSTANCE:
            raise ValueError(
                f"device instances {self.first_instance}..{last} not in 0..{MAX_INSTANCE}"
            )
        if not 0 <= self.bbmd_instance <= MAX_INSTANCE:
            raise ValueError(f"BBMD instance not in 0..{MAX_INSTANCE}")
        if self.mode == LOOPBACK and self.first_instance <= self.bbmd_instance <= last:
            raise ValueError(
                f"BBMD instance {self.bbmd_instance} falls among the device instances "
                f"{self.first_instance}..{last}"
            )
        if self.fd_ttl < 1:
            raise ValueError("foreign-device TTL must be at least 1 s")
        for port in (self.bbmd_port, self.base_port):
            if not 0 <= port <= 65535:
                raise ValueError(f"port {port} out of range")
        if self.mode == BRIDGE and not _is_three_octets(self.host):
            raise ValueError(
                f"bridge mode wants --host as the lab's /24 prefix, e.g. 198.18.150, "
                f"not {self.host!r}"
            )
        if "{instance}" not in self.name_pattern:
            raise ValueError("name pattern needs {instance} (device names must be unique)")

    def device_count(self) -> int:
        """How many devices `plan_site` makes (normal, fault, big)."""
        faults = len(FAULT_ROLES) - 1 + ROUTED_DEVICES if self.faults else 0
        return self.devices + faults + (1 if self.big_object_list else 0)


def _is_three_octets(text: str) -> bool:
    parts = text.split(".")
    return len(parts) == 3 and all(p.isdigit() and 0 <= int(p) <= 255 for p in parts)


@dataclass
class PointSpec:
    """One object of a simulated device."""

    object_type: str  # bacpypes3 hyphenated name, e.g. "analog-input"
    instance: int
    name: str
    description: str
    units: str | None = None  # hyphenated engineering units, analog objects only
    state_texts: list[str] = field(default_factory=list)
    inactive_text: str | None = None
    active_text: str | None = None
    base: float = 0.0
    amplitude: float = 0.0
    period_s: float = 60.0
    phase: float = 0.0
    vary: bool = False
    status_flags: tuple[bool, bool, bool, bool] = (False, False, False, False)
    # A fixed value that overrides the function of time (hostile NaN / +inf points).
    fixed_value: float | None = None

    @property
    def is_analog(self) -> bool:
        return self.object_type.startswith("analog")

    @property
    def is_binary(self) -> bool:
        return self.object_type.startswith("binary")

    def value_at(self, t: float) -> float | int | str:
        """Present value at Unix time `t`: deterministic, so tests can check it.

        Analog: base + amplitude * sin(2 pi t / period + phase), rounded to 0.01 (without
        --vary: base). Binary: "active" / "inactive". Multi-state: 1..number of states."""
        if self.fixed_value is not None:
            return self.fixed_value
        wave = math.sin(2 * math.pi * t / self.period_s + self.phase) if self.vary else 0.0
        if self.is_analog:
            return round(self.base + self.amplitude * wave, 2)
        if self.is_binary:
            if self.vary:
                return "active" if wave >= 0 else "inactive"
            return "active" if self.instance % 2 else "inactive"
        states = max(len(self.state_texts), 1)
        if self.vary:
            step = int(t // self.period_s + self.phase * states)
            return 1 + step % states
        return 1 + (self.instance - 1) % states

    def value_range(self) -> list[float | int | str]:
        if self.fixed_value is not None:
            return [self.fixed_value, self.fixed_value]
        if self.is_analog:
            return [
                round(self.base - self.amplitude, 2) if self.vary else self.base,
                round(self.base + self.amplitude, 2) if self.vary else self.base,
            ]
        if self.is_binary:
            return ["inactive", "active"]
        return [1, max(len(self.state_texts), 1)]

    def to_json(self) -> dict[str, Any]:
        value_range = self.value_range()
        return {
            "object_type": self.object_type,
            "instance": self.instance,
            "name": self.name,
            "description": self.description,
            "units": self.units,
            "state_texts": list(self.state_texts),
            "inactive_text": self.inactive_text,
            "active_text": self.active_text,
            "status_flags": {
                "in_alarm": self.status_flags[0],
                "fault": self.status_flags[1],
                "overridden": self.status_flags[2],
                "out_of_service": self.status_flags[3],
            },
            # JSON has no NaN / Infinity: the hostile points say so in words.
            "value_range": [_json_number(v) for v in value_range],
        }


@dataclass
class DeviceSpec:
    """One simulated device: its device-object properties and its objects."""

    instance: int
    role: str
    name: str
    vendor_id: int
    vendor_name: str
    model_name: str
    firmware_revision: str
    application_software_version: str
    description: str
    location: str
    protocol_revision: int = 22
    max_apdu: int = 1476
    segmentation: str = "segmented-both"
    points: list[PointSpec] = field(default_factory=list)
    network_number: int | None = None
    # Filled in when the device listens: "127.0.0.1:47809", or "20:0x0b" behind the router.
    address: str = ""
    port: int = 0
    mac: int | None = None  # VLAN address behind the router

    def to_json(self) -> dict[str, Any]:
        return {
            "instance": self.instance,
            "address": self.address,
            "network_number": self.network_number,
            "role": self.role,
            "name": self.name,
            "vendor_id": self.vendor_id,
            "vendor_name": self.vendor_name,
            "model_name": self.model_name,
            "firmware_revision": self.firmware_revision,
            "application_software_version": self.application_software_version,
            "description": self.description,
            "location": self.location,
            "protocol_revision": self.protocol_revision,
            "max_apdu": self.max_apdu,
            "segmentation": self.segmentation,
            "objects": [p.to_json() for p in self.points],
        }


def _json_number(value: float | int | str) -> float | int | str:
    if isinstance(value, float) and (math.isnan(value) or math.isinf(value)):
        return str(value)
    return value


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
    count: int, *, device_instance: int, vary: bool, rng: random.Random, flags: bool
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
            templates = _ANALOG_INPUTS if object_type == "analog-input" else _ANALOG_VALUES
            label, units, base, amplitude = templates[(inst - 1) % len(templates)]
            point = PointSpec(
                object_type,
                inst,
                f"{prefix} {label}",
                f"{label} of device {device_instance}",
                units=units,
                base=base,
                amplitude=amplitude,
            )
        elif object_type in ("binary-input", "binary-value"):
            templates = _BINARY_INPUTS if object_type == "binary-input" else _BINARY_VALUES
            label, inactive, active = templates[(inst - 1) % len(templates)]
            point = PointSpec(
                object_type,
                inst,
                f"{prefix} {label}",
                f"{label} of device {device_instance}",
                inactive_text=inactive,
                active_text=active,
            )
        else:
            templates = (
                _MULTI_STATE_INPUTS if object_type == "multi-state-input" else _MULTI_STATE_VALUES
            )
            label, texts = templates[(inst - 1) % len(templates)]
            point = PointSpec(
                object_type,
                inst,
                f"{prefix} {label}",
                f"{label} of device {device_instance}",
                state_texts=list(texts),
            )
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
        )
        devices.append(dev)
        instance += 1
        return dev

    for _ in range(spec.devices):
        new_device(NORMAL, spec.objects)

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
