"""UDP helpers for the reliability tests: a relay that makes a device slow, and raw
BACnet/IP frames. Loopback only."""

from __future__ import annotations

import heapq
import itertools
import select
import socket
import threading
import time


class SlowRelay(threading.Thread):
    """A UDP relay in front of one device that holds each of its answers for
    ``delay_s``: to the client the relay's address is a device that answers late.

    Requests go through at once; answers leave ``delay_s`` after they arrived."""

    def __init__(self, target: tuple[str, int], delay_s: float) -> None:
        super().__init__(name="slow-relay", daemon=True)
        self.target = target
        self.delay_s = delay_s
        self.front = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.front.bind(("127.0.0.1", 0))
        self.back = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.back.bind(("127.0.0.1", 0))
        self.client: tuple[str, int] | None = None
        self.stopped = threading.Event()
        self.relayed = 0

    @property
    def address(self) -> str:
        host, port = self.front.getsockname()
        return f"{host}:{port}"

    def run(self) -> None:
        due: list[tuple[float, int, bytes]] = []
        order = itertools.count()
        while not self.stopped.is_set():
            now = time.monotonic()
            wait = min(max(due[0][0] - now, 0.0), 0.1) if due else 0.1
            readable, _, _ = select.select([self.front, self.back], [], [], wait)
            for sock in readable:
                data, source = sock.recvfrom(65535)
                if sock is self.front:
                    self.client = source
                    self.back.sendto(data, self.target)
                else:
                    heapq.heappush(due, (time.monotonic() + self.delay_s, next(order), data))
            now = time.monotonic()
            while due and due[0][0] <= now:
                _, _, data = heapq.heappop(due)
                if self.client is not None:
                    self.front.sendto(data, self.client)
                    self.relayed += 1

    def stop(self) -> None:
        self.stopped.set()
        self.join(5)
        self.front.close()
        self.back.close()


def bvll_unicast(npdu_and_apdu: bytes) -> bytes:
    """An Original-Unicast-NPDU around ``npdu_and_apdu`` with a truthful length."""
    return b"\x81\x0a" + (4 + len(npdu_and_apdu)).to_bytes(2, "big") + npdu_and_apdu


# Who-Is without a range, unicast, no reply expected from the NPDU's point of view.
WHO_IS = bvll_unicast(b"\x01\x00" + b"\x10\x08")


def parse_address(text: str) -> tuple[str, int]:
    host, _, port = text.rpartition(":")
    return host, int(port)
