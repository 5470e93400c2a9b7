"""True broadcast discovery on a Linux bridge (root only): no BBMD involved."""

from __future__ import annotations

import subprocess

import pytest

from tests.simulator.test_site import run_probe
from tests.site_fixtures import bridge_lab, start_site_with_args

pytestmark = [pytest.mark.lab, pytest.mark.slow]

BACNET_PORT = 47808


def test_it_finds_every_bridge_device_with_a_plain_global_who_is() -> None:
    with bridge_lab() as lab:
        site = start_site_with_args(
            [
                "--mode=bridge",
                f"--host={lab['prefix']}",
                "--devices=3",
                "--objects=4",
                "--faults",
            ]
        )
        try:
            assert site.bbmd is None and site.mode == "bridge"
            # The client owns the bridge's own address: port 47808 there is ours alone.
            probe = run_probe(
                site,
                "--bind",
                lab["client_address"],
                "--no-bbmd",
                "--read-roles=normal,routed,malformed",
                port=BACNET_PORT,
            )
            log = site.log
        finally:
            assert site.stop() == 0
    assert "Traceback" not in log and "could not send" not in log
    found = {instance: address for instance, address in probe["discovered"]}
    for dev in site.devices:
        # bacpypes3 writes B/IP addresses on the standard port without ":47808".
        assert found[dev["instance"]] == dev["address"].removesuffix(f":{BACNET_PORT}")
    assert set(found) == {dev["instance"] for dev in site.devices}
    routed = site.device("routed")
    assert routed["address"].startswith("20:")
    assert "value" in probe["reads"][str(routed["instance"])]["present_value"]
    normal = site.normal_devices[0]
    assert "value" in probe["reads"][str(normal["instance"])]["present_value"]


def test_it_removes_the_bridge_lab_even_when_the_body_fails() -> None:
    with pytest.raises(RuntimeError, match="boom"), bridge_lab(devices=1) as lab:
        name = lab["bridge"]
        raise RuntimeError("boom")
    links = subprocess.run(["ip", "-o", "link"], capture_output=True, text=True).stdout
    assert name not in links
    routes = subprocess.run(
        ["ip", "route", "show", "table", "all"], capture_output=True, text=True
    ).stdout
    assert lab["prefix"] not in routes
