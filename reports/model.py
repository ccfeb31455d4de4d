"""The shape every report takes before rendering: sections of typed columns, plus charts.

Builders fill these records; renderers (CSV, XLSX, PDF) never run SQL and never compute a figure,
so the same numbers reach every format. Column and section keys are i18n keys (``reports.i18n``).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from enum import StrEnum
from typing import Any


class ReportKind(StrEnum):
    COMPLIANCE = "compliance"
    AIR_QUALITY = "air-quality"
    PROVINCE = "province"
    EXPORT = "export"
    EVIDENCE = "evidence"


class CellType(StrEnum):
    TEXT = "text"
    INT = "int"
    FLOAT = "float"
    DATETIME = "datetime"  # naive local time (the report's time zone is stated in its header)
    DATE = "date"
    BOOL = "bool"


Cell = str | int | float | bool | datetime | date | None


@dataclass(frozen=True)
class Column:
    key: str
    type: CellType = CellType.TEXT
    unit: str = ""  # shown after the header: "Giá trị (mg/L)"


@dataclass(frozen=True)
class Chart:
    """A time series of one parameter with its limit drawn (PDF only)."""

    title: str  # already readable: "COD — trung bình 1 giờ"
    unit: str
    points: Sequence[tuple[datetime, float | None]]
    limit_max: float | None = None
    limit_min: float | None = None


@dataclass
class Section:
    key: str
    columns: Sequence[Column]
    rows: Iterable[Sequence[Any]]  # may be a generator (exports): iterate once
    charts: list[Chart] = field(default_factory=list)
    in_pdf: bool = True  # long tables (hourly averages, raw data) stay out of the PDF
    note_key: str = ""


@dataclass
class Report:
    kind: ReportKind
    title: str  # i18n key
    subject: str  # "HD-NT-01 — Cửa xả nhà máy …"
    period_label: str
    timezone: str
    generated_at: datetime
    sections: list[Section]
