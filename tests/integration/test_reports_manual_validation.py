"""Manual validation in the reports (issue 21) against a real PostgreSQL: the month's decisions
of the report's source are listed (period, parameter, action, reason, note, who, when, applied,
readings invalidated) and readings invalidated by hand are counted apart from the automatic QC
flags, in the CSV, XLSX and PDF editions.

The month of data is tests/integration/test_reports.py's (October 2026, HD-NT-01 and HD-KK-01);
the decisions and the readings' ``manual_id`` are set here as the worker would have left them.
Every expected figure is computed from the Python data.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import psycopg
import pytest

from reports.compliance import build_compliance
from reports.i18n import Lang, t
from reports.model import ReportKind
from reports.periods import parse_period
from reports.service import Format, ReportRequest
from tests.integration.test_reports import (
    CAL,
    EPISODE,
    KK,
    NT,
    TZ,
    Dataset,
    Sheets,
    as_dt,
    check,
    ctx,
    dataset,
    exp_completeness,
    insert_dataset,
    render,
    within,
    yes,
)

pytestmark = pytest.mark.integration

# (source, parameter, start, end, action, reason, note, by, at, applied)
DECISIONS = [
    # the COD exceedance episode: the analyser was faulty (readings the automatic QC passed)
    (NT, "COD", *EPISODE, "invalidate", "analyser_fault", "COD cell fouled", "op",
     datetime(2026, 10, 25, 15, tzinfo=TZ), True),
    # the calibration window, every parameter (readings the automatic QC already flagged)
    (NT, None, *CAL, "invalidate", "calibration", "", "op",
     datetime(2026, 10, 5, 9, tzinfo=TZ), True),
    # a restore that found nothing invalidated, still pending
    (NT, "TSS", datetime(2026, 10, 30, 1, tzinfo=TZ), datetime(2026, 10, 30, 2, tzinfo=TZ),
     "restore", "other", "checked: TSS fine", "adm", datetime(2026, 10, 30, 8, tzinfo=TZ), False),
    # another month, another source: in no October report of HD-NT-01
    (NT, "COD", datetime(2026, 9, 3, tzinfo=TZ), datetime(2026, 9, 3, 6, tzinfo=TZ),
     "invalidate", "maintenance", "", "op", datetime(2026, 9, 3, 9, tzinfo=TZ), True),
    (KK, "PM2.5", datetime(2026, 10, 8, 6, tzinfo=TZ), datetime(2026, 10, 8, 9, tzinfo=TZ),
     "invalidate", "maintenance", "inlet cleaned", "op", datetime(2026, 10, 8, 10, tzinfo=TZ),
     True),
]  # fmt: skip


def cell(lang: Lang, row: dict[str, Any], key: str) -> Any:
    """A cell by key (test_reports.Sheets names the columns it knows by key, others by title)."""
    return row[key] if key in row else row[t(key, lang)]


def insert_decisions(url: str) -> dict[int, list[tuple[Any, ...]]]:
    """The decisions, and each invalidation's readings marked with its id (as the worker does);
    returns the readings each decision id invalidates."""
    ds: Dataset = insert_dataset(url)
    marked: dict[int, list[tuple[Any, ...]]] = {}
    with psycopg.connect(url) as conn:
        for src, param, start, end, action, reason, note, by, at, applied in DECISIONS:
            got = conn.execute(
                "INSERT INTO manual_validations (source_id, parameter, period_start, period_end,"
                " action, reason, note, by_user, at, applied_at) VALUES"
                " (%s,%s,%s,%s,%s,%s,%s,%s,%s,%s) RETURNING id",
                (src, param, start, end, action, reason, note, by, at,
                 at + timedelta(seconds=3) if applied else None),
            ).fetchone()  # fmt: skip
            assert got is not None
            vid = got[0]
            mine = [
                r
                for r in ds.readings
                if action == "invalidate"
                and r[0] == src
                and (param is None or r[1] == param)
                and within(r[2], (start, end))
            ]
            marked[vid] = mine
            conn.execute(
                "UPDATE readings SET manual_id = %s WHERE source_id = %s"
                " AND (%s::text IS NULL OR parameter = %s)"
                " AND measured_at >= %s AND measured_at < %s AND %s = 'invalidate'",
                (vid, src, param, param, start, end, action),
            )
    return marked


def exp_completeness_by_hand(
    url_ds: Dataset, marked: dict[int, list[tuple[Any, ...]]], source: str
) -> dict[str, dict[str, Any]]:
    """test_reports' expected completeness with the readings invalidated by hand moved from
    valid to their own count (those the automatic QC had flagged stay where they were)."""
    out = exp_completeness(url_ds, source)
    by_hand = {(r[0], r[1], r[2]) for rows in marked.values() for r in rows}
    for p, e in out.items():
        rows = [r for r in url_ds.readings if r[0] == source and r[1] == p]
        valid = [r[3] for r in rows if r[6] == "valid" and (r[0], r[1], r[2]) not in by_hand]
        manual = sum(1 for r in rows if r[6] == "valid" and (r[0], r[1], r[2]) in by_hand)
        e["valid"], e["manual_invalid"] = len(valid), manual
        e["completeness"] = min(1.0, len(valid) / e["expected"])
        e["mean"] = sum(valid) / len(valid) if valid else None
        e["max"] = max(valid) if valid else None
    return out


@pytest.mark.parametrize(
    ("fmt", "lang"), [(Format.CSV, Lang.EN), (Format.XLSX, Lang.VI)], ids=["csv-en", "xlsx-vi"]
)
def test_the_compliance_report_lists_the_decisions_and_counts_them_apart(
    database_url: str, fmt: Format, lang: Lang
) -> None:
    marked = insert_decisions(database_url)
    ds = dataset()
    data = render(database_url, ReportRequest(ReportKind.COMPLIANCE, fmt, lang, "2026-10", (NT,)))
    sheets = Sheets(data, fmt, lang)

    listed = sheets.rows("sec.manual_validation")
    ids = sorted(marked)
    # October's three decisions on HD-NT-01, by period start; not September's, not HD-KK-01's
    assert [int(cell(lang, r, "manual_id")) for r in listed] == [ids[1], ids[0], ids[2]]
    cal, cod, tss = listed
    assert cell(lang, cod, "parameter") == "COD" and cell(lang, cal, "parameter") == t(
        "all_parameters", lang
    )
    assert as_dt(cell(lang, cod, "period_start")) == EPISODE[0].replace(tzinfo=None)
    assert as_dt(cell(lang, cod, "period_end")) == EPISODE[1].replace(tzinfo=None)
    assert cell(lang, cod, "manual_action") == t("manual.invalidate", lang)
    assert cell(lang, cod, "manual_reason") == t("manual.reason.analyser_fault", lang)
    assert (cell(lang, cod, "note"), cell(lang, cod, "decided_by")) == ("COD cell fouled", "op")
    assert as_dt(cell(lang, cod, "decided_at")) == datetime(2026, 10, 25, 15)
    assert yes(cell(lang, cod, "applied"), lang) and yes(cell(lang, cal, "applied"), lang)
    assert as_dt(cell(lang, cod, "applied_at")) == datetime(2026, 10, 25, 15, 0, 3)
    assert cell(lang, tss, "manual_action") == t("manual.restore", lang)
    assert cell(lang, tss, "manual_reason") == t("manual.reason.other", lang)
    assert not yes(cell(lang, tss, "applied"), lang) and cell(lang, tss, "applied_at") in ("", None)
    # the readings each decision invalidates: 4 h of 5-min COD; 2 h × 3 parameters; none
    check(cell(lang, cod, "manual_readings"), len(marked[ids[0]]), "COD readings")
    check(cell(lang, cal, "manual_readings"), len(marked[ids[1]]), "calibration readings")
    check(cell(lang, tss, "manual_readings"), 0, "restore readings")
    assert len(marked[ids[0]]) == 48 and len(marked[ids[1]]) == 72

    want = exp_completeness_by_hand(ds, marked, NT)
    rows = {r["parameter"]: r for r in sheets.rows("sec.completeness")}
    assert set(rows) == set(want)
    for p, e in want.items():
        r = rows[p]
        for k in (
            "received",
            "valid",
            "manual_invalid",
            "calibrating",
            "device_error",
            "other_invalid",
            "completeness",
            "mean",
            "max",
        ):
            check(cell(lang, r, k), e[k], f"completeness {p}.{k}")
    # COD: the episode's 48 readings passed the automatic QC and are now invalid by hand; the
    # calibration window's readings keep their automatic flag (calibrating), not counted twice
    assert want["COD"]["manual_invalid"] == 48 and want["TSS"]["manual_invalid"] == 0
    check(cell(lang, rows["COD"], "calibrating"), 24, "COD calibrating")
    received = sum(
        e[k]
        for e in [want["COD"]]
        for k in ("valid", "manual_invalid", "calibrating", "device_error", "other_invalid")
    )
    assert received == want["COD"]["received"]


def test_the_station_quality_report_and_the_pdf_have_the_section(database_url: str) -> None:
    marked = insert_decisions(database_url)
    kk_id = max(marked)  # the HD-KK-01 decision, inserted last
    data = render(
        database_url, ReportRequest(ReportKind.AIR_QUALITY, Format.CSV, Lang.EN, "2026-10", (KK,))
    )
    sheets = Sheets(data, Format.CSV, Lang.EN)
    (only,) = sheets.rows("sec.manual_validation")
    en = Lang.EN
    assert cell(en, only, "manual_id") == str(kk_id)
    assert cell(en, only, "note") == "inlet cleaned"
    check(cell(en, only, "manual_readings"), 36, "3 h of 5-min PM2.5")
    comp = {r["parameter"]: r for r in sheets.rows("sec.completeness")}
    check(cell(en, comp["PM2.5"], "manual_invalid"), 36, "PM2.5 by hand")
    check(cell(en, comp["PM10"], "manual_invalid"), 0, "PM10 by hand")

    # PDF: the section is a table of the PDF edition (rendered from the same Report)
    with psycopg.connect(database_url) as conn:
        report = build_compliance(conn, ctx(Lang.VI), NT, parse_period("2026-10", TZ.key))
    (section,) = [s for s in report.sections if s.key == "sec.manual_validation"]
    assert section.in_pdf and len(list(section.rows)) == 3
    pdf = render(
        database_url, ReportRequest(ReportKind.COMPLIANCE, Format.PDF, Lang.VI, "2026-10", (NT,))
    )
    assert pdf.startswith(b"%PDF") and len(pdf) > 10_000
