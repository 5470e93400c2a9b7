"""Alarms over real UDP: simulated devices with intrinsic event reporting (bacpypes3's
out-of-range and change-of-state algorithms), the client registered as a recipient,
their event notifications, GetEventInformation, GetAlarmSummary, AcknowledgeAlarm."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from typing import Any

import pytest

from discovery.bacnet_client import BACnetClient
from discovery.bacnet_types import AlarmAck, EventNotice, RecipientEntry
from discovery.simulator.events import (
    ALARM_AI,
    ALARM_BI,
    EVENT_INFO_PAGE,
    HIDDEN_AI,
    HIGH_LIMIT,
    NORMAL_VALUE,
    raw_event_notification,
)
from tests.bacnet.conftest import client_of, fast_config
from tests.site_fixtures import SimulatedSite, start_site
from tests.timing import scaled


@pytest.fixture(scope="module")
def site() -> Iterator[SimulatedSite]:
    running = start_site(devices=3, objects=3, extra_args=["--events"])
    try:
        yield running
    finally:
        running.stop()


@pytest.fixture(scope="module")
def client(site: SimulatedSite) -> Iterator[BACnetClient]:
    yield from client_of(site)


def _set(client: BACnetClient, device: dict[str, Any], object_type: str, instance: int, value: Any):
    """What the field does: the simulated sensor's value changes (WriteProperty)."""
    client.write_present_value(
        device["instance"], device["address"], object_type, instance, value, 16
    )


def _notices(client: BACnetClient, count: int, timeout_s: float) -> list[EventNotice]:
    got: list[EventNotice] = []
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline and len(got) < count:
        taken, _, _ = client.take_event_notices()
        got += taken
        time.sleep(0.02)
    return got


def _register(client: BACnetClient, device: dict[str, Any], confirmed: bool = True) -> None:
    entry = RecipientEntry(address=client.local_address, process_id=7, confirmed=confirmed)
    [outcome] = client.register_recipient(device["instance"], device["address"], entry)
    assert outcome.notification_class == 1 and outcome.added and not outcome.error


def test_it_registers_once_in_the_recipient_list(client: BACnetClient, site: SimulatedSite) -> None:
    device = site.normal_devices[2]
    _register(client, device)
    # Read back: it is there now, so a second registration writes nothing.
    entry = RecipientEntry(address=client.local_address, process_id=7, confirmed=True)
    [again] = client.register_recipient(device["instance"], device["address"], entry)
    assert not again.added and not again.error


def test_it_is_notified_out_of_range_acknowledges_and_sees_the_return_to_normal(
    client: BACnetClient, site: SimulatedSite
) -> None:
    device = site.normal_devices[0]
    _register(client, device, confirmed=True)
    client.take_event_notices()
    _set(client, device, "analog-input", ALARM_AI, HIGH_LIMIT + 5)
    [raised] = _notices(client, 1, scaled(5))
    assert (raised.device, raised.object_type, raised.instance) == (
        device["instance"],
        "analog-input",
        ALARM_AI,
    )
    assert raised.to_state == "high-limit" and raised.from_state == "normal"
    assert raised.event_type == "out-of-range" and raised.notify_type == "alarm"
    assert raised.priority == 100 and raised.ack_required and raised.confirmed
    assert raised.message == "Zone temperature out of range"
    assert raised.event_stamp.startswith("time:") and raised.event_time is not None
    assert abs(raised.event_time - time.time()) < scaled(5)

    ack = AlarmAck(
        device["instance"],
        device["address"],
        "analog-input",
        ALARM_AI,
        raised.to_state,
        raised.event_stamp,
        source="olga",
    )
    client.acknowledge_alarm(ack)
    [poll] = client.poll_events([(device["instance"], device["address"], "")])
    assert poll.services == "event-information" and poll.info is not None
    [summary] = [s for s in poll.info.summaries if s.instance == ALARM_AI]
    assert summary.event_state == "high-limit" and summary.acked[0]
    assert "AcknowledgeAlarm accepted: analog-input,9001 high-limit by 'olga'" in site.log

    _set(client, device, "analog-input", ALARM_AI, NORMAL_VALUE)
    [cleared] = _notices(client, 1, scaled(5))
    assert cleared.to_state == "normal" and cleared.from_state == "high-limit"
    assert not cleared.ack_required and cleared.priority == 200


def test_it_refuses_an_acknowledgement_with_the_wrong_time_stamp(
    client: BACnetClient, site: SimulatedSite
) -> None:
    device = site.normal_devices[0]
    ack = AlarmAck(
        device["instance"],
        device["address"],
        "analog-input",
        ALARM_AI,
        "high-limit",
        "time:1,2,3,4",
        source="olga",
    )
    from discovery.bacnet_types import BACnetError

    with pytest.raises(BACnetError, match="invalid-time-stamp"):
        client.acknowledge_alarm(ack)


def test_it_is_notified_of_a_change_of_state_unconfirmed(
    client: BACnetClient, site: SimulatedSite
) -> None:
    device = site.normal_devices[1]
    _register(client, device, confirmed=False)
    client.take_event_notices()
    _set(client, device, "binary-input", ALARM_BI, "active")
    [raised] = _notices(client, 1, scaled(5))
    assert raised.instance == ALARM_BI and raised.object_type == "binary-input"
    assert raised.to_state == "offnormal" and raised.event_type == "change-of-state"
    assert not raised.confirmed and raised.message == "Filter dirty"
    _set(client, device, "binary-input", ALARM_BI, "inactive")
    [back] = _notices(client, 1, scaled(5))
    assert back.to_state == "normal"


def test_it_learns_alarms_raised_before_it_registered_page_by_page(
    client: BACnetClient, site: SimulatedSite
) -> None:
    """GIVEN a device whose three alarm objects (one missing from its object list) left
    normal while nobody listened WHEN it is polled THEN GetEventInformation tells all
    three, over two pages; GetAlarmSummary tells the same states."""
    device = site.normal_devices[2]
    _set(client, device, "analog-input", ALARM_AI, 2.0)
    _set(client, device, "analog-input", HIDDEN_AI, 99.0)
    _set(client, device, "binary-input", ALARM_BI, "active")
    try:
        [poll] = client.poll_events([(device["instance"], device["address"], "")])
        assert poll.info is not None and not poll.error
        assert poll.info.pages == 2 and EVENT_INFO_PAGE == 2
        states = {(s.object_type, s.instance): s.event_state for s in poll.info.summaries}
        assert states == {
            ("analog-input", ALARM_AI): "low-limit",
            ("analog-input", HIDDEN_AI): "high-limit",
            ("binary-input", ALARM_BI): "offnormal",
        }
        ai = next(s for s in poll.info.summaries if s.instance == ALARM_AI)
        assert ai.priorities == (100, 50, 200) and not ai.acked[0] and ai.times[0] is not None
        [summary] = client.poll_events([(device["instance"], device["address"], "alarm-summary")])
        assert summary.info is not None and summary.info.service == "alarm-summary"
        assert {(s.object_type, s.instance) for s in summary.info.summaries} == set(states)
    finally:
        _set(client, device, "analog-input", ALARM_AI, NORMAL_VALUE)
        _set(client, device, "analog-input", HIDDEN_AI, NORMAL_VALUE)
        _set(client, device, "binary-input", ALARM_BI, "inactive")


def test_it_says_a_device_without_intrinsic_reporting_has_no_alarm_service(
    client: BACnetClient,
) -> None:
    plain = start_site(devices=1, objects=2)
    try:
        device = plain.normal_devices[0]
        other = BACnetClient(fast_config(bbmd_address=plain.bbmd, bbmd_ttl=60))
        other.start()
        try:
            [poll] = other.poll_events([(device["instance"], device["address"], "")])
        finally:
            other.stop()
        assert poll.services == "none" and poll.info is None and not poll.error
    finally:
        plain.stop()


def test_it_counts_and_drops_garbage_notifications(client: BACnetClient) -> None:
    host, port = client.local_address.split(":")
    client.take_event_notices()
    garbage = [
        raw_event_notification(1001, "analog-input", ALARM_AI, to_state=77),
        raw_event_notification(1001, "analog-input", ALARM_AI, priority=999),
        raw_event_notification(1001, "analog-input", ALARM_AI, from_state=99),
        b"\x81\x0a\x00\x0a\x01\x00\x10\x03\x09\x01",  # truncated: the stack drops it
    ]
    sane = raw_event_notification(1001, "analog-input", ALARM_AI, to_state=3)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        for datagram in [*garbage, sane]:
            sock.sendto(datagram, (host, int(port)))
    deadline = time.monotonic() + scaled(5)
    kept: list[EventNotice] = []
    dropped = 0
    while time.monotonic() < deadline and not kept:
        taken, _, bad = client.take_event_notices()
        kept += taken
        dropped += bad
        time.sleep(0.05)
    taken, _, bad = client.take_event_notices()
    kept += taken
    dropped += bad
    assert dropped == 3
    assert [(n.instance, n.to_state) for n in kept] == [(ALARM_AI, "high-limit")]
    # Still answering afterwards.
    assert client.started
