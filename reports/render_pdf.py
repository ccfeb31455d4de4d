"""PDF rendering with reportlab: the report's tables, and a chart per limit with the limit drawn.

Vietnamese needs a TrueType font with its glyphs: DejaVu Sans (Debian ``fonts-dejavu-core``).
Long tables (hourly averages, raw data) are left to the CSV/XLSX editions; any table is capped at
``MAX_ROWS`` rows in the PDF with a note saying so.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Any, BinaryIO

from reportlab.graphics.charts.lineplots import LinePlot
from reportlab.graphics.shapes import Drawing, String
from reportlab.lib import colors
from reportlab.lib.pagesizes import A4, landscape
from reportlab.lib.styles import ParagraphStyle
from reportlab.lib.units import mm
from reportlab.pdfbase import pdfmetrics
from reportlab.pdfbase.ttfonts import TTFont
from reportlab.platypus import Flowable, Paragraph, SimpleDocTemplate, Spacer, Table, TableStyle

from reports.i18n import Lang, t
from reports.model import Chart, Report, Section
from reports.render_csv import format_cell, header, identity_rows

FONT_DIR = Path("/usr/share/fonts/truetype/dejavu")
FONT, FONT_BOLD = "DejaVuSans", "DejaVuSans-Bold"
MAX_ROWS = 400
PAGE = landscape(A4)


class FontMissing(RuntimeError):
    """The Vietnamese-capable TTF font is not installed."""


def register_fonts(directory: Path = FONT_DIR) -> None:
    if FONT in pdfmetrics.getRegisteredFontNames():
        return
    for name in (FONT, FONT_BOLD):
        path = directory / f"{name}.ttf"
        if not path.exists():
            raise FontMissing(f"{path} not found: apt-get install -y fonts-dejavu-core")
        pdfmetrics.registerFont(TTFont(name, str(path)))


def _styles() -> dict[str, ParagraphStyle]:
    return {
        "title": ParagraphStyle("title", fontName=FONT_BOLD, fontSize=15, leading=19),
        "h2": ParagraphStyle("h2", fontName=FONT_BOLD, fontSize=11, leading=14, spaceBefore=8),
        "body": ParagraphStyle("body", fontName=FONT, fontSize=8, leading=10),
        "cell": ParagraphStyle("cell", fontName=FONT, fontSize=6.5, leading=8),
        "head": ParagraphStyle("head", fontName=FONT_BOLD, fontSize=6.5, leading=8),
    }


def _esc(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _table(section: Section, lang: Lang, st: dict[str, ParagraphStyle]) -> list[Flowable]:
    head = [Paragraph(_esc(h), st["head"]) for h in header(section.columns, lang)]
    body: list[list[Any]] = []
    rows = iter(section.rows)
    for row in itertools.islice(rows, MAX_ROWS):
        body.append([Paragraph(_esc(format_cell(v, lang)), st["cell"]) for v in row])
    more = sum(1 for _ in rows)
    out: list[Flowable] = []
    if body or not more:
        width = PAGE[0] - 24 * mm
        table = Table([head, *body], repeatRows=1, colWidths=_widths(section, width))
        table.setStyle(
            TableStyle(
                [
                    ("GRID", (0, 0), (-1, -1), 0.25, colors.grey),
                    ("BACKGROUND", (0, 0), (-1, 0), colors.Color(0.88, 0.92, 0.97)),
                    ("VALIGN", (0, 0), (-1, -1), "TOP"),
                ]
            )
        )
        out.append(table)
    if more:
        note = f"… +{more} (CSV/XLSX)"
        out.append(Paragraph(_esc(note), st["body"]))
    return out


def _widths(section: Section, total: float) -> list[float]:
    wide = {"legal_basis", "value", "name", "note", "title"}
    weights = [4.0 if c.key in wide else 1.0 for c in section.columns]
    s = sum(weights)
    return [total * w / s for w in weights]


def chart_drawing(chart: Chart, start: datetime, end: datetime) -> Drawing:
    """A line chart of the series (gaps left open) with the limit(s) as red dashed lines."""
    width, height = PAGE[0] - 30 * mm, 55 * mm
    d = Drawing(width, height + 14)
    d.add(
        String(
            0,
            height + 4,
            chart.title + (f" ({chart.unit})" if chart.unit else ""),
            fontName=FONT_BOLD,
            fontSize=8,
        )
    )
    span_h = max(1.0, (end - start).total_seconds() / 3600.0)

    def x(at: datetime) -> float:
        return (at - start).total_seconds() / 3600.0

    segments: list[list[tuple[float, float]]] = [[]]
    for at, v in chart.points:
        if v is None:
            if segments[-1]:
                segments.append([])
        else:
            segments[-1].append((x(at), v))
    segments = [s for s in segments if s]
    limits = [v for v in (chart.limit_max, chart.limit_min) if v is not None]
    data = [*segments, *[[(0.0, v), (span_h, v)] for v in limits]]
    if not data:
        return d
    lp = LinePlot()
    lp.x, lp.y, lp.width, lp.height = 30, 12, width - 40, height - 18
    lp.data = data
    ys = [p[1] for series in data for p in series]
    lo, hi = min(0.0, *ys), max(ys) * 1.1 or 1.0
    lp.yValueAxis.valueMin, lp.yValueAxis.valueMax = lo, hi
    lp.xValueAxis.valueMin, lp.xValueAxis.valueMax = 0.0, span_h
    step = 24.0 if span_h <= 24 * 40 else 24.0 * 7
    lp.xValueAxis.valueSteps = [i * step for i in range(int(span_h // step) + 1)]
    lp.xValueAxis.labelTextFormat = lambda h: f"{int(h // 24) + 1}"
    for axis in (lp.xValueAxis, lp.yValueAxis):
        axis.labels.fontName = FONT
        axis.labels.fontSize = 6
    for i in range(len(segments)):
        lp.lines[i].strokeColor = colors.Color(0.1, 0.3, 0.7)
        lp.lines[i].strokeWidth = 0.8
    for j in range(len(limits)):
        line = lp.lines[len(segments) + j]
        line.strokeColor = colors.red
        line.strokeWidth = 1.0
        line.strokeDashArray = [4, 2]
    d.add(lp)
    return d


def render_pdf(
    report: Report,
    out: BinaryIO,
    lang: Lang = Lang.VI,
    *,
    start: datetime | None = None,
    end: datetime | None = None,
) -> None:
    """Render ``report``; ``start``/``end`` (UTC) set the charts' time axis (else the data's)."""
    register_fonts()
    st = _styles()
    story: list[Flowable] = [Paragraph(_esc(t(report.title, lang)), st["title"]), Spacer(1, 4)]
    for k, v in identity_rows(report, lang):
        story.append(Paragraph(f"<b>{_esc(k)}:</b> {_esc(v)}", st["body"]))
    for section in report.sections:
        story.append(Paragraph(_esc(t(section.key, lang)), st["h2"]))
        if section.note_key:
            story.append(Paragraph(_esc(t(section.note_key, lang)), st["body"]))
        if section.in_pdf:
            story += _table(section, lang, st)
        for chart in section.charts:
            a, b = _span(chart.points, start, end)
            story += [Spacer(1, 4), chart_drawing(chart, a, b)]
    doc = SimpleDocTemplate(
        out,
        pagesize=PAGE,
        leftMargin=12 * mm,
        rightMargin=12 * mm,
        topMargin=10 * mm,
        bottomMargin=10 * mm,
        title=t(report.title, lang),
        author="quantrac",
    )
    doc.build(story)


def _span(
    points: Sequence[tuple[datetime, float | None]], start: datetime | None, end: datetime | None
) -> tuple[datetime, datetime]:
    a = start or min(p[0] for p in points)
    b = end or max(p[0] for p in points)
    return a, b
