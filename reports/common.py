"""SQL and pure helpers the report builders share (completeness, averages, violations).

Functions taking a ``psycopg.Connection`` only read; pure helpers are separate and tested alone.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any
from zoneinfo import ZoneInfo

import psycopg
from psycopg.rows import dict_row

from core.settings import Settings
from reports.periods import ReportPeriod
from stations.registry import Source
from storage.queries import VIOLATION_SELECT, ViolationRow
from thresholds.averaging import LOCAL_TZ, samples_in
from thresholds.limits import Limit
from thresholds.severity import ratio as exceedance_ratio


def local(dt: datetime | None, tz: str) -> datetime | None:
    """Naive local time for display (the report header names the zone)."""
    if dt is None:
        return None
    return dt.astimezone(ZoneInfo(tz)).replace(tzinfo=None)


def local_day(dt: datetime, tz: str) -> date:
    return dt.astimezone(ZoneInfo(tz)).date()


def expected_slots(start: datetime, end: datetime, interval_s: int) -> int:
    """Readings the cadence promises in [start, end): thresholds.averaging.samples_in."""
    return samples_in((end - start).total_seconds(), interval_s)


def ratio(limit: Limit, value: float) -> float | None:
    """How far ``value`` is beyond ``limit`` (>1 exceeds): ``thresholds.severity.ratio``, the one
    exceedance ratio the violations use too; None when the limit cannot give one (no bound)."""
    try:
        return exceedance_ratio(value, limit)
    except ValueError:
        return None


@dataclass(frozen=True)
class ParamCounts:
    parameter: str
    received: int
    valid: int  # flagged valid by the automatic QC and not invalidated by hand
    calibrating: int
    device_error: int
    mean: float | None
    max: float | None
    min: float | None
    manual: int = 0  # flagged valid by the automatic QC, invalidated by hand (issue 21)


def reading_counts(
    conn: psycopg.Connection[Any], source_ids: Sequence[str], start: datetime, end: datetime
) -> dict[tuple[str, str], ParamCounts]:
    """Counts of readings per (source, parameter) over [start, end).

    A reading an operator invalidated (``manual_id``, issue 21) keeps its automatic QC flag: one
    the automatic QC passed counts as ``manual``, not ``valid``, and leaves the statistics."""
    rows = conn.execute(
        """
        SELECT source_id, parameter, count(*) AS received,
               count(*) FILTER (WHERE flag = 'valid' AND manual_id IS NULL) AS valid,
               count(*) FILTER (WHERE status = '01') AS calibrating,
               count(*) FILTER (WHERE status = '02') AS device_error,
               avg(value) FILTER (WHERE flag = 'valid' AND manual_id IS NULL) AS mean,
               max(value) FILTER (WHERE flag = 'valid' AND manual_id IS NULL) AS max,
               min(value) FILTER (WHERE flag = 'valid' AND manual_id IS NULL) AS min,
               count(*) FILTER (WHERE flag = 'valid' AND manual_id IS NOT NULL) AS manual
        FROM readings
        WHERE source_id = ANY(%s) AND measured_at >= %s AND measured_at < %s
        GROUP BY source_id, parameter
        """,
        (list(source_ids), start, end),
    ).fetchall()
    return {
        (r[0], r[1]): ParamCounts(r[1], r[2], r[3], r[4], r[5], r[6], r[7], r[8], r[9])
        for r in rows
    }


@dataclass(frozen=True)
class CompletenessRow:
    parameter: str
    unit: str
    interval_s: int
    expected: int
    received: int
    valid: int
    calibrating: int
    device_error: int
    other_invalid: int
    completeness: float
    meets: bool
    mean: float | None
    max: float | None
    manual_invalid: int = 0  # passed the automatic QC, invalidated by hand (issue 21)


def completeness_rows(
    source: Source,
    counts: dict[tuple[str, str], ParamCounts],
    period: ReportPeriod,
    now: datetime,
    threshold: float,
) -> list[CompletenessRow]:
    """Per registered parameter: expected vs received vs valid and completeness (pure)."""
    end = period.clipped_end(now)
    out = []
    for spec in source.parameters:
        code = spec.code.value
        interval = source.interval_for(code)
        expected = expected_slots(period.start, end, interval)
        c = counts.get((source.id, code)) or ParamCounts(code, 0, 0, 0, 0, None, None, None)
        comp = min(1.0, c.valid / expected) if expected else 0.0
        out.append(
            CompletenessRow(
                code,
                spec.unit.value,
                interval,
                expected,
                c.received,
                c.valid,
                c.calibrating,
                c.device_error,
                c.received - c.valid - c.manual - c.calibrating - c.device_error,
                comp,
                comp >= threshold,
                c.mean,
                c.max,
                c.manual,
            )
        )
    return out


@dataclass(frozen=True)
class AverageRow:
    parameter: str
    period: str
    window_start: datetime
    window_end: datetime
    value: float | None
    unit: str
    samples: int
    expected: int
    completeness: float
    valid: bool
    revision: int


def fetch_averages(
    conn: psycopg.Connection[Any],
    source_id: str,
    start: datetime,
    end: datetime,
    periods: Sequence[str],
) -> list[AverageRow]:
    rows = conn.execute(
        """
        SELECT parameter, period, window_start, window_end, value, unit, samples, expected,
               completeness, valid, revision
        FROM averages
        WHERE source_id = %s AND period = ANY(%s) AND window_start >= %s AND window_start < %s
        ORDER BY parameter, period, window_start
        """,
        (source_id, list(periods), start, end),
    ).fetchall()
    return [AverageRow(*r) for r in rows]


def fetch_violations(
    conn: psycopg.Connection[Any], source_ids: Sequence[str], start: datetime, end: datetime
) -> list[ViolationRow]:
    """Violations whose episode overlaps [start, end) (the console's read model,
    storage.queries.VIOLATION_SELECT)."""
    with conn.cursor(row_factory=dict_row) as cur:
        cur.execute(
            f"""{VIOLATION_SELECT}
            WHERE v.source_id = ANY(%s) AND v.started_at < %s
              AND coalesce(v.ended_at, 'infinity'::timestamptz) > %s
            ORDER BY v.source_id, v.started_at, v.violation_id""",
            (list(source_ids), end, start),
        )
        return [ViolationRow(**r) for r in cur.fetchall()]


def fetch_violation(conn: psycopg.Connection[Any], violation_id: str) -> ViolationRow | None:
    with conn.cursor(row_factory=dict_row) as cur:
        cur.execute(f"{VIOLATION_SELECT} WHERE v.violation_id = %s", (violation_id,))
        row = cur.fetchone()
    return ViolationRow(**row) if row else None


@dataclass(frozen=True)
class AckRow:
    violation_id: str
    username: str
    at: datetime
    note: str


def fetch_acks(conn: psycopg.Connection[Any], violation_ids: Sequence[str]) -> list[AckRow]:
    rows = conn.execute(
        "SELECT violation_id, username, at, note FROM acknowledgements"
        " WHERE violation_id = ANY(%s) ORDER BY violation_id, at, id",
        (list(violation_ids),),
    ).fetchall()
    return [AckRow(*r) for r in rows]


def fetch_events(conn: psycopg.Connection[Any], violation_id: str) -> list[dict[str, Any]]:
    with conn.cursor(row_factory=dict_row) as cur:
        cur.execute(
            "SELECT seq, event, at, value, ratio, severity, payload FROM violation_events"
            " WHERE violation_id = %s ORDER BY seq",
            (violation_id,),
        )
        return cur.fetchall()


def now_utc() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class ReportContext:
    """What every builder needs besides the connection: registry, law, settings, language."""

    registry: Any  # stations.registry.Registry
    catalogue: Any  # thresholds.catalogue.Catalogue
    threshold: float
    timezone: str
    lang: Any  # reports.i18n.Lang
    now: datetime
    # longest report periods (reports/periods.py: check_bounds); Settings' defaults
    report_max_days: int = Settings.model_fields["report_max_days"].default
    export_max_days: int = Settings.model_fields["export_max_days"].default

    @classmethod
    def from_settings(
        cls, settings: Any, lang: Any = "vi", now: datetime | None = None
    ) -> ReportContext:
        from reports.i18n import Lang
        from stations.registry import load_registry
        from thresholds.catalogue import load_catalogue

        return cls(
            registry=load_registry(settings.registry_path),
            catalogue=load_catalogue(),
            threshold=settings.completeness_threshold,
            timezone=LOCAL_TZ.key,  # the worker's and the SQL views' clock
            lang=Lang(lang),
            now=now or now_utc(),
            report_max_days=settings.report_max_days,
            export_max_days=settings.export_max_days,
        )


def limits_for(ctx: ReportContext, source: Source, period: ReportPeriod) -> list[Limit]:
    """Limits in force on the period's first day that are checked on a streaming average."""
    from thresholds.limits import resolve_limits

    return [lim for lim in resolve_limits(source, ctx.catalogue, period.first_day) if lim.checked]
