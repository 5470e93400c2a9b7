"""The Windows hybrid topology, run on Linux: ``docker compose -f docker-compose.yml -f
docker-compose.windows.yml up -d`` from a copy of the repository, and the BACnet worker
on the host as ``start_bacnet_worker.bat`` runs it (``python bacnet_worker_windows.py
--check``, then ``python bacnet_worker_windows.py``), reading the same ``.env`` and
reaching PostgreSQL and Redis on the loopback ports the override publishes. Then the same
discovery and collection as on Linux, through the web's published port only.

What this cannot show is Windows itself: cmd, the batch files and Docker Desktop's VM.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator

import pytest

from tests.deploy.conftest import WINDOWS
from tests.deploy.containers import (
    APP_SERVICES,
    ARTIFACTS,
    Deployment,
    Engine,
    env_values,
    published_host_ips,
    report,
    running,
    timed,
    wait_for,
)
from tests.deploy.web_user import (
    Browser,
    assert_cycle_stored,
    assert_site_discovered,
    logged_in_browser,
    request_collection,
    start_discovery,
    wait_for_job,
)
from tests.site_fixtures import SimulatedSite, free_udp_port, simulated_site  # noqa: F401
from tests.timing import scaled

pytestmark = [pytest.mark.containers, pytest.mark.slow, pytest.mark.timeout(scaled(300))]

JOB_DEADLINE_S = scaled(30)


@pytest.fixture(scope="module")
def windows(
    engine: Engine,
    simulated_site: SimulatedSite,  # noqa: F811
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Deployment]:
    deployment = Deployment(
        engine,
        project="bacnet-ci-windows",
        directory=tmp_path_factory.mktemp("windows"),
        files=WINDOWS,
        # Asked for, and still no container worker: the override removes it.
        profiles=("bacnet",),
    )
    assert simulated_site.bbmd
    with running(deployment, env_values(simulated_site.bbmd, free_udp_port())) as started:
        yield started


def _native_environment() -> dict[str, str]:
    """A fresh console's environment: every setting comes from the project's .env, as
    on the Windows host (nothing of this test run's own settings leaks in)."""
    keep = ("PATH", "HOME", "LANG", "LC_ALL", "TMPDIR")
    return {name: os.environ[name] for name in keep if name in os.environ}


@pytest.fixture(scope="module")
def native_worker(windows: Deployment) -> Iterator[subprocess.Popen[bytes]]:
    """The worker as start_bacnet_worker.bat starts it: the start-up checks, then the
    worker. The virtualenv is this run's (setup_windows_env.bat would make .venv)."""
    worker = [sys.executable, "bacnet_worker_windows.py"]
    env = _native_environment()
    check = subprocess.run(
        [*worker, "--check"],
        cwd=windows.directory,
        env=env,
        capture_output=True,
        text=True,
        timeout=scaled(60),
    )
    assert check.returncode == 0, check.stdout + check.stderr
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with open(ARTIFACTS / "windows-native-worker.log", "wb") as log:
        process = subprocess.Popen(
            worker, cwd=windows.directory, env=env, stdout=log, stderr=subprocess.STDOUT
        )
    try:
        yield process
    finally:
        # Ctrl+C, as in the console the batch file runs in.
        process.send_signal(signal.SIGINT)
        try:
            process.wait(scaled(20))
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@pytest.fixture(scope="module")
def browser(windows: Deployment) -> Browser:
    return logged_in_browser(windows)


def test_it_starts_every_service_but_a_bacnet_worker(windows: Deployment) -> None:
    assert set(windows.services()) == {"db", "redis", *APP_SERVICES}
    for service in ("db", "redis"):
        assert published_host_ips(windows, service) == {"127.0.0.1"}, service


def test_it_serves_jobs_with_the_worker_on_the_host(
    native_worker: subprocess.Popen[bytes], browser: Browser
) -> None:
    def serving() -> dict | None:
        assert native_worker.poll() is None, f"the worker exited {native_worker.returncode}"
        status = browser.api("/api/status/")
        return status if status["worker_alive"] else None

    status = wait_for("the native worker reported in", serving, scaled(30))

    assert status["backend"] == "celery"
    (worker,) = status["workers"]
    assert worker["pid"] == native_worker.pid


def test_it_discovers_and_collects_through_the_web(
    native_worker: subprocess.Popen[bytes],
    browser: Browser,
    simulated_site: SimulatedSite,  # noqa: F811
) -> None:
    discovery, took = timed(lambda: wait_for_job(browser, start_discovery(browser), JOB_DEADLINE_S))
    assert discovery["status"] == "completed", discovery
    assert_site_discovered(browser, simulated_site)

    collection = wait_for_job(browser, request_collection(browser), JOB_DEADLINE_S)

    assert collection["status"] == "completed", collection
    assert_cycle_stored(browser, collection)
    assert native_worker.poll() is None
    report(f"windows: discovery in {took:.1f} s, then a collection ({collection['result']})")
