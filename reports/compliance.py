"""Source compliance report: what a regulator files for "facility X's outfall, October 2026".

Sections: summary; completeness per parameter (expected vs received vs valid); limits with legal
basis; statistics of the averages; exceedances per limit (hours in exceedance, max, mean);
violations (start, end, duration, peak ratio, severity, Decree 45/2022 article and flow bracket
for wastewater and stacks, acknowledgements); acknowledgements;
outage hours per month by cause; daily and hourly averages; method.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

import psycopg

from reports.common import (
    AverageRow,
    CompletenessRow,
    ReportContext,
    ViolationRow,
    completeness_rows,
    expected_slots,
    fetch_acks,
    fetch_averages,
    fetch_violations,
    limits_for,
    local,
    ratio,
    reading_counts,
)
from reports.i18n import t
from reports.manual import manual_section
from reports.method import StackMethod, method_rows, method_section
from reports.model import CellType, Chart, Column, Report, ReportKind, Section
from reports.periods import ReportPeriod
from stations.registry import Source
from thresholds.limits import Limit
from thresholds.reference_o2 import (
    O2,
    Correction,
    CorrectionSettings,
    correct_series,
    default_table,
    settings_of,
    with_reference,
)

F, N, D, B, TX = CellType.FLOAT, CellType.INT, CellType.DATETIME, CellType.BOOL, CellType.TEXT
PERIODS = ("1h", "8h", "24h", "day")


@dataclass(frozen=True)
class LimitStats:
    limit: Limit
    windows: int
    valid: int
    exceeding: int
    hours_exceeding: float
    mean: float | None
    max: float | None
    max_ratio: float | None


def limit_stats(limit: Limit, averages: Sequence[AverageRow]) -> LimitStats:
    """Exceedance figures of one limit over the averages of its parameter and period (pure)."""
    mine = [
        a for a in averages if a.parameter == limit.parameter and a.period == limit.period.value
    ]
    vals = [a.value for a in mine if a.valid and a.value is not None]
    over = [v for v in vals if limit.exceeded_by(v)]
    ratios = [r for v in vals if (r := ratio(limit, v)) is not None]
    step = 24.0 if limit.period.value == "day" else 1.0
    return LimitStats(
        limit,
        len(mine),
        len(vals),
        len(over),
        len(over) * step,
        sum(vals) / len(vals) if vals else None,
        max(vals) if vals else None,
        max(ratios) if ratios else None,
    )


@dataclass(frozen=True)
class OutageMonth:
    month: str
    interval_s: int
    expected_slots: int
    calibration_slots: int
    error_slots: int
    silent_slots: int

    def hours(self, slots: int) -> float:
        return slots * self.interval_s / 3600.0


def outage_months(
    conn: psycopg.Connection[Any], source: Source, period: ReportPeriod, now: datetime
) -> list[OutageMonth]:
    """Outage slots per local month, split by cause (see the method section)."""
    iv = source.interval_s
    out = []
    for month in period.months():
        start, end = month.start, month.clipped_end(now)
        row = conn.execute(
            """
            WITH slots AS (
                SELECT floor(extract(epoch FROM measured_at) / %(iv)s) AS slot,
                       bool_or(status = '01') AS cal, bool_or(status = '02') AS err
                FROM readings
                WHERE source_id = %(id)s AND measured_at >= %(a)s AND measured_at < %(b)s
                GROUP BY 1)
            SELECT count(*), count(*) FILTER (WHERE cal),
                   count(*) FILTER (WHERE err AND NOT cal)
            FROM slots
            """,
            {"iv": iv, "id": source.id, "a": start, "b": end},
        ).fetchone()
        assert row is not None
        expected = expected_slots(start, end, iv)
        out.append(
            OutageMonth(month.label, iv, expected, row[1], row[2], max(0, expected - row[0]))
        )
    return out


def _completeness_section(rows: list[CompletenessRow]) -> Section:
    cols = [
        Column("parameter"),
        Column("unit"),
        Column("interval_s", N),
        Column("expected", N),
        Column("received", N),
        Column("valid", N),
        Column("manual_invalid", N),
        Column("calibrating", N),
        Column("device_error", N),
        Column("other_invalid", N),
        Column("completeness", F),
        Column("meets_threshold", B),
        Column("mean", F),
        Column("max", F),
    ]
    data = [
        (
            r.parameter,
            r.unit,
            r.interval_s,
            r.expected,
            r.received,
            r.valid,
            r.manual_invalid,
            r.calibrating,
            r.device_error,
            r.other_invalid,
            r.completeness,
            r.meets,
            r.mean,
            r.max,
        )
        for r in rows
    ]
    return Section("sec.completeness", cols, data)


def limits_section(limits: Sequence[Limit]) -> Section:
    cols = [
        Column("rule_id"),
        Column("parameter"),
        Column("averaging"),
        Column("limit_min", F),
        Column("limit_max", F),
        Column("unit"),
        Column("verified", B),
        Column("legal_basis"),
        Column("note"),
    ]
    rows = [
        (
            lim.rule_id,
            lim.parameter,
            lim.period.value,
            lim.min,
            lim.max,
            lim.unit,
            lim.verified,
            lim.legal_basis,
            lim.note,
        )
        for lim in limits
    ]
    return Section("sec.limits", cols, rows)


def statistics_section(averages: Sequence[AverageRow], units: dict[str, str]) -> Section:
    groups: dict[tuple[str, str], list[AverageRow]] = defaultdict(list)
    for a in averages:
        groups[(a.parameter, a.period)].append(a)
    rows = []
    for (param, per), group in sorted(groups.items(), key=lambda kv: (kv[0][0], _porder(kv[0][1]))):
        vals = [a.value for a in group if a.valid and a.value is not None]
        rows.append(
            (
                param,
                per,
                units.get(param, group[0].unit),
                len(group),
                len(vals),
                sum(vals) / len(vals) if vals else None,
                max(vals) if vals else None,
                min(vals) if vals else None,
            )
        )
    cols = [
        Column("parameter"),
        Column("averaging"),
        Column("unit"),
        Column("windows", N),
        Column("valid_windows", N),
        Column("mean", F),
        Column("max", F),
        Column("min", F),
    ]
    return Section("sec.statistics", cols, rows)


def _porder(period: str) -> int:
    return PERIODS.index(period) if period in PERIODS else len(PERIODS)


def exceedance_section(stats: Sequence[LimitStats]) -> Section:
    cols = [
        Column("rule_id"),
        Column("parameter"),
        Column("averaging"),
        Column("limit_min", F),
        Column("limit_max", F),
        Column("unit"),
        Column("valid_windows", N),
        Column("exceeding", N),
        Column("hours_exceeding", F),
        Column("mean", F),
        Column("max", F),
        Column("max_ratio", F),
    ]
    rows = [
        (
            s.limit.rule_id,
            s.limit.parameter,
            s.limit.period.value,
            s.limit.min,
            s.limit.max,
            s.limit.unit,
            s.valid,
            s.exceeding,
            s.hours_exceeding,
            s.mean,
            s.max,
            s.max_ratio,
        )
        for s in stats
    ]
    return Section("sec.exceedances", cols, rows)


def corrected_averages(
    averages: Sequence[AverageRow], correction: CorrectionSettings
) -> tuple[list[AverageRow], list[tuple[AverageRow, Correction]]]:
    """The averages with each corrected parameter's value at the reference O2 (a window not
    judged becomes invalid), and the pairs (measured average, correction) behind them (pure;
    the same rule as the worker's stage, thresholds/reference_o2.py)."""
    assert correction.reference is not None
    o2 = [a for a in averages if a.parameter == O2]
    mine = [a for a in averages if a.parameter in correction.parameters]
    pairs = correct_series(mine, o2, correction.reference, correction.max_o2)
    fixed = {id(a): replace(a, value=c.corrected, valid=a.valid and c.judged) for a, c in pairs}
    return [fixed.get(id(a), a) for a in averages], pairs


def reference_o2_section(pairs: Sequence[tuple[AverageRow, Correction]], tz: str) -> Section:
    cols = [
        Column("parameter"),
        Column("averaging"),
        Column("window_start", D),
        Column("measured_value", F),
        Column("o2_measured", F),
        Column("o2_reference", F),
        Column("corrected_value", F),
        Column("unit"),
        Column("not_judged"),
    ]
    rows = [
        (
            a.parameter,
            a.period,
            local(a.window_start, tz),
            c.measured,
            c.o2_measured,
            c.o2_reference,
            c.corrected,
            a.unit,
            c.reason,
        )
        for a, c in pairs
        if a.period in ("1h", "day")
    ]
    return Section("sec.reference_o2", cols, rows, in_pdf=False, note_key="note.hourly_not_in_pdf")


def violations_section(
    violations: Sequence[ViolationRow], ack_counts: dict[str, int], tz: str, with_source: bool
) -> Section:
    cols = [
        *([Column("source_id")] if with_source else []),
        Column("violation_id"),
        Column("kind"),
        Column("parameter"),
        Column("rule_id"),
        Column("averaging"),
        Column("state"),
        Column("started_at", D),
        Column("ended_at", D),
        Column("duration_h", F),
        Column("peak_value", F),
        Column("peak_measured_value", F),
        Column("peak_o2_measured", F),
        Column("o2_reference", F),
        Column("limit_max", F),
        Column("peak_ratio", F),
        Column("severity"),
        Column("decree_45"),
        Column("penalty_sanction"),
        Column("acks", N),
        Column("legal_basis"),
    ]
    rows = [
        (
            *([v.source_id] if with_source else []),
            v.violation_id,
            v.kind,
            v.parameter,
            v.rule_id,
            v.period,
            "retracted" if v.retracted else v.state,
            local(v.started_at, tz),
            local(v.ended_at, tz),
            v.duration_h(),
            v.peak_value,  # at the reference O2 when o2_reference is set
            v.peak_measured_value,
            v.peak_o2_measured,
            v.o2_reference,
            v.limit,
            v.peak_ratio,
            v.severity,
            v.penalty_text(),  # Decree 45 article, clause, flow bracket; "" for ambient stations
            v.penalty_sanction or "",
            ack_counts.get(v.violation_id, 0),
            v.legal_basis,
        )
        for v in violations
    ]
    return Section("sec.violations", cols, rows)


def averages_table(key: str, averages: Sequence[AverageRow], tz: str, in_pdf: bool) -> Section:
    cols = [
        Column("parameter"),
        Column("window_start", D),
        Column("value", F),
        Column("unit"),
        Column("samples", N),
        Column("expected", N),
        Column("completeness", F),
        Column("valid", B),
    ]
    rows = [
        (
            a.parameter,
            local(a.window_start, tz),
            a.value,
            a.unit,
            a.samples,
            a.expected,
            a.completeness,
            a.valid,
        )
        for a in averages
    ]
    return Section(
        key, cols, rows, in_pdf=in_pdf, note_key="" if in_pdf else "note.hourly_not_in_pdf"
    )


def _stack_method(source: Source, o2set: CorrectionSettings | None) -> StackMethod | None:
    """What the method says of a stack's reference O2 and standard conditions."""
    if source.kind.value != "stack":
        return None
    table = default_table()
    regulations = [str(getattr(ls.regulation, "value", ls.regulation)) for ls in source.limits]
    conditions = next((c for r in regulations if (c := table.conditions_for(r)) is not None), None)
    codes = [p.code.value for p in source.parameters]
    return StackMethod(
        reference=o2set.reference if o2set else None,
        parameters=tuple(sorted(o2set.parameters)) if o2set else (),
        conditions=conditions,
        reported=tuple(c for c in ("Temp", "P", "H2O", "O2") if c in codes),
        max_o2=table.formula.max_o2_measured,
    )


def charts(
    limits: Sequence[Limit], averages: Sequence[AverageRow], ctx: ReportContext
) -> list[Chart]:
    """One chart per limit: the valid averages of its period with the limit drawn."""
    out = []
    for lim in limits:
        pts = [
            (a.window_start, a.value if a.valid else None)
            for a in averages
            if a.parameter == lim.parameter and a.period == lim.period.value
        ]
        if not pts:
            continue
        title = f"{lim.parameter} — {t('averaging', ctx.lang)} {lim.period.value} ({lim.rule_id})"
        out.append(Chart(title, lim.unit, pts, lim.max, lim.min))
    return out


def facility_points(ctx: ReportContext, facility_id: str) -> str:
    """A facility's monitoring points, one "id (kind)" each, in registry order."""
    return ", ".join(f"{p.id} ({p.kind.value})" for p in ctx.registry.points_of(facility_id))


def build_compliance(
    conn: psycopg.Connection[Any], ctx: ReportContext, source_id: str, period: ReportPeriod
) -> Report:
    lang, tz = ctx.lang, ctx.timezone
    source: Source = ctx.registry.get(source_id)
    limits = limits_for(ctx, source, period)
    counts = reading_counts(conn, [source.id], period.start, period.end)
    comp = completeness_rows(source, counts, period, ctx.now, ctx.threshold)
    averages = fetch_averages(conn, source.id, period.start, period.end, PERIODS)
    # stacks with a reference O2: limits are judged on the corrected values (issue 19)
    o2set = settings_of(ctx.registry, source) if source.kind.value == "stack" else None
    judged: list[AverageRow] = list(averages)
    pairs: list[tuple[AverageRow, Correction]] = []
    if o2set is not None and o2set.reference is not None:
        limits = with_reference(limits, o2set.reference, o2set.parameters)
        judged, pairs = corrected_averages(averages, o2set)
    stats = [limit_stats(lim, judged) for lim in limits]
    violations = fetch_violations(conn, [source.id], period.start, period.end)
    acks = fetch_acks(conn, [v.violation_id for v in violations])
    ack_counts: dict[str, int] = defaultdict(int)
    for a in acks:
        ack_counts[a.violation_id] += 1
    outages = outage_months(conn, source, period, ctx.now)
    received = sum(r.received for r in comp)
    # a retracted violation (a late correction showed it never was) is listed, not counted
    exceed = [v for v in violations if v.kind == "exceedance" and not v.retracted]
    verdict = "did_not_report" if received == 0 else ("violated" if exceed else "complied")
    facility = ctx.registry.facility(source.facility) if source.facility else None
    summary = [
        (t("source_id", lang), source.id),
        (t("name", lang), source.name),
        (t("kind", lang), source.kind.value),
        (t("district", lang), source.district.value),
        # issue 19: the facility (id, name, permit, status) and all its monitoring points
        (t("facility", lang), f"{facility.id} — {facility.name}" if facility else ""),
        (t("permit", lang), facility.permit.text if facility else ""),
        (
            t("facility_status", lang),
            f"{facility.status}: {facility.status_basis}" if facility else "",
        ),
        (t("facility_points", lang), facility_points(ctx, facility.id) if facility else ""),
        (t("period", lang), f"{period.first_day.isoformat()} – {period.last_day.isoformat()}"),
        (t("status", lang), t(verdict, lang)),
        (t("violations", lang), str(len(exceed))),
    ]
    units = {p.code.value: p.unit.value for p in source.parameters}
    outage_rows = [
        (
            o.month,
            o.interval_s,
            o.hours(o.expected_slots),
            o.hours(o.calibration_slots),
            o.hours(o.error_slots),
            o.hours(o.silent_slots),
            o.hours(o.calibration_slots + o.error_slots + o.silent_slots),
        )
        for o in outages
    ]
    outage_cols = [
        Column("month"),
        Column("interval_s", N),
        Column("expected_hours", F),
        Column("calibration_hours", F),
        Column("error_hours", F),
        Column("silence_hours", F),
        Column("lost_hours", F),
    ]
    ack_rows = [(a.violation_id, a.username, local(a.at, tz), a.note) for a in acks]
    ack_cols = [Column("violation_id"), Column("username"), Column("at", D), Column("note")]
    hourly = [a for a in averages if a.period == "1h"]
    daily = [a for a in averages if a.period == "day"]
    sections = [
        Section("sec.summary", [Column("item"), Column("value")], summary),
        _completeness_section(comp),
        limits_section(limits),
        statistics_section(averages, units),
        exceedance_section(stats),
        violations_section(violations, ack_counts, tz, with_source=False),
        Section("sec.acknowledgements", ack_cols, ack_rows),
        manual_section(conn, [source.id], period, tz, lang),
        Section("sec.outages", outage_cols, outage_rows),
        averages_table("sec.daily", daily, tz, in_pdf=True),
        averages_table("sec.hourly", hourly, tz, in_pdf=False),
        *([reference_o2_section(pairs, tz)] if pairs else []),
        method_section(
            method_rows(
                lang=lang,
                timezone=tz,
                threshold=ctx.threshold,
                limits=limits,
                outage=True,
                stack=_stack_method(source, o2set),
            )
        ),
    ]
    sections[4].charts = charts(limits, judged, ctx)
    return Report(
        ReportKind.COMPLIANCE,
        "title.compliance",
        f"{source.id} — {source.name}",
        period.label,
        tz,
        ctx.now,
        sections,
    )
