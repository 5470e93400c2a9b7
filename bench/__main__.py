"""``python -m bench [part ...] [--full] [--runs N] [--rows N]``: run the benchmarks.

Parts: ingest, partitions, deadband, rollups, scale, pages, collection, largesite,
discovery, bigdevice, memory (all by default). Each builds its own data (and simulated
site) in the benchmark database, prints its table, and replaces its section of
bench/RESULTS.md. ``--rows N``: the readings the scale part grows to (the issue's 100 M:
``scale --rows 100000000``, about an hour and 40 GB of disk)."""

from __future__ import annotations

import argparse
import os
import re
import sys
import time
import traceback
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

PARTS = [
    "ingest",
    "partitions",
    "deadband",
    "rollups",
    "scale",
    "pages",
    "collection",
    "largesite",
    "discovery",
    "bigdevice",
    "memory",
]
RESULTS = Path(__file__).resolve().parent / "RESULTS.md"

RESULTS_HEAD = """# Benchmark results

Produced by `make bench` (`.venv/bin/python -m bench [part ...] [--full]`, see
[docs/benchmarks.md](../docs/benchmarks.md)). Each part replaces its own section below when
it runs. Every figure is the median of several runs with the min-max range in brackets,
next to a baseline measured in the same run on the same data; `ratio` is product / baseline
in the row's unit. The sizes each figure used are in its row (`--full` runs the issue's
sizes; the default run is smaller so that the whole suite takes a few minutes).
"""


def _section(name: str, body: str) -> str:
    return f"<!-- bench:{name} -->\n{body.strip()}\n<!-- /bench:{name} -->"


def update_results(path: Path, sections: dict[str, str]) -> None:
    """Replace (or append, in PARTS order) the named sections of the results file."""
    text = path.read_text() if path.exists() else RESULTS_HEAD
    for name, body in sections.items():
        block = _section(name, body)
        pattern = re.compile(
            rf"<!-- bench:{re.escape(name)} -->.*?<!-- /bench:{re.escape(name)} -->", re.S
        )
        if pattern.search(text):
            text = pattern.sub(block.replace("\\", "\\\\"), text)
            continue
        # Keep the parts in their usual order: insert before the first later part.
        # The hand-written analysis stays last.
        later = [*PARTS[PARTS.index(name) + 1 :], "analysis"] if name in PARTS else PARTS
        anchor = next((m for p in later if (m := text.find(f"<!-- bench:{p} -->")) >= 0), -1)
        if anchor >= 0:
            text = text[:anchor] + block + "\n\n" + text[anchor:]
        else:
            text = text.rstrip() + "\n\n" + block + "\n"
    path.write_text(text)


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("parts", nargs="*", help=f"any of {', '.join(PARTS)} (default: all)")
    parser.add_argument("--full", action="store_true", help="the issue's sizes (slow)")
    parser.add_argument("--runs", type=int, help="timed runs per measure (default per part)")
    parser.add_argument("--rows", type=int, help="readings the scale part grows to")
    parser.add_argument(
        "--results", type=Path, default=RESULTS, help="results file (default bench/RESULTS.md)"
    )
    parser.add_argument("--no-write", action="store_true", help="print only")
    args = parser.parse_args(argv)
    unknown = [p for p in args.parts if p not in PARTS]
    if unknown:
        parser.error(f"unknown part(s) {', '.join(unknown)}; choose from {', '.join(PARTS)}")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "bench.settings")
    import django

    django.setup()
    from django.core.management import call_command

    from bench import common

    call_command("migrate", verbosity=0, interactive=False)
    options = common.Options(full=args.full, runs=args.runs, rows=args.rows)
    machine = common.machine_description()
    for line in machine:
        print(line)
    print()
    sizes = ("--full" if args.full else "default") + " sizes"
    sizes += f", --rows {args.rows}" if args.rows else ""
    failed = 0
    sections: dict[str, str] = {}
    for name in args.parts or PARTS:
        module = __import__(f"bench.{name}", fromlist=["run"])
        run: Callable[[common.Options], common.PartResult] = module.run
        common.log(f"part {name} ({sizes})")
        started = time.monotonic()
        try:
            result = run(options)
        except (KeyboardInterrupt, SystemExit):
            raise
        except BaseException as exc:  # bacpypes3 errors derive from BaseException
            traceback.print_exc()
            result = common.PartResult(name, getattr(module, "TITLE", name))
            result.error = f"{type(exc).__name__}: {exc}"
            failed += 1
        result.elapsed_s = time.monotonic() - started
        stamp = (
            f"Run {datetime.now(UTC):%Y-%m-%d %H:%M} UTC, "
            f"{sizes}, load average after " + " ".join(f"{x:.2f}" for x in os.getloadavg()) + "."
        )
        result.notes.append(stamp)
        text = result.markdown()
        print(text)
        print(flush=True)
        sections[name] = text
        if not args.no_write:
            machine_text = "## Machine\n\n" + "\n".join(f"- {line}" for line in machine)
            update_results(args.results, {"machine": machine_text, name: text})
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
