"""bacnet_worker_windows.py run as a user runs it: a subprocess against real PostgreSQL and
Redis, with its start-up checks failing clearly when one of them does not answer."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from celery import Celery
from django.conf import settings

from tests.timing import scaled

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "bacnet_worker_windows.py"
# Generous: a refused connection fails at once, the limit only catches a hang.
CHECK_DEADLINE_S = scaled(20)
START_DEADLINE_S = scaled(30)
STOP_DEADLINE_S = scaled(20)

pytestmark = [pytest.mark.postgres, pytest.mark.slow]


def _database_url() -> str:
    db = settings.DATABASES["default"]
    user = db.get("USER") or "postgres"
    password = f":{db['PASSWORD']}" if db.get("PASSWORD") else ""
    return (
        f"postgres://{user}{password}@{db.get('HOST') or '127.0.0.1'}:"
        f"{db.get('PORT') or 5432}/{db['NAME']}"
    )


@pytest.fixture
def closed_port() -> Iterator[int]:
    """A TCP port that refuses connections: bound (so no one else takes it), not listening."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        yield sock.getsockname()[1]


def _free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def worker_env(
    django_db_setup: None, redis_url: str, tmp_path: Path, require_postgres: None
) -> dict[str, str]:
    """The environment of a native worker: the test database (migrated by pytest-django),
    Redis, and a BACnet socket on loopback only."""
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("BACNET_", "CELERY_", "DJANGO_", "FLOWER_"))
        and key not in {"DATABASE_URL", "REDIS_URL", "LOG_LEVEL", "DEBUG"}
    }
    env.update(
        SECRET_KEY="deploy-test-secret-key-0123456789abcdefghijklmnop",
        ALLOWED_HOSTS="localhost",
        BACNET_ENV_FILE=os.devnull,
        BACNET_DATA_DIR=str(tmp_path / "data"),
        BACNET_WORKER_LOG_FILE=str(tmp_path / "logs" / "worker.log"),
        DATABASE_URL=_database_url(),
        REDIS_URL=redis_url,
        BACNET_BACKEND="celery",
        BACNET_INTERFACE="127.0.0.1/8",
        BACNET_PORT=str(_free_udp_port()),
        PYTHONUNBUFFERED="1",
    )
    return env


def _run(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(SCRIPT), *args],
        env=env,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=CHECK_DEADLINE_S,
    )


def test_it_passes_its_checks_when_postgres_and_redis_answer(worker_env: dict[str, str]) -> None:
    result = _run(worker_env, "--check")

    assert result.returncode == 0, result.stderr
    assert "Start-up checks passed" in result.stderr
    assert "backend celery" in result.stderr


def test_it_writes_a_tagged_log_file(worker_env: dict[str, str]) -> None:
    _run(worker_env, "--check")

    text = Path(worker_env["BACNET_WORKER_LOG_FILE"]).read_text(encoding="utf-8")
    assert f"[bacnet-worker@{socket.gethostname()}" in text
    assert "Start-up checks passed" in text


def test_it_logs_to_the_console_only_when_the_log_file_is_turned_off(
    worker_env: dict[str, str],
) -> None:
    worker_env["BACNET_WORKER_LOG_FILE"] = ""

    result = _run(worker_env, "--check")

    assert result.returncode == 0, result.stderr
    assert "Start-up checks passed" in result.stderr
    assert not (Path(worker_env["BACNET_DATA_DIR"]) / "logs").exists()


def test_it_names_database_url_when_postgres_does_not_answer(
    worker_env: dict[str, str], closed_port: int
) -> None:
    worker_env["DATABASE_URL"] = f"postgres://postgres@127.0.0.1:{closed_port}/nowhere"

    result = _run(worker_env, "--check")

    assert result.returncode == 2
    assert "DATABASE_URL" in result.stderr
    assert f"127.0.0.1:{closed_port}" in result.stderr
    assert "Traceback" not in result.stderr


def test_it_names_the_broker_when_redis_does_not_answer(
    worker_env: dict[str, str], closed_port: int
) -> None:
    worker_env["REDIS_URL"] = f"redis://127.0.0.1:{closed_port}/3"

    result = _run(worker_env, "--check")

    assert result.returncode == 2
    assert "broker" in result.stderr
    assert "REDIS_URL" in result.stderr
    assert f"127.0.0.1:{closed_port}" in result.stderr
    assert "Traceback" not in result.stderr


def test_it_names_celery_broker_url_when_that_is_the_one_set(
    worker_env: dict[str, str], closed_port: int
) -> None:
    worker_env["CELERY_BROKER_URL"] = f"redis://127.0.0.1:{closed_port}/3"

    result = _run(worker_env, "--check")

    assert result.returncode == 2
    assert "CELERY_BROKER_URL" in result.stderr


def test_it_needs_no_broker_with_the_database_backend(
    worker_env: dict[str, str], closed_port: int
) -> None:
    worker_env["REDIS_URL"] = f"redis://127.0.0.1:{closed_port}/3"

    result = _run(worker_env, "--backend", "database", "--check")

    assert result.returncode == 0, result.stderr
    assert "backend database" in result.stderr


def test_it_says_how_to_fix_a_missing_secret_key(worker_env: dict[str, str]) -> None:
    worker_env["SECRET_KEY"] = ""

    result = _run(worker_env, "--check")

    assert result.returncode == 2
    assert "SECRET_KEY" in result.stderr
    assert "Traceback" not in result.stderr


def test_it_asks_for_migrate_on_an_empty_database(worker_env: dict[str, str]) -> None:
    # A fresh SQLite file: it answers, but nothing has created the tables.
    worker_env.pop("DATABASE_URL")

    result = _run(worker_env, "--backend", "database", "--check")

    assert result.returncode == 2
    assert "migrate" in result.stderr


def _alive(env: dict[str, str], name: str) -> bool:
    return _run(env, "--alive", "--name", name).returncode == 0


def _active_queues(broker_url: str, node: str) -> list[str] | None:
    probe = Celery("deploy-probe", broker=broker_url)
    try:
        replies = probe.control.inspect(destination=[node], timeout=1.0).active_queues()
    finally:
        probe.close()
    if not replies or node not in replies:
        return None
    return sorted(queue["name"] for queue in replies[node])


def test_it_runs_a_solo_celery_worker_on_the_bacnet_queue_only(
    worker_env: dict[str, str],
) -> None:
    node = f"bacnet-test-{uuid.uuid4().hex[:8]}@deploy"
    proc = subprocess.Popen(
        [sys.executable, str(SCRIPT), "--name", node, "--loglevel", "INFO"],
        env=worker_env,
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        queues = None
        deadline = time.monotonic() + START_DEADLINE_S
        while queues is None and time.monotonic() < deadline and proc.poll() is None:
            queues = _active_queues(worker_env["REDIS_URL"], node)
        if queues is None:
            proc.kill()
            output = proc.communicate(timeout=STOP_DEADLINE_S)[0]
            pytest.fail(f"the worker {node} never answered inspect:\n{output[-4000:]}")

        assert queues == ["bacnet"]
        # The container healthcheck: the heartbeat the worker writes under its node name.
        assert _alive(worker_env, node)

        proc.send_signal(signal.SIGTERM)
        output = proc.communicate(timeout=STOP_DEADLINE_S)[0]
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()

    assert proc.returncode == 0, output[-4000:]
    assert "(solo)" in output
    assert "Warm shutdown" in output


def test_it_runs_the_database_backend_loop_and_stops_on_sigterm(
    worker_env: dict[str, str],
) -> None:
    name = f"bacnet-db-test-{uuid.uuid4().hex[:8]}"
    worker_env["BACNET_BACKEND"] = "database"
    # No broker at all in this mode.
    worker_env.pop("REDIS_URL")
    proc = subprocess.Popen(
        [sys.executable, str(SCRIPT), "--name", name],
        env=worker_env,
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        assert not _alive(worker_env, f"never-started-{name}")
        alive = False
        deadline = time.monotonic() + START_DEADLINE_S
        while not alive and time.monotonic() < deadline and proc.poll() is None:
            alive = _alive(worker_env, name)
        if not alive:
            proc.kill()
            output = proc.communicate(timeout=STOP_DEADLINE_S)[0]
            pytest.fail(f"the worker {name} wrote no heartbeat:\n{output[-4000:]}")

        proc.send_signal(signal.SIGTERM)
        output = proc.communicate(timeout=STOP_DEADLINE_S)[0]
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()

    assert proc.returncode == 0, output[-4000:]
    assert "backend database" in output
    # A stopped worker says so at once through its heartbeat.
    assert not _alive(worker_env, name)
