"""Nobody let in: every page and API endpoint (all of them, from the URL resolver) needs a
login; every state-changing request with a session needs the CSRF token; the production
settings pass ``check --deploy``; secrets come only from the environment; Flower needs
its login; compose publishes PostgreSQL and Redis on loopback only."""

from __future__ import annotations

import os
import re
import secrets
import subprocess
import sys
import time
import urllib.error
import urllib.request
from base64 import b64encode
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from django.contrib.auth import get_user_model
from django.test import Client
from django.urls import NoReverseMatch, URLPattern, URLResolver, get_resolver, resolve, reverse

from discovery.models import BACnetTask
from tests.reliability.conftest import free_tcp_port
from tests.timing import scaled

REPO = Path(__file__).resolve().parents[2]

# Reachable without a login, on purpose: signing in, liveness for load balancers, and
# the token endpoint (which wants a username and password in the POST).
PUBLIC = {"login", "logout", "admin:login", "discovery:healthz", "api:token"}
UNSAFE_METHODS = ("post", "put", "patch", "delete")


def _leaves(patterns: list[Any], prefix: str = "", namespace: str = "") -> Iterator[tuple]:
    for pattern in patterns:
        if isinstance(pattern, URLResolver):
            inner = namespace + (f"{pattern.namespace}:" if pattern.namespace else "")
            yield from _leaves(pattern.url_patterns, prefix + str(pattern.pattern), inner)
        elif isinstance(pattern, URLPattern):
            name = f"{namespace}{pattern.name}" if pattern.name else None
            yield prefix + str(pattern.pattern), name, pattern


def _sample(text: str) -> str:
    """A concrete path for a pattern nobody can reverse (catch-alls, unnamed routes)."""
    text = re.sub(r"<(?:\w+:)?\w+>", "1", text)
    text = re.sub(r"\(\?P<\w+>[^)]*\)", "x", text.replace("^", "").replace("$", ""))
    return "/" + text.replace(".*", "no-such-page/").replace("\\.", ".").replace("/?", "/")


def _kwargs(pattern: URLPattern) -> list[str]:
    return list(pattern.pattern.regex.groupindex)


def every_url() -> list[tuple[str, str]]:
    """(label, path) for every URL pattern of the project, arguments filled in."""
    urls = []
    for text, name, pattern in _leaves(get_resolver().url_patterns):
        path = None
        if name:
            for guess in ("1", "discovery", "json"):
                values = {
                    k: {"format": "json", "app_label": "discovery"}.get(k, guess)
                    for k in _kwargs(pattern)
                }
                try:
                    path = reverse(name, kwargs=values)
                    break
                except NoReverseMatch:
                    continue
        path = path or _sample(text)
        resolve(path)  # raises if the guess is not a URL of the project
        urls.append((name or text, path))
    return urls


@pytest.fixture
def admin_user(db):
    return get_user_model().objects.create_superuser("root", password="unused-password-1")


@pytest.mark.django_db
def test_it_lists_every_page_and_endpoint():
    labels = {label for label, _ in every_url()}
    for expected in ("discovery:dashboard", "api:device-list", "api:job-list", "admin:index"):
        assert expected in labels
    assert len(labels) > 50


@pytest.mark.django_db
def test_it_asks_strangers_to_log_in_everywhere_but_the_login_pages():
    stranger = Client()
    login_paths = {reverse("login"), reverse("admin:login")}
    for label, path in every_url():
        response = stranger.get(path)
        if label in PUBLIC:
            continue
        if label.startswith("api/") and response.status_code == 404:
            continue  # the API's catch-all: nothing there
        assert response.status_code in (302, 401, 403), (label, path, response.status_code)
        if response.status_code == 302:
            # Wherever it sends a stranger (admin logout: to the admin index), it ends at
            # a login form.
            final = stranger.get(path, follow=True)
            assert final.request["PATH_INFO"] in login_paths, (label, final.redirect_chain)
        if label.startswith("api:"):
            assert stranger.options(path).status_code != 200, label


@pytest.mark.django_db
def test_it_tells_strangers_nothing_but_liveness():
    response = Client().get(reverse("discovery:healthz"))
    assert response.status_code == 200
    assert set(response.json()) <= {"status", "database"}


@pytest.mark.django_db
def test_it_refuses_state_changes_without_the_csrf_token(admin_user):
    """A logged-in browser session is what a cross-site form would ride on."""
    browser = Client(enforce_csrf_checks=True)
    browser.force_login(admin_user)
    for label, path in every_url():
        for method in UNSAFE_METHODS:
            response = getattr(browser, method)(path, {}, content_type="application/json")
            assert response.status_code == 403, (label, method, response.status_code)
            if b"CSRF" not in response.content:
                # A view that renders its own bare 403 page: with the token the same
                # request is no longer forbidden, so the token was the reason.
                token = browser.cookies["csrftoken"].value if "csrftoken" in browser.cookies else ""
                if not token:
                    browser.get(reverse("discovery:dashboard"))
                    token = browser.cookies["csrftoken"].value
                again = getattr(browser, method)(
                    path, {}, content_type="application/json", HTTP_X_CSRFTOKEN=token
                )
                assert again.status_code != 403, (label, method)
    assert not BACnetTask.objects.exists()
    assert get_user_model().objects.count() == 1


@pytest.mark.django_db
def test_it_accepts_a_state_change_with_the_csrf_token(admin_user, settings):
    settings.BACNET_BACKEND = "database"  # no broker needed to record the job
    browser = Client(enforce_csrf_checks=True)
    browser.force_login(admin_user)
    browser.get(reverse("discovery:dashboard"))
    response = browser.post(
        reverse("discovery:start-discovery"),
        {"targets": ""},
        HTTP_X_CSRFTOKEN=browser.cookies["csrftoken"].value,
    )
    assert response.status_code == 302
    assert BACnetTask.objects.count() == 1


# -- production settings -----------------------------------------------------------------


def _production_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    """What a production .env sets (see .env.example), and nothing from this machine."""
    return {
        "PATH": os.environ["PATH"],
        "HOME": str(tmp_path),
        "DJANGO_SETTINGS_MODULE": "bacnet_project.settings",
        "BACNET_ENV_FILE": os.devnull,
        "BACNET_DATA_DIR": str(tmp_path / "data"),
        "DEBUG": "false",
        "SECRET_KEY": secrets.token_urlsafe(50),
        "ALLOWED_HOSTS": "bacnet.example.com",
        "SECURE_COOKIES": "true",
        "SECURE_SSL_REDIRECT": "true",
        "BACNET_BACKEND": "celery",
        **extra,
    }


def _manage(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_it_passes_the_deploy_checks_but_for_the_hsts_choice(tmp_path):
    """HTTPS redirect, secure cookies, a real key, no DEBUG: everything but HSTS, which a
    site turns on once HTTPS works for good (W004 is the reminder)."""
    result = _manage(_production_env(tmp_path), "check", "--deploy", "--fail-level", "WARNING")
    warnings = set(re.findall(r"\((\w+\.\w\d+)\)", result.stdout + result.stderr))
    assert warnings <= {"security.W004"}, result.stdout + result.stderr


def test_it_passes_check_deploy_cleanly_with_hsts_on(tmp_path):
    env = _production_env(
        tmp_path,
        SECURE_HSTS_SECONDS="31536000",
        SECURE_HSTS_INCLUDE_SUBDOMAINS="true",
        SECURE_HSTS_PRELOAD="true",
    )
    result = _manage(env, "check", "--deploy", "--fail-level", "WARNING")
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("secret", ["", "change-me", "short-key"])
def test_it_refuses_to_start_without_a_real_secret(tmp_path, secret):
    result = _manage(_production_env(tmp_path, SECRET_KEY=secret), "check")
    assert result.returncode != 0
    assert "SECRET_KEY" in result.stderr


def test_it_keeps_secrets_out_of_the_repository():
    tracked = subprocess.run(
        ["git", "ls-files"], cwd=REPO, capture_output=True, text=True, check=False
    ).stdout.split()
    if not tracked:
        pytest.skip("not a git checkout")
    assert ".env" not in tracked
    text = (REPO / "bacnet_project" / "settings.py").read_text()
    assert not re.search(r"SECRET_KEY\s*=\s*['\"]", text)


# -- compose and Flower ------------------------------------------------------------------


class _ComposeLoader(yaml.SafeLoader):
    """Compose's own YAML tags (!reset, !override) read as plain values; otherwise
    yaml.safe_load's loader (no object construction)."""


for _tag in ("!reset", "!override"):
    _ComposeLoader.add_constructor(
        _tag,
        lambda loader, node: (
            loader.construct_sequence(node)
            if isinstance(node, yaml.SequenceNode)
            else loader.construct_mapping(node)
            if isinstance(node, yaml.MappingNode)
            else loader.construct_scalar(node)
        ),
    )


def _compose_files() -> list[Path]:
    files = sorted(REPO.glob("docker-compose*.yml")) + sorted(REPO.glob("compose*.yml"))
    assert files, "no compose file"
    return files


def _host_ip(port: Any) -> str:
    if isinstance(port, dict):
        return str(port.get("host_ip", ""))
    # "${POSTGRES_PORT:-5432}" holds a colon of its own: one part once interpolated.
    parts = re.sub(r"\$\{[^}]*\}", "VAR", str(port)).split(":")
    return parts[0] if len(parts) == 3 else ""  # "IP:HOST:CONTAINER" names the address


def _container_port(port: Any) -> str:
    if isinstance(port, dict):
        return str(port.get("target", ""))
    return re.sub(r"\$\{[^}]*\}", "VAR", str(port)).split(":")[-1].split("/")[0]


def test_it_publishes_database_and_redis_on_loopback_only():
    checked = 0
    for path in _compose_files():
        compose = yaml.load(path.read_text(), Loader=_ComposeLoader) or {}  # noqa: S506
        for name, service in (compose.get("services") or {}).items():
            if not isinstance(service, dict):
                continue  # "!reset null": the service is removed
            image = str(service.get("image", ""))
            for port in service.get("ports") or []:
                if _container_port(port) in ("5432", "6379") or image.startswith(
                    ("postgres", "redis")
                ):
                    assert _host_ip(port) == "127.0.0.1", (path.name, name, port)
                    checked += 1
    assert checked >= 2


def test_it_starts_flower_only_with_a_login_in_compose():
    text = (REPO / "docker-compose.yml").read_text()
    compose = yaml.load(text, Loader=_ComposeLoader)  # noqa: S506 - a SafeLoader
    flower = compose["services"]["flower"]
    command = (
        " ".join(flower["command"]) if isinstance(flower["command"], list) else flower["command"]
    )
    auth = str((flower.get("environment") or {}).get("FLOWER_BASIC_AUTH", ""))
    # Either a login on the command line, or a variable compose refuses to start without.
    assert (
        "--basic-auth" in command
        or "--auth" in command
        or re.fullmatch(r"\$\{FLOWER_BASIC_AUTH:\?[^}]*\}", auth)
    ), (command, auth)


@pytest.mark.redis
def test_it_answers_flower_only_with_its_login(redis_url, tmp_path):
    """Flower itself, started as compose starts it, with the login from the environment."""
    port = free_tcp_port()
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "tests.settings",
        "REDIS_URL": redis_url,
        "FLOWER_BASIC_AUTH": "watcher:flower-test-password",
    }
    log = (tmp_path / "flower.log").open("w")
    flower = subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "bacnet_project", "flower", f"--port={port}",
         "--address=127.0.0.1"],
        cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}/"
    try:
        deadline = time.monotonic() + scaled(20)
        status = None
        while time.monotonic() < deadline and status is None:
            assert flower.poll() is None, (tmp_path / "flower.log").read_text()
            try:
                urllib.request.urlopen(url, timeout=2)  # noqa: S310 - loopback only
                status = 200
            except urllib.error.HTTPError as exc:
                status = exc.code
            except OSError:
                time.sleep(0.3)
        assert status == 401
        token = b64encode(b"watcher:flower-test-password").decode()
        headers = {"Authorization": f"Basic {token}"}
        request = urllib.request.Request(url, headers=headers)  # noqa: S310 - loopback
        with urllib.request.urlopen(request, timeout=5) as response:  # noqa: S310
            assert response.status == 200
        wrong = b64encode(b"watcher:wrong").decode()
        headers = {"Authorization": f"Basic {wrong}"}
        request = urllib.request.Request(url, headers=headers)  # noqa: S310 - loopback
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(request, timeout=5)  # noqa: S310
        assert refused.value.code == 401
    finally:
        flower.terminate()
        try:
            flower.wait(15)
        except subprocess.TimeoutExpired:
            flower.kill()
            flower.wait(5)
        log.close()
