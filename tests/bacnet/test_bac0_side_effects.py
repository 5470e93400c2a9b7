"""BAC0's import-time habits are neutralised: no .env from the working directory, no
stdout or ~/.BAC0 log handlers of its own."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]

PROBE = """
import json, logging, os
from discovery.bacnet_client import load_stack
load_stack()
from BAC0.core.utils.notes import LogList
handlers = sum(len(logger.handlers) for logger in LogList.LOGGERS)
print(json.dumps({
    "marker": os.environ.get("BACNET_TEST_DOTENV_MARKER"),
    "handlers": handlers,
    "loggers": len(LogList.LOGGERS),
    "propagate": all(logger.propagate for logger in LogList.LOGGERS),
}))
"""


def test_it_ignores_the_working_directorys_env_file_and_bac0_log_handlers(
    tmp_path: Path,
) -> None:
    (tmp_path / ".env").write_text("BACNET_TEST_DOTENV_MARKER=loaded\n")
    env = {k: v for k, v in os.environ.items() if k != "BACNET_TEST_DOTENV_MARKER"}
    env["PYTHONPATH"] = str(REPO)
    out = subprocess.run(
        [sys.executable, "-c", PROBE],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout
    result = json.loads(out.strip().splitlines()[-1])
    assert result["marker"] is None
    assert result["loggers"] > 0
    assert result["handlers"] == 0
    assert result["propagate"] is True
