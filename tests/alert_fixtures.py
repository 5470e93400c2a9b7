"""Real receivers for alarm notices: an HTTP server for webhooks and an SMTP server, both
on 127.0.0.1 in threads of the test process."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from tests.timing import scaled


@dataclass
class Received:
    headers: Any  # http.server's message: names are case-insensitive, as in HTTP
    body: bytes

    @property
    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class WebhookServer:
    """Answers each POST with the next scripted status (then 200), after ``delay_s``."""

    statuses: list[int] = field(default_factory=list)
    delay_s: float = 0.0
    received: list[Received] = field(default_factory=list)
    server: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        assert self.server is not None
        return f"http://127.0.0.1:{self.server.server_address[1]}/hook"

    def start(self) -> WebhookServer:
        hook = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                hook.received.append(Received(self.headers, body))
                if hook.delay_s:
                    time.sleep(hook.delay_s)
                status = hook.statuses.pop(0) if hook.statuses else 200
                self.send_response(status)
                self.send_header("Content-Type", "text/plain")
                self.end_headers()
                self.wfile.write(b"ok" if status < 300 else b"not now")

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()

    def wait_for(self, count: int, timeout_s: float = 10) -> list[Received]:
        deadline = time.monotonic() + scaled(timeout_s)
        while len(self.received) < count and time.monotonic() < deadline:
            time.sleep(0.05)
        assert len(self.received) >= count, f"{len(self.received)} of {count} webhooks came"
        return self.received


@pytest.fixture
def webhook() -> Iterator[WebhookServer]:
    server = WebhookServer().start()
    yield server
    server.stop()


class Mailbox:
    """aiosmtpd's handler: keeps each message (envelope and text) it accepts."""

    def __init__(self) -> None:
        self.messages: list[dict[str, Any]] = []

    async def handle_RCPT(
        self, server: Any, session: Any, envelope: Any, address: str, options: Any
    ) -> str:
        if address.startswith("nobody@"):
            return "550 5.1.1 No such user here"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.messages.append(
            {
                "from": envelope.mail_from,
                "to": list(envelope.rcpt_tos),
                "text": envelope.content.decode("utf8", errors="replace"),
            }
        )
        return "250 Message accepted for delivery"

    def wait_for(self, count: int, timeout_s: float = 10) -> list[dict[str, Any]]:
        deadline = time.monotonic() + scaled(timeout_s)
        while len(self.messages) < count and time.monotonic() < deadline:
            time.sleep(0.05)
        assert len(self.messages) >= count, f"{len(self.messages)} of {count} e-mails came"
        return self.messages


@dataclass
class SmtpServer:
    port: int
    mailbox: Mailbox


def _free_tcp_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def smtp_server() -> Iterator[SmtpServer]:
    from aiosmtpd.controller import Controller

    mailbox = Mailbox()
    controller = Controller(mailbox, hostname="127.0.0.1", port=_free_tcp_port())
    controller.start()
    yield SmtpServer(controller.port, mailbox)
    controller.stop()


def closed_port_url() -> str:
    """A URL on loopback where nothing listens: the connection is refused."""
    return f"http://127.0.0.1:{_free_tcp_port()}/hook"
