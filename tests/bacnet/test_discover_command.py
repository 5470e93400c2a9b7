"""``manage.py discover``: the table of what answered this run, and clear input errors."""

from __future__ import annotations

import io
from collections.abc import Iterator

import pytest
from django.core.management import CommandError, call_command

from discovery.models import BACnetDevice, BACnetPoint
from tests.site_fixtures import SimulatedSite, free_udp_port, start_site


@pytest.fixture
def fast_bacnet(settings) -> None:
    settings.BACNET_APDU_TIMEOUT_MS = 500
    settings.BACNET_REQUEST_DEADLINE_S = 1.5
    settings.BACNET_DISCOVERY_QUIET_S = 0.5


@pytest.fixture(scope="module")
def one_device() -> Iterator[SimulatedSite]:
    site = start_site(devices=1, objects=6, extra_args=["--first-instance=8701"])
    try:
        yield site
    finally:
        site.stop()


@pytest.mark.django_db
def test_it_lists_the_devices_that_answered_and_the_known_ones_that_did_not(
    one_device: SimulatedSite, fast_bacnet: None
) -> None:
    BACnetDevice.objects.create(device_instance=9999, address="127.0.0.1:9", name="Old")
    out = io.StringIO()
    options = ["--interface", f"127.0.0.1/8:{free_udp_port()}", "--bbmd", one_device.bbmd]
    call_command(
        "discover", *options, "--low=8700", "--high=10000", stdout=out, stderr=io.StringIO()
    )
    # A point the device no longer lists is kept, marked missing, and not counted.
    device = BACnetDevice.objects.get(device_instance=8701)
    BACnetPoint.objects.create(device=device, object_type="analog-input", object_instance=99)
    out = io.StringIO()
    call_command(
        "discover", *options, "--low=8700", "--high=10000", stdout=out, stderr=io.StringIO()
    )
    lines = out.getvalue().splitlines()
    (row,) = [line for line in lines if line.strip().startswith("8701")]
    assert row.split()[2] == "6", row
    assert not [line for line in lines if line.strip().startswith("9999")]
    assert "Known devices that did not answer: 9999" in out.getvalue()


def test_it_explains_the_address_forms_of_a_bad_target() -> None:
    with pytest.raises(CommandError, match="NET:ADDR"):
        call_command("discover", "--target", "not-an-address")


@pytest.mark.django_db
def test_it_says_when_collect_reads_a_device_whose_instance_is_claimed_twice(
    one_device: SimulatedSite, fast_bacnet: None
) -> None:
    options = ["--interface", f"127.0.0.1/8:{free_udp_port()}", "--bbmd", one_device.bbmd]
    address = one_device.devices[0]["address"]
    call_command(
        "discover", *options, "--target", address, stdout=io.StringIO(), stderr=io.StringIO()
    )
    BACnetDevice.objects.filter(device_instance=8701).update(conflict_addresses=["127.0.0.1:9"])
    out = io.StringIO()
    call_command("collect", *options, stdout=out, stderr=io.StringIO())
    assert (
        f"Device 8701: duplicate instance: read at {address} only; also claimed by 127.0.0.1:9"
        in out.getvalue()
    )
