"""bacpypes3's BaseException errors become ordinary, picklable exceptions of ours."""

from __future__ import annotations

import pickle

import pytest

from discovery.bacnet_client import BACnetClient
from discovery.bacnet_types import BACnetConfigError, BACnetError, BACnetTimeout
from tests.site_fixtures import SimulatedSite


@pytest.mark.parametrize("error_class", [BACnetError, BACnetTimeout, BACnetConfigError])
def test_it_pickles_errors_with_their_device_and_reason(error_class: type[BACnetError]) -> None:
    error = error_class("device 1001: read-property failed", device=1001, reason="timeout")
    copy = pickle.loads(pickle.dumps(error))  # noqa: S301 (our own bytes)
    assert type(copy) is error_class
    assert str(copy) == str(error)
    assert copy.device == 1001
    assert copy.reason == "timeout"


def test_it_converts_a_bacnet_error_answer_into_an_exception_with_device_and_object(
    client: BACnetClient, site: SimulatedSite
) -> None:
    device = site.normal_devices[0]
    # The device answers with an Error PDU (unknown-object) for a device object it is not.
    with pytest.raises(BACnetError) as caught:
        client.enumerate_points(4_000_000, device["address"])
    error = caught.value
    assert isinstance(error, Exception)
    assert error.device == 4_000_000
    assert "unknown-object" in str(error)
    assert "device,4000000" in str(error)
    assert device["address"] in str(error)
    assert pickle.loads(pickle.dumps(error)).reason == error.reason  # noqa: S301


def test_it_raises_a_timeout_for_a_device_that_never_answers(
    client: BACnetClient, site: SimulatedSite
) -> None:
    device = site.device("silent")
    with pytest.raises(BACnetTimeout) as caught:
        client.read_device_properties(device["instance"], device["address"])
    assert str(device["instance"]) in str(caught.value)


def test_it_gives_up_on_garbage_answers_within_the_device_deadline(
    client: BACnetClient, site: SimulatedSite
) -> None:
    device = site.device("malformed")
    with pytest.raises(BACnetError) as caught:
        client.enumerate_points(device["instance"], device["address"])
    assert caught.value.device == device["instance"]
    # Still usable afterwards: the garbage did not break the stack.
    normal = site.normal_devices[0]
    assert client.read_device_properties(normal["instance"], normal["address"]).name


def test_it_rejects_a_bad_address_as_a_bacnet_error(client: BACnetClient) -> None:
    with pytest.raises(BACnetError, match="bad address"):
        client.read_device_properties(1001, "not an address")


def test_it_rejects_a_half_open_instance_range(client: BACnetClient) -> None:
    with pytest.raises(BACnetError, match="both low and high"):
        client.discover(low=5)
