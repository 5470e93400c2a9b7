"""``manage.py rundemo`` (``make run``): the whole product on embedded defaults.

SQLite and the file broker (no server), a simulated BACnet site on loopback, the BACnet
worker for the configured backend (Celery: a solo worker on ``bacnet``, a worker on
``default``, beat and Flower with the demo login; database: ``bacnet_worker`` and the
alarm notice sender ``send_alerts``), and the web server. The product reaches the
simulated devices without root by registering as a foreign device with the simulator's
BBMD on loopback, as it would with a site's BBMD on a real network.

It prints "Open http://…" only once the web server answers there. Ctrl+C, SIGTERM and
SIGHUP (a closed terminal) all stop every process it started, in reverse order, and a
clean stop exits 0. The children run in a session of their own, so Ctrl+C reaches only
this command, which stops them in order (no tracebacks from each), and on Linux each
child also gets SIGTERM if this command is killed outright.
"""

from __future__ import annotations

import ctypes
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from types import FrameType
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError

REPO = Path(__file__).resolve().parents[3]
# How long the processes get to stop on SIGTERM, together, before SIGKILL.
STOP_WAIT_S = 20


def _udp_port_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def tcp_port_free(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def _free_tcp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _answers(port: int, host: str = "127.0.0.1") -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


class Stop(Exception):
    """SIGTERM or SIGHUP: stop as Ctrl+C does."""


def _raise_stop(signum: int, frame: FrameType | None) -> None:
    raise Stop(signal.Signals(signum).name)


def _child_setup() -> Callable[[], None] | None:
    """On Linux, ask the kernel to SIGTERM the child when this command dies, even by
    SIGKILL: a demo must not leave workers behind holding the BACnet port."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(None, use_errno=True)
    except OSError:
        return None
    pr_set_pdeathsig = 1

    def setup() -> None:
        libc.prctl(pr_set_pdeathsig, signal.SIGTERM)

    return setup


class Command(BaseCommand):
    help = "Run the product on embedded defaults with a simulated BACnet site (the demo)."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument(
            "--port",
            type=int,
            default=int(os.environ.get("PORT") or 8000),
            help="Web port (127.0.0.1 only; default $PORT or 8000).",
        )
        parser.add_argument(
            "--flower-port", type=int, default=5555, help="Flower port (Celery backend)."
        )
        parser.add_argument("--devices", type=int, default=6, help="Simulated devices.")
        parser.add_argument("--objects", type=int, default=12, help="Objects per device.")
        parser.add_argument("--bbmd-port", type=int, default=47808, help="Simulator BBMD port.")
        parser.add_argument(
            "--no-simulator", action="store_true", help="Use the real network instead."
        )

    def handle(self, *args: Any, **options: Any) -> None:
        self.processes: list[tuple[str, subprocess.Popen]] = []
        self.flower_note = ""
        self.flower_port = 0
        port = options["port"]
        if not tcp_port_free(port):
            raise CommandError(
                f"Port {port} on 127.0.0.1 is in use (another `make run`?): "
                f"choose another with `make run PORT={port + 1}`."
            )
        data = Path(settings.DATA_DIR)
        data.mkdir(parents=True, exist_ok=True)
        self.stdout.write(f"Database: {settings.DATABASES['default']['NAME']}")
        call_command("migrate", interactive=False, verbosity=0)
        password = self._demo_user(data)
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        # Ctrl+C too: a shell that starts this in the background makes it ignore SIGINT.
        stop_signals = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
        previous = {sig: signal.signal(sig, _raise_stop) for sig in stop_signals}
        stopped_by = "Ctrl+C"
        try:
            if not options["no_simulator"]:
                env.update(self._start_simulator(data, options))
            env.update(self._start_workers(env, password, options["flower_port"]))
            self._spawn(
                "web",
                [sys.executable, "manage.py", "runserver", f"127.0.0.1:{port}", "--noreload"],
                env,
            )
            self._wait_until_answers("web", port)
            if self.flower_port:
                self._wait_until_answers("flower", self.flower_port)
            self.stdout.write(
                f"\nOpen http://127.0.0.1:{port}/ and log in as admin / {password}\n"
                f"BACnet backend: {settings.BACNET_BACKEND} ({settings.BACNET_BACKEND_REASON}). "
                f"{self.flower_note}\nPress Ctrl+C to stop everything.\n"
            )
            self.stdout.flush()  # seen at once, also when the output goes to a file
            self._watch()
        except KeyboardInterrupt:
            pass
        except Stop as stop:
            stopped_by = "Ctrl+C" if str(stop) == "SIGINT" else str(stop)
        finally:
            # A second Ctrl+C or SIGTERM while stopping must not leave children behind
            # or print a traceback: stopping is bounded (STOP_WAIT_S, then SIGKILL).
            for sig in stop_signals:
                signal.signal(sig, signal.SIG_IGN)
            self._stop_all()
            for sig, handler in previous.items():
                signal.signal(sig, handler)
        self.stdout.write(f"Stopped ({stopped_by}): every process of the demo has ended.")

    def _demo_user(self, data: Path) -> str:
        """An admin with a random password, kept in the data folder for the next run."""
        secret = data / "demo-admin-password.txt"
        if not secret.exists():
            secret.write_text(secrets.token_urlsafe(12))
            secret.chmod(0o600)
        password = secret.read_text().strip()
        user, _ = get_user_model().objects.get_or_create(
            username="admin", defaults={"is_staff": True, "is_superuser": True}
        )
        user.set_password(password)
        user.save()
        return password

    def _start_simulator(self, data: Path, options: dict[str, Any]) -> dict[str, str]:
        ready = data / "simulated-site.json"
        ready.unlink(missing_ok=True)
        bbmd_port = options["bbmd_port"] if _udp_port_free(options["bbmd_port"]) else 0
        self._spawn(
            "simulator",
            [sys.executable, "manage.py", "simulate_site", "--devices", str(options["devices"]),
             "--objects", str(options["objects"]), "--vary", "--faults", "--outputs",
             "--bbmd-port", str(bbmd_port), "--base-port", "0", "--ready-file", str(ready)],
            {**os.environ, "PYTHONUNBUFFERED": "1"},
        )  # fmt: skip
        deadline = time.monotonic() + 60
        while not ready.exists():
            if time.monotonic() > deadline or self.processes[-1][1].poll() is not None:
                raise CommandError("The simulated site did not start (see its log above).")
            time.sleep(0.2)
        site = json.loads(ready.read_text())
        self.stdout.write(f"Simulated site: {len(site['devices'])} devices, BBMD on {site['bbmd']}")
        client_port = 47900 if _udp_port_free(47900) else _free_udp_port()
        return {
            "BACNET_INTERFACE": f"127.0.0.1/8:{client_port}",
            "BACNET_BBMD_ADDRESS": site["bbmd"],
            "BACNET_BBMD_TTL": "300",
        }

    def _start_workers(self, env: dict[str, str], password: str, flower_port: int) -> dict:
        """Start the workers; returns what the web server must know of them."""
        celery = [sys.executable, "-m", "celery", "-A", "bacnet_project"]
        if settings.BACNET_BACKEND == "database":
            self._spawn("bacnet-worker", [sys.executable, "manage.py", "bacnet_worker"], env)
            # Alarm notices go out from a process of their own, never the BACnet worker.
            self._spawn("alert-sender", [sys.executable, "manage.py", "send_alerts"], env)
            self.flower_note = "No Flower: the database backend has no Celery workers to show."
            return {}
        # The BACnet worker owns the BACnet socket: queue bacnet only, solo pool.
        self._spawn(
            "bacnet-worker",
            [*celery, "worker", "-Q", "bacnet", "-P", "solo", "-n", "bacnet-demo@%h",
             "--loglevel", "INFO"],
            env,
        )  # fmt: skip
        self._spawn(
            "worker",
            [*celery, "worker", "-Q", "default", "-P", "solo", "-n", "default-demo@%h",
             "--loglevel", "INFO"],
            env,
        )  # fmt: skip
        self._spawn("beat", [*celery, "beat", "--loglevel", "INFO"], env)
        # Flower with the demo's login, on a free port if 5555 is taken.
        if not tcp_port_free(flower_port):
            flower_port = _free_tcp_port()
        flower_env = {**env, "FLOWER_BASIC_AUTH": f"admin:{password}"}
        self._spawn(
            "flower",
            [*celery, "flower", f"--port={flower_port}", "--address=127.0.0.1"],
            flower_env,
        )
        self.flower_port = flower_port
        url = f"http://127.0.0.1:{flower_port}/"
        self.flower_note = f"Flower: {url} (same login)."
        return {"FLOWER_URL": url}

    def _spawn(self, name: str, args: list[str], env: dict[str, str]) -> None:
        process = subprocess.Popen(
            args,
            cwd=REPO,
            env=env,
            # A session of its own: Ctrl+C reaches only this command, which stops the
            # children in order (see _stop_all).
            start_new_session=True,
            preexec_fn=_child_setup(),  # only prctl, between fork and exec
        )
        self.processes.append((name, process))

    def _wait_until_answers(self, name: str, port: int) -> None:
        """Print an address only once something answers there: ours."""
        process = dict(self.processes)[name]
        deadline = time.monotonic() + 60
        while not _answers(port):
            if process.poll() is not None:
                raise CommandError(f"{name} exited with status {process.returncode}.")
            if time.monotonic() > deadline:
                raise CommandError(f"{name} did not answer on port {port} in 60 s.")
            time.sleep(0.2)

    def _watch(self) -> None:
        while True:
            for name, proc in self.processes:
                if proc.poll() is not None:
                    raise CommandError(f"{name} exited with status {proc.returncode}")
            time.sleep(0.5)

    def _stop_all(self) -> None:
        """SIGTERM to Flower first (its inspector, broadcasting to workers that are
        stopping, printed tracebacks), then to the product's processes together, then to
        the simulated site: a worker still talking to the site's BBMD while it stops must
        find it there."""
        flower = [(n, p) for n, p in self.processes if n == "flower"]
        product = [(n, p) for n, p in reversed(self.processes) if n not in ("simulator", "flower")]
        site = [(n, p) for n, p in self.processes if n == "simulator"]
        for group in (flower, product, site):
            for _, proc in group:
                if proc.poll() is None:
                    proc.send_signal(signal.SIGTERM)
            deadline = time.monotonic() + STOP_WAIT_S
            for name, proc in group:
                try:
                    proc.wait(max(0.1, deadline - time.monotonic()))
                except subprocess.TimeoutExpired:
                    self.stderr.write(f"{name} did not stop within {STOP_WAIT_S} s: killed.")
                    proc.kill()
                    proc.wait(5)
