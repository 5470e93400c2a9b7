#!/usr/bin/env python
"""The native BACnet worker: the one process that talks BACnet/IP on the building LAN.

Runs on Windows (where Docker Desktop cannot reach the LAN, seed 003), Linux and macOS,
natively or in a container with host networking. It first checks that the database
and, for the Celery backend, the broker answer, and says plainly what to fix if not
(exit code 2). Then it runs either

- a Celery worker consuming only the ``bacnet`` queue with the solo pool (backend
  ``celery``), or
- the database-backend loop, ``manage.py bacnet_worker`` (backend ``database``).

The backend comes from ``--backend``, else ``BACNET_BACKEND``, else platform detection,
exactly as for the web, so both sides agree when they share one ``.env``.

    python bacnet_worker_windows.py --check       # start-up checks only: exit 0 or 2
    python bacnet_worker_windows.py               # run the worker
    python bacnet_worker_windows.py --backend database --loglevel DEBUG
    python bacnet_worker_windows.py --site hq     # the worker of site "hq" (queue bacnet.hq)

One worker per site, on that site's LAN: ``--site`` (or ``BACNET_SITE``) names it; without
it, the default site, whose queue is ``bacnet``. A site that does not exist stops the
worker at once (exit code 2).
"""

from __future__ import annotations

import argparse
import copy
import logging
import os
import sys
from pathlib import Path
from urllib.parse import urlsplit

PROJECT_DIR = Path(__file__).resolve().parent
# Started from anywhere (a shortcut, a Windows service), it still finds the project.
sys.path.insert(0, str(PROJECT_DIR))

EXIT_OK = 0
EXIT_NOT_READY = 2
DB_CONNECT_TIMEOUT_S = 5
BROKER_CONNECT_TIMEOUT_S = 5
DEFAULT_QUEUE = "bacnet"

log = logging.getLogger("bacnet_worker")


class PreflightError(Exception):
    """Something the worker needs does not answer; the message says what to fix."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description="Run the native BACnet worker (Celery queue 'bacnet', or the "
        "database-backend loop) after checking that the database and broker answer."
    )
    parser.add_argument(
        "--backend",
        choices=["celery", "database"],
        help="how jobs reach this worker (default: BACNET_BACKEND, else detected)",
    )
    parser.add_argument(
        "--check",
        action="store_true",
        help="run the start-up checks only: exit 0 when ready, 2 when not",
    )
    parser.add_argument(
        "--alive",
        action="store_true",
        help="health check: exit 0 if the worker named --name wrote a heartbeat recently, 1 if not",
    )
    parser.add_argument(
        "--loglevel",
        type=str.upper,
        choices=["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"],
        help="log level (default: LOG_LEVEL, else INFO)",
    )
    parser.add_argument(
        "--name",
        default="bacnet-worker@%h",
        help="worker name; %%h is replaced by the host name (default: %(default)s)",
    )
    parser.add_argument(
        "--site",
        default=os.environ.get("BACNET_SITE") or None,
        help="slug of the site this worker serves, on that site's LAN (default: "
        "BACNET_SITE, else the default site, queue 'bacnet')",
    )
    parser.add_argument(
        "--queue",
        help=f"Celery queue to consume (default: the site's: {DEFAULT_QUEUE!r} for the "
        "default site, 'bacnet.<site>' for the others)",
    )
    parser.add_argument(
        "--once",
        action="store_true",
        help="database backend: handle the pending jobs, then exit",
    )
    return parser


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    return build_parser().parse_args(argv)


def setup_django(args: argparse.Namespace) -> None:
    """Load the worker settings; the choices made on the command line go through the
    environment so that settings (and anything reading them) see the same values."""
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "bacnet_project.windows_settings")
    if args.backend:
        os.environ["BACNET_BACKEND"] = args.backend
    if args.loglevel:
        os.environ["LOG_LEVEL"] = args.loglevel

    import django
    from django.core.exceptions import ImproperlyConfigured

    try:
        django.setup()
    except ImproperlyConfigured as exc:
        env_file = os.environ.get("BACNET_ENV_FILE", str(PROJECT_DIR / ".env"))
        raise PreflightError(
            f"The configuration is not valid: {exc}\n"
            f"Fix it in {env_file} (copy .env.example to .env if it is missing)."
        ) from exc


def _host_port(host: str | None, port: str | int | None, default_port: int) -> str:
    return f"{host or 'localhost'}:{port or default_port}"


def check_database() -> str:
    """Connect with a short timeout, run SELECT 1 and make sure the tables exist.

    A separate connection with a copy of the settings, so that the timeout added for the
    check does not change the connections the worker uses afterwards."""
    from django.db import DEFAULT_DB_ALIAS, connections

    default = connections[DEFAULT_DB_ALIAS]
    params = copy.deepcopy(default.settings_dict)
    vendor = default.vendor
    if vendor == "postgresql":
        params.setdefault("OPTIONS", {}).setdefault("connect_timeout", DB_CONNECT_TIMEOUT_S)
        where = _host_port(params.get("HOST"), params.get("PORT"), 5432)
        what = f"PostgreSQL at {where}, database {params.get('NAME')!r}"
    else:
        where = str(params.get("NAME"))
        what = f"{vendor} database {where}"
    probe = type(default)(params, alias="preflight")
    try:
        with probe.cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()
            tables = probe.introspection.table_names(cursor)
    except Exception as exc:
        hint = (
            "Check that PostgreSQL is running and that DATABASE_URL in .env names the right "
            "host, port, user and password. From the host, the containers' PostgreSQL is "
            "published on 127.0.0.1 (docker-compose.yml: POSTGRES_PORT, default 5432); the "
            "name 'db' only works inside the compose network."
            if vendor == "postgresql"
            else "Check BACNET_DATA_DIR and DATABASE_URL in .env."
        )
        raise PreflightError(
            f"Cannot use the database (DATABASE_URL): {what} did not answer: "
            f"{_one_line(exc)}\n{hint}"
        ) from exc
    finally:
        probe.close()

    from discovery.models import BACnetTask

    if BACnetTask._meta.db_table not in tables:
        raise PreflightError(
            f"The database (DATABASE_URL: {what}) answers but has no tables yet. "
            "Run 'python manage.py migrate' once (the web container does this when it "
            "starts), then start the worker again."
        )
    return what


def _broker_variable() -> str:
    return "CELERY_BROKER_URL" if os.environ.get("CELERY_BROKER_URL") else "REDIS_URL"


def check_broker() -> str:
    """Open one broker connection with a short timeout and one quick retry."""
    from django.conf import settings
    from kombu import Connection

    url = settings.CELERY_BROKER_URL
    parts = urlsplit(url)
    if parts.scheme == "filesystem":
        folders = settings.CELERY_BROKER_TRANSPORT_OPTIONS
        for key in ("data_folder_in", "control_folder"):
            folder = Path(folders[key])
            if not (folder.is_dir() and os.access(folder, os.W_OK)):
                raise PreflightError(
                    f"The file broker folder {folder} is missing or not writable. The file "
                    "broker only works when the web and this worker share one data folder "
                    "(BACNET_DATA_DIR) on one machine; otherwise set REDIS_URL in .env."
                )
        return f"file broker in {Path(folders['data_folder_in']).parent}"

    where = _host_port(parts.hostname, parts.port, 6379)
    variable = _broker_variable()
    connection = Connection(
        url,
        connect_timeout=BROKER_CONNECT_TIMEOUT_S,
        transport_options=dict(getattr(settings, "CELERY_BROKER_TRANSPORT_OPTIONS", {})),
    )
    try:
        connection.ensure_connection(
            max_retries=1, interval_start=0.5, interval_step=0, interval_max=0.5
        )
    except Exception as exc:
        raise PreflightError(
            f"Cannot reach the Celery broker ({variable}) at {where}: {_one_line(exc)}\n"
            f"Check that Redis is running and that {variable} in .env names the right host "
            "and port. From the host, the containers' Redis is published on 127.0.0.1 "
            "(docker-compose.yml: REDIS_PORT, default 6379); the name 'redis' only works "
            "inside the compose network. Without a broker, use the database backend: "
            "BACNET_BACKEND=database in .env for the web and this worker."
        ) from exc
    finally:
        connection.release()
    return f"broker {parts.scheme}://{where} ({variable})"


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return text or type(exc).__name__


def check_site(slug: str | None) -> str:
    """The site named must exist (its queue is the one to consume)."""
    from discovery.sites import UnknownSite, get_site

    try:
        site = get_site(slug)
    except UnknownSite as exc:
        raise PreflightError(str(exc)) from exc
    return f"site {site.slug!r} ({site.name}), queue {site.queue!r}"


def preflight(backend: str, site: str | None = None) -> None:
    """Everything the chosen backend needs must answer before the worker starts."""
    log.info("Database: %s answers", check_database())
    log.info("Serving %s", check_site(site))
    if backend == "celery":
        log.info("Broker: %s answers", check_broker())


def run_celery_worker(args: argparse.Namespace, loglevel: str) -> int:
    from bacnet_project.celery import app

    # Only the BACnet queue: rollups on "default" belong to the Docker-side workers, and
    # a second consumer of "bacnet" elsewhere would open a second BACnet socket.
    # The solo pool because one process must own the BACnet/IP socket (a second one on
    # the same port splits the devices' replies between them), and it is the pool that
    # works on Windows; concurrency comes from asyncio inside each task.
    from discovery.routing import queue_of

    queue = args.queue or queue_of(args.site)
    argv = ["worker", "-Q", queue, "-P", "solo", "-c", "1", "-n", args.name]
    argv += ["--loglevel", loglevel]
    log.info(
        "Starting the Celery worker %s on queue %r (solo pool)", _expand_name(args.name), queue
    )
    code = app.worker_main(argv)
    return int(code or 0)


def run_database_worker(args: argparse.Namespace) -> int:
    from django.core.management import call_command, get_commands

    if "bacnet_worker" not in get_commands():
        raise PreflightError(
            "This installation has no 'bacnet_worker' management command, so the database "
            "backend cannot run; use --backend celery."
        )
    options: dict[str, object] = {"name": _expand_name(args.name)}
    if args.once:
        options["once"] = True
    if args.site:
        options["site"] = args.site
    log.info("Starting the database-backend worker %s", options["name"])
    call_command("bacnet_worker", **options)
    return EXIT_OK


def _expand_name(name: str) -> str:
    """Celery's %h, for the places that do not expand it themselves."""
    import socket

    return name.replace("%h", socket.gethostname())


def worker_is_alive(name: str) -> bool:
    """The worker's heartbeat thread keeps writing while a job blocks the solo pool, so
    this is a truer health check than a Celery ping, and it serves both backends."""
    from django.conf import settings

    from discovery.models import BACnetWorker

    worker = BACnetWorker.objects.filter(name=name).first()
    within_s = max(3 * settings.BACNET_WORKER_HEARTBEAT_S, 30)
    return worker is not None and worker.is_alive(within_s)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        setup_django(args)
        from django.conf import settings

        backend = settings.BACNET_BACKEND
        if args.alive:
            from django.db import DatabaseError

            try:
                alive = worker_is_alive(_expand_name(args.name))
            except DatabaseError as exc:
                log.error("Health check: the database did not answer: %s", _one_line(exc))
                alive = False
            return EXIT_OK if alive else 1
        log.info(
            "BACnet worker: backend %s (%s), settings %s",
            backend,
            settings.BACNET_BACKEND_REASON,
            os.environ["DJANGO_SETTINGS_MODULE"],
        )
        preflight(backend, args.site)
        if args.check:
            log.info("Start-up checks passed: ready to run the %s backend", backend)
            return EXIT_OK
        if backend == "database":
            return run_database_worker(args)
        return run_celery_worker(args, settings.LOG_LEVEL.upper())
    except PreflightError as exc:
        # With settings that do not load, logging is not configured: print instead.
        if logging.getLogger().handlers:
            log.error("Not starting: %s", exc)
        else:
            print(f"ERROR: not starting: {exc}", file=sys.stderr)
        return EXIT_NOT_READY


if __name__ == "__main__":
    sys.exit(main())
