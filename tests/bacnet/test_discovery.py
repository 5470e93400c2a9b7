"""Who-Is / I-Am: global through the BBMD, ranged, directed, duplicates, routed devices."""

from __future__ import annotations

from discovery.bacnet_client import BACnetClient
from discovery.bacnet_types import DiscoveryResult
from tests.site_fixtures import SimulatedSite, start_site


def test_it_finds_exactly_the_simulated_devices(
    site: SimulatedSite, discovered: DiscoveryResult
) -> None:
    found = {d.instance: d for d in discovered.devices}
    # The simulator's BBMD is a BACnet device too, and answers like any other.
    assert set(found) == {d["instance"] for d in site.devices} | {site.bbmd_device_instance}
    for expected in site.devices:
        device = found[expected["instance"]]
        assert device.address == expected["address"]
        assert device.vendor_id == expected["vendor_id"]
        assert device.network_number == expected["network_number"]
        assert device.max_apdu == expected["max_apdu"]
        assert device.segmentation == expected["segmentation"]
    assert discovered.duplicates == {}


def test_it_records_routed_devices_with_their_network_number(
    site: SimulatedSite, discovered: DiscoveryResult
) -> None:
    routed = site.devices_with_role("routed")
    assert routed
    found = {d.instance: d for d in discovered.devices}
    for expected in routed:
        device = found[expected["instance"]]
        assert device.network_number == 20
        assert device.address.startswith("20:")


def test_it_returns_once_the_network_is_quiet_not_at_the_upper_bound(
    client: BACnetClient,
) -> None:
    result = client.discover(timeout_s=30)
    assert len(result.devices) > 5
    assert result.elapsed_s < 15  # generous: quiet window 0.5 s, upper bound 30 s


def test_it_limits_discovery_to_an_instance_range(
    client: BACnetClient, site: SimulatedSite
) -> None:
    first, second = (d["instance"] for d in site.normal_devices[:2])
    result = client.discover(low=first, high=second)
    assert [d.instance for d in result.devices] == [first, second]


def test_it_sends_a_directed_who_is_to_one_address(
    client: BACnetClient, site: SimulatedSite
) -> None:
    target = site.normal_devices[2]
    result = client.discover(targets=[target["address"]])
    assert [(d.instance, d.address) for d in result.devices] == [
        (target["instance"], target["address"])
    ]


def test_it_reports_one_instance_answering_from_two_addresses(
    client: BACnetClient, site: SimulatedSite
) -> None:
    original = site.normal_devices[0]
    twin_site = start_site(
        devices=1, objects=2, extra_args=[f"--first-instance={original['instance']}"]
    )
    try:
        twin = twin_site.devices[0]
        assert twin["instance"] == original["instance"]
        result = client.discover(targets=[original["address"], twin["address"]])
    finally:
        twin_site.stop()
    assert [d.instance for d in result.devices] == [original["instance"]]
    assert sorted(result.duplicates[original["instance"]]) == sorted(
        [original["address"], twin["address"]]
    )
