"""Test settings: production settings (DEBUG off) with a test secret and hosts.

Everything else comes from the environment as in production: ``DATABASE_URL`` picks
PostgreSQL (as CI does), without it the tests run on SQLite."""

import os
import tempfile

os.environ.setdefault("SECRET_KEY", "test-secret-key-for-the-test-suite-only-0123456789")
os.environ.setdefault("ALLOWED_HOSTS", "testserver,localhost,127.0.0.1")
os.environ.setdefault("SECURE_COOKIES", "false")
os.environ.setdefault("BACNET_DATA_DIR", tempfile.mkdtemp(prefix="bacnet-test-data-"))
# The suite sets its own .env-free environment; a developer's .env must not leak in.
os.environ.setdefault("BACNET_ENV_FILE", os.devnull)

from bacnet_project.settings import *  # noqa: F403

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
# No collectstatic before tests: serve static files from the apps, unhashed.
STORAGES = {
    **STORAGES,  # noqa: F405
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
}
STATIC_ROOT.mkdir(parents=True, exist_ok=True)  # noqa: F405

# Worker processes started by the tests share the test database: on SQLite that needs a
# file (pytest-django's default is in memory).
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":  # noqa: F405
    DATABASES["default"]["TEST"] = {"NAME": str(DATA_DIR / "test.sqlite3")}  # noqa: F405
