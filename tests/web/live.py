"""Helpers for tests against the live server's job event stream."""

from __future__ import annotations

from django.db import connection

from discovery.events import TASK_CHANGED
from tests.worker_fixtures import wait_until


def listening_pids() -> set[int]:
    """Server processes of the test database's sessions that listen for job changes:
    one per open event stream (a database worker listens on another channel)."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND query = %s",
            [f'LISTEN "{TASK_CHANGED}"'],
        )
        return {row[0] for row in cursor.fetchall()}


def listening_connections() -> int:
    return len(listening_pids())


def wait_for_streams_closed(timeout_s: float = 30) -> None:
    """Wait until the server noticed that every browser went away: its stream threads
    release their connections, so the test database can be dropped."""
    wait_until(lambda: listening_connections() == 0, timeout_s, "event streams closed")
