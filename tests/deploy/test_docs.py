"""docs/deployment.md stays true to the files and options it names."""

from __future__ import annotations

import re

from tests.deploy.conftest import REPO

GUIDE = REPO / "docs" / "deployment.md"


def test_it_names_only_files_that_exist() -> None:
    text = GUIDE.read_text(encoding="utf-8")
    named = set(re.findall(r"[\w.-]+\.(?:bat|yml|py)\b|\.env\.example|Dockerfile", text))

    assert "start_bacnet_worker.bat" in named
    missing = sorted(name for name in named if not list(REPO.glob(f"**/{name}")))
    assert not missing


def test_it_names_only_options_the_worker_script_has() -> None:
    from bacnet_worker_windows import build_parser

    accepted = {option for action in build_parser()._actions for option in action.option_strings}
    text = GUIDE.read_text(encoding="utf-8")
    usages = re.findall(r"(?:bacnet_worker_windows\.py|start_bacnet_worker\.bat)([^`\n]*)", text)
    named = {option for usage in usages for option in re.findall(r"--[a-z-]+", usage)}
    named |= set(re.findall(r"`(--[a-z-]+)", text))

    assert "--check" in named
    assert named <= accepted, sorted(named - accepted)


def test_it_says_plainly_what_could_not_be_run_here() -> None:
    text = GUIDE.read_text(encoding="utf-8")

    assert "## What was run here, and what was not" in text
    assert "no Docker" in text
    assert "no Windows" in text
