"""Settings of the benchmark runs: the production settings, DEBUG off, on PostgreSQL.

The benchmarks run against a database of their own (``bacnet_bench`` unless
``BENCH_DATABASE_URL`` or ``DATABASE_URL`` says otherwise); they never touch the
developer's database or read a ``.env`` file."""

import os
import tempfile

os.environ.setdefault(
    "DATABASE_URL",
    os.environ.get("BENCH_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/bacnet_bench"),
)
os.environ.setdefault("SECRET_KEY", "bench-secret-key-for-the-benchmarks-only-0123456789")
os.environ.setdefault("ALLOWED_HOSTS", "testserver,localhost,127.0.0.1")
os.environ.setdefault("SECURE_COOKIES", "false")
os.environ.setdefault("BACNET_DATA_DIR", tempfile.mkdtemp(prefix="bacnet-bench-data-"))
os.environ.setdefault("BACNET_ENV_FILE", os.devnull)
os.environ.setdefault("BACNET_BACKEND", "database")
os.environ.setdefault("LOG_LEVEL", "WARNING")
# DEBUG would keep every query in memory (the memory part) and slow every request.
os.environ["DEBUG"] = "false"

from bacnet_project.settings import *  # noqa: F403

# Pages are rendered without collectstatic: serve static files unhashed.
STORAGES = {
    **STORAGES,  # noqa: F405
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
}
