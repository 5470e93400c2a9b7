"""Settings are read from the environment; each case runs in a fresh interpreter."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PROBE = """
import json, django
from django.conf import settings
django.setup()
from bacnet_project.celery import app
db = settings.DATABASES["default"]
transport_cls = type(app.connection_for_write().transport)
print(json.dumps({
    "engine": db["ENGINE"], "name": str(db["NAME"]), "options": db.get("OPTIONS", {}),
    "health": db.get("CONN_HEALTH_CHECKS"), "broker": settings.CELERY_BROKER_URL,
    "transport": getattr(settings, "CELERY_BROKER_TRANSPORT_OPTIONS", {}),
    "backend": settings.BACNET_BACKEND,
    "transport_class": f"{transport_cls.__module__}.{transport_cls.__name__}",
}))
"""


def load_settings(tmp_path: Path, **env: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("DATABASE_", "REDIS_"))}
    clean.pop("CELERY_BROKER_URL", None)
    clean.update(
        DJANGO_SETTINGS_MODULE="bacnet_project.settings",
        BACNET_DATA_DIR=str(tmp_path / "data"),
        BACNET_ENV_FILE=os.devnull,
        SECRET_KEY="a-real-secret-key-for-this-test-0123456789abcdef",
        ALLOWED_HOSTS="example.org",
    )
    clean.update(env)
    return subprocess.run(
        [sys.executable, "-c", PROBE], cwd=ROOT, env=clean, capture_output=True, text=True
    )


def probe(tmp_path: Path, **env: str) -> dict:
    proc = load_settings(tmp_path, **env)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_it_defaults_to_sqlite_and_a_file_broker_in_the_data_folder(tmp_path):
    got = probe(tmp_path)
    assert got["engine"] == "django.db.backends.sqlite3"
    assert got["name"] == str(tmp_path / "data" / "db.sqlite3")
    assert "journal_mode=WAL" in got["options"]["init_command"]
    assert got["options"]["transaction_mode"] == "IMMEDIATE"
    assert got["options"]["timeout"] >= 5
    assert got["broker"] == "filesystem://"
    # kombu's file transport with its bindings file locked (bacnet_project/file_broker.py)
    assert got["transport_class"] == "bacnet_project.file_broker.Transport"
    for key in ("data_folder_in", "data_folder_out", "control_folder", "processed_folder"):
        assert Path(got["transport"][key]).is_dir(), key
    assert got["transport"]["data_folder_in"] == got["transport"]["data_folder_out"]


def test_it_switches_to_postgresql_with_database_url(tmp_path):
    got = probe(tmp_path, DATABASE_URL="postgres://alice:pw@db.example:5433/monitor")
    assert got["engine"] == "django.db.backends.postgresql"
    assert got["name"] == "monitor"
    assert got["health"] is True


def test_it_uses_redis_as_broker_with_redis_url(tmp_path):
    got = probe(tmp_path, REDIS_URL="redis://cache.example:6379/2")
    assert got["broker"] == "redis://cache.example:6379/2"
    assert got["transport_class"] == "kombu.transport.redis.Transport"
    assert got["transport"]["visibility_timeout"] == 3600


def test_an_explicit_broker_url_wins_over_redis_url(tmp_path):
    got = probe(tmp_path, REDIS_URL="redis://a:6379/0", CELERY_BROKER_URL="amqp://guest@b:5672//")
    assert got["broker"] == "amqp://guest@b:5672//"


def test_it_refuses_to_start_in_production_without_a_secret_key(tmp_path):
    proc = load_settings(tmp_path, DEBUG="false", SECRET_KEY="")
    assert proc.returncode != 0
    assert "ImproperlyConfigured" in proc.stderr
    assert "SECRET_KEY" in proc.stderr


def test_it_refuses_a_placeholder_secret_key(tmp_path):
    proc = load_settings(tmp_path, DEBUG="false", SECRET_KEY="change-me")
    assert proc.returncode != 0
    assert "SECRET_KEY" in proc.stderr


def test_it_refuses_to_start_in_production_without_allowed_hosts(tmp_path):
    proc = load_settings(tmp_path, DEBUG="false", ALLOWED_HOSTS="")
    assert proc.returncode != 0
    assert "ALLOWED_HOSTS" in proc.stderr


def test_debug_mode_starts_without_secret_or_hosts(tmp_path):
    got = probe(tmp_path, DEBUG="true", SECRET_KEY="", ALLOWED_HOSTS="")
    assert got["engine"] == "django.db.backends.sqlite3"


def test_it_rejects_an_unknown_backend_name(tmp_path):
    proc = load_settings(tmp_path, BACNET_BACKEND="carrier-pigeon")
    assert proc.returncode != 0
    assert "BACNET_BACKEND" in proc.stderr


def test_the_backend_override_reaches_settings(tmp_path):
    assert probe(tmp_path, BACNET_BACKEND="native")["backend"] == "database"
