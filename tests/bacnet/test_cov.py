"""Change of value over real UDP: SubscribeCOV to simulated devices, their notifications."""

from __future__ import annotations

import time
from typing import Any

from discovery.bacnet_client import BACnetClient
from discovery.bacnet_types import CovNotification, CovTarget
from tests.site_fixtures import SimulatedSite
from tests.timing import scaled


def _analog(device: dict[str, Any]) -> dict[str, Any]:
    return next(o for o in device["objects"] if o["object_type"] == "analog-input")


def _wait_for(
    client: BACnetClient, device: int, instance: int, count: int, timeout_s: float
) -> list[CovNotification]:
    got: list[CovNotification] = []
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline and len(got) < count:
        notes, _ = client.take_cov_notifications()
        got += [n for n in notes if n.device == device and n.instance == instance]
        time.sleep(0.02)
    return got


def test_it_receives_changes_of_value_as_they_happen(
    client: BACnetClient, site: SimulatedSite
) -> None:
    device = site.normal_devices[0]
    analog = [o for o in device["objects"] if o["object_type"].startswith("analog")]
    targets = [
        CovTarget(
            device["instance"], device["address"], o["object_type"], o["instance"], lifetime_s=60
        )
        for o in analog
    ]
    assert [o.error for o in client.subscribe_cov(targets)] == [""] * len(targets)
    # The first notification answers each subscription; the values vary (each at its
    # own pace along its sine), so more follow.
    notes: list[CovNotification] = []
    deadline = time.monotonic() + scaled(5)
    while time.monotonic() < deadline and len(notes) < 2 * len(targets):
        taken, _ = client.take_cov_notifications()
        notes += [n for n in taken if n.device == device["instance"]]
        time.sleep(0.02)
    assert len(notes) >= 2 * len(targets)
    assert {(n.object_type, n.instance) for n in notes} == {
        (o["object_type"], o["instance"]) for o in analog
    }
    by_point: dict[tuple[str, int], set[float | None]] = {}
    for note in notes:
        by_point.setdefault((note.object_type, note.instance), set()).add(note.value)
    assert any(len(values) > 1 for values in by_point.values())
    # Stamped on arrival: the last one just now.
    assert abs(notes[-1].at - time.time()) < scaled(1)


def test_it_receives_confirmed_notifications_too(client: BACnetClient, site: SimulatedSite) -> None:
    device = site.normal_devices[1]
    point = _analog(device)
    target = CovTarget(
        device["instance"], device["address"], "analog-input", point["instance"], confirmed=True
    )
    assert client.subscribe_cov([target])[0].error == ""
    assert len(_wait_for(client, device["instance"], point["instance"], 2, scaled(3))) >= 2


def test_it_says_when_a_device_refuses_the_subscription(
    client: BACnetClient, site: SimulatedSite
) -> None:
    device = site.device("no-rpm")
    point = device["objects"][0]
    target = CovTarget(
        device["instance"], device["address"], point["object_type"], point["instance"]
    )
    [outcome] = client.subscribe_cov([target])
    assert outcome.refused
    assert "cov-subscription-failed" in outcome.error


def test_it_tells_silence_from_refusal(client: BACnetClient, site: SimulatedSite) -> None:
    device = site.device("silent")
    point = device["objects"][0]
    target = CovTarget(
        device["instance"], device["address"], point["object_type"], point["instance"]
    )
    [outcome] = client.subscribe_cov([target])
    assert outcome.error and not outcome.refused
