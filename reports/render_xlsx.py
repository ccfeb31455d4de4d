"""XLSX rendering with openpyxl in write-only mode: one sheet per section, typed cells, frozen
header row. Write-only sheets stream rows to disk, so big exports keep memory flat.

The first sheet holds the report's identity (title, subject, period, time zone); every other sheet
has its header in row 1 (frozen) and data from row 2. Times are naive local times with a date
format; floats are stored at full precision; infinities (a lower limit against a zero reading)
are written as text. Text that looks like a formula (``render_csv.formula_like``: ``= + - @``,
tab, CR) is a string cell with Excel's quote prefix, never a formula: openpyxl would otherwise
store any string starting with ``=`` as one.
"""

from __future__ import annotations

import math
import re
from datetime import date, datetime
from typing import Any, BinaryIO

from openpyxl import Workbook
from openpyxl.cell import WriteOnlyCell
from openpyxl.styles import Font
from openpyxl.worksheet._write_only import WriteOnlyWorksheet

from reports.i18n import Lang, t
from reports.model import CellType, Report
from reports.render_csv import formula_like, header, identity_rows

_BAD = re.compile(r"[\[\]:*?/\\]")
FORMATS = {
    CellType.DATETIME: "yyyy-mm-dd hh:mm:ss",
    CellType.DATE: "yyyy-mm-dd",
    CellType.FLOAT: "0.######",
}


def sheet_title(text: str, used: set[str]) -> str:
    base = _BAD.sub(" ", text)[:31].strip() or "Sheet"
    title, n = base, 2
    while title.lower() in used:
        suffix = f" ({n})"
        title, n = base[: 31 - len(suffix)] + suffix, n + 1
    used.add(title.lower())
    return title


def _value(value: Any) -> Any:
    if isinstance(value, float) and (math.isinf(value) or math.isnan(value)):
        return str(value)
    if isinstance(value, datetime | date | bool | int | float | str) or value is None:
        return value
    return str(value)


def _cell(ws: WriteOnlyWorksheet, value: Any, *, bold: Font | None = None) -> Any:
    """``value`` as appended to ``ws``; formula-like text as a typed string cell."""
    if not (isinstance(value, str) and formula_like(value)) and bold is None:
        return value
    c = WriteOnlyCell(ws, value)
    if isinstance(value, str) and formula_like(value):
        c.data_type = "s"  # openpyxl made it "f" (a formula) if it starts with "="
        c.quotePrefix = True  # and Excel keeps it text when someone edits the cell
    if bold is not None:
        c.font = bold
    return c


def render_xlsx(report: Report, out: BinaryIO, lang: Lang = Lang.VI) -> None:
    wb = Workbook(write_only=True)
    used: set[str] = set()
    bold = Font(bold=True)

    info: WriteOnlyWorksheet = wb.create_sheet(sheet_title(t("subject", lang), used))
    for k, v in identity_rows(report, lang):
        info.append([_cell(info, k, bold=bold), _cell(info, v)])

    for section in report.sections:
        ws: WriteOnlyWorksheet = wb.create_sheet(sheet_title(t(section.key, lang), used))
        ws.freeze_panes = "A2"
        ws.append([_cell(ws, text, bold=bold) for text in header(section.columns, lang)])
        fmts = [FORMATS.get(col.type) for col in section.columns]
        for row in section.rows:
            out_row: list[Any] = []
            for v, fmt in zip(row, fmts, strict=True):
                if fmt and v is not None and not isinstance(v, str):
                    c = WriteOnlyCell(ws, _value(v))
                    c.number_format = fmt
                    out_row.append(c)
                else:
                    out_row.append(_cell(ws, _value(v)))
            ws.append(out_row)
    wb.save(out)
