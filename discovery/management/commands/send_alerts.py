"""``manage.py send_alerts``: sends alarm notices (e-mail, webhook) in the database backend.

The database backend has no ``default`` queue: its BACnet worker runs the periodic work
itself, but a slow mail server or webhook must not hold the process that owns the BACnet
socket (and the building LAN may not reach them). This loop is that queue's worker: it
wakes on the NOTIFY sent when notices are recorded (PostgreSQL; it polls on SQLite),
sends what is due, and sleeps until the next retry. Celery mode does not need it (beat's
"Send alarm notices" and the ``deliver_alert`` tasks), but it does no harm there."""

from __future__ import annotations

import contextlib
import logging
import signal
import time
from typing import Any

from django.core.management.base import BaseCommand
from django.db import DatabaseError, InterfaceError, close_old_connections, connection

from discovery.events import Listener, notify_supported
from discovery.services.alerts import ALERT_WAITING, next_due_in_s, send_due_alerts

log = logging.getLogger(__name__)


class Command(BaseCommand):
    help = "Send alarm notices by e-mail and webhook (the database backend's sender)."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument(
            "--poll",
            type=float,
            help="Safety-net poll period, seconds (default 10 on PostgreSQL, which wakes "
            "on NOTIFY; 1 on SQLite).",
        )
        parser.add_argument("--once", action="store_true", help="Send what is due, then exit.")

    def handle(self, *args: Any, **options: Any) -> None:
        poll = options["poll"] or (10.0 if notify_supported() else 1.0)
        if options["once"]:
            send_due_alerts()
            return
        self.stopping = False
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, self._stop)
        log.info("Alarm notice sender ready")
        listener: Listener | None = None
        backoff = 1.0
        try:
            while not self.stopping:
                try:
                    if listener is None and notify_supported():
                        listener = Listener([ALERT_WAITING])  # LISTEN first, then look
                    send_due_alerts()
                    backoff = 1.0
                    self._wait(listener, max(0.2, next_due_in_s(poll)))
                except (DatabaseError, InterfaceError) as exc:
                    log.warning("Database unreachable (%s); retrying in %.0f s", exc, backoff)
                    if listener is not None:
                        listener.close()
                        listener = None
                    close_old_connections()
                    connection.close()
                    time.sleep(backoff)
                    backoff = min(backoff * 2, 30.0)
        finally:
            if listener is not None:
                with contextlib.suppress(Exception):
                    listener.close()
            log.info("Alarm notice sender stopped")

    def _stop(self, *_: Any) -> None:
        self.stopping = True

    def _wait(self, listener: Listener | None, seconds: float) -> None:
        # In slices, so that SIGTERM (which does not interrupt the wait) stops it soon.
        deadline = time.monotonic() + seconds
        while not self.stopping and (left := deadline - time.monotonic()) > 0:
            if listener is None:
                time.sleep(min(0.05, left))
            elif listener.wait(min(1.0, left)):
                return
