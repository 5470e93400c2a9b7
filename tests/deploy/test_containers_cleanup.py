"""What a run leaves behind when it cannot clean up (pytest killed before its finalizers):
the next run removes that project's containers, volumes and networks before it starts."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.deploy.conftest import LINUX
from tests.deploy.containers import Deployment, Engine, copy_repository, env_values
from tests.timing import scaled

pytestmark = [pytest.mark.containers, pytest.mark.slow, pytest.mark.timeout(scaled(120))]


def test_it_removes_what_a_killed_run_left_behind(engine: Engine, tmp_path: Path) -> None:
    killed = Deployment(engine, "bacnet-ci-sweep", copy_repository(tmp_path / "killed"), LINUX)
    killed.write_env(env_values("127.0.0.1:47808", 47809))
    # Redis alone is enough to leave a container, a volume and a network.
    killed.compose("up", "-d", "redis", timeout=scaled(60))
    assert set(killed.leftovers()) == {"container", "volume", "network"}

    # The next run knows only the project's name, not the killed run's files.
    next_run = Deployment(engine, "bacnet-ci-sweep", tmp_path / "next", LINUX)
    next_run.sweep()

    assert next_run.leftovers() == {}
