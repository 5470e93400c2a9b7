"""The README's commands work as typed in a fresh clone: help needs no configuration,
and a missing setting is one line that names it, never a traceback."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from tests.deploy.conftest import REPO
from tests.timing import scaled

COMMANDS = ["discover", "collect", "simulate_site", "rundemo", "bacnet_worker", "migrate"]


def _fresh_clone_env(tmp_path) -> dict[str, str]:
    """No .env, no DEBUG, no SECRET_KEY: what a new user has before configuring."""
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("DEBUG", "SECRET_KEY", "ALLOWED_HOSTS", "DJANGO_SETTINGS"))
    }
    env.update(BACNET_ENV_FILE=str(tmp_path / "no.env"), BACNET_DATA_DIR=str(tmp_path / "data"))
    return env


def _manage(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=scaled(60),
    )  # fmt: skip


@pytest.mark.parametrize("command", COMMANDS)
def test_it_shows_each_commands_help_without_any_configuration(tmp_path, command):
    run = _manage([command, "--help"], _fresh_clone_env(tmp_path))
    assert run.returncode == 0, run.stderr
    assert f"manage.py {command}" in run.stdout
    assert "Traceback" not in run.stderr


def test_it_names_a_missing_setting_in_one_line(tmp_path):
    run = _manage(["discover"], _fresh_clone_env(tmp_path))
    assert run.returncode == 2
    assert "Traceback" not in run.stderr
    lines = [line for line in run.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, run.stderr
    assert lines[0].startswith("Configuration error: SECRET_KEY")


def test_it_names_a_wrong_time_zone_in_one_line(tmp_path):
    env = {**_fresh_clone_env(tmp_path), "DEBUG": "true", "TIME_ZONE": "Mars/Olympus_Mons"}
    run = _manage(["check"], env)
    assert run.returncode == 2
    assert "Traceback" not in run.stderr
    assert "Configuration error: Incorrect timezone setting: Mars/Olympus_Mons" in run.stderr
