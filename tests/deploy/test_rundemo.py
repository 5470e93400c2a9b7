"""`make run` (`manage.py rundemo`) as a new user meets it: a port of their choice,
checked before the address is printed, Flower with the same login, and SIGTERM, SIGHUP
or Ctrl+C stopping every process it started, exiting 0 without an error message.

Real processes: the simulator, Celery workers, beat, Flower and the web server, on
SQLite and the file broker in a temporary data folder."""

from __future__ import annotations

import base64
import http.client
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.deploy.conftest import REPO
from tests.timing import scaled

pytestmark = pytest.mark.slow


def _free_tcp_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _demo_env(data: Path) -> dict[str, str]:
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in {"DATABASE_URL", "REDIS_URL", "CELERY_BROKER_URL", "PORT"}
    }
    env.update(
        DEBUG="true",
        BACNET_DATA_DIR=str(data),
        BACNET_ENV_FILE=str(data / "no.env"),
        BACNET_BACKEND="celery",
        DJANGO_SETTINGS_MODULE="bacnet_project.settings",
        PYTHONUNBUFFERED="1",
    )
    return env


def _descendants(pid: int) -> set[int]:
    """Every process below ``pid`` (Linux /proc)."""
    found: set[int] = set()
    todo = [pid]
    while todo:
        parent = todo.pop()
        for task in Path(f"/proc/{parent}/task").glob("*"):
            try:
                children = (task / "children").read_text().split()
            except OSError:
                continue
            for child in map(int, children):
                if child not in found:
                    found.add(child)
                    todo.append(child)
    return found


def _alive(pid: int) -> bool:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return False
    return "\nState:\tZ" not in status


def _status(port: int, path: str, login: str | None = None) -> int:
    headers = {}
    if login:
        headers["Authorization"] = "Basic " + base64.b64encode(login.encode()).decode()
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        connection.request("GET", path, headers=headers)
        return connection.getresponse().status
    finally:
        connection.close()


def _wait_for(path: Path, text: str, proc: subprocess.Popen, timeout_s: float) -> str:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        content = path.read_text(errors="replace") if path.exists() else ""
        if text in content:
            return content
        if proc.poll() is not None:
            raise AssertionError(f"rundemo exited ({proc.returncode}):\n{content}")
        time.sleep(0.3)
    raise AssertionError(f"{text!r} not printed in {timeout_s:.0f} s:\n{path.read_text()}")


@pytest.mark.parametrize("stop_signal", [signal.SIGTERM, signal.SIGHUP])
def test_it_stops_every_process_it_started_on_a_signal_and_exits_0(tmp_path, stop_signal):
    data = tmp_path / "data"
    port = _free_tcp_port()
    out, err = tmp_path / "out.log", tmp_path / "err.log"
    with out.open("w") as stdout, err.open("w") as stderr:
        demo = subprocess.Popen(
            [sys.executable, "manage.py", "rundemo", "--port", str(port), "--devices", "2",
             "--objects", "2", "--flower-port", str(_free_tcp_port())],
            cwd=REPO, env=_demo_env(data), stdout=stdout, stderr=stderr,
        )  # fmt: skip
    try:
        text = _wait_for(out, f"Open http://127.0.0.1:{port}/", demo, scaled(90))
        # The address is printed once it answers.
        assert _status(port, "/healthz") == 200
        children = _descendants(demo.pid)
        assert len(children) >= 5, children  # simulator, 2 workers, beat, flower, web
        if stop_signal == signal.SIGTERM:
            flower = int(text.split("Flower: http://127.0.0.1:")[1].split("/")[0])
            password = (data / "demo-admin-password.txt").read_text().strip()
            assert _status(flower, "/") == 401
            assert _status(flower, "/", f"admin:{password}") == 200
        demo.send_signal(stop_signal)
        assert demo.wait(scaled(40)) == 0, err.read_text()
    finally:
        if demo.poll() is None:
            demo.kill()
    deadline = time.monotonic() + scaled(10)
    while any(_alive(pid) for pid in children) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not [pid for pid in children if _alive(pid)]
    assert "Stopped" in out.read_text()
    assert "Traceback" not in err.read_text()
    assert "ERROR" not in err.read_text()
    assert "Error" not in out.read_text()


def test_it_refuses_a_port_in_use_in_one_line_before_printing_an_address(tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        run = subprocess.run(
            [sys.executable, "manage.py", "rundemo", "--port", str(port)],
            cwd=REPO, env=_demo_env(tmp_path / "data"), capture_output=True, text=True,
            timeout=scaled(60),
        )  # fmt: skip
    assert run.returncode != 0
    assert f"Port {port} on 127.0.0.1 is in use" in run.stderr
    assert f"PORT={port + 1}" in run.stderr
    assert "Open http" not in run.stdout
    assert "Traceback" not in run.stderr


def test_make_run_takes_a_port():
    dry = subprocess.run(
        ["make", "-n", "run", "PORT=8001"], cwd=REPO, capture_output=True, text=True, check=True
    )
    assert "rundemo --port 8001" in dry.stdout
