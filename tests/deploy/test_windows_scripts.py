"""The Windows batch scripts, read as cmd.exe will run them (no Windows here): CRLF line
endings, plain ASCII, their steps in order, and a non-zero exit after every failure."""

from __future__ import annotations

import re

import pytest

from tests.deploy.conftest import REPO

SETUP = "setup_windows_env.bat"
START = "start_bacnet_worker.bat"


def _lines(name: str) -> list[str]:
    return (REPO / name).read_bytes().decode("ascii").split("\r\n")


def _code(name: str) -> list[str]:
    """Lines that do something: no comments, no blank lines, no echo."""
    return [
        line.strip()
        for line in _lines(name)
        if line.strip() and not line.strip().upper().startswith(("REM", "::", "ECHO", "@ECHO"))
    ]


def _position(lines: list[str], pattern: str) -> int:
    for i, line in enumerate(lines):
        if re.search(pattern, line, flags=re.IGNORECASE):
            return i
    raise AssertionError(f"no line matches {pattern!r}")


@pytest.mark.parametrize("name", [SETUP, START])
def test_it_has_crlf_line_endings(name: str) -> None:
    data = (REPO / name).read_bytes()

    assert b"\r\n" in data
    assert data.count(b"\n") == data.count(b"\r\n"), "a line ends in LF only"
    assert data.endswith(b"\r\n")


@pytest.mark.parametrize("name", [SETUP, START])
def test_it_is_plain_ascii_without_emoji(name: str) -> None:
    data = (REPO / name).read_bytes()

    assert all(byte < 0x80 for byte in data), "non-ASCII characters garble in cmd"


@pytest.mark.parametrize("name", [SETUP, START])
def test_it_never_blocks_on_pause_or_greps_docker(name: str) -> None:
    code = "\n".join(_code(name)).lower()

    assert "pause" not in code
    assert "docker ps" not in code
    assert "findstr" not in code
    assert "choice" not in code


@pytest.mark.parametrize("name", [SETUP, START])
def test_it_exits_non_zero_after_every_error_message(name: str) -> None:
    lines = [line.strip() for line in _lines(name)]
    errors = [i for i, line in enumerate(lines) if line.lower().startswith("echo error")]

    assert errors
    for i in errors:
        following = next(
            line
            for line in lines[i + 1 :]
            if line and not line.lower().startswith("echo") and line != ")"
        )
        assert re.fullmatch(r"exit /b [1-9]\d*", following, re.IGNORECASE), (i, following)


@pytest.mark.parametrize("name", [SETUP, START])
def test_it_runs_from_its_own_folder(name: str) -> None:
    assert 'cd /d "%~dp0"' in _code(name)


def _checked(code: list[str], pattern: str) -> None:
    """The command matching ``pattern`` is followed at once by an errorlevel check."""
    i = _position(code, pattern)
    assert re.match(r"if errorlevel 1 \($", code[i + 1], re.IGNORECASE), code[i : i + 2]


def test_it_sets_up_the_worker_in_order() -> None:
    code = _code(SETUP)

    steps = [
        r"sys\.version_info >= \(3, 11\)",  # Python 3.11 or newer
        r" -m venv \.venv$",  # the virtual environment
        r"-m pip install -r requirements\.txt",  # the requirements
        r'copy /y "\.env\.example" "\.env"',  # .env from the example, if missing
        r"set \"DJANGO_SETTINGS_MODULE=bacnet_project\.windows_settings\"",
        r"manage\.py check$",  # the Django configuration, as the worker loads it
    ]
    positions = [_position(code, step) for step in steps]
    assert positions == sorted(positions)
    for step in (r" -m venv \.venv$", r"-m pip install -r", r"copy /y", r"manage\.py check$"):
        _checked(code, step)


def test_it_tries_the_py_launcher_then_python() -> None:
    code = _code(SETUP)

    assert _position(code, r"^py -3 -c") < _position(code, r"^python -c")


def test_it_keeps_an_existing_env_file() -> None:
    code = _code(SETUP)

    assert _position(code, r'^if exist "\.env" \($') < _position(code, r"copy /y")


def test_it_checks_the_database_and_broker_before_starting_the_worker() -> None:
    code = _code(START)

    activate = _position(code, r'call "\.venv\\Scripts\\activate\.bat"')
    check = _position(code, r"^python bacnet_worker_windows\.py --check %\*$")
    start = _position(code, r"^python bacnet_worker_windows\.py %\*$")
    assert activate < check < start
    _checked(code, r"--check %\*$")


def test_it_refuses_to_start_without_the_venv_or_env() -> None:
    code = _code(START)

    activate = _position(code, r'call "\.venv\\Scripts\\activate\.bat"')
    assert _position(code, r'if not exist "\.venv\\Scripts\\activate\.bat"') < activate
    assert _position(code, r'if not exist "\.env"') < activate


def test_it_exits_with_the_workers_exit_code() -> None:
    code = _code(START)

    assert code[-1].lower() == "endlocal & exit /b %worker_exit%"
    assert _position(code, r"^set \"WORKER_EXIT=%ERRORLEVEL%\"$") == (
        _position(code, r"^python bacnet_worker_windows\.py %\*$") + 1
    )
