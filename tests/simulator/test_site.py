"""The simulated site seen from outside: a BAC0 client in another process, real UDP."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import time
from typing import Any

import pytest

from tests.site_fixtures import (
    REPO,
    SimulatedSite,
    faulty_site,  # noqa: F401 - pytest fixture
    free_udp_port,
)

ROLES = {"normal", "no-segmentation", "no-rpm", "silent", "malformed", "hostile", "routed"}
DEVICE_KEYS = {
    "instance",
    "address",
    "network_number",
    "role",
    "name",
    "vendor_id",
    "vendor_name",
    "model_name",
    "firmware_revision",
    "application_software_version",
    "description",
    "location",
    "protocol_revision",
    "max_apdu",
    "segmentation",
    "objects",
}
OBJECT_KEYS = {"object_type", "instance", "name", "description", "units", "state_texts"}


def run_probe(
    site: SimulatedSite, *extra: str, port: int | None = None, timeout: float = 120
) -> dict[str, Any]:
    """Run tests/simulator/probe.py against the site; return its JSON result."""
    ready_file = site.workdir / "ready.json"
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    env.pop("DJANGO_SETTINGS_MODULE", None)
    started = time.monotonic()
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "tests.simulator.probe",
            str(ready_file),
            str(port or free_udp_port()),
            *extra,
        ],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    for line in proc.stdout.splitlines():
        if line.startswith("PROBE-RESULT "):
            result = json.loads(line[len("PROBE-RESULT ") :])
            result["_elapsed"] = time.monotonic() - started
            return result
    raise AssertionError(
        f"probe failed ({proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    )


@pytest.fixture(scope="module")
def probe(faulty_site: SimulatedSite) -> dict[str, Any]:  # noqa: F811
    return run_probe(faulty_site)


def reads_of(probe: dict[str, Any], device: dict[str, Any]) -> dict[str, Any]:
    return probe["reads"][str(device["instance"])]


def test_it_writes_a_ready_file_matching_the_contract(faulty_site: SimulatedSite) -> None:  # noqa: F811
    ready = json.loads((faulty_site.workdir / "ready.json").read_text())
    assert ready["mode"] == "loopback"
    host, port = ready["bbmd"].split(":")
    assert host == "127.0.0.1" and int(port) > 0
    assert ready["bbmd_device_instance"] == 4194000
    devices = ready["devices"]
    assert {d["role"] for d in devices} == ROLES
    assert len(faulty_site.normal_devices) == 2
    assert len({d["instance"] for d in devices}) == len(devices)
    for dev in devices:
        assert dev.keys() >= DEVICE_KEYS
        assert dev["segmentation"] in ("segmented-both", "no-segmentation")
        for obj in dev["objects"]:
            assert obj.keys() >= OBJECT_KEYS
        if dev["role"] == "routed":
            assert dev["network_number"] == 20
            assert dev["address"].startswith("20:")
        else:
            assert dev["network_number"] is None
            assert dev["address"].startswith("127.0.0.1:")
    ports = [d["address"] for d in devices if d["role"] != "routed"]
    assert len(set(ports)) == len(ports)
    no_seg = faulty_site.device("no-segmentation")
    assert no_seg["max_apdu"] == 480 and no_seg["segmentation"] == "no-segmentation"
    assert len(no_seg["objects"]) >= 100
    analog = faulty_site.device("normal")["objects"][0]
    assert analog["object_type"] == "analog-input" and analog["units"] == "degrees-celsius"
    multi = next(o for o in devices[0]["objects"] if o["object_type"] == "multi-state-input")
    assert multi["state_texts"]


def test_it_is_discovered_through_the_bbmd_by_a_separate_client(
    faulty_site: SimulatedSite,  # noqa: F811
    probe: dict[str, Any],
) -> None:
    found = {instance: address for instance, address in probe["discovered"]}
    expected = {d["instance"]: d["address"] for d in faulty_site.devices}
    expected[faulty_site.bbmd_device_instance] = faulty_site.bbmd
    assert found == expected
    # Ranged Who-Is (low == high) finds exactly that device.
    assert probe["ranged"] == [faulty_site.devices[0]["instance"]]


def test_it_answers_reads_with_plausible_present_values(
    faulty_site: SimulatedSite,  # noqa: F811
    probe: dict[str, Any],
) -> None:
    for dev in faulty_site.devices:
        if dev["role"] in ("silent", "malformed", "hostile"):
            continue
        reads = reads_of(probe, dev)
        obj = dev["objects"][0]
        low, high = obj["value_range"]
        value = reads["present_value"]["value"]
        assert low - 0.01 <= value <= high + 0.01, (dev["instance"], value)
        assert reads["object_name"]["value"] == obj["name"]
        assert reads["device_name"]["value"] == dev["name"]
        assert reads["object_list_length"]["value"] == len(dev["objects"]) + 1
        if dev["role"] != "no-rpm":
            # present-value and status-flags of four objects, in one request
            assert len(reads["rpm"]["value"]) == 8


def test_it_reports_status_flags_on_a_few_points(
    faulty_site: SimulatedSite,  # noqa: F811
    probe: dict[str, Any],
) -> None:
    dev = faulty_site.normal_devices[0]
    flags = {
        tuple(oid): value
        for oid, prop, _index, value in reads_of(probe, dev)["rpm"]["value"]
        if prop == 111  # status-flags
    }
    # analog-value 1 is overridden, binary-input 1 in fault (see the ready file)
    assert flags[(2, 1)] == [0, 0, 1, 0]
    assert flags[(3, 1)] == [0, 1, 0, 0]
    assert flags[(0, 1)] == [0, 0, 0, 0]
    av1 = next(o for o in dev["objects"] if o["object_type"] == "analog-value")
    assert av1["status_flags"]["overridden"] is True


def test_it_aborts_a_whole_object_list_the_no_segmentation_device_cannot_send(
    faulty_site: SimulatedSite,  # noqa: F811
    probe: dict[str, Any],
) -> None:
    dev = faulty_site.device("no-segmentation")
    reads = reads_of(probe, dev)
    assert reads["object_list"]["error"] == "AbortPDU:segmentation-not-supported"
    assert reads["rpm_too_big"]["error"] == "AbortPDU:segmentation-not-supported"
    count = len(dev["objects"]) + 1
    assert reads["object_list_length"]["value"] == count
    elements = reads["object_list_elements"]
    assert elements[0] == [8, dev["instance"]]
    assert len(elements[:count]) == count and all(isinstance(e, list) for e in elements[:count])
    assert "invalid-array-index" in str(elements[count])
    # Small RPM batches still work.
    assert len(reads["rpm"]["value"]) == 8


def test_it_rejects_read_property_multiple_on_the_no_rpm_device(
    faulty_site: SimulatedSite,  # noqa: F811
    probe: dict[str, Any],
) -> None:
    reads = reads_of(probe, faulty_site.device("no-rpm"))
    assert reads["rpm"]["error"] == "RejectPDU:unrecognized-service"
    assert isinstance(reads["present_value"]["value"], float)


def test_it_discovers_but_never_answers_the_silent_device(
    faulty_site: SimulatedSite,  # noqa: F811
    probe: dict[str, Any],
) -> None:
    dev = faulty_site.device("silent")
    assert [dev["instance"], dev["address"]] in probe["discovered"]
    assert reads_of(probe, dev)["present_value"]["error"] == "timeout"


def test_it_answers_the_malformed_device_reads_with_nothing_decodable(
    faulty_site: SimulatedSite,  # noqa: F811
    probe: dict[str, Any],
) -> None:
    dev = faulty_site.device("malformed")
    assert [dev["instance"], dev["address"]] in probe["discovered"]
    assert "value" not in reads_of(probe, dev)["present_value"]
    assert faulty_site.process.poll() is None
    assert "could not send" not in faulty_site.log


def test_it_serves_hostile_strings_and_non_finite_values(
    faulty_site: SimulatedSite,  # noqa: F811
    probe: dict[str, Any],
) -> None:
    dev = faulty_site.device("hostile")
    reads = reads_of(probe, dev)
    assert "<script>alert(1)</script>" in reads["device_name"]["value"]
    assert reads["object_name"]["value"] == dev["objects"][0]["name"]
    assert reads["present_value"]["value"] == "nan"
    rpm_values = [value for _oid, prop, _i, value in reads["rpm"]["value"] if prop == 85]
    assert "inf" in rpm_values
    assert "\x00" in dev["description"] and len(dev["model_name"]) == 10_000
    assert any("\u202e" in o["name"] for o in dev["objects"])
    assert math.isnan(float("nan"))  # the ready file spells NaN as a string
    assert dev["objects"][0]["value_range"] == ["nan", "nan"]


def test_it_routes_devices_behind_network_20(
    faulty_site: SimulatedSite,  # noqa: F811
    probe: dict[str, Any],
) -> None:
    routed = faulty_site.devices_with_role("routed")
    assert len(routed) == 2
    for dev in routed:
        assert [dev["instance"], dev["address"]] in probe["discovered"]
        assert reads_of(probe, dev)["device_name"]["value"] == dev["name"]
    assert faulty_site.router is not None and faulty_site.router["network_number"] == 20
