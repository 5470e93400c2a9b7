"""Starting, surviving and stopping the simulator process."""

from __future__ import annotations

import os
import random
import signal
import socket
import subprocess

import pytest

from tests.simulator.test_site import run_probe
from tests.site_fixtures import (
    REPO,
    free_udp_port,
    simulator_command,
    start_site,
    start_site_with_args,
)
from tests.timing import scaled


def _host_port(address: str) -> tuple[str, int]:
    host, port = address.rsplit(":", 1)
    return host, int(port)


def _garbage() -> list[bytes]:
    rng = random.Random(7)
    frames = [
        b"",
        b"\x81",
        b"\x81\x0a",
        b"\x81\x0a\x00\x04",  # BVLL header, nothing after
        b"\x81\x0a\xff\xff\x01\x00",  # length that lies
        b"\x81\x0b\x00\x06\x01\x20",  # broadcast with a truncated NPDU
        b"\x81\x0a\x00\x07\x01\x80\x77",  # unknown network-layer message
        b"\x81\x0a\x00\x0a\x01\x04\x00\x05\x01\x0c",  # ReadProperty without arguments
        # ReadProperty whose object identifier tag claims more bytes than there are
        b"\x81\x0a\x00\x0c\x01\x04\x00\x05\x01\x0c\x0c\x02",
        b"\x81\x05\x00\x06\xff\xff",  # register-foreign-device, short
        b"\x81\x09\x00\x04",  # distribute-broadcast-to-network, empty
        b"\x82\x00\x00\x04",  # Annex H
        b"\x00" * 1500,
    ]
    frames += [rng.randbytes(rng.randint(1, 600)) for _ in range(200)]
    frames += [b"\x81\x0a" + rng.randbytes(rng.randint(2, 60)) for _ in range(200)]
    return frames


def test_it_survives_garbage_datagrams_on_every_socket() -> None:
    site = start_site(devices=2, objects=4, faults=True)
    try:
        targets = [_host_port(site.bbmd)] if site.bbmd else []
        targets += [_host_port(dev["address"]) for dev in site.devices if dev["role"] != "routed"]
        targets.append(_host_port(site.router["address"]))
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            sock.bind(("127.0.0.1", 0))
            for frame in _garbage():
                for target in targets:
                    sock.sendto(frame, target)
        # Still alive, and still answering a real client.
        assert site.process.poll() is None, site.log
        probe = run_probe(site, "--read-roles=normal,routed")
        normal = site.normal_devices[0]
        assert [normal["instance"], normal["address"]] in probe["discovered"]
        assert "value" in probe["reads"][str(normal["instance"])]["present_value"]
        routed = site.device("routed")
        assert "value" in probe["reads"][str(routed["instance"])]["device_name"]
        assert site.process.poll() is None, site.log
        assert "Traceback" not in site.log
    finally:
        site.stop()


def test_it_exits_zero_on_sigterm_and_frees_its_ports() -> None:
    site = start_site(devices=3, objects=2)
    addresses = [site.bbmd] + [dev["address"] for dev in site.devices]
    status = site.stop()
    assert status == 0
    for address in addresses:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            sock.bind(_host_port(address))  # raises if still held


def test_it_exits_zero_on_sigint_too() -> None:
    site = start_site(devices=1, objects=1)
    try:
        site.process.send_signal(signal.SIGINT)
        assert site.process.wait(scaled(10)) == 0
        assert "stopping the simulated site" in site.log
    finally:
        site.stop()


def _run_failing(args: list[str]) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "tests.settings"}
    return subprocess.run(
        simulator_command(args), cwd=REPO, env=env, capture_output=True, text=True, timeout=60
    )


def test_it_refuses_a_port_that_is_taken_with_a_clear_error() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as held:
        held.bind(("127.0.0.1", 0))
        port = held.getsockname()[1]
        proc = _run_failing(["--devices=1", f"--bbmd-port={port}", "--base-port=0"])
    assert proc.returncode != 0
    assert f"cannot bind the BBMD to 127.0.0.1:{port}" in proc.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--devices=-1"], "must not be negative"),
        (["--mode=bridge"], "bridge mode wants --host as the lab's /24 prefix"),
        (["--name-pattern=Same"], "name pattern needs {instance}"),
    ],
)
def test_it_refuses_bad_options(args: list[str], message: str) -> None:
    proc = _run_failing(args)
    assert proc.returncode != 0
    assert message in proc.stderr


def test_it_uses_consecutive_ports_from_base_port() -> None:
    # Three consecutive free ports are likely but not certain: retry a few bases.
    for _ in range(5):
        base = free_udp_port()
        if all(_port_free(base + k) for k in range(3)):
            break
    site = start_site_with_args(
        ["--devices=2", "--objects=1", "--bbmd-port=0", f"--base-port={base}"]
    )
    try:
        assert [dev["address"] for dev in site.devices] == [
            f"127.0.0.1:{base}",
            f"127.0.0.1:{base + 1}",
        ]
        assert [dev["instance"] for dev in site.devices] == [1001, 1002]
    finally:
        site.stop()


def _port_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


@pytest.mark.slow
def test_it_serves_a_10000_object_list_by_element() -> None:
    site = start_site(devices=0, objects=0, extra_args=["--big-object-list=10000"])
    try:
        big = site.device("big")
        assert len(big["objects"]) == 10_000
        probe = run_probe(site)
        reads = probe["reads"][str(big["instance"])]
        assert reads["object_list_length"]["value"] == 10_001
        # 50 kB does not fit the 16 segments BAC0 accepts: the whole read is refused
        # (a client must then read element by element) rather than hanging.
        whole = reads["object_list"]
        assert len(whole.get("value") or []) == 10_001 or whole["error"].startswith("AbortPDU")
        assert "value" in reads["present_value"]
    finally:
        site.stop()


def test_it_writes_its_ready_file_atomically(tmp_path) -> None:
    from discovery.simulator.site import write_ready_file

    target = tmp_path / "sub" / "ready.json"
    write_ready_file(target, {"devices": []})
    assert target.read_text().strip().startswith("{")
    assert [p.name for p in target.parent.iterdir()] == ["ready.json"]
