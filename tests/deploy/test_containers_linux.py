"""The Linux deployment, run for real: ``docker compose --profile bacnet up -d`` from a copy
of the repository with a ``.env`` made from ``.env.example``, then the product used
through the web's published port only, against a simulated site on this host's loopback.

The tests run in the order written, on one deployment, each step building on the one
before as a user's first session would: services healthy, log in, Start Discovery, a
collection, the hourly rollup, Flower, then every service restarted in turn.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator

import pytest

from tests.deploy.conftest import LINUX
from tests.deploy.containers import (
    APP_SERVICES,
    IMAGE,
    Deployment,
    Engine,
    celery_queues,
    celery_task_totals,
    env_values,
    report,
    running,
    sole_worker_of,
    timed,
    wait_for,
)
from tests.deploy.web_user import (
    Browser,
    assert_cycle_stored,
    assert_site_discovered,
    basic_auth_status,
    count,
    logged_in_browser,
    request_collection,
    run_periodic_task_from_admin,
    start_discovery,
    wait_for_job,
)
from tests.site_fixtures import SimulatedSite, free_udp_port, simulated_site  # noqa: F401
from tests.timing import scaled

pytestmark = [pytest.mark.containers, pytest.mark.slow, pytest.mark.timeout(scaled(600))]

SERVICES = {"db", "redis", *APP_SERVICES, "bacnet-worker"}
JOB_DEADLINE_S = scaled(30)
HOURLY = "discovery.tasks.calculate_hourly_stats"


@pytest.fixture(scope="module")
def linux(
    engine: Engine,
    simulated_site: SimulatedSite,  # noqa: F811
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Deployment]:
    deployment = Deployment(
        engine,
        project="bacnet-ci-linux",
        directory=tmp_path_factory.mktemp("linux"),
        files=LINUX,
        profiles=("bacnet",),
    )
    assert simulated_site.bbmd
    with running(deployment, env_values(simulated_site.bbmd, free_udp_port())) as started:
        yield started


@pytest.fixture(scope="module")
def browser(linux: Deployment) -> Browser:
    return logged_in_browser(linux)


def _worker_names(linux: Deployment, browser: Browser) -> tuple[str, str]:
    """The default worker's node name (its container's host name) and the BACnet
    worker's, as the product's status API reports it from its heartbeat."""
    hostname = linux.cli(
        "inspect", "--format", "{{.Config.Hostname}}", linux.container("celery")
    ).stdout.strip()
    status = browser.api("/api/status/")
    assert status["worker_alive"], status["message"]
    (bacnet,) = {worker["name"] for worker in status["workers"]}
    return f"default@{hostname}", bacnet


def _task_totals(linux: Deployment, browser: Browser) -> dict[str, dict[str, int]]:
    default, bacnet = _worker_names(linux, browser)
    return celery_task_totals(linux, "web", default, bacnet)


def _collect(browser: Browser) -> dict:
    job = wait_for_job(browser, request_collection(browser), JOB_DEADLINE_S)
    assert job["status"] == "completed", job
    return job


def _rollup_runs_on_default(linux: Deployment, browser: Browser) -> None:
    default, _ = _worker_names(linux, browser)
    before = _task_totals(linux, browser).get(default, {}).get(HOURLY, 0)
    run_periodic_task_from_admin(browser, "Hourly statistics")

    def ran() -> dict[str, dict[str, int]] | None:
        totals = _task_totals(linux, browser)
        return totals if totals.get(default, {}).get(HOURLY, 0) > before else None

    totals = wait_for("the hourly rollup run", ran, JOB_DEADLINE_S, every_s=2)
    assert sole_worker_of(totals, HOURLY) == default


def test_it_builds_the_image_and_turns_every_service_healthy(linux: Deployment) -> None:
    assert set(linux.services()) == SERVICES
    for service in SERVICES:
        assert linux.health(service) in ("healthy", "none"), service
    assert linux.image_size_mb(IMAGE) > 0
    # The building LAN (broadcasts, UDP 47808) is only reachable from the host network.
    mode = linux.cli(
        "inspect", "--format", "{{.HostConfig.NetworkMode}}", linux.container("bacnet-worker")
    )
    assert mode.stdout.strip() == "host"
    # The image's own HEALTHCHECK (for `docker run` without compose) passes too.
    check = linux.cli("image", "inspect", "--format", "{{json .Config.Healthcheck}}", IMAGE)
    test = json.loads(check.stdout)["Test"]
    assert test[0] == "CMD"
    linux.exec("web", *test[1:])


def test_it_discovers_the_site_when_start_discovery_is_pressed(
    browser: Browser,
    simulated_site: SimulatedSite,  # noqa: F811
) -> None:
    job, took = timed(lambda: wait_for_job(browser, start_discovery(browser), JOB_DEADLINE_S))

    assert job["status"] == "completed", job
    assert_site_discovered(browser, simulated_site)
    report(f"linux: discovery in {took:.1f} s ({job['result']})")


def test_it_stores_the_readings_of_a_collection_cycle(browser: Browser) -> None:
    job, took = timed(lambda: _collect(browser))

    assert_cycle_stored(browser, job)
    report(f"linux: a collection cycle in {took:.1f} s ({job['result']})")


def test_it_runs_the_hourly_rollup_on_the_default_worker(
    linux: Deployment, browser: Browser
) -> None:
    _rollup_runs_on_default(linux, browser)

    assert count(browser, "/api/stats/hourly/") > 0
    # Every worker on the broker (no names: inspect waits for all): exactly these two,
    # and the BACnet work ran on the BACnet worker alone.
    default, bacnet = _worker_names(linux, browser)
    totals = celery_task_totals(linux, "web")
    assert set(totals) == {default, bacnet}
    assert celery_queues(linux, "web", default, bacnet) == {
        default: {"default"},
        bacnet: {"bacnet"},
    }
    assert sole_worker_of(totals, HOURLY) == default
    assert sole_worker_of(totals, "discovery.tasks.discover_devices") == bacnet
    assert sole_worker_of(totals, "discovery.tasks.read_device_points") == bacnet


def test_it_puts_flower_behind_its_login(linux: Deployment) -> None:
    port = int(linux.env_values["FLOWER_PORT"])
    login = linux.env_values["FLOWER_BASIC_AUTH"]

    assert basic_auth_status("127.0.0.1", port, "/", None) == 401
    assert basic_auth_status("127.0.0.1", port, "/", "admin:wrong") == 401
    assert basic_auth_status("127.0.0.1", port, "/", login) == 200
    assert basic_auth_status("127.0.0.1", port, "/workers", login) == 200


def test_it_collects_on_the_schedule_beat_installed(browser: Browser) -> None:
    scheduled = "/api/jobs/?kind=collect&trigger=scheduled&status=completed"

    wait_for("a scheduled collection", lambda: count(browser, scheduled) > 0, scaled(30))


@pytest.mark.parametrize("service", ["web", "celery", "beat", "bacnet-worker", "db", "redis"])
def test_it_comes_back_by_itself_when_a_service_restarts(
    linux: Deployment, browser: Browser, service: str
) -> None:
    scheduled = "/api/jobs/?kind=collect&trigger=scheduled"
    scheduled_before = count(browser, scheduled)
    started_at = linux.state(service)["StartedAt"]
    start = time.monotonic()

    linux.restart(service)

    assert linux.state(service)["StartedAt"] != started_at, "not restarted"

    linux.wait_healthy(sorted(SERVICES), scaled(120))
    # The same session goes on (sessions live in PostgreSQL), and work still flows from
    # the web through Redis to both workers and back into the database.
    assert browser.get("/").status == 200
    _collect(browser)
    _rollup_runs_on_default(linux, browser)
    if service == "beat":
        wait_for(
            "a scheduled collection after beat restarted",
            lambda: count(browser, scheduled) > scheduled_before,
            scaled(30),
        )
    report(
        f"linux: {service} restarted, all healthy and working in {time.monotonic() - start:.0f} s"
    )


@pytest.mark.parametrize("service", ["web", "celery", "bacnet-worker"])
def test_it_restarts_a_service_whose_process_exits(
    linux: Deployment, browser: Browser, service: str
) -> None:
    started_at = linux.state(service)["StartedAt"]
    start = time.monotonic()

    # Its main process ends (SIGTERM to PID 1, from inside): nobody runs `restart`.
    linux.exec(service, "sh", "-c", "kill 1", check=False)

    wait_for(
        f"{service} started again by its restart policy",
        lambda: linux.state(service)["StartedAt"] != started_at,
        scaled(60),
    )
    linux.wait_healthy(sorted(SERVICES), scaled(120))
    _collect(browser)
    _rollup_runs_on_default(linux, browser)
    report(
        f"linux: {service}'s process exited; back and working in {time.monotonic() - start:.0f} s"
    )
