"""What every benchmark part shares: repeated timings, result rows, the table, the
machine description, and small database helpers.

Every figure is a median of several runs with min-max shown, next to a baseline
measured in the same run: the machine is shared and noisy, so only ratios between
methods measured side by side mean much."""

from __future__ import annotations

import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class Options:
    """Command-line options every part sees."""

    full: bool = False  # the sizes (10 M readings, 200 devices, 100 cycles)
    runs: int | None = None  # override each part's number of timed runs
    rows: int | None = None  # readings to grow to (the scale part)

    def repeats(self, default: int) -> int:
        return max(1, self.runs if self.runs is not None else default)


@dataclass
class Stat:
    """Several measurements of one thing."""

    values: list[float]

    @property
    def median(self) -> float:
        return statistics.median(self.values)

    @property
    def low(self) -> float:
        return min(self.values)

    @property
    def high(self) -> float:
        return max(self.values)

    def text(self, unit: str) -> str:
        if len(self.values) == 1:
            return f"{fmt(self.median, unit)} (1 sample)"
        if unit == "s":
            # One unit for the median and its range, chosen by the median.
            scale, shown = (1000, "ms") if self.median < 1 else (1, "s")
            parts = [fmt(v * scale, "ms", bare=True) for v in (self.median, self.low, self.high)]
            return f"{parts[0]} {shown} ({parts[1]}-{parts[2]})"
        low, high = fmt(self.low, unit, bare=True), fmt(self.high, unit, bare=True)
        return f"{fmt(self.median, unit)} ({low}-{high})"


def fmt(value: float, unit: str, *, bare: bool = False) -> str:
    """A number for the table: rates as integers with separators, times in ms or s."""
    if unit == "s":
        text = f"{value:.3g} s" if value < 10 else f"{value:.1f} s"
        if value < 1:
            text = f"{value * 1000:.3g} ms"
        return text
    if unit == "ms":
        text = f"{value:.3g}" if value < 100 else f"{value:.0f}"
        return text if bare else f"{text} ms"
    if unit == "MB":
        return f"{value:.1f}" if bare else f"{value:.1f} MB"
    if unit in ("queries", "count"):
        return f"{value:.0f}"
    text = f"{value:,.0f}" if value >= 100 else f"{value:.3g}"
    return text if bare else f"{text} {unit}"


@dataclass
class Row:
    """One line of a part's table: the product's figure against one baseline.

    ``ratio`` is product / baseline in the row's unit (a rate ratio above 1 means the
    product is faster; a time ratio below 1 means it is faster): the ratio of the medians,
    or for interleaved measures the median of the per-round ratios (given)."""

    measure: str
    sizes: str
    unit: str
    product: Stat
    baseline_name: str = "-"
    baseline: Stat | None = None
    target: str = "-"
    met: bool | None = None
    ratio: float | None = None

    def __post_init__(self) -> None:
        if self.ratio is None and self.baseline is not None and self.baseline.median:
            self.ratio = self.product.median / self.baseline.median

    def cells(self) -> list[str]:
        baseline = "-"
        if self.baseline is not None:
            baseline = f"{self.baseline_name}: {self.baseline.text(self.unit)}"
        elif self.baseline_name != "-":
            baseline = self.baseline_name
        ratio = "-" if self.ratio is None else f"{self.ratio:.2f}x"
        met = {True: "yes", False: "**no**", None: "-"}[self.met]
        return [
            self.measure,
            self.sizes,
            self.product.text(self.unit),
            baseline,
            ratio,
            self.target,
            met,
        ]


HEADER = [
    "measure",
    "sizes",
    "product: median (min-max)",
    "baseline (same run)",
    "ratio",
    "target",
    "met?",
]


@dataclass
class PartResult:
    name: str
    title: str
    rows: list[Row] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    elapsed_s: float = 0.0
    error: str = ""

    def table(self) -> str:
        lines = [
            "| " + " | ".join(HEADER) + " |",
            "| " + " | ".join("---" for _ in HEADER) + " |",
        ]
        for row in self.rows:
            lines.append("| " + " | ".join(c.replace("|", "/") for c in row.cells()) + " |")
        return "\n".join(lines)

    def markdown(self) -> str:
        parts = [f"### {self.title}", ""]
        if self.error:
            parts += [f"Did not finish: `{self.error}`", ""]
        if self.rows:
            parts += [self.table(), ""]
        parts += [f"- {note}" for note in self.notes]
        parts.append(f"- Part took {self.elapsed_s:.0f} s.")
        return "\n".join(parts)


# -- timing ----------------------------------------------------------------------------


def timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    started = time.perf_counter()
    result = fn()
    return time.perf_counter() - started, result


def repeat(
    fn: Callable[[], Any],
    runs: int,
    *,
    before: Callable[[], Any] | None = None,
    warmup: int = 0,
) -> list[tuple[float, Any]]:
    """Run ``fn`` ``runs`` times (after ``warmup`` untimed runs), ``before`` untimed
    ahead of each. Returns (seconds, result) per timed run."""
    out = []
    for index in range(warmup + runs):
        if before is not None:
            before()
        seconds, result = timed(fn)
        if index >= warmup:
            out.append((seconds, result))
    return out


def interleave(
    fns: dict[str, Callable[[], Any]],
    runs: int,
    *,
    before: dict[str, Callable[[], Any]] | None = None,
    warmup: int = 1,
) -> dict[str, list[tuple[float, Any]]]:
    """Run several measures in rounds (a, b, c, a, b, c, ...), so that a change in the
    machine's load during the part weighs on each the same. ``before`` runs untimed
    ahead of the named measure. Returns (seconds, result) per timed run, by name."""
    out: dict[str, list[tuple[float, Any]]] = {name: [] for name in fns}
    for index in range(warmup + runs):
        for name, fn in fns.items():
            if before and name in before:
                before[name]()
            seconds, result = timed(fn)
            if index >= warmup:
                out[name].append((seconds, result))
    return out


def paired_ratio(product: Stat, baseline: Stat) -> float:
    """The median of per-round ratios of interleaved measures: a load change that hits
    one round hits both sides of that round's ratio."""
    return statistics.median(p / b for p, b in zip(product.values, baseline.values, strict=True))


def seconds_stat(samples: Sequence[tuple[float, Any]]) -> Stat:
    return Stat([s for s, _ in samples])


def rate_stat(samples: Sequence[tuple[float, Any]], count: Callable[[Any], int] | int) -> Stat:
    """Items per second per run; ``count`` is fixed or read from each run's result."""
    rates = []
    for seconds, result in samples:
        n = count(result) if callable(count) else count
        rates.append(n / seconds if seconds > 0 else float("inf"))
    return Stat(rates)


def log(message: str) -> None:
    """Progress on stderr, so stdout carries only the tables."""
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


# -- database --------------------------------------------------------------------------


def truncate(*models: Any) -> None:
    """Empty the models' tables (and whatever references them)."""
    from django.db import connection

    names = ", ".join(connection.ops.quote_name(m._meta.db_table) for m in models)
    with connection.cursor() as cursor:
        cursor.execute(f"TRUNCATE {names} RESTART IDENTITY CASCADE")


def analyze(*models: Any) -> None:
    """Fresh planner statistics after a bulk load, as autovacuum would give soon after."""
    from django.db import connection

    with connection.cursor() as cursor:
        for model in models:
            cursor.execute(f"ANALYZE {connection.ops.quote_name(model._meta.db_table)}")


def relation_size(model: Any) -> int:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_total_relation_size(%s)", [model._meta.db_table])
        return int(cursor.fetchone()[0])


def clear_all_data() -> None:
    """An empty product database (all discovery tables)."""
    from discovery.models import (
        BACnetDailyStat,
        BACnetDevice,
        BACnetHourlyStat,
        BACnetPoint,
        BACnetReading,
        BACnetTask,
        BACnetWorker,
    )

    truncate(
        BACnetReading,
        BACnetHourlyStat,
        BACnetDailyStat,
        BACnetPoint,
        BACnetDevice,
        BACnetWorker,
        BACnetTask,
    )


# -- the machine -----------------------------------------------------------------------


def _first_line_with(path: str, prefix: str) -> str:
    try:
        for line in Path(path).read_text().splitlines():
            if line.startswith(prefix):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return "?"


def _git(*args: str) -> str:
    try:
        return subprocess.run(
            ["git", *args], cwd=REPO, capture_output=True, text=True, timeout=10
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "?"


def machine_description() -> list[str]:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SHOW server_version")
        pg_version = cursor.fetchone()[0]
    import bacpypes3
    import django

    try:
        from importlib.metadata import version

        bac0 = version("BAC0")
    except Exception:
        bac0 = "?"
    mem_kb = _first_line_with("/proc/meminfo", "MemTotal").split()[0]
    dirty = (
        " (with uncommitted changes)" if _git("status", "--porcelain", "--", "discovery") else ""
    )
    load = " ".join(f"{x:.2f}" for x in os.getloadavg())
    commit = _git("rev-parse", "--short", "HEAD")
    return [
        f"Date: {datetime.now(UTC):%Y-%m-%d %H:%M} UTC; commit {commit}{dirty}",
        f"CPU: {_first_line_with('/proc/cpuinfo', 'model name')}, {os.cpu_count()} cores "
        "(shared with other agents' test runs: compare ratios, not absolutes)",
        f"Memory: {int(mem_kb) / 1024 / 1024:.0f} GB; load average at start {load}",
        f"Software: {platform.python_implementation()} {platform.python_version()}, "
        f"Django {django.get_version()}, PostgreSQL {pg_version}, BAC0 {bac0}, "
        f"bacpypes3 {bacpypes3.__version__}, {platform.system()} {platform.release()}",
    ]


def thousands(n: float) -> str:
    if n >= 1_000_000 and n % 100_000 == 0:
        return f"{n / 1_000_000:g} M"
    return f"{n:,.0f}"


def chunks(items: Sequence[Any], size: int) -> Iterable[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]
