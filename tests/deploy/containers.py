"""The compose deployment run for real: the repository's own compose files and Dockerfile,
started by Docker Compose or by podman-compose with the kit in ``.ci/containers``.

``Deployment`` is one compose project made from a copy of the repository as a user has
it (a ``.env`` made from ``.env.example``); ``running()`` builds, starts and always tears
it down. tests/deploy/web_user.py drives it through the web's published port. Real
containers, PostgreSQL, Redis and Celery: nothing is mocked.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import socket
import subprocess
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from tests.deploy.conftest import REPO
from tests.timing import scaled

T = TypeVar("T")

KIT_SCRIPT = REPO / ".ci" / "containers" / "setup.sh"
KIT_DIR = Path(os.environ.get("CONTAINERS_KIT_DIR", "/var/tmp/containers-kit"))
SKIP_REASON = (
    "starts the compose deployment in containers (podman or Docker): run "
    "`make test-containers` or set BACNET_TEST_CONTAINERS=1"
)
ARTIFACTS = REPO / "test-artifacts" / "containers"
# Its own tag, so that a run never replaces the image of a real deployment on the host.
IMAGE = "bacnet-monitor:test"
APP_SERVICES = ("web", "celery", "beat", "flower")
# What was measured, printed at the end of the run (tests/deploy/conftest.py).
REPORT: list[str] = []


def report(line: str) -> None:
    REPORT.append(line)


def containers_requested() -> bool:
    return os.environ.get("BACNET_TEST_CONTAINERS", "") not in ("", "0", "false")


def free_tcp_port() -> int:
    """A TCP port free on every interface right now (the web is published on all)."""
    with socket.socket() as sock:
        sock.bind(("", 0))
        return int(sock.getsockname()[1])


def wait_for(what: str, probe: Callable[[], T | None], timeout_s: float, every_s: float = 1.0) -> T:
    """Call ``probe`` until it returns something other than None/False; fail after the
    deadline with the last exception (probes may raise while a service comes back)."""
    deadline = time.monotonic() + timeout_s
    last: BaseException | None = None
    while True:
        try:
            result = probe()
            if result is not None and result is not False:
                return result
        except (OSError, AssertionError, ValueError, KeyError) as exc:
            last = exc
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {timeout_s:.0f} s (last error: {last!r})")
        time.sleep(every_s)


# ------------------------------------------------------------------ container engines


@dataclass(frozen=True)
class Engine:
    """How to run compose and the container CLI on this machine."""

    name: str
    compose: tuple[str, ...]
    cli: tuple[str, ...]
    environ: dict[str, str]
    # Podman 4.3 without systemd runs no healthcheck by itself: whoever waits runs them.
    runs_healthchecks: bool

    def env(self) -> dict[str, str]:
        return {**os.environ, **self.environ}


def find_engine() -> Engine | None:
    """Docker Engine when a daemon answers, else podman through the kit (.ci/containers)."""
    if shutil.which("docker"):
        probe = subprocess.run(["docker", "info"], capture_output=True, text=True, timeout=30)
        if probe.returncode == 0:
            return Engine("docker", ("docker", "compose"), ("docker",), {}, False)
    podman_compose = KIT_DIR / "venv" / "bin" / "podman-compose"
    shim = KIT_DIR / "podman-shim"
    if shutil.which("podman") and podman_compose.is_file() and shim.is_file():
        return Engine(
            "podman",
            (str(podman_compose), "--podman-path", str(shim)),
            ("podman",),
            {
                "PATH": f"{podman_compose.parent}:{os.environ.get('PATH', '/usr/bin:/bin')}",
                # Keeps the Dockerfile's HEALTHCHECK (OCI images have none).
                "BUILDAH_FORMAT": "docker",
                # Docker Compose's container names (project-service-1) and behaviour.
                "PODMAN_COMPOSE_DOCKER_COMPOSE_COMPAT": "1",
            },
            True,
        )
    return None


def engine_version(engine: Engine) -> str:
    """One line naming what runs the containers, for the test report."""
    words = []
    for argv in ((*engine.compose, "version"), (*engine.cli, "--version")):
        result = subprocess.run(argv, capture_output=True, text=True, env=engine.env())
        lines = [line for line in result.stdout.splitlines() if "version" in line.lower()]
        words.append(lines[0].strip() if lines else "?")
    return "; ".join(dict.fromkeys(words))


# ------------------------------------------------------------------ the repository


def copy_repository(destination: Path) -> Path:
    """The files a clone has (tracked, plus new ones not ignored): no .env, no .venv,
    no data/ of the developer's."""
    listing = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=REPO,
        capture_output=True,
        check=True,
    ).stdout.decode()
    for name in filter(None, listing.split("\0")):
        source = REPO / name
        if not source.is_file():  # deleted in the working tree
            continue
        target = destination / name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(source, target)
    return destination


def env_from_example(values: dict[str, str]) -> str:
    """.env.example with these values filled in, as a user edits it: an existing line
    (commented-out defaults included) gets the value, anything else is appended."""
    lines = (REPO / ".env.example").read_text(encoding="ascii").splitlines()
    left = dict(values)
    for i, line in enumerate(lines):
        match = re.fullmatch(r"#?\s?([A-Z][A-Z0-9_]*)=.*", line)
        if match and match.group(1) in left:
            name = match.group(1)
            lines[i] = f"{name}={left.pop(name)}"
    lines += [f"{name}={value}" for name, value in left.items()]
    return "\n".join(lines) + "\n"


# ------------------------------------------------------------------ one compose project


@dataclass
class Deployment:
    """One compose project, run from a copy of the repository with its own .env."""

    engine: Engine
    project: str
    directory: Path
    files: tuple[str, ...]
    profiles: tuple[str, ...] = ()
    env_values: dict[str, str] = field(default_factory=dict)

    def compose(
        self, *args: str, check: bool = True, timeout: float | None = None
    ) -> subprocess.CompletedProcess[str]:
        argv = [*self.engine.compose, "-p", self.project]
        for name in self.files:
            argv += ["-f", name]
        for profile in self.profiles:
            argv += ["--profile", profile]
        result = subprocess.run(
            [*argv, *args],
            cwd=self.directory,
            env=self.engine.env(),
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        if check and result.returncode != 0:
            raise AssertionError(
                f"compose {' '.join(args)} exited {result.returncode}:\n"
                f"{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
            )
        return result

    def cli(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            [*self.engine.cli, *args], env=self.engine.env(), capture_output=True, text=True
        )
        if check and result.returncode != 0:
            raise AssertionError(f"{args[0]} exited {result.returncode}: {result.stderr}")
        return result

    def write_env(self, values: dict[str, str]) -> None:
        self.env_values = dict(values)
        (self.directory / ".env").write_text(env_from_example(values), encoding="ascii")

    # --- containers of this project, found by the labels both compose tools set

    def _ids(self, kind: str, *filters: str) -> list[str]:
        argv = [kind, "ls" if kind != "container" else "ps", "-q"]
        if kind == "container":
            argv.append("-a")
        argv += ["--filter", f"label=com.docker.compose.project={self.project}"]
        for extra in filters:
            argv += ["--filter", extra]
        return self.cli(*argv, check=False).stdout.split()

    def container(self, service: str) -> str:
        ids = self._ids("container", f"label=com.docker.compose.service={service}")
        assert len(ids) == 1, f"{service}: {len(ids)} containers"
        return ids[0]

    def services(self) -> list[str]:
        names = self.cli(
            "ps",
            "-a",
            "--filter",
            f"label=com.docker.compose.project={self.project}",
            "--format",
            '{{index .Labels "com.docker.compose.service"}}',
        ).stdout.split()
        return sorted(set(names))

    def state(self, service: str) -> dict[str, Any]:
        out = self.cli("inspect", "--format", "{{json .State}}", self.container(service))
        return json.loads(out.stdout)

    def health(self, service: str) -> str:
        """healthy, unhealthy, starting, or "none" for a service without a check."""
        container = self.container(service)
        if self.engine.runs_healthchecks:
            self.cli("healthcheck", "run", container, check=False)
        health = self.state(service).get("Health") or self.state(service).get("Healthcheck")
        return (health or {}).get("Status") or "none"

    def wait_healthy(self, services: Iterable[str], timeout_s: float) -> dict[str, float]:
        """Wait for every service to run and (when it has a check) to be healthy.
        Returns the seconds each one took, counted from the call."""
        start = time.monotonic()
        took: dict[str, float] = {}
        for service in services:

            def ready(service: str = service) -> bool:
                state = self.state(service)
                assert state.get("Running"), f"{service} is not running: {state.get('Status')}"
                return self.health(service) in ("healthy", "none")

            wait_for(f"{service} healthy", ready, max(timeout_s - (time.monotonic() - start), 1))
            took[service] = time.monotonic() - start
        return took

    def exec(
        self, service: str, *argv: str, env: dict[str, str] | None = None, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        options: list[str] = ["-T"]
        for name, value in (env or {}).items():
            options += ["-e", f"{name}={value}"]
        return self.compose("exec", *options, service, *argv, check=check, timeout=scaled(60))

    def logs(self, service: str) -> str:
        result = self.cli("logs", self.container(service), check=False)
        return result.stdout + result.stderr

    def save_logs(self, folder: Path) -> None:
        """Every container's log, for the CI artifacts (most useful when a step failed)."""
        folder.mkdir(parents=True, exist_ok=True)
        for service in self.services():
            (folder / f"{service}.log").write_text(self.logs(service), encoding="utf-8")

    def restart(self, service: str) -> None:
        self.compose("restart", service, timeout=scaled(60))

    def down(self) -> None:
        """Containers, networks and volumes; then whatever a killed run left behind."""
        self.compose("down", "-v", check=False, timeout=scaled(120))
        self.sweep()

    def sweep(self) -> None:
        """Remove this project's containers, volumes and networks by label: also those
        of an earlier run that was killed before it could run ``down``."""
        containers = self._ids("container")
        if containers:
            self.cli("rm", "-f", "-v", *containers, check=False)
        for kind in ("volume", "network"):
            ids = self._ids(kind)
            if ids:
                self.cli(kind, "rm", *ids, check=False)

    def leftovers(self) -> dict[str, list[str]]:
        """This project's containers, volumes and networks that still exist."""
        found = {kind: self._ids(kind) for kind in ("container", "volume", "network")}
        return {kind: ids for kind, ids in found.items() if ids}

    def image_size_mb(self, image: str) -> float:
        out = self.cli("image", "inspect", "--format", "{{.Size}}", image).stdout
        return int(out.strip()) / 1e6


def _inspect(deployment: Deployment, service: str, method: str, workers: tuple[str, ...]) -> Any:
    """``celery inspect METHOD --json`` run inside a container. Naming the workers lets
    it return as soon as they answer; without names it waits its whole timeout for
    every worker there is."""
    destination = ("--destination", ",".join(workers)) if workers else ()
    result = deployment.exec(
        service,
        *("celery", "-A", "bacnet_project", "inspect", method, "--json", "--timeout", "10"),
        *destination,
    )
    start = result.stdout.find("{")
    assert start >= 0, f"inspect {method} printed no JSON: {result.stdout} {result.stderr}"
    return json.loads(result.stdout[start:])


def celery_queues(deployment: Deployment, service: str, *workers: str) -> dict[str, set[str]]:
    """The queues each worker consumes, as it says itself."""
    answers = _inspect(deployment, service, "active_queues", workers)
    return {worker: {queue["name"] for queue in queues} for worker, queues in answers.items()}


def celery_task_totals(
    deployment: Deployment, service: str, *workers: str
) -> dict[str, dict[str, int]]:
    """Per worker, how many of each task it ran since it started (``inspect stats``)."""
    stats = _inspect(deployment, service, "stats", workers)
    return {worker: dict(values.get("total", {})) for worker, values in stats.items()}


def sole_worker_of(totals: dict[str, dict[str, int]], task: str) -> str:
    runners = [worker for worker, tasks in totals.items() if tasks.get(task)]
    assert len(runners) == 1, f"{task} ran on {runners or 'no worker'}: {totals}"
    return runners[0]


def timed(action: Callable[[], T]) -> tuple[T, float]:
    start = time.monotonic()
    value = action()
    return value, time.monotonic() - start


# ------------------------------------------------------------------ a whole deployment


def env_values(bbmd: str, bacnet_port: int) -> dict[str, str]:
    """What a user fills into .env: the REQUIRED secrets, the password repeated in
    DATABASE_URL, and other host ports (this host's own PostgreSQL and Redis hold 5432
    and 6379). The BACnet worker on this host registers with the site's BBMD."""
    password = secrets.token_urlsafe(16)
    postgres, redis, web, flower = (free_tcp_port() for _ in range(4))
    return {
        "SECRET_KEY": secrets.token_urlsafe(50),
        "POSTGRES_PASSWORD": password,
        "POSTGRES_PORT": str(postgres),
        "DATABASE_URL": f"postgres://bacnet:{password}@127.0.0.1:{postgres}/bacnet",
        "REDIS_PORT": str(redis),
        "REDIS_URL": f"redis://127.0.0.1:{redis}/0",
        "WEB_PORT": str(web),
        "FLOWER_PORT": str(flower),
        "FLOWER_URL": f"http://localhost:{flower}",
        "FLOWER_BASIC_AUTH": f"admin:{secrets.token_urlsafe(12)}",
        "BACNET_IMAGE": IMAGE,
        "BACNET_BACKEND": "celery",
        "BACNET_INTERFACE": f"127.0.0.1/8:{bacnet_port}",
        "BACNET_BBMD_ADDRESS": bbmd,
        # A collection every 20 s rather than every minute: the schedule beat installs
        # from it is then seen at work within the test.
        "BACNET_COLLECT_INTERVAL_S": "20",
    }


@contextmanager
def running(deployment: Deployment, values: dict[str, str]) -> Iterator[Deployment]:
    """Build the image, ``up -d``, wait for every healthcheck; always tear everything
    down (volumes included) at the end, after saving each container's log."""
    copy_repository(deployment.directory)
    deployment.write_env(values)
    deployment.sweep()
    name = deployment.project
    try:
        # One service: the others share its image (podman-compose would build it once
        # per service; Docker Compose builds it once).
        _, built = timed(lambda: deployment.compose("build", "web", timeout=scaled(600)))
        report(
            f"{name}: image {IMAGE} built in {built:.0f} s, "
            f"{deployment.image_size_mb(IMAGE):.0f} MB"
        )
        _, up = timed(lambda: deployment.compose("up", "-d", timeout=scaled(120)))
        services = deployment.services()
        took = deployment.wait_healthy(services, scaled(120))
        report(
            f"{name}: `up -d` returned in {up:.0f} s; every service healthy "
            f"{max(took.values()):.0f} s later ({', '.join(services)})"
        )
        yield deployment
    finally:
        try:
            deployment.save_logs(ARTIFACTS / name)
        finally:
            _, down = timed(deployment.down)
            left = deployment.leftovers()
            report(f"{name}: `down -v` in {down:.0f} s" + (f"; LEFT: {left}" if left else ""))
    assert not left, f"{name}: `down -v` left {left}"


def create_superuser(deployment: Deployment) -> tuple[str, str]:
    """As the README says (``compose exec web python manage.py createsuperuser``), without
    the prompts: Django reads the password from DJANGO_SUPERUSER_PASSWORD."""
    password = secrets.token_urlsafe(16)
    deployment.exec(
        "web",
        "python",
        "manage.py",
        "createsuperuser",
        "--noinput",
        "--username",
        "admin",
        "--email",
        "admin@example.com",
        env={"DJANGO_SUPERUSER_PASSWORD": password},
    )
    return "admin", password


def published_host_ips(deployment: Deployment, service: str) -> set[str]:
    """The host addresses a running container's ports are published on."""
    out = deployment.cli(
        "inspect", "--format", "{{json .NetworkSettings.Ports}}", deployment.container(service)
    ).stdout
    return {
        binding["HostIp"] for bindings in json.loads(out).values() for binding in bindings or []
    }
