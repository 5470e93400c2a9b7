"""Sites change under the product: a device dies in the middle of a read, a device comes
back on a new address, two devices claim one instance. Real UDP on loopback: one BBMD
that stays up (the network) and device sites that join it, stop and start again."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
from django.utils import timezone

from discovery.bacnet_client import BACnetClient
from discovery.bacnet_types import DeviceTarget, PointRef
from discovery.models import BACnetDevice, BACnetReading
from discovery.services.collection import collect_and_store
from discovery.services.discovery import discover_and_store
from tests.bacnet.conftest import fast_config
from tests.site_fixtures import SimulatedSite, start_site
from tests.timing import scaled

BIG = 4000  # objects: 40 batches of 100 values, so waiting on each one would show
DIES_AFTER = 4  # confirmed requests answered before the device goes silent
TWIN_OFFSET = 1000.0  # the twin's analog values are this much higher


@pytest.fixture(scope="module")
def network() -> Iterator[SimulatedSite]:
    """A BBMD alone: the network that device sites join, leave and join again."""
    site = start_site(devices=0, objects=0)
    try:
        yield site
    finally:
        site.stop()


@pytest.fixture(scope="module")
def client(network: SimulatedSite) -> Iterator[BACnetClient]:
    with BACnetClient(
        fast_config(bbmd_address=network.bbmd, bbmd_ttl=60, device_deadline_s=60)
    ) as bacnet:
        yield bacnet


def join(network: SimulatedSite, instance: int, objects: int, *extra: str) -> SimulatedSite:
    return start_site(
        devices=1,
        objects=objects,
        extra_args=[f"--join-bbmd={network.bbmd}", f"--first-instance={instance}", *extra],
    )


def target_of(device: dict, address: str | None = None) -> DeviceTarget:
    return DeviceTarget(
        instance=device["instance"],
        address=address or device["address"],
        points=[PointRef(o["object_type"], o["instance"]) for o in device["objects"]],
        max_apdu=device["max_apdu"],
        segmentation=device["segmentation"],
    )


@pytest.mark.slow
def test_it_gives_up_at_once_on_a_device_that_dies_in_the_middle_of_a_read(
    network: SimulatedSite, client: BACnetClient
) -> None:
    """GIVEN two big devices, one of which goes silent after a few requests
    WHEN both are read in one cycle
    THEN the dying one ends with one probe, not a deadline per remaining batch: the
    cycle takes about as long as reading the healthy one; it is failed with the reason,
    and what it answered before is kept."""
    healthy_site = join(network, 8001, BIG)
    dying_site = join(network, 8002, BIG, f"--silent-after={DIES_AFTER}")
    try:
        healthy, dying = healthy_site.devices[0], dying_site.devices[0]
        started = time.monotonic()
        ok, died = client.read_points([target_of(healthy), target_of(dying)])
        cycle_s = time.monotonic() - started
    finally:
        healthy_site.stop()
        dying_site.stop()
    assert ok.error == "" and len([v for v in ok.values if not v.error]) == BIG
    assert "stopped answering" in died.error, died.error
    assert not died.reachable  # dead: it does not answer the Who-Is for it either
    read = [v for v in died.values if not v.error]
    assert 100 <= len(read) < BIG
    # Its own time: reading what it read, then a timeout, a probe and the Who-Is's quiet
    # window; the 36 or so batches left waiting one request deadline each, two at a
    # time, would add about 18 s. The cycle: about as long as the healthy device's read.
    config = client.config
    allowance = 2 * config.request_timeout_s + 2 * config.discovery_quiet_s
    its_share = ok.elapsed_s * len(read) / BIG
    assert died.elapsed_s < its_share + scaled(allowance), (died.elapsed_s, ok.elapsed_s)
    assert cycle_s < ok.elapsed_s + scaled(allowance), (cycle_s, ok.elapsed_s)


@pytest.mark.slow
@pytest.mark.django_db
def test_it_reads_a_device_restarted_on_a_new_port_in_the_next_cycle_without_discovery(
    network: SimulatedSite, client: BACnetClient
) -> None:
    site = join(network, 8101, 6)
    try:
        old = site.devices[0]["address"]
        discover_and_store(client, targets=[old])
        first = collect_and_store(client, cycle_at=timezone.now().replace(microsecond=0))
        assert first["readings"] == 6
        site.stop()
        site = join(network, 8101, 6)  # same device, the kernel picks a new port
        new = site.devices[0]["address"]
        assert new != old
        cycle = collect_and_store(client, cycle_at=timezone.now().replace(microsecond=1))
    finally:
        site.stop()
    assert (cycle["readings"], cycle["devices_failed"]) == (6, 0), cycle
    assert cycle["devices_moved"] == {"8101": new}
    device = BACnetDevice.objects.get(device_instance=8101)
    assert (device.address, device.state) == (new, "online")
    assert [h["address"] for h in device.address_history] == [old]


@pytest.mark.slow
@pytest.mark.django_db
def test_it_never_mixes_two_devices_that_claim_one_instance(
    network: SimulatedSite, client: BACnetClient
) -> None:
    """GIVEN a device bound at its address, and then a second device with its instance
    (other names, other objects, values 1000 higher) WHEN discoveries and cycles run,
    and the first one goes away THEN every reading of every point comes from the first
    device, its name and points never change, and the conflict is shown on it."""
    first = join(network, 8201, 6)
    twin = None
    try:
        bound = first.devices[0]["address"]
        discover_and_store(client, targets=[bound])
        twin = join(
            network, 8201, 4, f"--value-offset={TWIN_OFFSET}", "--name-pattern=Twin-{instance}"
        )
        summaries = [discover_and_store(client) for _ in range(2)]
        cycles = [
            collect_and_store(client, cycle_at=timezone.now().replace(microsecond=k))
            for k in range(2)
        ]
        first.stop()  # the binding goes silent: the twin must not take its place
        gone = collect_and_store(client, cycle_at=timezone.now().replace(microsecond=9))
    finally:
        first.stop()
        if twin is not None:
            twin.stop()
    other = twin.devices[0]["address"]
    device = BACnetDevice.objects.get(device_instance=8201)
    assert (device.address, device.name) == (bound, "SimDevice-8201")
    assert device.conflict_addresses == [other]
    assert device.points.count() == 6 and not device.points.exclude(missing_since=None).exists()
    assert all(s["conflicts"] == {"8201": [bound, other]} for s in summaries), summaries
    assert all(c["conflicts"] == {"8201": [bound, other]} for c in cycles)
    assert "conflict" in gone["device_errors"]["8201"]
    analog = BACnetReading.objects.filter(
        point__device=device, point__object_type__startswith="analog"
    )
    assert analog.count() == 2 * 2  # two analog points, two good cycles
    assert not analog.filter(value__gte=TWIN_OFFSET / 2).exists()


def test_it_finds_a_device_that_dropped_the_first_who_is(
    network: SimulatedSite, client: BACnetClient
) -> None:
    site = join(network, 8301, 2, "--drop-who-is=1")
    try:
        found = client.discover(low=8301, high=8301)
    finally:
        site.stop()
    assert [d.address for d in found.devices] == [site.devices[0]["address"]]


@pytest.mark.slow
@pytest.mark.django_db
def test_it_reads_the_points_a_slow_device_missed_first_in_the_next_cycle(
    network: SimulatedSite,
) -> None:
    """GIVEN a device so slow that a cycle ends (its deadline) after half its points
    WHEN two cycles run THEN the second reads the other half first: every point has
    a reading, none is starved."""
    # Each request of 100 points is answered after `delay`; the device's deadline (its
    # setting + 10 ms a point) falls half-way between the first answer and the second,
    # with room either side for a loaded machine.
    delay = scaled(1)
    site = join(network, 8401, 200, f"--answer-delay={delay}")
    answer = {
        "apdu_timeout_ms": int(scaled(1000) + delay * 1000),
        "request_deadline_s": scaled(1.5) + delay,
    }
    patient = fast_config(**answer, device_deadline_s=scaled(40))
    try:
        with BACnetClient(patient) as bacnet:
            discover_and_store(bacnet, targets=[site.devices[0]["address"]])
        hurried = fast_config(**answer, device_deadline_s=1.5 * delay - 2)
        with BACnetClient(hurried) as bacnet:
            cycles = [
                collect_and_store(bacnet, cycle_at=timezone.now().replace(microsecond=k))
                for k in range(2)
            ]
    finally:
        site.stop()
    device = BACnetDevice.objects.get(device_instance=8401)
    assert device.points.count() == 200
    assert all(
        c["devices_failed"] == 1 and "BACNET_DEVICE_DEADLINE_S" in c["device_errors"]["8401"]
        for c in cycles
    )
    assert all(0 < c["readings"] < 200 for c in cycles), cycles
    assert not device.points.filter(readings__isnull=True).exists()


@pytest.mark.slow
@pytest.mark.django_db
def test_it_keeps_what_an_enumeration_cut_short_read_and_goes_on(
    network: SimulatedSite,
) -> None:
    """GIVEN a slow device whose enumeration cannot finish within its deadline
    WHEN a discovery allowed one pass runs, then a normal one
    THEN the first stores the points it read (none marked missing), and the second
    goes on from there, pass after pass in the same job, until every point is stored."""
    site = join(network, 8501, 200, "--answer-delay=2.0")
    # Properties and object list take 4 s, then point texts 2 s per request of 40
    # objects, 2 in flight: 10 s in all, against a deadline of 5 s + 200 objects x 20 ms.
    hurried = fast_config(apdu_timeout_ms=int(scaled(1000)), device_deadline_s=5.0)
    try:
        with BACnetClient(hurried) as bacnet:
            address = site.devices[0]["address"]
            first = discover_and_store(bacnet, targets=[address], passes=1)
            device = BACnetDevice.objects.get(device_instance=8501)
            stored_first = device.points.count()
            assert not device.points.exclude(missing_since=None).exists()
            assert device.state == "fault"
            second = discover_and_store(bacnet, targets=[address])
    finally:
        site.stop()
    assert "BACNET_DEVICE_DEADLINE_S" in first["devices_failed"][8501], first
    assert 0 < stored_first < 200
    assert (second["devices_failed"], second["points"]) == ({}, 200), second
    device.refresh_from_db()
    assert device.state == "online"


def test_it_falls_back_to_read_property_when_read_property_multiple_times_out(
    network: SimulatedSite, client: BACnetClient
) -> None:
    site = join(network, 8601, 6, "--ignore-rpm")
    try:
        found = client.discover(low=8601, high=8601).devices
        (enumerated,) = client.enumerate_devices(found)
        (read,) = client.read_points([target_of(site.devices[0])])
    finally:
        site.stop()
    assert enumerated.error == "" and len(enumerated.points) == 6
    assert enumerated.properties is not None and not enumerated.properties.supports_rpm
    assert read.error == "" and not read.supports_rpm
    assert [v.error for v in read.values] == [""] * 6
