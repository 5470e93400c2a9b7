"""One factor for every deadline a test waits on.

The suite runs on shared 2-core machines next to benchmarks and other suites, so a wait
that is right on a quiet laptop is wrong there. Tests never hard-code how long the machine
may take: they write the time a quiet machine needs and wrap it in `scaled()`. The factor
is `BACNET_TEST_TIME_FACTOR` (default 3; raise it on slower machines). It scales the
tests' patience only: the product's own defaults are never changed for a test.
"""

from __future__ import annotations

import os

TIME_FACTOR = float(os.environ.get("BACNET_TEST_TIME_FACTOR", "3"))


def scaled(seconds: float) -> float:
    """How long a test waits for something a quiet machine does in `seconds`."""
    return seconds * TIME_FACTOR
