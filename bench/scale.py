"""Scale: a 40,000-point site read every minute, its readings growing from 0 to N rows
(the issue's 100 M: ``--rows 100000000``) in the product's day partitions and, with the
same rows, in one plain table (the readings table before migration 0010).

Rows are generated inside PostgreSQL (one ``INSERT … SELECT`` from ``generate_series``
per hour of the site, which never crosses a day partition), both tables filled at once
on two connections. At each step: the product's cycle insert (``bench.partitions``'
``store_cycle``) of 1,000 and 40,000 readings into both tables, interleaved; bytes per
reading with indexes; one point's trend chart of a year (``discovery.api.trends``'
``downsample``, which reads the hourly statistics); the hourly rollup of one hour of all
points (``discovery.services.rollups``' ``roll_up``); one point's day of readings and a
site point's last hour. Each is compared with the plain table in the same rounds, and
with itself at the first step: "without slowing" as a ratio."""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any

from django.db import connection, connections, transaction

from bench.common import (
    Options,
    PartResult,
    Row,
    Stat,
    clear_all_data,
    interleave,
    log,
    paired_ratio,
    rate_stat,
    repeat,
    seconds_stat,
    thousands,
    timed,
)
from bench.data import make_devices
from bench.partitions import COLUMNS, PLAIN, create_plain, store_cycle, table_bytes
from discovery.api.trends import DEFAULT_BUCKETS, downsample
from discovery.models import BACnetHourlyStat
from discovery.services import partitions
from discovery.services.rollups import roll_up

TITLE = "Scale: ingest, charts and rollups as the readings grow (issue 21)"
PRODUCT = partitions.TABLE
TABLES = {"day partitions": PRODUCT, "one table": PLAIN}
# Kept empty (truncated before each of its cycles), in the same rounds: what a cycle costs
# on this machine right now, so that growth is not confused with a change of load.
EMPTY = "bench_readings_empty"
POINTS = 40_000
SMALL_CYCLE = 1_000
MINUTE = timedelta(minutes=1)
HOUR = timedelta(hours=1)
YEAR = timedelta(days=365)
YEAR_ROWS = int(YEAR / MINUTE)  # the chart point's year of minute readings
SITE_START = datetime(2026, 6, 1, tzinfo=UTC)  # every point's readings from here on
DEFAULT_ROWS = 5_000_000
FULL_ROWS = 100_000_000
FRACTIONS = (0.1, 0.25, 0.5, 1.0)


@dataclass
class Step:
    """What was measured with ``rows`` readings in each table."""

    rows: int
    cycles: dict[str, dict[str, Stat]] = field(default_factory=dict)  # size -> table -> rate
    per_reading: dict[str, float] = field(default_factory=dict)
    chart: Stat | None = None
    rollup: Stat | None = None
    day: dict[str, Stat] = field(default_factory=dict)
    hour: dict[str, Stat] = field(default_factory=dict)


@dataclass
class Site:
    first_id: int
    point_ids: list[int]
    now: datetime = SITE_START  # the next free minute of the site
    rolled_to: datetime = SITE_START  # hours before this have their statistics
    rows: int = 0  # readings in each table


def step_hours(rows: int) -> list[int]:
    """Hours of the whole site at each step after the empty one (at least one: the
    rollup needs a full hour), growing; the chart point's year counts in the rows."""
    hours = [max(1, round((rows * f - YEAR_ROWS) / (POINTS * 60))) for f in FRACTIONS]
    return sorted(set(hours))


def _fill(table: str, first_id: int, count: int, start: datetime, minutes: int) -> int:
    """``minutes`` minutes of readings of points first_id … first_id + count - 1 from
    ``start``, minute by minute (the order cycles arrive in); the same values in every
    table (no random()). A bulk load: no synchronous commit, and no per-row foreign key
    check (replica role; the ids exist by construction). Measured inserts keep both."""
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("SET LOCAL synchronous_commit = off")
        cursor.execute("SET LOCAL session_replication_role = replica")
        cursor.execute(
            f"INSERT INTO {table} ({COLUMNS}) "
            "SELECT %(first)s + i %% %(count)s, "
            "%(start)s::timestamptz + (i / %(count)s) * interval '1 minute', "
            "20 + 5 * sin((i / %(count)s)::float8 / 60 + i %% %(count)s) "
            "+ (i * 7919 %% 1000) / 1000.0, '', 0 "
            "FROM generate_series(0::bigint, %(rows)s - 1) AS i",
            {"first": first_id, "count": count, "start": start, "rows": count * minutes},
        )
        return count * minutes


def _on_both(fn: Callable[[str], Any]) -> dict[str, Any]:
    """``fn(table)`` for both tables at once, one connection each (two cores)."""

    def call(table: str) -> Any:
        try:
            return fn(table)
        finally:
            connections.close_all()  # this thread's connection

    with ThreadPoolExecutor(len(TABLES)) as pool:
        futures = {name: pool.submit(call, table) for name, table in TABLES.items()}
        return {name: future.result() for name, future in futures.items()}


def _vacuum(table: str) -> None:
    """Hint bits and statistics after a bulk load, as autovacuum would give soon after."""
    with connection.cursor() as cursor:
        cursor.execute(f"VACUUM ANALYZE {table}")


def _setup(end: datetime) -> Site:
    clear_all_data()
    for old in partitions.partitions():  # other parts' (empty) days: not this site's
        with connection.cursor() as cursor:
            cursor.execute(f"DROP TABLE {old.name}")
    point_ids = make_devices(POINTS // 100, 100)
    first_id = point_ids[0]
    if point_ids != list(range(first_id, first_id + POINTS)):
        raise RuntimeError("the fill needs consecutive point ids")
    with connection.cursor() as cursor:
        create_plain(cursor)
        create_plain(cursor, EMPTY)
    log("scale: day partitions for the year")
    partitions.ensure_partitions(SITE_START - YEAR - timedelta(days=1), end, 1)
    return Site(first_id, point_ids)


def _load_year(site: Site) -> None:
    """The chart point's year of minute readings before the site's, and its statistics
    from the product's rollup."""
    start = SITE_START - YEAR
    _on_both(lambda table: _fill(table, site.first_id, 1, start, YEAR_ROWS))
    roll_up("hour", start, SITE_START)
    site.rows += YEAR_ROWS


def _grow(site: Site, hours: int) -> tuple[dict[str, float], list[float]]:
    """Fill the site up to ``hours`` after its start, an hour at a time, and roll up each
    hour once complete (as the scheduled task would). Returns the fill's rows per second
    per table and the seconds of each hourly rollup."""
    target = SITE_START + hours * HOUR
    fill_s = {name: 0.0 for name in TABLES}
    rolled: list[float] = []
    filled = 0
    while site.now < target:
        upper = min(target, site.now.replace(minute=0) + HOUR)
        minutes = int((upper - site.now) / MINUTE)

        def fill(table: str, start: datetime = site.now, minutes: int = minutes) -> float:
            return timed(partial(_fill, table, site.first_id, POINTS, start, minutes))[0]

        took = _on_both(fill)
        for name, seconds in took.items():
            fill_s[name] += seconds
        site.now, site.rows, filled = upper, site.rows + POINTS * minutes, filled + POINTS * minutes
        while site.rolled_to + HOUR <= site.now:
            rolled.append(timed(partial(roll_up, "hour", site.rolled_to, site.rolled_to + HOUR))[0])
            site.rolled_to += HOUR
        log(f"scale: {site.rows:,} readings a table, to {site.now:%m-%d %H:%M}")
    _on_both(_vacuum)
    return {name: filled / s for name, s in fill_s.items() if s}, rolled


def _cycles(site: Site, point_ids: list[int], runs: int) -> dict[str, Stat]:
    """Cycles into both tables in rounds, each round one new minute for both."""
    minute = {"at": site.now - MINUTE}

    def advance() -> None:
        minute["at"] += MINUTE

    def store(table: str) -> int:
        return store_cycle(table, point_ids, minute["at"])

    fns: dict[str, Callable[[], Any]] = {name: partial(store, t) for name, t in TABLES.items()}
    fns["empty table"] = partial(store, EMPTY)
    samples = interleave(
        fns, runs, before={"day partitions": advance, "empty table": partial(_truncate, EMPTY)}
    )
    site.now = minute["at"] + MINUTE
    site.rows += len(point_ids) * (runs + 1)
    return {name: rate_stat(values, len(point_ids)) for name, values in samples.items()}


def _truncate(table: str) -> None:
    with connection.cursor() as cursor:
        cursor.execute(f"TRUNCATE {table}")


def _read(table: str, point_id: int, start: datetime, end: datetime) -> int:
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT timestamp, value FROM {table} WHERE point_id = %s "
            "AND timestamp >= %s AND timestamp < %s ORDER BY timestamp",
            [point_id, start, end],
        )
        return len(cursor.fetchall())


def _forget_hour(hour: datetime) -> None:
    """Remove an hour's statistics, so that each timed rollup writes them afresh."""
    with connection.cursor() as cursor:
        cursor.execute(
            f"DELETE FROM {BACnetHourlyStat._meta.db_table} WHERE bucket_start = %s", [hour]
        )


def _chart(point_id: int, end: datetime) -> int:
    data = downsample(point_id, end - YEAR, end, DEFAULT_BUCKETS)
    if data["bucket_seconds"] < 3600:
        raise RuntimeError("the year's chart did not read the hourly statistics")
    return len(data["t"])


def _measure(site: Site, runs: int) -> Step:
    step = Step(site.rows)
    for size in (SMALL_CYCLE, POINTS):
        step.cycles[thousands(size)] = _cycles(site, site.point_ids[:size], runs)
    if step.rows == 0:
        return step  # the empty tables: cycles only
    step.per_reading = {name: table_bytes(t) / site.rows for name, t in TABLES.items()}
    point = site.first_id
    day = SITE_START - timedelta(days=2)
    reads: dict[str, Callable[[], Any]] = {
        name: partial(_read, t, point, day, day + timedelta(days=1)) for name, t in TABLES.items()
    }
    step.day = {k: seconds_stat(v) for k, v in interleave(reads, runs).items()}
    last = site.rolled_to - HOUR  # the last complete hour of the fill
    middle = site.first_id + POINTS // 2
    reads = {name: partial(_read, t, middle, last, last + HOUR) for name, t in TABLES.items()}
    step.hour = {k: seconds_stat(v) for k, v in interleave(reads, runs).items()}
    step.chart = seconds_stat(repeat(partial(_chart, point, site.now), runs, warmup=1))
    rollups = repeat(
        partial(roll_up, "hour", last, last + HOUR), max(3, runs // 2),
        before=partial(_forget_hour, last),
    )  # fmt: skip
    step.rollup = seconds_stat(rollups)
    return step


def _rows(steps: list[Step], fill_rollups: dict[int, Stat]) -> list[Row]:
    rows: list[Row] = []
    for step in steps:
        sizes = f"{thousands(step.rows)} readings a table"
        for size, stats in step.cycles.items():
            product, plain = stats["day partitions"], stats["one table"]
            rows.append(Row(f"cycle insert, {size} readings", sizes, "rows/s", product,
                            "one table", plain, ratio=paired_ratio(product, plain)))  # fmt: skip
            for name in TABLES:
                rows.append(Row(f"cycle insert, {size} readings, {name}", sizes, "rows/s",
                                stats[name], "an empty table", stats["empty table"],
                                ratio=paired_ratio(stats[name], stats["empty table"])))  # fmt: skip
        if step.per_reading:
            rows.append(Row("bytes per reading, indexes included", sizes, "count",
                            Stat([step.per_reading["day partitions"]]), "one table",
                            Stat([step.per_reading["one table"]])))  # fmt: skip
        for label, reads in (("chart point's day (1,440)", step.day),
                             ("a site point's last hour (60)", step.hour)):  # fmt: skip
            if reads:
                rows.append(Row(f"read {label}", sizes, "s", reads["day partitions"],
                                "one table", reads["one table"]))  # fmt: skip
    measured = [s for s in steps if s.chart is not None]
    first, last = steps[0], steps[-1]
    at = f"{thousands(last.rows)} against {thousands(first.rows)} readings"
    for size in last.cycles:
        for name in TABLES:
            rows.append(Row(f"cycle insert, {size} readings, {name}: growth", at, "rows/s",
                            last.cycles[size][name], "the same at the first step",
                            first.cycles[size][name]))  # fmt: skip
    if len(measured) >= 2:
        m0, m1 = measured[0], measured[-1]
        at = f"{thousands(m1.rows)} against {thousands(m0.rows)} readings"
        assert m0.chart and m1.chart and m0.rollup and m1.rollup
        rows += [
            Row("year chart of one point (downsample): growth", at, "s", m1.chart,
                "the same at the first step", m0.chart),
            Row("hourly rollup of one hour, 40,000 points: growth", at, "s", m1.rollup,
                "the same at the first step", m0.rollup),
        ]  # fmt: skip
        if m1.rows in fill_rollups and m0.rows in fill_rollups:
            rows.append(Row("hourly rollup of each hour as filled: growth", at, "s",
                            fill_rollups[m1.rows], "the same in the first step",
                            fill_rollups[m0.rows]))  # fmt: skip
        for name in TABLES:
            rows.append(Row(f"read a site point's last hour, {name}: growth", at, "s",
                            m1.hour[name], "the same at the first step",
                            m0.hour[name]))  # fmt: skip
    return rows


def run(options: Options) -> PartResult:
    result = PartResult("scale", TITLE)
    target = options.rows or (FULL_ROWS if options.full else DEFAULT_ROWS)
    runs = options.repeats(5)
    hours = step_hours(target)
    site = _setup(SITE_START + (hours[-1] + 2) * HOUR + timedelta(days=1))
    steps: list[Step] = []
    fill_rollups: dict[int, Stat] = {}
    log(f"scale: step 0 (empty tables), then {hours} hours of the site")
    steps.append(_measure(site, runs))
    _load_year(site)
    for k, hour in enumerate(hours):
        started_rows = site.rows
        seconds, (rates, rolled) = timed(partial(_grow, site, hour))
        if rolled:
            fill_rollups[site.rows] = Stat(rolled)
        result.notes.append(
            f"Fill to {thousands(site.rows)}: {site.rows - started_rows:,} readings a table in "
            f"{seconds:.0f} s with the hourly rollups and VACUUM ANALYZE (rows/s: "
            + ", ".join(f"{n} {r:,.0f}" for n, r in rates.items())
            + (f"; rollup of each hour: {Stat(rolled).text('s')}" if rolled else "")
            + ")."
        )
        log(f"scale: measuring at {site.rows:,} readings (step {k + 1} of {len(hours)})")
        step = _measure(site, runs)
        steps.append(step)
        log("scale: so far\n" + PartResult("scale", TITLE, _rows(steps, fill_rollups)).table())
    result.rows = _rows(steps, fill_rollups)
    result.notes.append(
        f"{POINTS:,} points (400 devices x 100), one reading a minute each from "
        f"{SITE_START:%Y-%m-%d}; one point (the chart's) also has a year of minute readings "
        f"before that ({YEAR_ROWS:,}, counted in the rows), hourly statistics from the "
        "product's rollup for every complete hour. The product table has a day partition "
        "for every day of that year (as a site kept a year would); the plain table has the "
        "product's columns, the primary key on id, (point, time) unique, and btrees on time "
        "and point. Cycle rows are COPY + INSERT … SELECT … ON CONFLICT DO NOTHING (the "
        "product's statement), one minute a round for both tables, synchronous commit on; "
        "growth rows compare the last step with the first where the measure exists."
    )
    with connection.cursor() as cursor:
        cursor.execute(f"DROP TABLE IF EXISTS {PLAIN}, {EMPTY}")
    clear_all_data()
    return result
