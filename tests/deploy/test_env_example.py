""".env.example: every variable the product and the compose files read is there and
explained, and the file, once its secrets are filled in, is a configuration that loads."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

from tests.deploy.conftest import COMPOSE_FILES, REPO, read_env_example

EXAMPLE = REPO / ".env.example"
# Files whose environment variables users set; the settings read them through
# django-environ (env.str("NAME") ...) or os.environ.
SETTINGS_SOURCES = [
    REPO / "bacnet_project" / "settings.py",
    REPO / "bacnet_project" / "windows_settings.py",
    REPO / "bacnet_project" / "platform_detection.py",
]
# Read by other programs from the container's environment, set through .env.
READ_ELSEWHERE = {"FLOWER_BASIC_AUTH", "POSTGRES_DB", "POSTGRES_USER", "POSTGRES_PASSWORD"}
VARIABLE = re.compile(r"^#? ?([A-Z][A-Z0-9_]*)=(.*)$")


def _documented() -> dict[str, int]:
    """Variable name -> line number, for set (NAME=) and shown-default (# NAME=) lines."""
    lines = EXAMPLE.read_text(encoding="ascii").splitlines()
    return {m.group(1): i for i, line in enumerate(lines) if (m := VARIABLE.match(line))}


def _read_by_settings() -> set[str]:
    names: set[str] = set()
    for source in SETTINGS_SOURCES:
        text = source.read_text(encoding="utf-8")
        names |= set(re.findall(r"\benv\.\w+\(\s*\"([A-Z][A-Z0-9_]*)\"", text))
        names |= set(re.findall(r"environ(?:\.get)?[\[(]\s*\"([A-Z][A-Z0-9_]*)\"", text))
    return names


def _interpolated_by_compose() -> set[str]:
    names: set[str] = set()
    for name in COMPOSE_FILES:
        text = (REPO / name).read_text(encoding="utf-8")
        names |= set(re.findall(r"(?<!\$)\$\{([A-Z][A-Z0-9_]*)", text))
    return names


def test_it_lists_every_variable_the_settings_read() -> None:
    missing = _read_by_settings() - set(_documented())

    assert not missing, f"add to .env.example: {sorted(missing)}"


def test_it_lists_every_variable_the_compose_files_use() -> None:
    missing = (_interpolated_by_compose() | READ_ELSEWHERE) - set(_documented())

    assert not missing, f"add to .env.example: {sorted(missing)}"


def test_it_explains_every_variable() -> None:
    lines = EXAMPLE.read_text(encoding="ascii").splitlines()

    for name, number in _documented().items():
        # Up the paragraph (to the blank line above): at least one line of prose.
        start = number
        while start > 0 and lines[start - 1].strip():
            start -= 1
        prose = [
            line
            for line in lines[start:number]
            if line.startswith("#") and not VARIABLE.match(line)
        ]
        assert prose, f"{name} has no explanation above it"


def test_it_is_in_a_format_both_compose_and_django_environ_read() -> None:
    for line in EXAMPLE.read_text(encoding="ascii").splitlines():
        if not line or line.startswith("#"):
            continue
        match = VARIABLE.match(line)
        assert match, f"not NAME=value: {line!r}"
        # Compose expands $ in .env; django-environ reads a leading $ as a reference.
        assert "$" not in match.group(2), line


def _check(env_text: str, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    """``manage.py check`` with the worker's settings, as setup_windows_env.bat runs it."""
    env_file = tmp_path / ".env"
    env_file.write_text(env_text, encoding="ascii")
    environ = {
        key: value
        for key, value in os.environ.items()
        if key in {"PATH", "HOME", "LANG", "SYSTEMROOT", "TMPDIR"}
    }
    environ.update(
        BACNET_ENV_FILE=str(env_file),
        BACNET_DATA_DIR=str(tmp_path / "data"),
        DJANGO_SETTINGS_MODULE="bacnet_project.windows_settings",
    )
    return subprocess.run(
        [sys.executable, "manage.py", "check"],
        cwd=REPO,
        env=environ,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_it_loads_once_the_secrets_are_filled_in(tmp_path: Path) -> None:
    result = _check(read_env_example(), tmp_path)

    assert result.returncode == 0, result.stderr
    assert "BACnet backend: celery (BACNET_BACKEND=celery)" in result.stderr


def test_it_is_refused_with_its_empty_secret_key(tmp_path: Path) -> None:
    result = _check(read_env_example(SECRET_KEY=""), tmp_path)

    assert result.returncode != 0
    assert "SECRET_KEY is missing" in result.stderr
