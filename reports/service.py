"""One entry point for every front end (CLI, API): a report request in, a file's bytes out.

``write_report`` dispatches on the report kind through a table of builders and on the format
through a table of renderers, reading the database through a read-only transaction.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any, BinaryIO

import psycopg

from reports.air_quality import build_air_quality
from reports.common import ReportContext, local_day
from reports.compliance import build_compliance
from reports.evidence import build_evidence
from reports.export import build_export, resolve_sources
from reports.i18n import Lang
from reports.model import Report, ReportKind
from reports.periods import (
    PeriodOutOfRange,
    ReportPeriod,
    check_bounds,
    check_regulations,
    parse_period,
)
from reports.province import build_province
from reports.render_csv import render_csv
from reports.render_pdf import render_pdf
from reports.render_xlsx import render_xlsx
from stations.registry import Source
from thresholds.catalogue import Regulation
from thresholds.transition import select_limit_sets


class Format(StrEnum):
    CSV = "csv"
    XLSX = "xlsx"
    PDF = "pdf"
    ZIP = "zip"  # evidence packages only


MEDIA_TYPES = {
    Format.CSV: "text/csv; charset=utf-8",
    Format.XLSX: "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    Format.PDF: "application/pdf",
    Format.ZIP: "application/zip",
}


class ReportRequestError(ValueError):
    """A report request that cannot be served; the message says which argument and why."""


@dataclass(frozen=True)
class ReportRequest:
    kind: ReportKind
    fmt: Format
    lang: Lang = Lang.VI
    period: str | None = None
    sources: tuple[str, ...] = ()
    violation: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def filename(self) -> str:
        if self.kind is ReportKind.EVIDENCE:
            safe = "".join(c if c.isalnum() or c in "-_" else "_" for c in self.violation or "")
            return f"evidence_{safe}.zip"
        who = "_".join(self.sources) if 0 < len(self.sources) <= 3 else "all"
        return f"{self.kind.value}_{who}_{self.period}.{self.fmt.value}".replace("..", "_")


def check_request(req: ReportRequest) -> None:
    if req.kind is ReportKind.EVIDENCE:
        if not req.violation:
            raise ReportRequestError("evidence: give the violation id (--violation)")
        if req.fmt is not Format.ZIP:
            raise ReportRequestError("evidence: the format is zip")
        return
    if req.fmt is Format.ZIP:
        raise ReportRequestError(f"{req.kind}: zip is for evidence packages; use csv, xlsx or pdf")
    if not req.period:
        raise ReportRequestError(f"{req.kind}: give the period (--period), e.g. 2026-10")
    if req.kind in (ReportKind.COMPLIANCE, ReportKind.AIR_QUALITY) and len(req.sources) != 1:
        raise ReportRequestError(f"{req.kind}: give exactly one source (--source ID)")
    if req.kind is ReportKind.EXPORT and req.fmt is Format.PDF:
        raise ReportRequestError("export: raw data goes to csv or xlsx, not pdf")


def report_period(ctx: ReportContext, req: ReportRequest) -> ReportPeriod:
    """The request's period, parsed and checked against what can be reported: raises
    PeriodError (PeriodOutOfRange) with the reason, before any builder runs."""
    if req.period is None:
        raise ReportRequestError(f"{req.kind}: give the period (--period), e.g. 2026-10")
    period = parse_period(req.period, ctx.timezone)
    export = req.kind is ReportKind.EXPORT
    check_bounds(
        period,
        first_year=min(s.installed for s in ctx.registry.sources).year,
        today=local_day(ctx.now, ctx.timezone),
        max_days=ctx.export_max_days if export else ctx.report_max_days,
        setting="QUANTRAC_EXPORT_MAX_DAYS" if export else "QUANTRAC_REPORT_MAX_DAYS",
    )
    if req.kind in (ReportKind.COMPLIANCE, ReportKind.AIR_QUALITY):
        source = ctx.registry.find(req.sources[0])
        if source is not None:  # an unknown source is the builder's to report
            regulations = applied_regulations(ctx, source, period)
            check_regulations(period, source.id, regulations)
    return period


def applied_regulations(
    ctx: ReportContext, source: Source, period: ReportPeriod
) -> list[Regulation]:
    """The regulations ``source`` is held to over the period: of a regulation and its replacement
    only the one the permit or the transition picks (thresholds/transition.py); a period across
    the day the choice changes (e.g. 01/01/2032) is refused, the report states one basis."""
    status = source.transition_status
    picked = [
        [
            str(s.limit_set.regulation)
            for s in select_limit_sets(source.id, source.limits, ctx.catalogue, day, status)
        ]
        for day in (period.first_day, period.last_day)
    ]
    if picked[0] != picked[1]:
        raise PeriodOutOfRange(
            f"period {period.label!r}: {source.id} is held to {', '.join(picked[0])} on its first "
            f"day and {', '.join(picked[1])} on its last (permit or transition, "
            "docs/regulations.md §5.3); split the period"
        )
    return [ctx.catalogue[r] for r in picked[0]]


Builder = Callable[[psycopg.Connection[Any], ReportContext, ReportRequest, ReportPeriod], Report]

BUILDERS: dict[ReportKind, Builder] = {
    ReportKind.COMPLIANCE: lambda c, x, r, p: build_compliance(c, x, r.sources[0], p),
    ReportKind.AIR_QUALITY: lambda c, x, r, p: build_air_quality(c, x, r.sources[0], p),
    ReportKind.PROVINCE: lambda c, x, r, p: build_province(c, x, p),
    ReportKind.EXPORT: lambda c, x, r, p: build_export(c, x, resolve_sources(x, r.sources), p),
}


def write_report(
    conn: psycopg.Connection[Any],
    ctx: ReportContext,
    req: ReportRequest,
    out: BinaryIO,
    archive_dir: Path | None = None,
) -> None:
    """Build and render ``req`` into ``out``. ``conn`` must not be in autocommit (named cursors)."""
    check_request(req)
    if req.kind is ReportKind.EVIDENCE:
        assert req.violation is not None
        build_evidence(conn, ctx, req.violation, out, archive_dir)
        return
    period = report_period(ctx, req)
    report = BUILDERS[req.kind](conn, ctx, req, period)
    if req.fmt is Format.CSV:
        render_csv(report, out, req.lang)
    elif req.fmt is Format.XLSX:
        render_xlsx(report, out, req.lang)
    else:
        render_pdf(report, out, req.lang, start=period.start, end=period.end)


def connect(conninfo: str) -> psycopg.Connection[Any]:
    """A connection for reports: a read-only transaction (exports hold it while streaming)."""
    conn = psycopg.connect(conninfo)
    conn.read_only = True
    return conn
