"""``manage.py rundemo`` (``make run``): the whole product on embedded defaults.

SQLite and the file broker (no server), a simulated BACnet site on loopback, the BACnet
worker for the configured backend (Celery: a solo worker on ``bacnet``, a worker on
``default`` and beat; database: ``bacnet_worker``), and the web server. The product
reaches the simulated devices without root by registering as a foreign device with the
simulator's BBMD on loopback, as it would with a site's BBMD on a real network.
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError

REPO = Path(__file__).resolve().parents[3]


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


class Command(BaseCommand):
    help = "Run the product on embedded defaults with a simulated BACnet site (the demo)."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--port", type=int, default=8000, help="Web port (127.0.0.1 only).")
        parser.add_argument("--devices", type=int, default=6, help="Simulated devices.")
        parser.add_argument("--objects", type=int, default=12, help="Objects per device.")
        parser.add_argument("--bbmd-port", type=int, default=47808, help="Simulator BBMD port.")
        parser.add_argument(
            "--no-simulator", action="store_true", help="Use the real network instead."
        )

    def handle(self, *args: Any, **options: Any) -> None:
        self.processes: list[tuple[str, subprocess.Popen]] = []
        data = Path(settings.DATA_DIR)
        data.mkdir(parents=True, exist_ok=True)
        self.stdout.write(f"Database: {settings.DATABASES['default']['NAME']}")
        call_command("migrate", interactive=False, verbosity=0)
        password = self._demo_user(data)
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        try:
            if not options["no_simulator"]:
                env.update(self._start_simulator(data, options))
            self._start_workers(env)
            url = f"http://127.0.0.1:{options['port']}/"
            self.stdout.write(
                f"\nOpen {url} and log in as admin / {password}\n"
                f"BACnet backend: {settings.BACNET_BACKEND} ({settings.BACNET_BACKEND_REASON}). "
                "Press Ctrl+C to stop everything.\n"
            )
            self._spawn(
                "web",
                [sys.executable, "manage.py", "runserver", f"127.0.0.1:{options['port']}",
                 "--noreload"],
                env,
            )  # fmt: skip
            self._watch()
        except KeyboardInterrupt:
            pass
        finally:
            self._stop_all()

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
             "--objects", str(options["objects"]), "--vary", "--faults",
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

    def _start_workers(self, env: dict[str, str]) -> None:
        celery = [sys.executable, "-m", "celery", "-A", "bacnet_project"]
        if settings.BACNET_BACKEND == "database":
            self._spawn("bacnet-worker", [sys.executable, "manage.py", "bacnet_worker"], env)
            return
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

    def _spawn(self, name: str, args: list[str], env: dict[str, str]) -> None:
        self.processes.append((name, subprocess.Popen(args, cwd=REPO, env=env)))

    def _watch(self) -> None:
        while True:
            for name, proc in self.processes:
                if proc.poll() is not None:
                    raise CommandError(f"{name} exited with status {proc.returncode}")
            time.sleep(0.5)

    def _stop_all(self) -> None:
        for _, proc in reversed(self.processes):
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for _, proc in reversed(self.processes):
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
