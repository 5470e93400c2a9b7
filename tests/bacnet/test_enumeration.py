"""Device properties, object lists and point texts, for every kind of simulated device."""

from __future__ import annotations

import dataclasses
import json
import pickle
import threading
from typing import Any

import pytest

from discovery.bacnet_client import BACnetClient
from discovery.bacnet_types import DeviceEnumeration, DiscoveryResult, PointInfo
from tests.bacnet.conftest import DEVICE_DEADLINE_S, Enumerated
from tests.site_fixtures import SimulatedSite

FAILING_ROLES = ("silent", "malformed")


def expected_points(device: dict[str, Any]) -> list[tuple[Any, ...]]:
    points = []
    for obj in device["objects"]:
        if obj["object_type"].startswith("binary"):
            texts = [obj["inactive_text"], obj["active_text"]]
        else:
            texts = obj["state_texts"]
        points.append(
            (
                obj["object_type"],
                obj["instance"],
                obj["name"],
                obj["description"],
                obj["units"] or "",
                texts,
            )
        )
    return sorted(points)


def found_points(points: list[PointInfo]) -> list[tuple[Any, ...]]:
    return sorted(
        (p.object_type, p.instance, p.name, p.description, p.units, p.state_texts) for p in points
    )


def assert_matches(result: DeviceEnumeration, device: dict[str, Any]) -> None:
    assert result.error == ""
    props = result.properties
    assert props is not None
    assert props.name == device["name"]
    assert props.vendor_id == device["vendor_id"]
    assert props.vendor_name == device["vendor_name"]
    assert props.model_name == device["model_name"]
    assert props.firmware_revision == device["firmware_revision"]
    assert props.application_software_version == device["application_software_version"]
    assert props.description == device["description"]
    assert props.location == device["location"]
    assert props.protocol_revision == device["protocol_revision"]
    assert props.max_apdu == device["max_apdu"]
    assert props.segmentation == device["segmentation"]
    assert found_points(result.points) == expected_points(device)


def test_it_reads_properties_and_objects_of_a_segmenting_device(
    site: SimulatedSite, enumerated: Enumerated
) -> None:
    device = site.normal_devices[0]
    assert device["segmentation"] == "segmented-both"
    result = enumerated.of(device["instance"])
    assert_matches(result, device)
    assert result.properties is not None and result.properties.supports_rpm


def test_it_reads_the_object_list_of_a_device_that_cannot_segment(
    site: SimulatedSite, enumerated: Enumerated
) -> None:
    device = site.device("no-segmentation")
    assert device["segmentation"] == "no-segmentation"
    assert device["max_apdu"] == 480
    assert len(device["objects"]) > 100  # too big for one 480-byte APDU
    assert_matches(enumerated.of(device["instance"]), device)


def test_it_falls_back_to_read_property_for_a_device_without_rpm(
    site: SimulatedSite, enumerated: Enumerated
) -> None:
    device = site.device("no-rpm")
    result = enumerated.of(device["instance"])
    assert_matches(result, device)
    assert result.properties is not None and result.properties.supports_rpm is False


def test_it_enumerates_devices_behind_a_router(site: SimulatedSite, enumerated: Enumerated) -> None:
    for device in site.devices_with_role("routed"):
        assert_matches(enumerated.of(device["instance"]), device)


def test_it_passes_hostile_strings_through_as_text(
    site: SimulatedSite, enumerated: Enumerated
) -> None:
    device = site.device("hostile")
    result = enumerated.of(device["instance"])
    assert_matches(result, device)
    assert result.properties is not None
    assert "\x00" in result.properties.description
    assert len(result.properties.model_name) == 10_000
    assert any("<script>" in p.name for p in result.points)


def test_it_ends_silent_and_malformed_devices_within_their_deadline_while_others_complete(
    site: SimulatedSite, enumerated: Enumerated
) -> None:
    for role in FAILING_ROLES:
        device = site.device(role)
        result = enumerated.of(device["instance"])
        assert str(device["instance"]) in result.error
        assert result.elapsed_s < DEVICE_DEADLINE_S + 2
    for device in site.devices:
        if device["role"] not in FAILING_ROLES:
            result = enumerated.of(device["instance"])
            assert result.error == ""
            assert len(result.points) == len(device["objects"])
    # Devices run concurrently: the failures cost their own deadline, not a sum.
    assert enumerated.elapsed_s < 2 * DEVICE_DEADLINE_S + 5


def test_it_hands_each_device_to_the_callback_in_the_callers_thread(
    enumerated: Enumerated,
) -> None:
    assert enumerated.callback_threads == {threading.get_ident()}
    assert sorted(enumerated.callback_order) == sorted(
        e.device.instance for e in enumerated.results
    )


def test_it_enumerates_the_points_of_one_device(client: BACnetClient, site: SimulatedSite) -> None:
    device = site.normal_devices[1]
    properties = client.read_device_properties(device["instance"], device["address"])
    assert properties.name == device["name"]
    points = client.enumerate_points(device["instance"], device["address"], properties)
    assert found_points(points) == expected_points(device)
    # Without properties given, the client reads them itself.
    points = client.enumerate_points(device["instance"], device["address"])
    assert found_points(points) == expected_points(device)


def test_it_stops_and_raises_when_the_callback_fails(
    client: BACnetClient, site: SimulatedSite, discovered: DiscoveryResult
) -> None:
    def on_device(item: DeviceEnumeration) -> None:
        raise RuntimeError("storage is down")

    with pytest.raises(RuntimeError, match="storage is down"):
        client.enumerate_devices(discovered.devices, on_device=on_device)
    # The client is unharmed.
    device = site.normal_devices[0]
    assert client.read_device_properties(device["instance"], device["address"]).name


def test_it_returns_plain_python_values(
    discovered: DiscoveryResult, enumerated: Enumerated
) -> None:
    # No bacpypes3 types inside: results cross processes (pickle) and Celery (JSON).
    for result in (discovered, *enumerated.results):
        assert b"bacpypes3" not in pickle.dumps(result)
        json.dumps(dataclasses.asdict(result))
    for result in enumerated.results:
        for point in result.points:
            assert type(point.name) is str
            assert type(point.units) is str
