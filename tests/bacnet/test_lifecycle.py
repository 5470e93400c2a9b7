"""Start and stop: the socket is freed, bad configuration fails clearly, one client per process."""

from __future__ import annotations

import socket
import threading

import pytest

from discovery import bacnet_client
from discovery.bacnet_client import BACnetClient, get_client, shutdown_client
from discovery.bacnet_types import BACnetConfigError, BACnetError
from tests.bacnet.conftest import fast_config
from tests.site_fixtures import free_udp_port


def loop_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "bacnet-client-loop"]


def assert_port_free(port: int) -> None:
    # No SO_REUSEPORT: this fails while any socket still holds the port.
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", port))


def test_it_frees_the_port_when_stopped_and_can_start_again() -> None:
    threads_before = len(loop_threads())
    config = fast_config()
    client = BACnetClient(config)
    client.start()
    assert client.started
    assert client.local_address == f"127.0.0.1:{config.port}"
    client.stop()
    assert not client.started
    assert_port_free(config.port)
    assert len(loop_threads()) == threads_before

    client.start()
    client.stop()
    client.stop()  # idempotent
    assert_port_free(config.port)
    assert len(loop_threads()) == threads_before


def test_it_works_as_a_context_manager() -> None:
    config = fast_config()
    with BACnetClient(config) as client:
        assert client.discover(timeout_s=0.3).devices == []
    assert_port_free(config.port)


def test_it_refuses_an_interface_this_host_does_not_have() -> None:
    threads_before = len(loop_threads())
    client = BACnetClient(fast_config(interface="192.0.2.77/24"))
    with pytest.raises(BACnetConfigError, match=r"192\.0\.2\.77 is not an address of this host"):
        client.start()
    assert not client.started
    assert len(loop_threads()) == threads_before


def test_it_refuses_an_interface_that_does_not_parse() -> None:
    with pytest.raises(BACnetConfigError, match="BACNET_INTERFACE"):
        BACnetClient(fast_config(interface="300.1.2.3/24")).start()


def test_it_refuses_a_port_another_socket_holds() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as holder:
        holder.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)  # as bacpypes3 binds
        holder.bind(("127.0.0.1", 0))
        port = holder.getsockname()[1]
        with pytest.raises(BACnetConfigError, match="in use"):
            BACnetClient(fast_config(port=port)).start()


def test_it_lets_a_port_in_the_interface_win_over_the_port_setting() -> None:
    port = free_udp_port()
    with BACnetClient(fast_config(interface=f"127.0.0.1/8:{port}", port=1)) as client:
        assert client.local_address == f"127.0.0.1:{port}"


def test_it_refuses_a_bbmd_that_does_not_answer() -> None:
    silent_bbmd = f"127.0.0.1:{free_udp_port()}"
    config = fast_config(bbmd_address=silent_bbmd, request_deadline_s=1.0)
    client = BACnetClient(config)
    for _attempt in range(2):  # a failed start leaves nothing behind: the retry fails alike
        with pytest.raises(BACnetConfigError, match="did not answer the foreign-device"):
            client.start()
        assert not client.started
        assert_port_free(config.port)


def test_it_refuses_a_bbmd_address_that_does_not_parse() -> None:
    with pytest.raises(BACnetConfigError, match="BACNET_BBMD_ADDRESS"):
        BACnetClient(fast_config(bbmd_address="127.0.0.1:99999")).start()


def test_it_refuses_requests_when_not_started() -> None:
    with pytest.raises(BACnetError, match="not started"):
        BACnetClient(fast_config()).discover()


def test_it_keeps_one_started_client_per_process(settings) -> None:
    port = free_udp_port()
    settings.BACNET_INTERFACE = f"127.0.0.1/8:{port}"
    settings.BACNET_BBMD_ADDRESS = ""
    shutdown_client()
    try:
        client = get_client()
        assert client.started
        assert client.local_address == f"127.0.0.1:{port}"
        assert get_client() is client
        assert client.config.apdu_timeout_ms == settings.BACNET_APDU_TIMEOUT_MS
    finally:
        shutdown_client()
        shutdown_client()  # idempotent
    assert bacnet_client._client is None
    assert_port_free(port)
