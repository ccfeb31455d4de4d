"""Station quality report for a surface-water station: the day's QCVN 08:2023 class and VN_WQI.

QCVN 08:2023 classifies the water body; it limits no one, so this report has no exceedance or
limit section. Per local day: the class (worst class over the classified parameters), the target
class and whether the day is a water quality alert, the VN_WQI (Decision 1460/QĐ-TCMT, tables
UNVERIFIED against the decision's text), the parameters that could not be classified; then the
days per class and per VN_WQI band, and data completeness (docs/regulations.md §4.1, §4.3).
"""

from __future__ import annotations

from collections import Counter
from datetime import datetime, time
from typing import Any

import psycopg

from reports.common import ReportContext, completeness_rows, local_day, reading_counts
from reports.compliance import _completeness_section
from reports.i18n import Lang, t
from reports.manual import manual_section
from reports.method import method_rows, method_section
from reports.model import CellType, Chart, Column, Report, ReportKind, Section
from reports.periods import ReportPeriod
from stations.registry import Source
from thresholds.water_quality import CLASSES, wqi_category, wqi_tables


def _pick(lang: Lang, vi: str, en: str) -> str:
    return en if lang is Lang.EN else vi


def build_water_quality(
    conn: psycopg.Connection[Any], ctx: ReportContext, source: Source, period: ReportPeriod
) -> Report:
    lang, tz = ctx.lang, ctx.timezone
    rows = conn.execute(
        "SELECT day, water_class, target_class, alert, wqi, wqi_meets_minimum, skipped,"
        " over_table1, day_start FROM water_quality_days WHERE source_id = %s"
        " AND day_start >= %s AND day_start < %s ORDER BY day",
        (source.id, period.start, period.end),
    ).fetchall()
    by_day = {local_day(r[8], tz): r for r in rows}
    daily: list[tuple[Any, ...]] = []
    per_class: Counter[str | None] = Counter()
    per_band: Counter[str | None] = Counter()
    points: list[tuple[datetime, float | None]] = []
    for day in period.local_days():
        r = by_day.get(day)
        if r is None:
            per_class[None] += 1
            per_band[None] += 1
            continue
        _, water_class, target, alert, wqi, meets, skipped, over, _ = r
        cat = wqi_category(wqi)
        per_class[water_class] += 1
        per_band[cat.name_en if cat else None] += 1
        band = (cat.name_en if lang is Lang.EN else cat.name_vi) if cat else ""
        notes = [f"{p}: {why}" for p, why in sorted((skipped or {}).items())]
        if over:
            notes.append(_pick(lang, "vượt Bảng 1: ", "above Table 1: ") + ", ".join(over))
        if wqi is not None and not meets:
            notes.append(t("wqi.below_minimum", lang))
        daily.append(
            (
                day,
                water_class or "",
                target or "",
                bool(alert),
                wqi,
                band,
                cat.hex if cat else "",
                "; ".join(notes),
            )
        )
        if wqi is not None:
            points.append((datetime.combine(day, time(), period.zone), float(wqi)))
    daily_cols = [
        Column("day", CellType.DATE),
        Column("water_class"),
        Column("target_class"),
        Column("water_alert", CellType.BOOL),
        Column("wqi", CellType.INT),
        Column("category"),
        Column("rgb"),
        Column("note"),
    ]
    daily_section = Section("sec.water_daily", daily_cols, daily)
    if points:
        daily_section.charts = [Chart("VN_WQI", "", points, None, None)]
    class_rows: list[tuple[Any, ...]] = [(c, per_class[c]) for c in CLASSES]
    class_rows.append((t("no_data", lang), per_class[None]))
    band_rows: list[tuple[Any, ...]] = []
    for c in wqi_tables()["categories"]:
        name = c["name_en"] if lang is Lang.EN else c["name_vi"]
        band_rows.append((name, f"{c['low']}–{c['high']}", per_band[c["name_en"]]))
    band_rows.append((t("no_data", lang), "", per_band[None]))

    counts = reading_counts(conn, [source.id], period.start, period.end)
    comp = completeness_rows(source, counts, period, ctx.now, ctx.threshold)
    method = method_rows(lang=lang, timezone=tz, threshold=ctx.threshold)
    method += [
        (
            t("sec.water_daily", lang),
            _pick(
                lang,
                "QCVN 08:2023/BTNMT phân loại nước mặt (A tốt nhất … D kém nhất), không phải giới "
                "hạn của nguồn thải: loại của ngày là loại kém nhất trong các thông số xếp loại "
                "được từ trung bình ngày; thông số có ô bảng chưa kiểm chứng thì không xếp loại và "
                "được ghi chú. Loại kém hơn loại mục tiêu của trạm là cảnh báo chất lượng nước của "
                "Sở, không tính là vi phạm (docs/regulations.md §4.1).",
                "QCVN 08:2023/BTNMT classifies surface water (A best … D worst); it is not a "
                "source limit: the day's class is the worst class of the parameters its daily "
                "means classify; a parameter whose table cell is unverified is not classified and "
                "is noted. A class worse than the station's target is a department water quality "
                "alert, not a violation (docs/regulations.md §4.1).",
            ),
        ),
        (
            "VN_WQI",
            _pick(
                lang,
                "Quyết định 1460/QĐ-TCMT (12/11/2019) từ trung bình ngày; các bảng lấy từ hai bản "
                "triển khai công khai, CHƯA đối chiếu văn bản gốc (docs/regulations.md §4.3). "
                "Trạm tự động chỉ có nhóm I (pH) và IV (DO, COD, NH4): dưới mức tối thiểu 3/5 "
                "nhóm, chỉ để tham khảo.",
                "Decision 1460/QĐ-TCMT (12/11/2019) from daily means; tables from two public "
                "implementations, NOT checked against the decision's text (docs/regulations.md "
                "§4.3). Automatic stations have groups I (pH) and IV (DO, COD, NH4) only: below "
                "the 3-of-5-groups minimum, for information.",
            ),
        ),
    ]
    sections = [
        Section(
            "sec.summary",
            [Column("item"), Column("value")],
            [
                (t("source_id", lang), source.id),
                (t("name", lang), source.name),
                (t("district", lang), source.district.value),
                (t("target_class", lang), source.target_class or ""),
                (t("period", lang), f"{period.first_day} – {period.last_day}"),
            ],
        ),
        daily_section,
        Section(
            "sec.water_classes", [Column("water_class"), Column("days", CellType.INT)], class_rows
        ),
        Section(
            "sec.wqi_categories",
            [Column("category"), Column("wqi"), Column("days", CellType.INT)],
            band_rows,
        ),
        _completeness_section(comp),
        manual_section(conn, [source.id], period, tz, lang),
        method_section(method),
    ]
    return Report(
        ReportKind.AIR_QUALITY,
        "title.water-quality",
        f"{source.id} — {source.name}",
        period.label,
        tz,
        ctx.now,
        sections,
    )
