"""The worker of the database backend: no broker, it claims pending job rows itself.

One per site and BACnet interface (it owns the BACnet socket); it claims only its
site's rows and opens only its site's collection windows. Started by ``manage.py
bacnet_worker [--site SLUG]`` or ``bacnet_worker_windows.py --backend database``.
"""

from __future__ import annotations

import contextlib
import logging
import signal
import threading
import time
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import DatabaseError, InterfaceError, close_old_connections
from django.utils import timezone

from discovery.events import JOB_WAITING, Listener, notify_supported
from discovery.models import Site
from discovery.windows import (
    collection_enabled,
    collection_period_s,
    record_disabled_windows,
    warn_if_period_differs,
    window_start,
)
from discovery.worker import (
    become_bacnet_worker,
    claim_next,
    default_worker_name,
    run_job,
    scheduled_collection,
    stop_bacnet_worker,
    sweep_jobs,
)

log = logging.getLogger(__name__)


class DatabaseWorker:
    """The worker of the database backend: no broker; it claims pending rows.

    It waits on PostgreSQL LISTEN (woken at once by the NOTIFY that dispatch sends) with
    a slow poll as a safety net, or polls briefly on SQLite. It also runs what beat runs
    in Celery mode: periodic collection, rollups and the sweeper."""

    def __init__(
        self,
        name: str | None = None,
        *,
        poll_s: float | None = None,
        schedule: bool = True,
        site: Site | None = None,
    ) -> None:
        self.site = site or Site.default()
        self.name = name or default_worker_name("database")
        self.poll_s = poll_s or (10.0 if notify_supported() else 1.0)
        self.schedule = schedule
        self.stopping = False
        self._due: dict[str, float] = {}
        self._listener: Listener | None = None
        self._window: datetime | None = None
        self._next_window_at: float | None = None

    def request_stop(self, *_: Any) -> None:
        log.info("Worker %s stopping after the current job", self.name)
        self.stopping = True

    def _every(self, what: str, period_s: float) -> bool:
        now = time.monotonic()
        if now >= self._due.get(what, 0):
            self._due[what] = now + period_s
            return True
        return False

    def run_periodic(self) -> None:
        from discovery.services.rollups import calculate_daily_stats, calculate_hourly_stats

        if self._every("sweep", 15):
            sweep_jobs()
        if self._every("overrides", settings.BACNET_OVERRIDE_CHECK_S):
            from discovery.services.commanding import relinquish_due_overrides

            relinquish_due_overrides()
        if not self.schedule:
            return
        self.open_due_window()
        if self._every("rollups", settings.BACNET_ROLLUP_INTERVAL_S):
            calculate_hourly_stats()
            calculate_daily_stats()
        poll_s = settings.BACNET_EVENT_POLL_S
        if poll_s > 0 and self._every("event-poll", poll_s):
            from discovery.services.alarm_events import request_event_polls

            request_event_polls()
        if self._every("maintenance", 3600):
            from discovery.services.retention import maintain_readings

            maintain_readings()

    def open_due_window(self) -> None:
        """Open the current collection window once, when it starts (absolute windows:
        no drift, whatever the jobs took). Windows missed while a job ran are recorded
        as gaps by ``open_window``."""
        period = collection_period_s(self.site)
        now = timezone.now()
        current = window_start(now, period)
        self._next_window_at = (
            time.time() + (current + timedelta(seconds=period) - now).total_seconds()
        )
        if current == self._window:
            return
        self._window = current
        if collection_enabled(self.site):
            scheduled_collection("database", now, start=current, period_s=period, site=self.site)
        else:
            record_disabled_windows(now, self.site)

    def _wait_s(self) -> float:
        """Sleep until the next window at the latest (and at most the poll period)."""
        if not self.schedule or self._next_window_at is None:
            return self.poll_s
        return max(0.0, min(self.poll_s, self._next_window_at - time.time()))

    def _wait(self) -> None:
        if self._listener is None and notify_supported():
            self._listener = Listener([JOB_WAITING])
            return  # LISTEN first, then look at the table again: nothing is missed
        if self._listener is not None:
            self._listener.wait(self._wait_s())
        else:
            deadline = time.monotonic() + self._wait_s()
            while not self.stopping and time.monotonic() < deadline:
                time.sleep(0.05)

    def step(self) -> bool:
        """Periodic work, then one job if there is one. True if a job ran."""
        self.run_periodic()
        task = claim_next(self.name, "database", self.site.pk)
        if task is None:
            return False
        run_job(task.pk, self.name, claimed=task)
        return True

    def run(self, *, once: bool = False) -> None:
        for sig in (signal.SIGTERM, signal.SIGINT):
            if threading.current_thread() is threading.main_thread():
                signal.signal(sig, self.request_stop)
        interface = _client_interface()
        become_bacnet_worker(self.name, "database", interface, self.site)
        warn_if_period_differs()
        backoff = 1.0
        try:
            while not self.stopping:
                try:
                    ran = self.step()
                    backoff = 1.0
                    if once and not ran:
                        break
                    if not ran:
                        self._wait()
                except (DatabaseError, InterfaceError) as exc:
                    # The database went away: drop connections, wait, reconnect.
                    log.warning("Database unreachable (%s); retrying in %.0f s", exc, backoff)
                    self._close_listener()
                    close_old_connections()
                    from django.db import connection

                    connection.close()
                    time.sleep(backoff)
                    backoff = min(backoff * 2, 30.0)
        finally:
            self._close_listener()
            with contextlib.suppress(DatabaseError, InterfaceError):
                stop_bacnet_worker()
            from discovery.bacnet_client import shutdown_client

            shutdown_client()
            log.info("Worker %s stopped", self.name)

    def _close_listener(self) -> None:
        if self._listener is not None:
            self._listener.close()
            self._listener = None


def _client_interface() -> str:
    """Start the BACnet client now, so a wrong interface fails at start, not per job."""
    from discovery.bacnet_client import get_client

    client = get_client()
    return client.local_address
