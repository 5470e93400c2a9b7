"""Commanding points over real BACnet/IP: writes at a priority into the simulator's
priority arrays, relinquish, the device's refusals in its own words.

A site of its own (values fixed, not varying): the writes here must not change what the
read tests of the shared site expect."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from discovery.bacnet_client import BACnetClient
from discovery.bacnet_types import BACnetError
from tests.bacnet.conftest import client_of
from tests.site_fixtures import SimulatedSite, start_site


@pytest.fixture(scope="module")
def command_site() -> Iterator[SimulatedSite]:
    running = start_site(devices=1, objects=12, extra_args=["--outputs"])
    try:
        yield running
    finally:
        running.stop()


@pytest.fixture(scope="module")
def commander(command_site: SimulatedSite) -> Iterator[BACnetClient]:
    yield from client_of(command_site)


def _obj(device: dict[str, Any], object_type: str, instance: int = 1) -> dict[str, Any]:
    return next(
        o
        for o in device["objects"]
        if o["object_type"] == object_type and o["instance"] == instance
    )


def test_it_writes_at_priority_8_and_reads_the_priority_array_back(
    commander: BACnetClient, command_site: SimulatedSite
) -> None:
    device = command_site.device("normal")
    at = (device["instance"], device["address"])
    setpoint = _obj(device, "analog-value")
    before = commander.read_command_state(*at, "analog-value", 1)
    assert before.commandable and before.slots == [] and before.current_priority is None
    assert before.relinquish_default == setpoint["value_range"][0]
    assert before.min_present_value == setpoint["min_present_value"]

    commander.write_present_value(*at, "analog-value", 1, 19.5, 8)
    after = commander.read_command_state(*at, "analog-value", 1)
    assert after.present_value == 19.5
    assert [(s.priority, s.value) for s in after.slots] == [(8, 19.5)]
    assert after.current_priority == 8

    # A lower priority (10) does not take control while 8 holds.
    commander.write_present_value(*at, "analog-value", 1, 25.0, 10)
    both = commander.read_command_state(*at, "analog-value", 1)
    assert both.present_value == 19.5 and both.current_priority == 8
    assert [s.priority for s in both.slots] == [8, 10]

    commander.write_present_value(*at, "analog-value", 1, None, 8)
    commander.write_present_value(*at, "analog-value", 1, None, 10)
    released = commander.read_command_state(*at, "analog-value", 1)
    assert released.slots == [] and released.present_value == before.relinquish_default


def test_it_commands_binary_and_multi_state_values(
    commander: BACnetClient, command_site: SimulatedSite
) -> None:
    device = command_site.device("normal")
    at = (device["instance"], device["address"])
    texts = _obj(device, "multi-state-value")["state_texts"]
    commander.write_present_value(*at, "binary-value", 1, "active", 8)
    commander.write_present_value(*at, "multi-state-value", 1, 2, 8)
    binary = commander.read_command_state(*at, "binary-value", 1)
    multi = commander.read_command_state(*at, "multi-state-value", 1, texts)
    assert binary.present_value == 1.0 and binary.current_priority == 8
    assert multi.present_value == 2.0 and multi.present_text == texts[1]
    assert multi.number_of_states == len(texts)
    commander.write_present_value(*at, "binary-value", 1, None, 8)
    commander.write_present_value(*at, "multi-state-value", 1, None, 8)


def test_it_reports_the_devices_refusals(
    commander: BACnetClient, command_site: SimulatedSite
) -> None:
    device = command_site.device("normal")
    at = (device["instance"], device["address"])
    with pytest.raises(BACnetError) as denied:
        commander.write_present_value(*at, "analog-value", 2, 40.0, 8)  # Valve Position
    assert "write-access-denied" in denied.value.reason
    with pytest.raises(BACnetError) as out_of_range:
        commander.write_present_value(*at, "analog-value", 1, 1000.0, 8)
    assert "value-out-of-range" in out_of_range.value.reason
    inputs = commander.read_command_state(*at, "analog-input", 1)
    assert not inputs.commandable


@pytest.mark.parametrize(
    ("object_type", "value", "expected"),
    [
        ("analog-output", 35.0, 35.0),
        ("binary-output", "active", 1.0),
        ("multi-state-output", 3, 3.0),
    ],
)
def test_it_commands_the_outputs(
    commander: BACnetClient,
    command_site: SimulatedSite,
    object_type: str,
    value: Any,
    expected: float,
) -> None:
    device = command_site.device("normal")
    at = (device["instance"], device["address"])
    commander.write_present_value(*at, object_type, 1, value, 5)
    state = commander.read_command_state(*at, object_type, 1)
    assert (state.present_value, state.current_priority) == (expected, 5)
    commander.write_present_value(*at, object_type, 1, None, 5)
    assert commander.read_command_state(*at, object_type, 1).slots == []
    if object_type == "analog-output":
        assert (state.min_present_value, state.max_present_value) == (0.0, 100.0)
