"""The product never lists itself: each of its processes that opens a BACnet socket has a
device instance of its own, and none of the product's instances is stored as a device.

Real processes over loopback UDP: a simulated site, a BACnet worker registered with its
BBMD, and `manage.py discover` run beside it, as an engineer would."""

from __future__ import annotations

import subprocess
import sys

import pytest
from django.conf import settings

from discovery.models import BACnetDevice
from discovery.product_identity import (
    is_product_device,
    product_instances,
    tool_device_instance,
)
from tests.site_fixtures import REPO, start_site
from tests.timing import scaled
from tests.worker_fixtures import start_database_worker, worker_env


def test_it_gives_the_command_line_tools_an_instance_apart_from_the_worker(settings):
    settings.BACNET_DEVICE_INSTANCE = 3056999
    settings.BACNET_TOOL_DEVICE_INSTANCE = None
    chosen = tool_device_instance()
    assert chosen != 3056999
    assert chosen in product_instances()
    settings.BACNET_TOOL_DEVICE_INSTANCE = 77
    assert tool_device_instance() == 77
    assert 77 in product_instances()


def test_it_recognises_the_products_own_devices(settings):
    settings.BACNET_DEVICE_INSTANCE = 3056999
    settings.BACNET_TOOL_DEVICE_INSTANCE = None
    assert is_product_device(3056999)
    assert is_product_device(3057010)
    assert is_product_device(12, "bacnet-monitor-12")
    assert not is_product_device(12, "AHU-12")
    assert not is_product_device(3056998)


@pytest.mark.slow
@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_it_never_stores_the_worker_or_itself_when_discover_runs_beside_the_worker():
    """GIVEN a simulated site and a BACnet worker registered with its BBMD
    WHEN `manage.py discover` runs on another port of the same host
    THEN it stores the site's devices, and neither the worker's instance nor its own."""
    site = start_site(devices=2, objects=2)
    worker = None
    try:
        env = worker_env(site, BACNET_BACKEND="database")
        worker = start_database_worker("identity-test@localhost", env)
        command = worker_env(site)
        run = subprocess.run(
            [sys.executable, "manage.py", "discover", "--interface",
             command["BACNET_INTERFACE"], "--bbmd", site.bbmd],
            cwd=REPO, env=command, capture_output=True, text=True, timeout=scaled(120),
        )  # fmt: skip
    finally:
        if worker is not None:
            worker.stop()
        site.stop()
    assert run.returncode == 0, run.stdout + run.stderr
    stored = set(BACnetDevice.objects.values_list("device_instance", flat=True))
    assert {d["instance"] for d in site.devices} <= stored
    assert settings.BACNET_DEVICE_INSTANCE not in stored
    assert not stored & set(product_instances()), stored
    assert not BACnetDevice.objects.filter(name__startswith="bacnet-monitor-").exists()
