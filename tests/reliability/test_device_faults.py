"""Devices that misbehave: silent, slow (answers late in its deadline), answering garbage
and truncated frames, an object list that shrinks and grows between cycles, and two
devices with one instance number. A cycle always finishes within its deadline, healthy
devices are read, the faulty ones are marked with a reason."""

from __future__ import annotations

import pytest

from discovery.jobs import request_job
from discovery.models import BACnetDevice, BACnetPoint, BACnetReading, BACnetTask
from tests.reliability.udp_tools import SlowRelay, parse_address
from tests.site_fixtures import free_udp_port, start_site, start_site_with_args
from tests.timing import scaled
from tests.worker_fixtures import start_database_worker, wait_for_job, worker_env

pytestmark = [pytest.mark.postgres, pytest.mark.slow, pytest.mark.django_db(transaction=True)]

APDU_TIMEOUT_S = scaled(1.0)
DEVICE_DEADLINE_S = scaled(8.0)
# The slow device answers after most of the time a request may take.
SLOW_DELAY_S = 0.7 * APDU_TIMEOUT_S
# Deadline checks only, with a wide margin for a busy machine: a cycle that waited on
# a device forever would blow through it.
CYCLE_LIMIT_S = DEVICE_DEADLINE_S + 30
HEALTHY_ROLES = ("normal", "no-rpm", "no-segmentation", "routed", "hostile")
SLOW_INSTANCE = 7001


def _env(site, **extra: str) -> dict[str, str]:
    return worker_env(
        site,
        BACNET_BACKEND="database",
        BACNET_APDU_TIMEOUT_MS=str(int(APDU_TIMEOUT_S * 1000)),
        BACNET_REQUEST_DEADLINE_S=str(APDU_TIMEOUT_S + 0.5),
        BACNET_DEVICE_DEADLINE_S=str(DEVICE_DEADLINE_S),
        **extra,
    )


def _job(kind: str, parameters: dict | None = None) -> BACnetTask:
    task = wait_for_job(request_job(kind, parameters, backend="database").pk, scaled(60))
    assert task.status == "completed", task.error_message
    return task


def _took_s(task: BACnetTask) -> float:
    return (task.completed_at - task.started_at).total_seconds()


def _cycle_points(task: BACnetTask) -> list[int]:
    return list(
        BACnetReading.objects.filter(timestamp=task.parameters["cycle_at"]).values_list(
            "point_id", flat=True
        )
    )


@pytest.fixture(scope="module")
def sites():
    """The fault site; a twin whose first device has the same instance (1001) as the
    fault site's first; one more device, reached through a relay that makes it slow."""
    started = []
    try:
        for args in (
            {"devices": 2, "objects": 6, "faults": True},
            {"devices": 1, "objects": 4},
            {"devices": 1, "objects": 6, "extra_args": [f"--first-instance={SLOW_INSTANCE}"]},
        ):
            started.append(start_site(**args))
        faulty, twin, slow = started
        relay = SlowRelay(parse_address(slow.devices[0]["address"]), SLOW_DELAY_S)
        relay.start()
        yield {"faulty": faulty, "twin": twin, "relay": relay}
        relay.stop()
    finally:
        for site in started:
            site.stop()


def _survey(sites) -> tuple[BACnetTask, BACnetTask]:
    """Discovery of everything (global Who-Is, then the relay and both claimants of
    instance 1001 asked directly); the silent and malformed devices, which cannot be
    enumerated, get a point polled anyway."""
    faulty, twin, relay = sites["faulty"], sites["twin"], sites["relay"]
    found = _job("discover")
    first = faulty.device("normal")
    assert twin.devices[0]["instance"] == first["instance"]
    direct = _job(
        "discover", {"targets": [relay.address, first["address"], twin.devices[0]["address"]]}
    )
    for role in ("silent", "malformed"):
        device = BACnetDevice.objects.get(device_instance=faulty.device(role)["instance"])
        BACnetPoint.objects.get_or_create(
            device=device, object_type="analog-input", object_instance=1
        )
    return found, direct


def test_it_finishes_a_cycle_in_time_whatever_the_devices_do(sites):
    """GIVEN normal, no-RPM, no-segmentation, routed, hostile, slow, silent and
    malformed devices, and two devices with one instance
    WHEN a collection runs
    THEN it finishes within its deadline, every healthy device's points are read once,
    and the silent and malformed devices are offline with a reason."""
    faulty = sites["faulty"]
    # A quiet window longer than the slow device's delay, as a site with slow devices
    # would configure (directed discovery does not wait longer by itself: see below).
    env = _env(faulty, BACNET_DISCOVERY_QUIET_S=str(SLOW_DELAY_S * 2))
    worker = start_database_worker("rel-faults", env, "--no-schedule")
    try:
        found, direct = _survey(sites)
        assert _took_s(found) < CYCLE_LIMIT_S and _took_s(direct) < CYCLE_LIMIT_S
        assert str(SLOW_INSTANCE) not in map(str, found.result.get("devices_failed", {}))
        slow = BACnetDevice.objects.get(device_instance=SLOW_INSTANCE)
        assert slow.address == sites["relay"].address
        assert slow.points.count() == 6
        cycle = _job("collect")
    finally:
        worker.stop()

    assert _took_s(cycle) < CYCLE_LIMIT_S
    assert sites["relay"].relayed > 0
    healthy = [d["instance"] for d in faulty.devices if d["role"] in HEALTHY_ROLES]
    healthy.append(SLOW_INSTANCE)
    expected = set(
        BACnetPoint.objects.filter(
            device__device_instance__in=healthy, polling_enabled=True, missing_since__isnull=True
        ).values_list("pk", flat=True)
    )
    stored = _cycle_points(cycle)
    assert len(stored) == len(set(stored))
    missing = expected - set(stored)
    assert not missing, BACnetPoint.objects.filter(pk__in=missing).values_list(
        "device__device_instance", "object_type", "object_instance", "last_error"
    )
    assert BACnetDevice.objects.filter(device_instance__in=healthy, is_online=False).count() == 0
    assert BACnetDevice.objects.filter(device_instance__in=healthy, in_fault=True).count() == 0
    for role in ("silent", "malformed"):
        instance = faulty.device(role)["instance"]
        assert cycle.result["device_errors"].get(str(instance)), (role, cycle.result)


def test_it_puts_silent_and_malformed_devices_in_fault_with_a_reason(sites):
    """Both answer Who-Is but no read: not a green "online", and not "offline" either."""
    faulty = sites["faulty"]
    worker = start_database_worker("rel-offline", _env(faulty), "--no-schedule")
    try:
        _survey(sites)
        cycle = _job("collect")
    finally:
        worker.stop()
    for role in ("silent", "malformed"):
        device = BACnetDevice.objects.get(device_instance=faulty.device(role)["instance"])
        assert (device.state, bool(device.last_error)) == ("fault", True), role
    assert cycle.result["devices_failed"] == 2, cycle.result


def test_it_marks_two_devices_that_claim_one_instance(sites):
    faulty = sites["faulty"]
    worker = start_database_worker("rel-duplicates", _env(faulty), "--no-schedule")
    try:
        _, direct = _survey(sites)
        instance = faulty.device("normal")["instance"]
        addresses = {faulty.device("normal")["address"], sites["twin"].devices[0]["address"]}
        assert set(direct.result["duplicates"][str(instance)]) == addresses
        device = BACnetDevice.objects.get(device_instance=instance)
        assert {device.address, *device.conflict_addresses} == addresses
    finally:
        worker.stop()


def test_it_keeps_the_duplicate_instance_mark_after_a_collection(sites):
    faulty = sites["faulty"]
    worker = start_database_worker("rel-duplicates-kept", _env(faulty), "--no-schedule")
    try:
        _survey(sites)
        cycle = _job("collect")
    finally:
        worker.stop()
    device = BACnetDevice.objects.get(device_instance=faulty.device("normal")["instance"])
    assert sites["twin"].devices[0]["address"] in device.conflict_addresses
    assert cycle.result["conflicts"][str(device.device_instance)][1:] == [
        sites["twin"].devices[0]["address"]
    ]


def _start_changing_site(bbmd_port: int, device_port: int, objects: int):
    return start_site_with_args(
        [
            "--devices=1",
            f"--objects={objects}",
            f"--bbmd-port={bbmd_port}",
            f"--base-port={device_port}",
            "--first-instance=8001",
        ]
    )


def test_it_follows_an_object_list_that_shrinks():
    """GIVEN a device with 6 objects WHEN it comes back with 3
    THEN the next cycle finishes with the vanished points marked, and re-enumeration
    keeps them (their history) but stops polling them."""
    bbmd_port, device_port = free_udp_port(), free_udp_port()
    site = _start_changing_site(bbmd_port, device_port, 6)
    worker = start_database_worker("rel-shrinking", _env(site), "--no-schedule")
    try:
        _job("discover", {"targets": [site.devices[0]["address"]]})
        device = BACnetDevice.objects.get(device_instance=8001)
        assert device.points.count() == 6
        assert len(_cycle_points(_job("collect"))) == 6

        site.stop()
        site = _start_changing_site(bbmd_port, device_port, 3)
        shrunk = _job("collect")
        assert _took_s(shrunk) < CYCLE_LIMIT_S
        assert len(_cycle_points(shrunk)) == 3
        assert shrunk.result["point_errors"] == 3
        gone = device.points.exclude(last_error="")
        assert gone.count() == 3 and all("unknown" in p.last_error for p in gone)
        device.refresh_from_db()
        assert device.is_online

        _job("enumerate", {"device_instance": 8001})
        assert device.points.count() == 6  # history is kept
        assert device.points.filter(missing_since__isnull=True).count() == 3  # polled
        again = _job("collect")
        assert len(_cycle_points(again)) == 3 and again.result["point_errors"] == 0
    finally:
        worker.stop()
        site.stop()


def test_it_polls_points_that_come_back_to_the_object_list():
    bbmd_port, device_port = free_udp_port(), free_udp_port()
    site = _start_changing_site(bbmd_port, device_port, 6)
    worker = start_database_worker("rel-growing", _env(site), "--no-schedule")
    try:
        _job("discover", {"targets": [site.devices[0]["address"]]})
        for objects in (3, 9):
            site.stop()
            site = _start_changing_site(bbmd_port, device_port, objects)
            _job("enumerate", {"device_instance": 8001})
        device = BACnetDevice.objects.get(device_instance=8001)
        assert device.points.count() == 9
        grown = _job("collect")
        assert len(_cycle_points(grown)) == 9
    finally:
        worker.stop()
        site.stop()


def test_it_finds_a_slow_device_asked_directly(sites):
    """A device asked by address that answers after the quiet window but well within
    the discovery limit is slow, not absent."""
    worker = start_database_worker("rel-slow-whois", _env(sites["faulty"]), "--no-schedule")
    try:
        task = _job("discover", {"targets": [sites["relay"].address]})
    finally:
        worker.stop()
    assert task.result["devices_found"] == 1
    assert BACnetDevice.objects.filter(device_instance=SLOW_INSTANCE).exists()
