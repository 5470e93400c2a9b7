"""What the simulated site contains, as plain data (no bacpypes3 here).

`SiteSpec` holds the options of `simulate_site`; `plan.plan_site()` turns it into one
`DeviceSpec` per simulated device, each with its `PointSpec` objects. The same plan
drives the bacpypes3 objects and the ready file, so the two cannot disagree.
"""

from __future__ import annotations

import math
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
    alarms: bool = False
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
    # "host:port" of a BBMD that is already running (another site's): the devices
    # register with it and no BBMD of this site is started. Lets a test restart a
    # device on a new port while the network (the BBMD) stays.
    join_bbmd: str = ""
    # Every device stops answering anything once it has answered this many confirmed
    # requests (0: never): a device that dies in the middle of a read.
    silent_after: int = 0
    # Every device ignores its first N Who-Is (a busy device dropping a broadcast).
    drop_who_is: int = 0
    # Every device answers each confirmed request this many seconds late (a slow one).
    answer_delay_s: float = 0.0
    # Every device lets ReadPropertyMultiple time out (ReadProperty is answered).
    ignore_rpm: bool = False
    # Added to every analog value: tells two sites' devices apart in readings.
    value_offset: float = 0.0
    # Every normal device also has three commandable outputs (analog, binary and
    # multi-state output 1), after its other objects.
    outputs: bool = False
    # Every normal device also reports alarms intrinsically (a notification class, an
    # out-of-range analog input, a change-of-state binary input: ``simulator.events``).
    events: bool = False

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
        if self.silent_after < 0 or self.drop_who_is < 0 or self.answer_delay_s < 0:
            raise ValueError("--silent-after, --drop-who-is, --answer-delay: not negative")
        if self.join_bbmd and (self.mode != LOOPBACK or ":" not in self.join_bbmd):
            raise ValueError("--join-bbmd wants host:port, in loopback mode")
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
    # Commandable values (analog/binary/multi-state value): the analog range a write
    # must keep to, and a point that answers every write with write-access-denied.
    min_present_value: float | None = None
    max_present_value: float | None = None
    write_denied: bool = False
    # Out of range above this: the in-alarm status flag is set while the value is (an
    # intrinsic out-of-range alarm as a device reports it in its flags; --alarms).
    high_limit: float | None = None

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
            "min_present_value": self.min_present_value,
            "max_present_value": self.max_present_value,
            "write_denied": self.write_denied,
            "high_limit": self.high_limit,
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
