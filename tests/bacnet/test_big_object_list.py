"""A device with 10,000 objects: the object list, every point's texts and every value."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from discovery.bacnet_client import BACnetClient
from discovery.bacnet_types import DeviceTarget, PointRef
from tests.bacnet.conftest import fast_config
from tests.site_fixtures import SimulatedSite, start_site
from tests.timing import scaled

OBJECTS = 10_000


@pytest.fixture(scope="module")
def big_site() -> Iterator[SimulatedSite]:
    running = start_site(devices=0, objects=0, extra_args=[f"--big-object-list={OBJECTS}"])
    try:
        yield running
    finally:
        running.stop()


@pytest.mark.slow
def test_it_enumerates_and_reads_ten_thousand_objects(big_site: SimulatedSite) -> None:
    device = big_site.device("big")
    assert len(device["objects"]) == OBJECTS
    # A device that is busy, not silent: the product's APDU timeout (a Python simulator
    # on a loaded machine is slow to segment big answers), and device deadlines a
    # quiet machine meets with room (docs/bacnet.md: enumeration and reads, measured).
    config = fast_config(
        apdu_timeout_ms=int(scaled(1000)),
        request_deadline_s=scaled(1000) / 1000 * 2 + 1,
        device_deadline_s=scaled(40),
    )
    with BACnetClient(config) as client:
        properties = client.read_device_properties(device["instance"], device["address"])
        points = client.enumerate_points(device["instance"], device["address"], properties)
        assert sorted((p.object_type, p.instance, p.name) for p in points) == sorted(
            (o["object_type"], o["instance"], o["name"]) for o in device["objects"]
        )
        target = DeviceTarget(
            instance=device["instance"],
            address=device["address"],
            points=[PointRef(p.object_type, p.instance) for p in points],
            max_apdu=properties.max_apdu,
            segmentation=properties.segmentation,
        )
        (result,) = client.read_points([target])
    assert result.error == ""
    assert len(result.values) == OBJECTS
    assert [v.error for v in result.values if v.error] == []
