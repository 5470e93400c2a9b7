"""The site plan and its values, without any network."""

from __future__ import annotations

import math

import pytest

from discovery.simulator.plan import OBJECT_TYPES, plan_site
from discovery.simulator.spec import SiteSpec


def test_it_plans_normal_devices_then_faults_then_the_big_one() -> None:
    devices = plan_site(SiteSpec(devices=2, objects=7, faults=True, big_object_list=30))
    roles = [d.role for d in devices]
    assert roles == [
        "normal",
        "normal",
        "no-segmentation",
        "no-rpm",
        "silent",
        "malformed",
        "hostile",
        "routed",
        "routed",
        "big",
    ]
    assert [d.instance for d in devices] == list(range(1001, 1001 + len(devices)))
    assert [p.object_type for p in devices[0].points[:6]] == list(OBJECT_TYPES)
    assert devices[0].points[6].name == "AI-2 Humidity"
    assert len(devices[-1].points) == 30
    for dev in devices:
        names = [p.name for p in dev.points]
        assert len(set(names)) == len(names)


def test_it_computes_the_same_values_for_the_same_time_and_seed() -> None:
    first = plan_site(SiteSpec(devices=1, objects=12, vary=True, seed=3))[0]
    again = plan_site(SiteSpec(devices=1, objects=12, vary=True, seed=3))[0]
    for a, b in zip(first.points, again.points, strict=True):
        for t in (0.0, 1234.5, 1.7e9):
            assert a.value_at(t) == b.value_at(t)


def test_it_keeps_varying_values_within_their_range() -> None:
    dev = plan_site(SiteSpec(devices=1, objects=12, vary=True))[0]
    for point in dev.points:
        low, high = point.value_range()
        seen = {point.value_at(t * 7.3) for t in range(200)}
        if point.is_analog:
            assert all(low <= v <= high for v in seen)
            assert len(seen) > 10  # it does move
        elif point.is_binary:
            assert seen == {"inactive", "active"}
        else:
            assert seen <= set(range(low, high + 1)) and len(seen) > 1


def test_it_holds_values_still_without_vary() -> None:
    dev = plan_site(SiteSpec(devices=1, objects=6))[0]
    for point in dev.points:
        assert point.value_at(0) == point.value_at(98765.4)


def test_it_gives_the_hostile_device_non_finite_values_and_nasty_strings() -> None:
    hostile = next(d for d in plan_site(SiteSpec(devices=0, faults=True)) if d.role == "hostile")
    values = [p.value_at(0) for p in hostile.points if p.is_analog]
    assert math.isnan(values[0]) and values[1] == math.inf
    assert "<script>" in hostile.name and "\x00" in hostile.description
    doc = hostile.to_json()
    assert doc["objects"][0]["value_range"] == ["nan", "nan"]


def test_it_counts_the_devices_it_plans() -> None:
    for spec in (
        SiteSpec(devices=3),
        SiteSpec(devices=2, faults=True),
        SiteSpec(devices=0, faults=True, big_object_list=5),
    ):
        assert spec.device_count() == len(plan_site(spec))


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        (SiteSpec(first_instance=4194300, devices=5), "not in 0..4194302"),
        (SiteSpec(first_instance=4193999, devices=5), "falls among the device instances"),
        (SiteSpec(fd_ttl=0), "TTL"),
        (SiteSpec(mode="wifi"), "mode must be"),
    ],
)
def test_it_refuses_impossible_sites(spec: SiteSpec, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        spec.validate()
