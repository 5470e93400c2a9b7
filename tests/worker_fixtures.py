"""Real worker processes for end-to-end tests: Celery workers and the database worker.

They run as subprocesses on the test database (tests using them need
``django_db(transaction=True)`` so that rows are committed where the workers can see
them) and talk BACnet to a simulated site through its BBMD on loopback.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from django.conf import settings

from tests.site_fixtures import free_udp_port
from tests.timing import scaled

REPO = Path(__file__).resolve().parents[1]
ARTIFACTS = REPO / "test-artifacts"

# Short BACnet deadlines keep silent and broken simulated devices from slowing the suite.
# Scaled like every test deadline: a starved simulator answers late, and a short Who-Is
# window then misses devices.
FAST_BACNET = {
    "BACNET_APDU_TIMEOUT_MS": str(int(scaled(500))),
    "BACNET_APDU_RETRIES": "0",
    "BACNET_REQUEST_DEADLINE_S": str(scaled(1.5)),
    "BACNET_DEVICE_DEADLINE_S": str(scaled(2)),
    "BACNET_DISCOVERY_QUIET_S": str(scaled(0.4)),
    "BACNET_DISCOVERY_MAX_S": str(scaled(3)),
    "BACNET_WORKER_HEARTBEAT_S": "1",
    "BACNET_BBMD_TTL": "60",
}


def database_url() -> str:
    """The URL of the database the tests run on (the test database, once created)."""
    db = settings.DATABASES["default"]
    if db["ENGINE"].endswith("postgresql"):
        password = f":{db['PASSWORD']}" if db.get("PASSWORD") else ""
        return f"postgres://{db['USER']}{password}@{db['HOST']}:{db['PORT']}/{db['NAME']}"
    return f"sqlite:///{db['NAME']}"


def worker_env(site: Any = None, **extra: str) -> dict[str, str]:
    """Environment for a subprocess of the product on the test database (and, given a
    simulated site, a BACnet interface of its own registered with the site's BBMD)."""
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "tests.settings",
        "DATABASE_URL": database_url(),
        "PYTHONUNBUFFERED": "1",
        **FAST_BACNET,
    }
    if site is not None:
        env["BACNET_INTERFACE"] = f"127.0.0.1/8:{free_udp_port()}"
        env["BACNET_BBMD_ADDRESS"] = site.bbmd
    env.update(extra)
    return env


@dataclass
class Process:
    """A worker subprocess with its log file."""

    name: str
    proc: subprocess.Popen
    log_path: Path

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def wait_for_log(self, text: str, timeout_s: float = 60) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if text in self.log():
                return
            if self.proc.poll() is not None:
                raise AssertionError(f"{self.name} exited ({self.proc.returncode}):\n{self.log()}")
            time.sleep(0.1)
        raise AssertionError(f"{self.name}: {text!r} not logged in {timeout_s} s:\n{self.log()}")

    def kill(self) -> None:
        """SIGKILL: the worker dies mid-task, as in a power cut."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(scaled(10))

    def stop(self, timeout_s: float = 20) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout_s)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(scaled(10))
        return self.proc.returncode


def spawn(name: str, args: list[str], env: dict[str, str]) -> Process:
    ARTIFACTS.mkdir(exist_ok=True)
    log_path = ARTIFACTS / f"{name.replace('@', '-')}-{os.getpid()}-{time.monotonic_ns()}.log"
    with log_path.open("w") as log_file:
        proc = subprocess.Popen(
            args, cwd=REPO, env=env, stdout=log_file, stderr=subprocess.STDOUT, text=True
        )
    return Process(name, proc, log_path)


def start_celery_worker(name: str, queues: str, env: dict[str, str]) -> Process:
    """``celery worker -Q queues -P solo -n name``; returns once it is ready."""
    args = [
        sys.executable, "-m", "celery", "-A", "bacnet_project", "worker",
        "-Q", queues, "-P", "solo", "-n", name, "--loglevel", "INFO",
        "--without-gossip", "--without-mingle",
    ]  # fmt: skip
    worker = spawn(name, args, env)
    worker.wait_for_log(" ready.")
    if any(q == "bacnet" or q.startswith("bacnet.") for q in queues.split(",")):
        worker.wait_for_log(f"BACnet worker {name} ready")
    return worker


def start_database_worker(name: str, env: dict[str, str], *extra: str) -> Process:
    """``manage.py bacnet_worker``; returns once it has registered."""
    args = [sys.executable, "manage.py", "bacnet_worker", "--name", name, "--poll", "1", *extra]
    worker = spawn(name, args, env)
    worker.wait_for_log(f"BACnet worker {name} ready")
    return worker


def wait_until(predicate: Any, timeout_s: float = 60, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"{what} not reached within {timeout_s} s")


def wait_for_job(task_id: int, timeout_s: float = 90) -> Any:
    """Wait until the job is completed or failed; return the row."""
    from discovery.models import BACnetTask

    def finished() -> Any:
        task = BACnetTask.objects.get(pk=task_id)
        return task if task.is_finished else None

    return wait_until(finished, timeout_s, f"job {task_id} finished")
