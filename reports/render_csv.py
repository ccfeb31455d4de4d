"""CSV rendering: UTF-8 with a BOM (so Excel opens Vietnamese text correctly), one file.

Layout: the report's identity as key/value lines, then each section as a marker line
``== <section title> ==``, its header row, its rows and a blank line. Rows are written as they
come, so a streamed export stays streamed. Floats keep 6 decimals (trailing zeros dropped);
times are local (the zone is on the identity lines).

Formula injection (OWASP "CSV Injection"): a text cell starting with ``= + - @``, a tab or a
carriage return would be run as a formula by the spreadsheet a regulator opens the file in (an
acknowledgement note ``=HYPERLINK(...)`` became a live link). Such text is written with a single
quote in front (:func:`inert`), which spreadsheets show as text; numbers, negative ones included,
are written as numbers. The XLSX renderer writes the same cells as typed string cells instead.
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Sequence
from datetime import date, datetime
from typing import Any, BinaryIO

from reports.i18n import Lang, t
from reports.model import Report

BOM = "\ufeff"
SECTION_MARK = "== {} =="
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def formula_like(text: str) -> bool:
    """Text a spreadsheet would take for a formula (one rule for CSV and XLSX)."""
    return text.startswith(FORMULA_START)


def inert(text: str) -> str:
    """A CSV text cell that a spreadsheet shows and never runs: a leading ``'`` if formula-like."""
    return "'" + text if formula_like(text) else text


def format_cell(value: Any, lang: Lang) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return t("yes" if value else "no", lang)
    if isinstance(value, float):
        if math.isinf(value) or math.isnan(value):
            return str(value)
        text = f"{value:.6f}".rstrip("0").rstrip(".")
        return "0" if text == "-0" else text
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%d %H:%M:%S")
    if isinstance(value, date):
        return value.isoformat()
    return str(value)


def csv_cell(value: Any, lang: Lang) -> str:
    """:func:`format_cell` for CSV: numbers stay numbers, any text is made :func:`inert`."""
    text = format_cell(value, lang)
    return text if isinstance(value, int | float) else inert(text)


def identity_rows(report: Report, lang: Lang) -> list[tuple[str, str]]:
    return [
        (t(report.title, lang), report.subject),
        (t("period", lang), report.period_label),
        (t("timezone", lang), report.timezone),
        (t("generated_at", lang), report.generated_at.isoformat(timespec="seconds")),
    ]


def header(columns: Sequence[Any], lang: Lang) -> list[str]:
    return [t(c.key, lang) + (f" ({c.unit})" if c.unit else "") for c in columns]


def render_csv(report: Report, out: BinaryIO, lang: Lang = Lang.VI) -> None:
    text = io.TextIOWrapper(out, encoding="utf-8", newline="", write_through=False)
    try:
        text.write(BOM)
        w = csv.writer(text)
        w.writerows([inert(k), inert(v)] for k, v in identity_rows(report, lang))
        w.writerow([])
        for section in report.sections:
            w.writerow([SECTION_MARK.format(t(section.key, lang))])
            w.writerow([inert(h) for h in header(section.columns, lang)])
            for row in section.rows:
                w.writerow([csv_cell(v, lang) for v in row])
            w.writerow([])
        text.flush()
    finally:
        text.detach()  # leave ``out`` open for the caller
