"""Present values and status flags: batched RPM, RP fallback, failing devices."""

from __future__ import annotations

import dataclasses
import json
import math
import pickle
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from discovery.bacnet_client import BACnetClient
from discovery.bacnet_types import DeviceReadResult, DeviceTarget, PointRef, PointValue
from tests.bacnet.conftest import DEVICE_DEADLINE_S, Enumerated
from tests.site_fixtures import SimulatedSite


def target_for(device: dict[str, Any], **overrides: Any) -> DeviceTarget:
    values: dict[str, Any] = {
        "instance": device["instance"],
        "address": device["address"],
        "points": [PointRef(o["object_type"], o["instance"]) for o in device["objects"]],
        "max_apdu": device["max_apdu"],
        "segmentation": device["segmentation"],
    }
    values.update(overrides)
    return DeviceTarget(**values)


def assert_in_simulated_range(value: PointValue, obj: dict[str, Any]) -> None:
    assert value.error == "", value.error
    low, high = obj["value_range"]
    if obj["object_type"].startswith("analog"):
        assert value.value is not None
        assert low - 0.01 <= value.value <= high + 0.01
        assert round(value.value, 2) == value.value  # a REAL, shown without noise digits
    elif obj["object_type"].startswith("binary"):
        assert value.value in (0.0, 1.0)
        assert value.text == ("inactive", "active")[int(value.value)]
    else:
        assert value.value is not None
        assert low <= value.value <= high


@pytest.fixture(scope="module")
def read_all(client: BACnetClient, site: SimulatedSite) -> dict[int, DeviceReadResult]:
    results = client.read_points([target_for(d) for d in site.devices])
    return {r.instance: r for r in results}


def test_it_reads_values_within_the_simulators_range(
    site: SimulatedSite, read_all: dict[int, DeviceReadResult]
) -> None:
    for device in site.normal_devices + site.devices_with_role("routed"):
        result = read_all[device["instance"]]
        assert result.error == ""
        assert result.supports_rpm
        assert [(v.object_type, v.instance) for v in result.values] == [
            (o["object_type"], o["instance"]) for o in device["objects"]
        ]
        for value, obj in zip(result.values, device["objects"], strict=True):
            assert_in_simulated_range(value, obj)


def test_it_reads_status_flags_as_a_bit_mask(
    site: SimulatedSite, read_all: dict[int, DeviceReadResult]
) -> None:
    device = site.normal_devices[0]
    for value, obj in zip(read_all[device["instance"]].values, device["objects"], strict=True):
        flags = obj["status_flags"]
        expected = (
            flags["in_alarm"] * 1
            + flags["fault"] * 2
            + flags["overridden"] * 4
            + flags["out_of_service"] * 8
        )
        assert value.status_flags == expected
    assert {v.status_flags for v in read_all[device["instance"]].values} >= {0, 2, 4}


def test_it_reads_every_point_of_a_device_that_cannot_segment(
    site: SimulatedSite, read_all: dict[int, DeviceReadResult]
) -> None:
    device = site.device("no-segmentation")
    result = read_all[device["instance"]]
    assert result.error == ""
    assert len(result.values) == len(device["objects"]) > 100
    for value, obj in zip(result.values, device["objects"], strict=True):
        assert_in_simulated_range(value, obj)


def test_it_falls_back_to_read_property_when_a_device_rejects_rpm(
    site: SimulatedSite, read_all: dict[int, DeviceReadResult]
) -> None:
    device = site.device("no-rpm")
    result = read_all[device["instance"]]
    assert result.error == ""
    assert result.supports_rpm is False
    for value, obj in zip(result.values, device["objects"], strict=True):
        assert_in_simulated_range(value, obj)


def test_it_fails_silent_and_malformed_devices_alone_within_their_deadline(
    site: SimulatedSite, read_all: dict[int, DeviceReadResult]
) -> None:
    for role in ("silent", "malformed"):
        device = site.device(role)
        result = read_all[device["instance"]]
        assert str(device["instance"]) in result.error
        assert result.elapsed_s < DEVICE_DEADLINE_S + 2
        # Every point is accounted for, with the device's error.
        assert len(result.values) == len(device["objects"])
        assert all(v.error for v in result.values)


def test_it_reads_nan_and_infinity_as_text(
    site: SimulatedSite, read_all: dict[int, DeviceReadResult]
) -> None:
    device = site.device("hostile")
    result = read_all[device["instance"]]
    assert result.error == ""
    texts = {v.text for v in result.values if v.value is None}
    assert {"nan", "inf"} <= texts
    for value in result.values:
        assert value.value is None or math.isfinite(value.value)


def test_it_reports_an_unknown_object_on_that_point_only(
    client: BACnetClient, site: SimulatedSite
) -> None:
    device = site.normal_devices[0]
    good = device["objects"][0]
    target = target_for(
        device,
        points=[PointRef(good["object_type"], good["instance"]), PointRef("analog-input", 9999)],
    )
    (result,) = client.read_points([target])
    assert result.error == ""
    assert_in_simulated_range(result.values[0], good)
    assert "unknown-object" in result.values[1].error
    assert "analog-input,9999" in result.values[1].error


def test_it_reads_one_point_like_the_batch(client: BACnetClient, site: SimulatedSite) -> None:
    device = site.normal_devices[1]
    for obj in device["objects"][:6]:
        value = client.read_point(
            device["instance"], device["address"], PointRef(obj["object_type"], obj["instance"])
        )
        assert_in_simulated_range(value, obj)


def test_it_uses_the_state_texts_it_is_given(client: BACnetClient, site: SimulatedSite) -> None:
    device = site.normal_devices[0]
    for obj in device["objects"]:
        if obj["object_type"].startswith("binary"):
            texts: tuple[str, ...] = (obj["inactive_text"], obj["active_text"])
        elif obj["object_type"].startswith("multi-state"):
            texts = tuple(obj["state_texts"])
        else:
            continue
        ref = PointRef(obj["object_type"], obj["instance"], state_texts=texts)
        value = client.read_point(device["instance"], device["address"], ref)
        assert value.value is not None
        index = (
            int(value.value) if obj["object_type"].startswith("binary") else int(value.value) - 1
        )
        assert value.text == texts[index]


def test_it_returns_nothing_for_no_targets(client: BACnetClient) -> None:
    assert client.read_points([]) == []
    assert client.enumerate_devices([]) == []


def test_it_reads_a_device_with_what_enumeration_found(
    client: BACnetClient, enumerated: Enumerated, site: SimulatedSite
) -> None:
    device = site.device("no-segmentation")
    found = enumerated.of(device["instance"])
    assert found.properties is not None
    target = DeviceTarget(
        instance=device["instance"],
        address=found.device.address,
        points=[PointRef(p.object_type, p.instance) for p in found.points],
        max_apdu=found.properties.max_apdu,
        segmentation=found.properties.segmentation,
        supports_rpm=found.properties.supports_rpm,
    )
    (result,) = client.read_points([target])
    assert result.error == ""
    assert all(v.error == "" for v in result.values)


def test_it_serves_several_caller_threads_at_once(
    client: BACnetClient, site: SimulatedSite
) -> None:
    targets = [target_for(d) for d in site.normal_devices]
    with ThreadPoolExecutor(max_workers=4) as pool:
        rounds = list(pool.map(lambda _: client.read_points(targets), range(8)))
    for results in rounds:
        assert [r.instance for r in results] == [t.instance for t in targets]
        assert all(r.error == "" for r in results)
        assert all(v.error == "" for r in results for v in r.values)


def test_it_returns_plain_python_values(read_all: dict[int, DeviceReadResult]) -> None:
    for result in read_all.values():
        assert b"bacpypes3" not in pickle.dumps(result)
        json.dumps(dataclasses.asdict(result))
