"""Interface and BBMD address parsing, interface auto-detection, safe device strings."""

from __future__ import annotations

import pytest

from discovery.bacnet_client import (
    ClientConfig,
    InterfaceSpec,
    detect_interface,
    is_host_address,
    parse_bbmd_address,
    parse_interface,
    resolve_interface,
    safe_text,
    shortest_float32,
)
from discovery.bacnet_types import BACnetConfigError


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("192.168.1.5/24", InterfaceSpec("192.168.1.5", 24, None)),
        ("192.168.1.5/24:47809", InterfaceSpec("192.168.1.5", 24, 47809)),
        ("192.168.1.5", InterfaceSpec("192.168.1.5", None, None)),
        ("192.168.1.5:47809", InterfaceSpec("192.168.1.5", None, 47809)),
        (" 10.0.0.2/8 ", InterfaceSpec("10.0.0.2", 8, None)),
    ],
)
def test_it_parses_interfaces(text: str, expected: InterfaceSpec) -> None:
    assert parse_interface(text) == expected


@pytest.mark.parametrize("text", ["", "eth0", "0.0.0.0/0", "224.0.0.1/4", "1.2.3.4/24:abc"])
def test_it_rejects_bad_interfaces(text: str) -> None:
    with pytest.raises(ValueError, match=r"."):
        parse_interface(text)


def test_it_parses_bbmd_addresses() -> None:
    assert parse_bbmd_address("192.168.10.1") == ("192.168.10.1", 47808)
    assert parse_bbmd_address("192.168.10.1:47809") == ("192.168.10.1", 47809)
    assert parse_bbmd_address("bbmd.example.com:47810") == ("bbmd.example.com", 47810)


def test_it_auto_detects_an_interface_of_this_host() -> None:
    spec = parse_interface(detect_interface())
    assert spec.prefix is not None
    assert is_host_address(spec.ip)


def test_it_fills_in_prefix_and_port() -> None:
    spec = resolve_interface(ClientConfig(interface="127.0.0.1", port=47999))
    assert spec == InterfaceSpec("127.0.0.1", 8, 47999)
    with pytest.raises(BACnetConfigError, match="BACNET_INTERFACE"):
        resolve_interface(ClientConfig(interface="nonsense"))


def test_it_makes_any_device_string_a_valid_str() -> None:
    assert safe_text("before\x00after <b>") == "before\x00after <b>"
    assert safe_text("bad \udcff byte") == "bad \ufffd byte"
    assert safe_text(None) == ""
    assert safe_text("bad \udcff byte").encode("utf-8")


def test_it_shows_a_real_without_noise_digits() -> None:
    noisy = 20.18000030517578  # what 20.18 becomes as a 32-bit REAL
    assert shortest_float32(noisy) == 20.18
    assert shortest_float32(0.1) == 0.1
    assert shortest_float32(123456.0) == 123456.0
