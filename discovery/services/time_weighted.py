"""Time-weighted history: a stored reading's value holds until the next reading, for at
most the point's *hold limit*; averages weigh each value by how long it held.

Readings are irregular: change-of-value notifications arrive when the value changes,
and store on change (``store_on_change``) leaves out readings within the deadband until
the heartbeat is due. Between two readings the point had the first one's value, so an
average over time weighs each value by the time it held, and a chart bucket with no
reading shows the value held into it (a step, not a hole).

But a value must not hold forever: a device that died leaves its last reading standing.
The hold limit is how long a point may normally go without a stored reading, plus two
poll periods (the reading that is due comes at the next poll; one missed poll is not a
gap), never more than ``BACNET_HOLD_MAX_S`` (default a day):

- a heartbeat (the point's own, else its object type's rule): at least one stored
  reading every heartbeat, so the heartbeat;
- otherwise a deadband without a heartbeat, or a point kept by change of value: a value
  may rightly stand for hours (nothing is stored until it changes), so the maximum;
- a ``cov-check`` point: polled when unheard for ``BACNET_COV_CHECK_S``, so that;
- a polled point storing every reading: nothing but the two poll periods.

The poll period is the collection period (``BACNET_COLLECT_INTERVAL_S``) or the point's
(else its device's) longer ``poll_interval_s``. A reading without a number (NaN, text)
ends the value before it.

The SQL runs on PostgreSQL and SQLite alike (window functions and a recursive CTE): a
value held across bucket boundaries is split into one piece per bucket it covers.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.conf import settings
from django.db import connection
from django.db.models import Case, F, FloatField, Q, QuerySet, Value, When
from django.db.models.functions import Coalesce, Greatest, Least

from discovery.keeping import Keeping
from discovery.models import BACnetPoint, BACnetReading

EPOCH_SQL = {
    # date_part is float8 already; EXTRACT is numeric since PostgreSQL 14, and slow.
    "postgresql": "date_part('epoch', {col})",
    # SQLite keeps aware datetimes as UTC text; julianday() reads it, to about 50 µs:
    # rounded to the millisecond, a reading on the hour stays in its hour.
    "sqlite": "ROUND((julianday({col}) - 2440587.5) * 86400.0, 3)",
}
# The two-argument minimum and maximum.
_LEAST = {"postgresql": "LEAST", "sqlite": "MIN"}
_GREATEST = {"postgresql": "GREATEST", "sqlite": "MAX"}


def sql_functions() -> tuple[str, str, str]:
    """(epoch format, least, greatest) for this database."""
    vendor = connection.vendor if connection.vendor in EPOCH_SQL else "postgresql"
    return EPOCH_SQL[vendor], _LEAST[vendor], _GREATEST[vendor]


def _type_rule_case(key: str) -> Any:
    """The object type's ``BACNET_STORE_RULES`` entry ``key`` as a SQL CASE (or NULL)."""
    rules = settings.BACNET_STORE_RULES or {}
    whens = [
        When(object_type=object_type, then=Value(float(rule[key])))
        for object_type, rule in rules.items()
        if (rule or {}).get(key) is not None
    ]
    return Case(*whens, default=Value(None), output_field=FloatField()) if whens else None


def with_hold_limit(points: QuerySet[BACnetPoint]) -> QuerySet[BACnetPoint]:
    """Annotate ``hold_s``, each point's hold limit in seconds (see the module)."""
    from discovery.services.cov import with_keeping

    maximum = float(settings.BACNET_HOLD_MAX_S)
    poll = Greatest(
        Value(float(settings.BACNET_COLLECT_INTERVAL_S)),
        Coalesce(
            F("poll_interval_s"), F("device__poll_interval_s"), Value(0), output_field=FloatField()
        ),
        output_field=FloatField(),
    )
    heartbeat: Any = F("heartbeat_minutes")
    deadbanded = Q(deadband__isnull=False) | Q(deadband_relative__isnull=False)
    if (type_heartbeat := _type_rule_case("heartbeat_minutes")) is not None:
        heartbeat = Coalesce(F("heartbeat_minutes"), type_heartbeat, output_field=FloatField())
    for key in ("deadband", "deadband_relative"):
        if (type_band := _type_rule_case(key)) is not None:
            points = points.annotate(**{f"type_{key}": type_band})
            deadbanded |= Q(**{f"type_{key}__isnull": False})
    points = with_keeping(points).annotate(heartbeat_s=heartbeat * Value(60.0))
    gap = Case(
        When(heartbeat_s__isnull=False, then=F("heartbeat_s")),
        When(deadbanded | Q(kept_as=Keeping.COV), then=Value(maximum)),
        When(kept_as=Keeping.COV_CHECK, then=Value(float(settings.BACNET_COV_CHECK_S))),
        default=Value(0.0),
        output_field=FloatField(),
    )
    return points.annotate(
        hold_s=Least(Value(maximum), gap + Value(2.0) * poll, output_field=FloatField())
    )


def hold_limit(point_id: int) -> float:
    """The hold limit of one point, in seconds (the maximum for an unknown point)."""
    found = (
        with_hold_limit(BACnetPoint.objects.filter(pk=point_id))
        .values_list("hold_s", flat=True)  # type: ignore[misc]  # an annotation
        .first()
    )
    return float(found if found is not None else settings.BACNET_HOLD_MAX_S)


def _reading_columns() -> tuple[str, str, str, str]:
    """(table, point, timestamp, value), quoted, from the model."""
    meta, quote = BACnetReading._meta, connection.ops.quote_name
    columns = [
        quote(str(getattr(meta.get_field(name), "column", name)))
        for name in ("point", "timestamp", "value")
    ]
    return (quote(meta.db_table), *columns)  # type: ignore[return-value]


CONSTANTS_SQL = (
    "k AS (SELECT CAST(%s AS DOUBLE PRECISION) AS lo, CAST(%s AS DOUBLE PRECISION) AS hi, "
    "CAST(%s AS DOUBLE PRECISION) AS origin, CAST(%s AS DOUBLE PRECISION) AS w, "
    "CAST(%s AS DOUBLE PRECISION) AS now)"
)


def buckets_sql(segments: str) -> str:
    """CTEs ``g``, ``span`` and ``part`` cutting held values at bucket boundaries.

    ``segments`` is SQL with columns ``p`` (the point), ``a`` and ``e`` (the value holds
    over [a, e), epoch seconds, clipped to the range), ``v`` (not NULL) and ``n`` (1 for
    a reading inside the range, 0 for the value held into it). Each segment is summed
    into the bucket it starts in, up to that bucket's end (``g``, one pass, grouped).
    Only the last segment of a bucket can run on past its end (the next reading ends
    the others), so ``g`` keeps it (``xv`` until ``xe``) and the recursive ``span``
    spreads those few over the buckets they cover: at most one row per bucket. ``part``
    rows, to be summed per (p, b): ``vd`` value-seconds, ``td`` time-seconds (for the
    mean time), ``low``, ``high``, ``n``, ``d`` seconds, ``vsum`` the readings' values.
    Needs the CTE ``k`` (``CONSTANTS_SQL``: bucket ``b`` is [origin + b·w, + w))."""
    _, least, _ = sql_functions()
    bucket_end = "k.origin + (FLOOR((own.a - k.origin) / k.w) + 1) * k.w"
    return f"""
        g AS (
            SELECT p, b, SUM(v * d) AS vd, SUM((a + d / 2) * d) AS td, MIN(v) AS low,
                   MAX(v) AS high, SUM(n) AS n, SUM(d) AS d,
                   SUM(CASE WHEN n = 1 THEN v END) AS vsum,
                   MAX(CASE WHEN e > be THEN e END) AS xe,
                   MAX(CASE WHEN e > be THEN v END) AS xv
            FROM (
                SELECT own.p, CAST(FLOOR((own.a - k.origin) / k.w) AS BIGINT) AS b, own.v,
                       own.a, own.e, own.n, {bucket_end} AS be,
                       {least}(own.e, {bucket_end}) - own.a AS d
                FROM ({segments}) AS own CROSS JOIN k
            ) AS pieces
            GROUP BY p, b
        ),
        span (p, b, v, e) AS (
            SELECT p, b + 1, xv, xe FROM g WHERE xe IS NOT NULL
            UNION ALL
            SELECT span.p, span.b + 1, span.v, span.e FROM span CROSS JOIN k
            WHERE k.origin + (span.b + 1) * k.w < span.e
        ),
        part AS (
            SELECT p, b, vd, td, low, high, n, d, vsum FROM g
            UNION ALL
            SELECT p, b, v * d, (a + d / 2) * d, v, v, 0, d, NULL FROM (
                SELECT span.p, span.b, span.v, k.origin + span.b * k.w AS a,
                       {least}(span.e, k.origin + (span.b + 1) * k.w)
                       - (k.origin + span.b * k.w) AS d
                FROM span CROSS JOIN k
            ) AS spread
        )
    """  # noqa: S608


def point_buckets(
    cursor: Any,
    point_id: int,
    lo: datetime,
    hi: datetime,
    origin: float,
    width: float,
    hold: float,
    now: datetime,
) -> list[tuple]:
    """One query: (bucket, mean time, time-weighted average, min, max, readings, seconds
    covered) of one point's readings in [lo, hi), with the value held into ``lo`` from
    the last reading before it (looked for no further back than ``hold``).

    Shaped for the chart's speed: ``LEAD`` over the range's readings alone gives where
    each value ends (the held value is found by two index probes and added after), and
    ``buckets_sql`` sums them in one pass."""
    epoch, least, _ = sql_functions()
    table, point_col, time_col, value_col = _reading_columns()
    t = epoch.format(col=time_col)
    adapt = connection.ops.adapt_datetimefield_value
    lo_s, hi_s = lo.timestamp(), hi.timestamp()
    before = datetime.fromtimestamp(lo_s - hold, tz=lo.tzinfo)
    last_end = "CASE WHEN {t} < k.now THEN k.now ELSE k.hi END"
    segments = f"""
        SELECT 0 AS p, a, v, e, n FROM (
            SELECT s.t AS a, s.v, 1 AS n,
                   {least}({least}(COALESCE(LEAD(s.t) OVER (ORDER BY s.ts),
                                            {last_end.format(t="s.t")}),
                                   s.t + %s), k.hi) AS e
            FROM (
                SELECT {time_col} AS ts, {t} AS t, {value_col} AS v FROM {table}
                WHERE {point_col} = %s AND {time_col} >= %s AND {time_col} < %s
            ) AS s CROSS JOIN k
            UNION ALL
            SELECT k.lo, h.v, 0,
                   {least}({least}(COALESCE(h.next, {last_end.format(t="h.t")}),
                                   h.t + %s), k.hi)
            FROM (
                SELECT {t} AS t, {value_col} AS v,
                       (SELECT {t} FROM {table} WHERE {point_col} = %s
                        AND {time_col} >= %s AND {time_col} < %s
                        ORDER BY {time_col} LIMIT 1) AS next
                FROM {table}
                WHERE {point_col} = %s AND {time_col} < %s AND {time_col} >= %s
                ORDER BY {time_col} DESC LIMIT 1
            ) AS h CROSS JOIN k
        ) AS segments
        WHERE v IS NOT NULL AND e > a
    """  # noqa: S608
    sql = (
        f"WITH RECURSIVE {CONSTANTS_SQL}, {buckets_sql(segments)} "  # noqa: S608
        "SELECT b, SUM(td) / SUM(d), SUM(vd) / SUM(d), MIN(low), MAX(high), SUM(n), SUM(d) "
        "FROM part WHERE d > 0 GROUP BY b ORDER BY b"
    )
    params = [
        lo_s, hi_s, origin, width, now.timestamp(),
        hold, point_id, adapt(lo), adapt(hi),
        hold, point_id, adapt(lo), adapt(hi), point_id, adapt(lo), adapt(before),
    ]  # fmt: skip
    cursor.execute(sql, params)
    return cursor.fetchall()


@dataclass(frozen=True)
class Summary:
    """A range's statistics: time-weighted average over the seconds a value held."""

    time_average: float | None
    minimum: float | None
    maximum: float | None
    readings: int
    covered_s: float

    def as_dict(self) -> dict[str, Any]:
        return {
            "time_average": self.time_average,
            "minimum": self.minimum,
            "maximum": self.maximum,
            "readings": self.readings,
            "covered_seconds": round(self.covered_s, 3),
        }


def summarise(rows: list[tuple]) -> Summary:
    """The whole range's statistics from its buckets' rows (bucket, t, average, min,
    max, count, seconds covered)."""
    covered = sum(row[6] or 0.0 for row in rows)
    weighted = sum((row[2] or 0.0) * (row[6] or 0.0) for row in rows)
    return Summary(
        time_average=weighted / covered if covered > 0 else None,
        minimum=min((row[3] for row in rows), default=None),
        maximum=max((row[4] for row in rows), default=None),
        readings=int(sum(row[5] or 0 for row in rows)),
        covered_s=covered,
    )


def merge_buckets(rows: list[tuple]) -> list[tuple]:
    """Rows of the same bucket from several sources (statistics and readings) as one:
    averages and mean times weighted by the seconds each covers."""
    merged: dict[int, list[Any]] = {}
    for b, t, average, low, high, count, covered in rows:
        seconds = covered or 0.0
        if b not in merged:
            merged[b] = [t * seconds, average * seconds, low, high, count, seconds]
            continue
        into = merged[b]
        into[0] += t * seconds
        into[1] += average * seconds
        into[2], into[3] = min(into[2], low), max(into[3], high)
        into[4] += count
        into[5] += seconds
    return [
        (b, tw / s, aw / s, low, high, n, s)
        for b, (tw, aw, low, high, n, s) in sorted(merged.items())
        if s > 0
    ]
