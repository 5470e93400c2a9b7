"""The compose services' own commands and healthchecks, run as processes on this host
against real PostgreSQL and Redis, without a container engine (test_containers_*.py runs
them in containers). Only what a container would change is changed: the listening port
(a free one) and the host name (a unique one)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings

from tests.deploy.conftest import FILLED_IN, REPO, ComposeProject
from tests.timing import scaled

START_DEADLINE_S = scaled(30)
STOP_DEADLINE_S = scaled(20)

pytestmark = [pytest.mark.postgres, pytest.mark.slow]


def _free_tcp_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _database_url() -> str:
    db = settings.DATABASES["default"]
    password = f":{db['PASSWORD']}" if db.get("PASSWORD") else ""
    return (
        f"postgres://{db.get('USER') or 'postgres'}{password}@{db.get('HOST') or '127.0.0.1'}:"
        f"{db.get('PORT') or 5432}/{db['NAME']}"
    )


@pytest.fixture
def service_env(
    django_db_setup: None, require_postgres: None, redis_url: str, tmp_path: Path
) -> dict[str, str]:
    """A container's environment: .env's settings, the test database and Redis, and the
    bin folder of this Python first on PATH (the image has its tools on PATH)."""
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("BACNET_", "CELERY_", "DJANGO_", "FLOWER_"))
        and key not in {"DATABASE_URL", "REDIS_URL", "DEBUG"}
    }
    env.update(
        PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
        SECRET_KEY=FILLED_IN["SECRET_KEY"],
        ALLOWED_HOSTS="localhost",
        SECURE_COOKIES="false",
        BACNET_BACKEND="celery",
        BACNET_ENV_FILE=os.devnull,
        BACNET_DATA_DIR=str(tmp_path / "data"),
        DATABASE_URL=_database_url(),
        REDIS_URL=redis_url,
        PYTHONUNBUFFERED="1",
    )
    return env


def _start(argv: list[str], env: dict[str, str]) -> subprocess.Popen[str]:
    return subprocess.Popen(
        argv, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )


def _stop(proc: subprocess.Popen[str]) -> str:
    if proc.poll() is None:
        proc.terminate()
    try:
        return proc.communicate(timeout=STOP_DEADLINE_S)[0]
    except subprocess.TimeoutExpired:
        proc.kill()
        return proc.communicate()[0]


def _healthcheck(service: dict[str, Any], env: dict[str, str], replace: dict[str, str]) -> int:
    test = list(service["healthcheck"]["test"])
    # `config` keeps $$ (its output is compose input again); the engine passes on $.
    kind, args = test[0], [arg.replace("$$", "$") for arg in test[1:]]
    if kind == "CMD-SHELL":
        args = ["sh", "-c", args[0]]
    else:
        assert kind == "CMD"
    for old, new in replace.items():
        args = [arg.replace(old, new) for arg in args]
    return subprocess.run(args, cwd=REPO, env=env, capture_output=True, timeout=60).returncode


def _until_healthy(
    proc: subprocess.Popen[str], check: Any, what: str, deadline_s: float = START_DEADLINE_S
) -> None:
    deadline = time.monotonic() + deadline_s
    while time.monotonic() < deadline and proc.poll() is None:
        if check() == 0:
            return
        time.sleep(0.5)
    output = _stop(proc)
    pytest.fail(f"{what} never passed its healthcheck:\n{output[-4000:]}")


@pytest.fixture
def web_service(compose: ComposeProject) -> dict[str, Any]:
    return compose.config()["services"]["web"]


def _run_web(service: dict[str, Any], env: dict[str, str], port: int) -> subprocess.Popen[str]:
    command = list(service["command"])
    assert command[:2] == ["sh", "-c"]
    script = command[2].replace("--bind 0.0.0.0:8000", f"--bind 127.0.0.1:{port}")
    assert f"127.0.0.1:{port}" in script
    return _start(["sh", "-c", script], env)


@pytest.mark.parametrize("allowed_hosts", ["localhost", "bacnet.example.com,localhost", "*"])
def test_it_turns_the_web_healthy_after_migrating(
    web_service: dict[str, Any], service_env: dict[str, str], allowed_hosts: str
) -> None:
    service_env["ALLOWED_HOSTS"] = allowed_hosts
    port = _free_tcp_port()
    proc = _run_web(web_service, service_env, port)
    try:
        _until_healthy(
            proc,
            lambda: _healthcheck(web_service, service_env, {":8000/": f":{port}/"}),
            "the web",
        )
    finally:
        output = _stop(proc)
    assert "Booting worker" in output  # gunicorn, after migrate


def test_it_reports_the_web_unhealthy_when_nothing_answers(
    web_service: dict[str, Any], service_env: dict[str, str]
) -> None:
    port = _free_tcp_port()

    assert _healthcheck(web_service, service_env, {":8000/": f":{port}/"}) != 0


def test_it_runs_the_celery_service_on_the_default_queue_and_pings_it(
    compose: ComposeProject, service_env: dict[str, str], tmp_path: Path
) -> None:
    service = compose.config()["services"]["celery"]
    host = f"deploy-{uuid.uuid4().hex[:8]}"
    # In a container, %h and `hostname` are both the container's host name. HOSTNAME is
    # not to be relied on: podman does not pass it to healthchecks and `exec`.
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "hostname").write_text(f"#!/bin/sh\necho {host}\n")
    (bin_dir / "hostname").chmod(0o755)
    service_env["PATH"] = f"{bin_dir}{os.pathsep}{service_env['PATH']}"
    service_env.pop("HOSTNAME", None)
    command = [word.replace("%h", host) for word in service["command"]]
    proc = _start([sys.executable, "-m", *command], service_env)
    try:
        _until_healthy(proc, lambda: _healthcheck(service, service_env, {}), "the celery service")
        queues = subprocess.run(
            [
                sys.executable,
                "-m",
                "celery",
                "-A",
                "bacnet_project",
                "inspect",
                "active_queues",
                "-d",
                f"default@{host}",
                "--timeout",
                "10",
            ],
            cwd=REPO,
            env=service_env,
            capture_output=True,
            text=True,
            timeout=60,
        )
    finally:
        _stop(proc)

    assert queues.returncode == 0, queues.stderr
    assert "'name': 'default'" in queues.stdout
    assert "'name': 'bacnet'" not in queues.stdout


def test_it_runs_the_bacnet_worker_service_until_its_heartbeat_check_passes(
    compose: ComposeProject, service_env: dict[str, str]
) -> None:
    service = compose.config(profiles=("bacnet",))["services"]["bacnet-worker"]
    host = f"deploy-{uuid.uuid4().hex[:8]}"
    # The compose environment, except the addresses: this test's database and Redis.
    service_env["BACNET_WORKER_LOG_FILE"] = service["environment"]["BACNET_WORKER_LOG_FILE"]
    service_env.update(BACNET_INTERFACE="127.0.0.1/8", BACNET_PORT=str(_free_udp_port()))
    command = [word.replace("%h", host) for word in service["command"]]
    assert command[0] == "python"
    proc = _start([sys.executable, *command[1:]], service_env)
    try:
        _until_healthy(
            proc, lambda: _healthcheck(service, service_env, {"%h": host}), "the BACnet worker"
        )
    finally:
        output = _stop(proc)

    assert "Database: PostgreSQL" in output
    assert f"bacnet-worker@{host} ready" in output


def _free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]
