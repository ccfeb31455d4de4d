"""Station air quality report: daily VN_AQI and days per category, QCVN 05:2023 exceedances by
averaging period, and data completeness, for one ambient air station.

The category of a day is recomputed from its integer AQI with ``thresholds.aqi.category`` (Table 1
of Decision 1459/QĐ-TCMT), so the name and official colour always match the number shown.
"""

from __future__ import annotations

from collections import Counter
from datetime import date
from typing import Any

import psycopg

from core.parameters import SourceKind
from reports.common import (
    ReportContext,
    completeness_rows,
    fetch_averages,
    limits_for,
    local_day,
    reading_counts,
)
from reports.compliance import (
    PERIODS,
    _completeness_section,
    charts,
    exceedance_section,
    limit_stats,
    limits_section,
)
from reports.i18n import Lang, t
from reports.manual import manual_section
from reports.method import method_rows, method_section
from reports.model import CellType, Chart, Column, Report, ReportKind, Section
from reports.periods import ReportPeriod
from reports.water_quality import build_water_quality
from stations.registry import Source
from thresholds.annual import annual_mean, verdict
from thresholds.aqi import CATEGORIES, AqiCategory, category
from thresholds.catalogue import Basis
from thresholds.limits import resolve_limits


class NotAnAirStation(ValueError):
    """The station quality report was asked for a source that is not an ambient air or
    surface-water station (surface water: ``reports/water_quality.py``)."""


def category_name(cat: AqiCategory, lang: Lang) -> str:
    info = CATEGORIES[cat]
    return info.name_en if lang is Lang.EN else info.name_vi


def build_air_quality(
    conn: psycopg.Connection[Any], ctx: ReportContext, source_id: str, period: ReportPeriod
) -> Report:
    lang, tz = ctx.lang, ctx.timezone
    source = ctx.registry.get(source_id)
    if source.kind is SourceKind.SURFACE_WATER:  # the station's quality: class and VN_WQI
        return build_water_quality(conn, ctx, source, period)
    if source.kind is not SourceKind.AMBIENT_AIR:
        raise NotAnAirStation(
            f"source {source_id} is {source.kind.value}; the air quality report is for "
            f"{SourceKind.AMBIENT_AIR.value} stations"
        )
    rows = conn.execute(
        "SELECT window_start, aqi, dominant FROM aqi WHERE source_id = %s AND kind = 'daily'"
        " AND window_start >= %s AND window_start < %s ORDER BY window_start",
        (source.id, period.start, period.end),
    ).fetchall()
    by_day = {local_day(r[0], tz): (r[1], r[2]) for r in rows}
    daily_rows = []
    per_cat: Counter[AqiCategory | None] = Counter()
    aqi_points = []
    for day in period.local_days():
        aqi, dominant = by_day.get(day, (None, None))
        cat = category(aqi) if aqi is not None else None
        per_cat[cat] += 1
        info = CATEGORIES[cat] if cat else None
        daily_rows.append(
            (
                day,
                aqi,
                category_name(cat, lang) if cat else t("no_data", lang),
                (info.colour_en if lang is Lang.EN else info.colour_vi) if info else "",
                info.hex if info else "",
                dominant or "",
            )
        )
        if day in by_day:
            aqi_points.append((_midnight(period, day), None if aqi is None else float(aqi)))
    daily_cols = [
        Column("day", CellType.DATE),
        Column("aqi", CellType.INT),
        Column("category"),
        Column("colour"),
        Column("rgb"),
        Column("dominant"),
    ]
    cat_rows: list[tuple[Any, ...]] = [
        (category_name(c, lang), f"{i.low}–{i.high}", i.hex, per_cat[c])
        for c, i in CATEGORIES.items()
    ]
    cat_rows.append((t("no_data", lang), "", "", per_cat[None]))
    cat_cols = [Column("category"), Column("aqi"), Column("rgb"), Column("days", CellType.INT)]

    limits = limits_for(ctx, source, period)
    annual = annual_section(conn, ctx, source, period)
    averages = fetch_averages(conn, source.id, period.start, period.end, PERIODS)
    counts = reading_counts(conn, [source.id], period.start, period.end)
    comp = completeness_rows(source, counts, period, ctx.now, ctx.threshold)
    exceed = exceedance_section([limit_stats(lim, averages) for lim in limits])
    exceed.charts = charts(limits, averages, ctx)
    aqi_section = Section("sec.aqi_daily", daily_cols, daily_rows)
    if aqi_points:
        aqi_section.charts = [Chart("VN_AQI", "", aqi_points, 100.0, None)]
    sections = [
        Section(
            "sec.summary",
            [Column("item"), Column("value")],
            [
                (t("source_id", lang), source.id),
                (t("name", lang), source.name),
                (t("district", lang), source.district.value),
                (t("period", lang), f"{period.first_day} – {period.last_day}"),
            ],
        ),
        aqi_section,
        Section("sec.aqi_categories", cat_cols, cat_rows),
        exceed,
        annual,
        _completeness_section(comp),
        manual_section(conn, [source.id], period, tz, lang),
        limits_section(limits),
        method_section(
            method_rows(lang=lang, timezone=tz, threshold=ctx.threshold, limits=limits, aqi=True)
        ),
    ]
    return Report(
        ReportKind.AIR_QUALITY,
        "title.air-quality",
        f"{source.id} — {source.name}",
        period.label,
        tz,
        ctx.now,
        sections,
    )


def annual_section(
    conn: psycopg.Connection[Any], ctx: ReportContext, source: Source, period: ReportPeriod
) -> Section:
    """QCVN 05:2023 yearly limits per calendar year the period touches (§1.3.9: the mean of the
    days' values over one year), from the stored valid daily means of the whole year."""
    today = local_day(ctx.now, ctx.timezone)
    rows: list[tuple[Any, ...]] = []
    for year in range(period.first_day.year, period.last_day.year + 1):
        whole = ReportPeriod(str(year), date(year, 1, 1), date(year, 12, 31), ctx.timezone)
        yearly = [
            lim
            for lim in resolve_limits(source, ctx.catalogue, min(whole.last_day, period.last_day))
            if lim.period is Basis.YEAR and lim.max is not None
        ]
        if not yearly:
            continue
        daily = fetch_averages(conn, source.id, whole.start, whole.end, ("day",))
        for lim in yearly:
            assert lim.max is not None
            mean = annual_mean(
                (
                    (local_day(a.window_start, ctx.timezone), a.value, a.valid)
                    for a in daily
                    if a.parameter == lim.parameter
                ),
                year,
                today,
            )
            rows.append(
                (
                    year,
                    lim.rule_id,
                    lim.parameter,
                    lim.max,
                    mean.value,
                    mean.valid_days,
                    mean.days_in_year,
                    t(verdict(mean, lim.max, today).value, ctx.lang),
                )
            )
    cols = [
        Column("year", CellType.INT),
        Column("rule_id"),
        Column("parameter"),
        Column("limit_max", CellType.FLOAT),
        Column("mean", CellType.FLOAT),
        Column("valid_days", CellType.INT),
        Column("days", CellType.INT),
        Column("annual_verdict"),
    ]
    return Section("sec.annual", cols, rows)


def _midnight(period: ReportPeriod, day: Any) -> Any:
    from datetime import datetime, time

    return datetime.combine(day, time(), period.zone)
