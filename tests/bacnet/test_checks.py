"""System checks for the BACnet settings (discovery.E001 ... E005)."""

from __future__ import annotations

import pytest
from django.core.checks import run_checks

from discovery.checks import (
    check_bacnet_backend,
    check_bacnet_bbmd,
    check_bacnet_interface,
    check_bacnet_numbers,
)


def ids(errors: list) -> list[str]:
    return [e.id for e in errors]


@pytest.mark.parametrize("value", ["", "127.0.0.1/8", "127.0.0.1/8:47900", "127.0.0.1"])
def test_it_accepts_an_empty_or_local_interface(settings, value: str) -> None:
    settings.BACNET_INTERFACE = value
    assert check_bacnet_interface() == []


@pytest.mark.parametrize(
    "value", ["eth0", "192.168.1.5/33", "192.168.1.5/24:0", "192.168.1.5/24:70000", "1.2.3/24"]
)
def test_it_reports_an_interface_that_does_not_parse(settings, value: str) -> None:
    settings.BACNET_INTERFACE = value
    assert ids(check_bacnet_interface()) == ["discovery.E001"]


def test_it_reports_an_interface_this_host_does_not_have(settings) -> None:
    settings.BACNET_INTERFACE = "192.0.2.77/24"
    errors = check_bacnet_interface()
    assert ids(errors) == ["discovery.W002"]
    assert "127.0.0.1/8" in errors[0].hint  # lists what the host has


@pytest.mark.parametrize("value", ["", "192.168.10.1", "192.168.10.1:47809", "bbmd.example.com"])
def test_it_accepts_a_bbmd_address(settings, value: str) -> None:
    settings.BACNET_BBMD_ADDRESS = value
    assert check_bacnet_bbmd() == []


@pytest.mark.parametrize("value", ["192.168.10.1:99999", "bad host!", "192.168.10.1:x", ":47808"])
def test_it_reports_a_bbmd_address_that_does_not_parse(settings, value: str) -> None:
    settings.BACNET_BBMD_ADDRESS = value
    assert ids(check_bacnet_bbmd()) == ["discovery.E003"]


def test_it_reports_an_unknown_backend(settings) -> None:
    settings.BACNET_BACKEND = "kafka"
    assert ids(check_bacnet_backend()) == ["discovery.E004"]
    settings.BACNET_BACKEND = "database"
    assert check_bacnet_backend() == []


def test_it_reports_numbers_out_of_range(settings) -> None:
    settings.BACNET_READ_CONCURRENCY = 0
    settings.BACNET_REQUEST_DEADLINE_S = -1.0
    assert ids(check_bacnet_numbers()) == ["discovery.E005", "discovery.E005"]


def test_it_registers_the_checks_with_django(settings) -> None:
    settings.BACNET_INTERFACE = "not-an-address"
    assert "discovery.E001" in ids(run_checks())


def test_it_refuses_a_cov_lifetime_the_worker_could_not_renew(settings) -> None:
    settings.BACNET_COV_LIFETIME_S = 0  # "forever" to a device: never renewed, never lapsing
    [error] = check_bacnet_numbers()
    assert error.id == "discovery.E005" and "BACNET_COV_LIFETIME_S" in error.msg
