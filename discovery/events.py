"""Change events: "a job changed" for the pages, "a job is waiting" for the database worker.

On PostgreSQL these are NOTIFY messages, delivered when the writing transaction commits,
so a listener wakes at once instead of polling every few seconds. NOTIFY can be missed
across a reconnect, hence listeners LISTEN first, then look at the table, and keep a
slow poll as a safety net. SQLite has no NOTIFY: listeners fall back to short polling.
"""

from __future__ import annotations

import contextlib
import logging
import select
import time
from collections.abc import Generator, Iterator, Sequence

from django.db import connection

log = logging.getLogger(__name__)

TASK_CHANGED = "bacnet_task_changed"
JOB_WAITING = "bacnet_job_waiting"
SQLITE_POLL_S = 1.0


def notify_supported() -> bool:
    return connection.vendor == "postgresql"


def notify(channel: str, payload: str = "") -> None:
    """Send a NOTIFY on the current connection (delivered at commit). No-op on SQLite."""
    if notify_supported():
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_notify(%s, %s)", [channel, payload])


def publish_task_change(task_id: int) -> None:
    notify(TASK_CHANGED, str(task_id))


class Listener:
    """A dedicated autocommit connection that LISTENs on PostgreSQL channels."""

    def __init__(self, channels: Sequence[str]) -> None:
        self.channels = list(channels)
        # The raw driver connection raises psycopg2's errors; wrapped, they are Django's
        # (OperationalError, InterfaceError), which the workers catch and recover from.
        with connection.wrap_database_errors:
            self._conn = connection.get_new_connection(connection.get_connection_params())
            self._conn.autocommit = True
            with self._conn.cursor() as cursor:
                for channel in self.channels:
                    cursor.execute(f'LISTEN "{channel}"')

    def wait(self, timeout_s: float) -> list[tuple[str, str]]:
        """Block up to ``timeout_s`` for notifications; return (channel, payload) pairs.

        A lost connection raises Django's ``OperationalError`` or ``InterfaceError``."""
        with connection.wrap_database_errors:
            if not self._conn.notifies:
                ready, _, _ = select.select([self._conn], [], [], max(timeout_s, 0))
                if ready:
                    self._conn.poll()
            else:
                self._conn.poll()
        received = [(n.channel, n.payload) for n in self._conn.notifies]
        self._conn.notifies.clear()
        return received

    def close(self) -> None:
        # The server may already be gone: then there is nothing to release.
        with contextlib.suppress(Exception):
            self._conn.close()


def task_changes(timeout_s: float = 15.0) -> Generator[list[int], None, None]:
    """Yield lists of ``BACnetTask`` ids as they change; ``[]`` after each quiet
    ``timeout_s`` so a streaming response can send a keep-alive. Runs until closed."""
    if notify_supported():
        listener = Listener([TASK_CHANGED])
        try:
            while True:
                events = listener.wait(timeout_s)
                ids = sorted({int(p) for _, p in events if p.isdigit()})
                yield ids
        finally:
            listener.close()
    else:
        yield from _poll_task_changes(timeout_s)


def _poll_task_changes(timeout_s: float) -> Iterator[list[int]]:
    from discovery.models import BACnetTask

    def snapshot() -> dict[int, tuple]:
        rows = BACnetTask.objects.order_by("-id").values_list(
            "id", "status", "progress", "heartbeat_at"
        )[:50]
        return {row[0]: row[1:] for row in rows}

    seen = snapshot()
    quiet_since = time.monotonic()
    try:
        while True:
            time.sleep(SQLITE_POLL_S)
            current = snapshot()
            changed = sorted(i for i, state in current.items() if seen.get(i) != state)
            seen = current
            if changed or time.monotonic() - quiet_since >= timeout_s:
                quiet_since = time.monotonic()
                yield changed
    finally:
        connection.close()
