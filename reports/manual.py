"""The reports' "Manual validation" section (issue 21): the operators' decisions on the period.

Each decision whose period overlaps the report's is listed with who took it, when and why, and
whether the worker has applied it, with the readings of the report's period it invalidates now
(``readings.manual_id``). The averages, violations and completeness elsewhere in the report are
already those that follow from the decisions (the pipeline applied them); the automatic QC flags
stay what they were, so the completeness section counts readings invalidated by hand apart.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import psycopg

from reports.common import local
from reports.i18n import Lang, t
from reports.model import CellType, Column, Section
from reports.periods import ReportPeriod
from storage.manual_validations import in_period

N, D, B = CellType.INT, CellType.DATETIME, CellType.BOOL


def manual_section(
    conn: psycopg.Connection[Any],
    source_ids: Sequence[str],
    period: ReportPeriod,
    tz: str,
    lang: Lang,
    with_source: bool = False,
) -> Section:
    decisions = in_period(conn, source_ids, period.start, period.end)
    cols = [
        *([Column("source_id")] if with_source else []),
        Column("manual_id", N),
        Column("parameter"),
        Column("period_start", D),
        Column("period_end", D),
        Column("manual_action"),
        Column("manual_reason"),
        Column("note"),
        Column("decided_by"),
        Column("decided_at", D),
        Column("applied", B),
        Column("applied_at", D),
        Column("manual_readings", N),
    ]
    rows = [
        (
            *([d.row.source_id] if with_source else []),
            d.row.id,
            d.row.parameter or t("all_parameters", lang),
            local(d.row.period_start, tz),
            local(d.row.period_end, tz),
            t(f"manual.{d.row.action}", lang),
            t(f"manual.reason.{d.row.reason}", lang),
            d.row.note,
            d.row.by_user,
            local(d.row.at, tz),
            d.row.applied_at is not None,
            local(d.row.applied_at, tz),
            d.readings,
        )
        for d in decisions
    ]
    return Section("sec.manual_validation", cols, rows, note_key="note.manual_validation")
