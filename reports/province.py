"""Province summary: every registered source on one page — complied, violated, did not report.

Stations come first, then each facility's monitoring points together (issue 19: reports group by
facility), with the facility's id, name and permit on each of its rows.

One aggregate query over the period's readings and one over its violations; the per-source figures
use the same completeness rules as the compliance report (see the method section).
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import psycopg

from reports.common import ReportContext, completeness_rows, fetch_violations, reading_counts
from reports.i18n import t
from reports.method import method_rows, method_section
from reports.model import CellType, Column, Report, ReportKind, Section
from reports.periods import ReportPeriod


def build_province(
    conn: psycopg.Connection[Any], ctx: ReportContext, period: ReportPeriod
) -> Report:
    lang = ctx.lang
    registry = ctx.registry
    sources = [s for s in registry.sources if s.facility is None] + [
        p for f in registry.facilities for p in registry.points_of(f.id)
    ]
    ids = [s.id for s in sources]
    counts = reading_counts(conn, ids, period.start, period.end)
    violations = [v for v in fetch_violations(conn, ids, period.start, period.end)]
    n_exceed = Counter(
        v.source_id for v in violations if v.kind == "exceedance" and not v.retracted
    )
    rows = []
    tally: Counter[str] = Counter()
    for s in sources:
        comp = completeness_rows(s, counts, period, ctx.now, ctx.threshold)
        expected = sum(r.expected for r in comp)
        received = sum(r.received for r in comp)
        valid = sum(r.valid for r in comp)
        completeness = min(1.0, valid / expected) if expected else 0.0
        if received == 0:
            status = "did_not_report"
        elif n_exceed[s.id]:
            status = "violated"
        else:
            status = "complied"
        tally[status] += 1
        facility = registry.facility(s.facility) if s.facility else None
        rows.append(
            (
                s.id,
                s.name,
                s.kind.value,
                s.district.value,
                facility.id if facility else "",
                facility.name if facility else "",
                facility.permit.text if facility else "",
                expected,
                received,
                valid,
                completeness,
                completeness >= ctx.threshold,
                n_exceed[s.id],
                t(status, lang),
            )
        )
    cols = [
        Column("source_id"),
        Column("name"),
        Column("kind"),
        Column("district"),
        Column("facility_id"),
        Column("facility"),
        Column("permit"),
        Column("expected", CellType.INT),
        Column("received", CellType.INT),
        Column("valid", CellType.INT),
        Column("completeness", CellType.FLOAT),
        Column("meets_threshold", CellType.BOOL),
        Column("violations", CellType.INT),
        Column("status"),
    ]
    summary = [
        (t("period", lang), f"{period.first_day} – {period.last_day}"),
        *((t(k, lang), str(tally[k])) for k in ("complied", "violated", "did_not_report")),
    ]
    return Report(
        ReportKind.PROVINCE,
        "title.province",
        f"{len(sources)}",
        period.label,
        ctx.timezone,
        ctx.now,
        [
            Section("sec.summary", [Column("item"), Column("value")], summary),
            Section("sec.province", cols, rows),
            method_section(
                method_rows(lang=lang, timezone=ctx.timezone, threshold=ctx.threshold, status=True)
            ),
        ],
    )
