"""The BACnet receive path under malformed packets: random bytes, lying or truncated
BVLL headers, broken NPDUs (network messages, routing fields), every APDU type cut
short, answers nobody asked for, tags claiming huge lengths, deep nesting. Sent from a
loopback socket at a running BACnet worker's own UDP port, during and between jobs: the
worker survives, keeps answering Who-Is, and completes its jobs.

REL_BACNET_FUZZ sets the number of random packets (default 1500, 20000 with REL_FULL=1)."""

from __future__ import annotations

import random
import socket
import threading
import time
from collections.abc import Iterator

import pytest

from discovery.jobs import request_job
from discovery.models import BACnetPoint, BACnetTask
from tests.reliability.conftest import env_int
from tests.reliability.udp_tools import WHO_IS, bvll_unicast
from tests.site_fixtures import start_site
from tests.timing import scaled
from tests.worker_fixtures import start_database_worker, wait_for_job, worker_env

pytestmark = [pytest.mark.postgres, pytest.mark.slow, pytest.mark.django_db(transaction=True)]

RANDOM_PACKETS = env_int("REL_BACNET_FUZZ", 1500, full=20000)
WORKER_INSTANCE = 3056777


def _object_id(object_type: int, instance: int) -> bytes:
    return ((object_type << 22) | instance).to_bytes(4, "big")


# Well-formed frames that the mutations start from.
READ_NAME = bvll_unicast(  # ReadProperty(device WORKER_INSTANCE, object-name)
    b"\x01\x04" + b"\x00\x05\x01\x0c" + b"\x0c" + _object_id(8, WORKER_INSTANCE) + b"\x19\x4d"
)
I_AM = bvll_unicast(
    b"\x01\x00" + b"\x10\x00\xc4" + _object_id(8, 4000) + b"\x22\x05\xc4\x91\x00\x21\x0f"
)
COMPLEX_ACK = bvll_unicast(  # ReadProperty-ACK with a present value
    b"\x01\x00" + b"\x30\x01\x0c\x0c" + _object_id(0, 1) + b"\x19\x55\x3e\x44\x41\xa8\x00\x00\x3f"
)
ROUTED_WHO_IS = bvll_unicast(
    b"\x01\x28" + b"\x00\x14\x01\x0b" + b"\x00\x14\x01\x0b\xff" + b"\x10\x08"
)
VALID = [WHO_IS, READ_NAME, I_AM, COMPLEX_ACK, ROUTED_WHO_IS]


def crafted_packets() -> Iterator[bytes]:
    """Every kind of broken frame, each written on purpose."""
    yield b""
    yield b"\x81"
    yield b"\x81\x0a"
    yield b"\x81\x0a\x00"
    yield b"\x81\x0a\x00\x04"  # an empty NPDU
    yield b"\x81\x0a\x00\x00" + b"\x01\x00\x10\x08"  # length 0
    yield b"\x81\x0a\xff\xff" + b"\x01\x00\x10\x08"  # length far beyond the datagram
    yield b"\x81\x0a\x00\x05" + b"\x01\x00\x10\x08"  # length shorter than the datagram
    yield b"\x82\x0a\x00\x08\x01\x00\x10\x08"  # not BACnet/IP
    for function in range(256):  # every BVLL function, empty and with junk
        yield bytes([0x81, function, 0x00, 0x04])
        yield bytes([0x81, function, 0x00, 0x0A]) + b"\x01\x00\x10\x08\xde\xad"
    yield b"\x81\x04\x00\x0a\x7f\x00"  # Forwarded-NPDU with a cut source address
    yield b"\x81\x05\x00\x06\xff\xff"  # Register-Foreign-Device, TTL 65535
    yield b"\x81\x01\x00\x0e" + b"\x7f\x00\x00\x01\xba\xc0" * 2  # Write-BDT from a stranger
    for version in (0, 2, 255):
        yield bvll_unicast(bytes([version, 0x00, 0x10, 0x08]))
    for control in (0x08, 0x20, 0x28, 0x80, 0x88, 0xA0, 0xFF):  # SNET/DNET/network flags
        yield bvll_unicast(bytes([0x01, control]))
        yield bvll_unicast(bytes([0x01, control, 0xFF, 0xFF, 0x06]))
        yield bvll_unicast(bytes([0x01, control, 0x00, 0x14, 0x00, 0x00]) + b"\x10\x08")
    for message in range(256):  # network layer messages, cut short
        yield bvll_unicast(bytes([0x01, 0x80, message]))
        yield bvll_unicast(bytes([0x01, 0x80, message, 0xFF]))
    for first in range(256):  # every APDU first octet, alone and with a few bytes
        yield bvll_unicast(b"\x01\x00" + bytes([first]))
        yield bvll_unicast(b"\x01\x00" + bytes([first, 0x05, 0x01, 0x0C, 0x0C]))
    for service in range(256):  # unconfirmed services with no or junk arguments
        yield bvll_unicast(b"\x01\x00" + bytes([0x10, service]))
        yield bvll_unicast(b"\x01\x00" + bytes([0x10, service, 0xC4, 0x02]))
    for pdu_type in (0x20, 0x30, 0x40, 0x50, 0x60, 0x70):  # answers nobody asked for
        for invoke_id in range(0, 256, 17):
            yield bvll_unicast(b"\x01\x00" + bytes([pdu_type, invoke_id, 0x0C, 0x02]))
    yield bvll_unicast(b"\x01\x04" + b"\x08\x05\x01\x0c" + b"\x0c")  # a segment with no rest
    yield bvll_unicast(b"\x01\x04" + b"\x0c\x05\x01\xff\x04\x0c")  # bad sequence numbers
    yield bvll_unicast(b"\x01\x00" + b"\x10\x00" + b"\xc5\xfe\xff\xff\xff\xff")  # 4 GB tag
    yield bvll_unicast(b"\x01\x00" + b"\x10\x00" + b"\x75\xff\xff\xff")  # a huge string
    yield bvll_unicast(b"\x01\x00" + b"\x10\x00" + b"\x0e" * 700)  # nesting, 700 deep
    yield bvll_unicast(b"\x01\x04\x00\x05\x01\x0c" + b"\x0e" * 700 + b"\x0f" * 700)
    yield bvll_unicast(b"\x01\x00" + b"\x10\x00" + b"\x00" * 1400)
    yield b"\x81\x0a" + (65000).to_bytes(2, "big") + b"\x01\x00" + bytes(64994)
    for frame in VALID:  # every truncation of each well-formed frame
        for cut in range(len(frame)):
            yield frame[:cut]


def mutated_packets(count: int, seed: int) -> Iterator[bytes]:
    """Random bytes, and well-formed frames with random bytes flipped or cut."""
    rng = random.Random(seed)
    for n in range(count):
        if n % 3 == 0:
            yield rng.randbytes(rng.randint(0, 1500))
            continue
        frame = bytearray(rng.choice(VALID))
        for _ in range(rng.randint(1, 4)):
            frame[rng.randrange(len(frame))] = rng.randrange(256)
        if rng.random() < 0.3:
            frame = frame[: rng.randrange(len(frame))]
        if rng.random() < 0.3:
            frame += rng.randbytes(rng.randint(1, 64))
        yield bytes(frame)


def blast(port: int, packets: Iterator[bytes]) -> int:
    """Send everything at the worker's port; return how many datagrams left."""
    sent = 0
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        for packet in packets:
            try:
                sock.sendto(packet, ("127.0.0.1", port))
                sent += 1
            except OSError:
                pass  # e.g. a datagram too big for loopback: the next one goes
            if sent % 25 == 0:
                # A flood the stack reads (a few thousand a second), not a buffer
                # overflow in which the kernel drops most of it unread.
                time.sleep(0.01)
    return sent


def answers_who_is(port: int, timeout_s: float = 10) -> bool:
    """A unicast Who-Is gets the worker's own I-Am back."""
    expected = b"\x10\x00\xc4" + _object_id(8, WORKER_INSTANCE)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        sock.settimeout(0.5)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            sock.sendto(WHO_IS, ("127.0.0.1", port))
            try:
                while True:
                    data, _ = sock.recvfrom(2048)
                    if expected in data:
                        return True
            except TimeoutError:
                continue
    return False


@pytest.fixture
def site():
    site = start_site(devices=2, objects=6)
    yield site
    site.stop()


def test_it_survives_malformed_packets_and_keeps_working(site):
    """GIVEN a BACnet worker on a loopback port
    WHEN thousands of malformed frames hit that port, also while it collects
    THEN it still answers Who-Is, the collection in flight and the next one complete,
    and the process never exited."""
    env = worker_env(site, BACNET_BACKEND="database", BACNET_DEVICE_INSTANCE=str(WORKER_INSTANCE))
    port = int(env["BACNET_INTERFACE"].rsplit(":", 1)[1])
    worker = start_database_worker("rel-fuzzed", env, "--no-schedule")
    try:
        assert answers_who_is(port), "no I-Am before the fuzzing: the probe is wrong"
        discovery = wait_for_job(request_job("discover", backend="database").pk, scaled(40))
        assert discovery.status == "completed", discovery.error_message

        sent = blast(port, crafted_packets())
        assert worker.proc.poll() is None, worker.log()[-3000:]
        assert answers_who_is(port), "no I-Am after the crafted frames"

        # Random frames while a collection is in flight.
        during = threading.Thread(
            target=blast, args=(port, mutated_packets(RANDOM_PACKETS, seed=8)), daemon=True
        )
        during.start()
        job = request_job("collect", backend="database")
        during.join(300)
        first = wait_for_job(job.pk, scaled(40))
        assert worker.proc.poll() is None, worker.log()[-3000:]
        assert answers_who_is(port), "no I-Am after the random frames"
        second = wait_for_job(request_job("collect", backend="database").pk, scaled(40))
    finally:
        worker.stop()
    assert sent > 2000
    for cycle in (first, second):
        assert cycle.status == "completed", cycle.error_message
        assert cycle.result["readings"] == BACnetPoint.objects.count()
    assert BACnetTask.objects.filter(status="failed").count() == 0
