"""Plain broadcast discovery, no BBMD: a Linux bridge lab (root only; skipped otherwise)."""

from __future__ import annotations

import pytest

from discovery.bacnet_client import BACnetClient
from discovery.bacnet_types import DeviceTarget, PointRef
from tests.bacnet.conftest import fast_config
from tests.site_fixtures import bridge_lab, start_site_with_args

pytestmark = [pytest.mark.lab, pytest.mark.slow]

BACNET_PORT = 47808


def test_it_discovers_enumerates_and_reads_devices_by_plain_broadcast() -> None:
    with bridge_lab(devices=3) as lab:
        site = start_site_with_args(
            ["--mode=bridge", f"--host={lab['prefix']}", "--devices=3", "--objects=4"]
        )
        try:
            # The lab's own address: port 47808 there belongs to this test alone.
            config = fast_config(interface=lab["client_address"], port=BACNET_PORT)
            with BACnetClient(config) as client:
                found = client.discover()
                enumerated = client.enumerate_devices(found.devices)
                results = client.read_points(
                    [
                        DeviceTarget(
                            e.device.instance,
                            e.device.address,
                            [PointRef(p.object_type, p.instance) for p in e.points],
                        )
                        for e in enumerated
                    ]
                )
        finally:
            site.stop()
    # bacpypes3 writes addresses on the standard port without ":47808".
    assert {(d.instance, d.address) for d in found.devices} == {
        (d["instance"], d["address"].removesuffix(f":{BACNET_PORT}")) for d in site.devices
    }
    assert all(e.error == "" and len(e.points) == 4 for e in enumerated)
    assert all(r.error == "" and len(r.values) == 4 for r in results)
    assert all(v.error == "" for r in results for v in r.values)
