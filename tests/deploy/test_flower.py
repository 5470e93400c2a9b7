"""Flower started as the compose service starts it (its command, the login only in the
FLOWER_BASIC_AUTH environment variable), on real Redis: no page without the login except
the health check the container uses."""

from __future__ import annotations

import base64
import http.client
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from tests.deploy.conftest import FILLED_IN, REPO, ComposeProject
from tests.timing import scaled

START_DEADLINE_S = scaled(20)


def _free_tcp_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _status(url: str, login: str | None = None) -> int:
    """GET a Flower page on loopback; the HTTP status code."""
    parts = urlsplit(url)
    headers = {}
    if login:
        headers["Authorization"] = "Basic " + base64.b64encode(login.encode()).decode()
    connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=5)
    try:
        connection.request("GET", parts.path or "/", headers=headers)
        return connection.getresponse().status
    finally:
        connection.close()


@pytest.fixture
def flower(compose: ComposeProject, redis_url: str, tmp_path: Path) -> Iterator[str]:
    service = compose.config()["services"]["flower"]
    command = service["command"]
    assert command[:4] == ["celery", "-A", "bacnet_project", "flower"]
    port = _free_tcp_port()
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("BACNET_", "CELERY_", "DJANGO_", "FLOWER_"))
        and key not in {"DATABASE_URL", "REDIS_URL"}
    }
    env.update(
        SECRET_KEY=FILLED_IN["SECRET_KEY"],
        ALLOWED_HOSTS="localhost",
        BACNET_ENV_FILE=os.devnull,
        BACNET_DATA_DIR=str(tmp_path / "data"),
        REDIS_URL=redis_url,
        # Only what compose gives the container for the login.
        FLOWER_BASIC_AUTH=service["environment"]["FLOWER_BASIC_AUTH"],
    )
    celery = [sys.executable, "-m", "celery", *command[1:]]
    # Loopback and a free port here instead of the container's 5555.
    argv = [*celery, f"--port={port}", "--address=127.0.0.1"]
    proc = subprocess.Popen(
        argv, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + START_DEADLINE_S
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                if _status(f"{base}/healthcheck") == 200:
                    break
            except OSError:
                time.sleep(0.2)
        else:
            proc.kill()
            pytest.fail(f"Flower did not start:\n{proc.communicate()[0][-4000:]}")
        yield base
    finally:
        proc.terminate()
        try:
            proc.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.communicate()


@pytest.mark.redis
def test_it_serves_no_dashboard_without_the_login(flower: str) -> None:
    assert _status(f"{flower}/") == 401
    assert _status(f"{flower}/workers") == 401
    assert _status(f"{flower}/api/workers") == 401
    assert _status(f"{flower}/", login="admin:wrong-password") == 401


@pytest.mark.redis
def test_it_serves_the_dashboard_with_the_login_from_env(flower: str) -> None:
    assert _status(f"{flower}/", login=FILLED_IN["FLOWER_BASIC_AUTH"]) == 200


@pytest.mark.redis
def test_it_answers_the_container_healthcheck_without_a_login(flower: str) -> None:
    assert _status(f"{flower}/healthcheck") == 200
