"""Shared fixtures. Real PostgreSQL, Redis and Celery workers: nothing here is mocked."""

from __future__ import annotations

import os

import pytest
from django.conf import settings

IN_CI = bool(os.environ.get("CI"))


def skip_or_fail(reason: str) -> None:
    """Skip locally, fail in CI: CI must run every test."""
    if IN_CI:
        pytest.fail(f"{reason} (CI is set, so this cannot be skipped)")
    pytest.skip(reason)


def using_postgres() -> bool:
    return settings.DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql"


@pytest.fixture
def require_postgres() -> None:
    if not using_postgres():
        skip_or_fail("needs PostgreSQL: set DATABASE_URL=postgres://...")


@pytest.fixture
def redis_url() -> str:
    url = os.environ.get("REDIS_URL", "")
    if not url:
        skip_or_fail("needs Redis: set REDIS_URL=redis://...")
    import redis

    try:
        redis.Redis.from_url(url, socket_connect_timeout=2).ping()
    except redis.RedisError as exc:
        skip_or_fail(f"Redis at {url} does not answer: {exc}")
    return url


@pytest.fixture(autouse=True)
def _enforce_postgres_marker(request: pytest.FixtureRequest) -> None:
    if request.node.get_closest_marker("postgres") and not using_postgres():
        skip_or_fail("needs PostgreSQL: set DATABASE_URL=postgres://...")


@pytest.fixture(autouse=True)
def _lab_only_when_asked(request: pytest.FixtureRequest) -> None:
    """Tests that change the host's network run only when asked (make test-lab, CI)."""
    from tests.site_fixtures import LAB_SKIP_REASON, lab_requested

    if request.node.get_closest_marker("lab") and not lab_requested():
        pytest.skip(LAB_SKIP_REASON)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """The files with the most slow tests first. `make test` hands whole files to its
    parallel processes in this order: a long file started last would run on alone at
    the end while the other processes sit idle."""
    slow: dict[object, int] = {}
    for item in items:
        if item.get_closest_marker("slow"):
            slow[item.path] = slow.get(item.path, 0) + 1
    items.sort(key=lambda item: -slow.get(item.path, 0))  # stable: files stay whole
