"""docker-compose.yml and its Windows override, as Docker Compose itself resolves them
(``docker compose config``): which process consumes which queue, where the BACnet worker
runs, what is published where, and what must be set before anything starts."""

from __future__ import annotations

from typing import Any

from tests.deploy.conftest import FILLED_IN, LINUX, WINDOWS, ComposeProject

APP_SERVICES = {"web", "celery", "beat", "flower"}
LONG_RUNNING_WITH_A_CHECK = {"db", "redis", "web", "celery", "flower", "bacnet-worker"}


def _command(service: dict[str, Any]) -> list[str]:
    command = service.get("command") or []
    return command if isinstance(command, list) else command.split()


def _queues(command: list[str]) -> set[str]:
    """The queues a Celery worker command line consumes (-Q / --queues / --queue)."""
    queues: set[str] = set()
    for i, word in enumerate(command):
        if word in {"-Q", "--queues", "--queue"} and i + 1 < len(command):
            queues.update(command[i + 1].split(","))
        elif word.startswith(("--queues=", "--queue=")):
            queues.update(word.split("=", 1)[1].split(","))
    return queues


def _host_ips(service: dict[str, Any]) -> list[str]:
    return [port.get("host_ip", "") for port in service.get("ports", [])]


def test_it_validates_for_linux_and_windows_hosts(compose: ComposeProject) -> None:
    for files, profiles in (
        (LINUX, ()),
        (LINUX, ("bacnet",)),
        (WINDOWS, ()),
        (WINDOWS, ("bacnet",)),
    ):
        result = compose.run(files, "config", "--quiet", profiles=profiles)
        assert result.returncode == 0, f"{files} {profiles}: {result.stderr}"


def test_it_refuses_to_start_without_a_flower_login(compose: ComposeProject) -> None:
    compose.write_env(FLOWER_BASIC_AUTH="")

    for files in (LINUX, WINDOWS):
        result = compose.run(files, "config", "--quiet")
        assert result.returncode != 0
        assert "FLOWER_BASIC_AUTH" in result.stderr


def test_it_refuses_to_start_without_a_database_password(compose: ComposeProject) -> None:
    compose.write_env(POSTGRES_PASSWORD="")

    result = compose.run(LINUX, "config", "--quiet")

    assert result.returncode != 0
    assert "POSTGRES_PASSWORD" in result.stderr


def test_it_puts_flower_behind_the_login_from_env(compose: ComposeProject) -> None:
    flower = compose.config()["services"]["flower"]

    assert flower["environment"]["FLOWER_BASIC_AUTH"] == FILLED_IN["FLOWER_BASIC_AUTH"]
    assert _host_ips(flower) == ["127.0.0.1"]


def test_it_sends_only_the_default_queue_to_the_celery_service(compose: ComposeProject) -> None:
    for files in (LINUX, WINDOWS):
        celery = compose.config(files)["services"]["celery"]
        command = _command(celery)

        assert command[:4] == ["celery", "-A", "bacnet_project", "worker"]
        assert _queues(command) == {"default"}
        assert not any("bacnet" in word and word != "bacnet_project" for word in command)


def test_it_has_the_bacnet_queue_consumed_by_the_bacnet_worker_alone(
    compose: ComposeProject,
) -> None:
    services = compose.config(profiles=("bacnet",))["services"]

    consumers = {
        name for name, service in services.items() if "bacnet" in _queues(_command(service))
    }
    assert consumers == {"bacnet-worker"}
    worker = services["bacnet-worker"]
    assert _queues(_command(worker)) == {"bacnet"}
    assert _command(worker)[:2] == ["python", "bacnet_worker_windows.py"]
    # The building LAN (broadcasts, UDP 47808) is only reachable from the host network.
    assert worker["network_mode"] == "host"


def test_it_starts_the_linux_bacnet_worker_only_with_its_profile(
    compose: ComposeProject,
) -> None:
    assert "bacnet-worker" not in compose.config()["services"]
    assert "bacnet-worker" in compose.config(profiles=("bacnet",))["services"]


def test_it_never_runs_a_container_bacnet_worker_on_windows(compose: ComposeProject) -> None:
    asked_for = compose.config(
        WINDOWS, profiles=("bacnet",), environ={"COMPOSE_PROFILES": "bacnet"}
    )

    assert "bacnet-worker" not in asked_for["services"]
    assert set(asked_for["services"]) == {"db", "redis", *APP_SERVICES}


def test_it_publishes_database_and_redis_on_loopback_only(compose: ComposeProject) -> None:
    for files in (LINUX, WINDOWS):
        services = compose.config(files)["services"]
        for name in ("db", "redis"):
            assert _host_ips(services[name]), f"{name} is not published for the worker"
            assert set(_host_ips(services[name])) == {"127.0.0.1"}, f"{files}: {name}"


def test_it_requires_the_backend_choice_on_windows(compose: ComposeProject) -> None:
    compose.write_env(BACNET_BACKEND=None)

    # Detection alone would differ on the two sides of a Windows host: it must be set.
    windows = compose.run(WINDOWS, "config", "--quiet")
    assert windows.returncode != 0
    assert "BACNET_BACKEND" in windows.stderr
    assert compose.run(LINUX, "config", "--quiet").returncode == 0


def test_it_gives_every_container_the_backend_of_env_on_windows(
    compose: ComposeProject,
) -> None:
    compose.write_env(BACNET_BACKEND="database")

    services = compose.config(WINDOWS)["services"]

    for name in APP_SERVICES:
        assert services[name]["environment"]["BACNET_BACKEND"] == "database", name


def test_it_gives_long_running_services_a_healthcheck(compose: ComposeProject) -> None:
    services = compose.config(profiles=("bacnet",))["services"]

    for name in LONG_RUNNING_WITH_A_CHECK:
        check = services[name].get("healthcheck", {})
        assert check.get("test") and not check.get("disable"), name


def test_it_starts_processes_after_healthy_dependencies(compose: ComposeProject) -> None:
    services = compose.config(profiles=("bacnet",))["services"]

    for name in (*APP_SERVICES, "bacnet-worker"):
        depends = services[name]["depends_on"]
        for dependency in ("db", "redis"):
            assert depends[dependency]["condition"] == "service_healthy", name
    # These need the tables, which the web creates (migrate) before it turns healthy.
    for name in ("beat", "bacnet-worker"):
        assert services[name]["depends_on"]["web"]["condition"] == "service_healthy"


def test_it_builds_one_image_for_every_process(compose: ComposeProject) -> None:
    services = compose.config(profiles=("bacnet",))["services"]

    app = [services[name] for name in (*APP_SERVICES, "bacnet-worker")]
    assert len({service["image"] for service in app}) == 1
    assert len({service["build"]["context"] for service in app}) == 1
    assert {service["build"]["dockerfile"] for service in app} == {"Dockerfile"}


def test_it_points_containers_at_the_right_database_and_redis(
    compose: ComposeProject,
) -> None:
    services = compose.config(profiles=("bacnet",))["services"]

    # On the compose network, by service name.
    for name in APP_SERVICES:
        env = services[name]["environment"]
        assert "@db:5432/" in env["DATABASE_URL"], name
        assert env["CELERY_BROKER_URL"].startswith("redis://redis:6379/"), name
    # On the host network, through the loopback ports published above.
    worker = services["bacnet-worker"]["environment"]
    assert "@127.0.0.1:5432/" in worker["DATABASE_URL"]
    assert worker["CELERY_BROKER_URL"].startswith("redis://127.0.0.1:6379/")
    assert FILLED_IN["POSTGRES_PASSWORD"] in worker["DATABASE_URL"]


def test_it_migrates_before_serving_the_web(compose: ComposeProject) -> None:
    command = " ".join(_command(compose.config()["services"]["web"]))

    assert command.index("manage.py migrate") < command.index("gunicorn")
    assert "exec gunicorn" in command  # gunicorn gets the stop signal, not the shell


def test_it_runs_beat_with_the_database_scheduler(compose: ComposeProject) -> None:
    command = _command(compose.config()["services"]["beat"])

    assert command[:4] == ["celery", "-A", "bacnet_project", "beat"]
    # django-celery-beat's DatabaseScheduler, stamping collection with its window.
    assert "discovery.schedules:WindowScheduler" in command
