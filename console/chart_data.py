"""Chart data for the console's uPlot charts (``console/static/charts.js``), served as JSON.

Each chart shows one parameter of one source: the measured values (raw readings, or hourly means
on the 30-day chart), the same values smoothed for display (Savitzky–Golay, computed on the fly
from the stored values of the window, never stored and never used for compliance), the
regulatory means (1-h, or daily on the 30-day chart), the QC-flagged values as separate points,
and one line per limit the source is held to (``thresholds.limits.resolve_limits`` on the
registry, as ``quantrac limits SOURCE`` prints them), labelled with its averaging basis.

Every series is its own ``{"t": [...], "v": [...]}`` table (epoch seconds); the browser aligns
them with ``uPlot.join``. A ``null`` in ``v`` is a gap the line must not bridge (a flagged value
or an outage); the browser joins over timestamps a series simply does not have.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from functools import cache
from pathlib import Path
from typing import Any, Literal

from fastapi import APIRouter, HTTPException, Request
from fastapi.params import Depends

from console.api_models import ChartData
from console.i18n import LANG_COOKIE, Lang, parse_lang
from core.clock import Clock, utc_now
from core.settings import Settings
from stations.registry import CLASSIFICATION_ONLY, Registry, load_registry
from storage import queries as q
from thresholds.averaging import LOCAL_TZ, savgol_smooth
from thresholds.catalogue import Basis, Catalogue, load_catalogue
from thresholds.limits import Limit, resolve_limits

SAVGOL_WINDOW, SAVGOL_ORDER = 11, 2  # as GET /api/sources/{id}/smoothed
GAP_INTERVALS = 3  # silence longer than this many reporting intervals breaks the line

WindowKey = Literal["24h", "7d", "30d"]


@dataclass(frozen=True)
class Window:
    span: timedelta
    measured: q.Resolution
    average: q.Resolution
    average_period: timedelta  # the mean's window: its point is drawn at the window's middle


WINDOWS: dict[str, Window] = {
    "24h": Window(timedelta(hours=24), q.Resolution.RAW, q.Resolution.HOURLY, timedelta(hours=1)),
    "7d": Window(timedelta(days=7), q.Resolution.RAW, q.Resolution.HOURLY, timedelta(hours=1)),
    "30d": Window(timedelta(days=30), q.Resolution.HOURLY, q.Resolution.DAILY, timedelta(days=1)),
}

#: Averaging basis of a limit, as the console names it (vi, en).
BASIS_TEXT: dict[Basis, tuple[str, str]] = {
    Basis.HOUR: ("TB 1 giờ", "1 h mean"),
    Basis.ROLLING_8H: ("TB 8 giờ", "8 h mean"),
    Basis.ROLLING_24H: ("TB 24 giờ trượt", "rolling 24 h mean"),
    Basis.DAY: ("TB ngày", "daily mean"),
    Basis.YEAR: ("TB năm", "annual mean"),
}
LABELS: dict[str, tuple[str, str]] = {
    "measured_raw": ("Giá trị đo", "Measured"),
    "measured_hourly": ("TB 1 giờ", "1 h means"),
    "smoothed": ("Làm trơn Savitzky–Golay", "Savitzky–Golay smoothed"),
    "average_hourly": ("TB 1 giờ", "1 h mean"),
    "average_daily": ("TB ngày", "daily mean"),
    "flagged": ("Bị gắn cờ QC", "QC-flagged"),
    "limit": ("Giới hạn", "Limit"),
}


def _text(pair: tuple[str, str], lang: Lang) -> str:
    return pair[0] if lang is Lang.VI else pair[1]


def _num(x: float) -> str:
    return f"{x:.4g}"


# --- limits ----------------------------------------------------------------------------------


def limit_text(lim: Limit, lang: Lang) -> str:
    """``≤ 67.5 mg/L · 1 h mean``: bound, unit and averaging basis, for the limit column."""
    unit = f" {lim.unit}" if lim.unit and lim.unit != "-" else ""
    return f"{lim.bound_text()}{unit} · {_text(BASIS_TEXT[lim.period], lang)}"


def limits_by_parameter(limits: Sequence[Limit]) -> dict[str, list[Limit]]:
    """The limits per parameter, shortest averaging basis first (1 h before day before year)."""
    order = list(Basis)
    out: dict[str, list[Limit]] = {}
    for lim in sorted(limits, key=lambda x: order.index(x.period)):
        out.setdefault(lim.parameter, []).append(lim)
    return out


@cache
def _catalogue() -> Catalogue:
    return load_catalogue()  # the shipped regulation tables: parsed once per process


def source_limits(registry: Registry, source_id: str, day: date) -> list[Limit]:
    """The limits ``source_id`` is held to on ``day`` (QCVN 08 classifies water; no limit)."""
    source = registry.find(source_id)
    if source is None:
        return []
    limits = resolve_limits(source, _catalogue(), day)
    return [lim for lim in limits if lim.regulation not in CLASSIFICATION_ONLY]


def exceeds_any(limits: Sequence[Limit], value: float | None) -> bool:
    """Whether ``value`` is past a limit checked in real time (a hint on the latest value)."""
    return value is not None and any(lim.checked and lim.exceeded_by(value) for lim in limits)


def limit_lines(limits: Sequence[Limit], lang: Lang) -> list[dict[str, Any]]:
    """One horizontal line per bound (a pH range gives two)."""
    lines = []
    for lim in limits:
        for value in (lim.min, lim.max):
            if value is None:
                continue
            lines.append(
                {
                    "value": value,
                    "label": f"{_text(LABELS['limit'], lang)} {limit_text(lim, lang)}",
                    "basis": lim.period.value,
                    "rule_id": lim.rule_id,
                    "legal_basis": lim.legal_basis,
                    "verified": lim.verified,
                }
            )
    return lines


# --- series shaping ----------------------------------------------------------------------------


@dataclass
class Table:
    """One series: times (epoch seconds) and values; ``None`` is a gap in the line."""

    t: list[float]
    v: list[float | None]

    def json(self) -> dict[str, Any]:
        return {"t": self.t, "v": self.v}


def split_measured(
    points: Sequence[q.SeriesPoint], interval_s: float
) -> tuple[Table, Table, list[str]]:
    """Valid values as a line, flagged values as separate points (with their flags).

    The line gets a gap (``None``) at each flagged value and inside each silence longer than
    ``GAP_INTERVALS`` reporting intervals, so it never bridges bad or missing data.
    """
    line, flagged, flags = Table([], []), Table([], []), []
    last: float | None = None
    for p in points:
        at = p.at.timestamp()
        if last is not None and at - last > GAP_INTERVALS * interval_s:
            line.t.append((last + at) / 2)
            line.v.append(None)
        last = at
        if p.valid and p.value is not None:
            line.t.append(at)
            line.v.append(p.value)
            continue
        line.t.append(at)
        line.v.append(None)
        if p.value is not None:
            flagged.t.append(at)
            flagged.v.append(p.value)
            flags.append(p.flag)
    return line, flagged, flags


def smoothed(line: Table) -> Table:
    """Savitzky–Golay over each unbroken run of the line: a gap stays a gap, never smoothed
    over (a filter across an outage would invent values inside it)."""
    out = Table([], [])
    run: list[tuple[float, float]] = []

    def flush() -> None:
        values = savgol_smooth([v for _, v in run], SAVGOL_WINDOW, SAVGOL_ORDER)
        out.t.extend(t for t, _ in run)
        out.v.extend(values)
        run.clear()

    for t, v in zip(line.t, line.v, strict=True):
        if v is not None:
            run.append((t, v))
        elif run:
            flush()
            out.t.append(t)
            out.v.append(None)
    if run:
        flush()
    return out


def averages(points: Sequence[q.SeriesPoint], period: timedelta) -> Table:
    """Valid means at their window's middle (a 10:00–11:00 mean is drawn at 10:30)."""
    half = period.total_seconds() / 2
    out = Table([], [])
    for p in points:
        out.t.append(p.at.timestamp() + half)
        out.v.append(p.value if p.valid else None)
    return out


def value_bounds(tables: Sequence[Table]) -> tuple[float | None, float | None]:
    values = [v for table in tables for v in table.v if v is not None]
    return (min(values), max(values)) if values else (None, None)


def chart_payload(
    *,
    source_id: str,
    parameter: str,
    unit: str,
    window: str,
    start: datetime,
    end: datetime,
    measured: Sequence[q.SeriesPoint],
    measured_interval_s: float,
    measured_label: str,
    means: Sequence[q.SeriesPoint],
    means_period: timedelta,
    means_label: str,
    limits: list[dict[str, Any]],
    lang: Lang,
) -> dict[str, Any]:
    """The JSON one chart draws from (see the module docstring)."""
    line, flagged, flags = split_measured(measured, measured_interval_s)
    smooth = smoothed(line)
    avg = averages(means, means_period)
    lo, hi = value_bounds([line, flagged, smooth, avg])
    return {
        "source_id": source_id,
        "parameter": parameter,
        "unit": unit,
        "window": window,
        "start": start.timestamp(),
        "end": end.timestamp(),
        "timezone": LOCAL_TZ.key,
        "series": [
            {"key": "measured", "label": measured_label, **line.json()},
            {
                "key": "smoothed",
                "label": _text(LABELS["smoothed"], lang),
                "method": f"savgol({SAVGOL_WINDOW},{SAVGOL_ORDER})",
                **smooth.json(),
            },
            {"key": "average", "label": means_label, **avg.json()},
            {
                "key": "flagged",
                "label": _text(LABELS["flagged"], lang),
                "flags": flags,
                **flagged.json(),
            },
        ],
        "limits": limits,
        "min": lo,
        "max": hi,
    }


# --- routes ------------------------------------------------------------------------------------


def _lang(request: Request) -> Lang:
    return (
        parse_lang(request.query_params.get("lang"))
        or parse_lang(request.cookies.get(LANG_COOKIE))
        or Lang.VI
    )


@cache
def _registry(path: Path | None) -> Registry:
    return load_registry(path)


def registry_for(settings: Settings) -> Registry:
    """The registry the worker judges with (read once per path: it changes with a deploy)."""
    return _registry(settings.registry_path)


def build_router(
    settings: Settings,
    *,
    dependencies: Sequence[Depends] = (),
    now: Clock = utc_now,
) -> APIRouter:
    """``GET /api/sources/{id}/chart`` and ``GET /api/violations/{id}/chart``."""
    router = APIRouter(tags=["charts"], dependencies=list(dependencies))

    @router.get("/api/sources/{source_id}/chart", response_model=ChartData)
    async def source_chart(
        request: Request,
        source_id: str,
        parameter: str,
        window: WindowKey = "24h",
        end: datetime | None = None,
    ) -> dict[str, Any]:
        """One parameter over the last 24 h, 7 days or 30 days (ending ``end``, default now):
        measured, Savitzky–Golay smoothed (display only, computed on the fly), regulatory
        means, QC-flagged values, and the source's limits with their basis."""
        lang = _lang(request)
        spec = WINDOWS[window]
        end = (end or now()).astimezone(UTC)
        start = end - spec.span
        async with request.app.state.pool.connection() as conn:
            src = await q.get_source(conn, source_id)
            if src is None:
                raise HTTPException(404, f"no source {source_id!r}")
            if src.parameters and parameter not in src.parameters:
                known = ", ".join(src.parameters)
                raise HTTPException(404, f"{source_id} measures no {parameter!r} ({known})")
            measured = await q.series(conn, source_id, parameter, start, end, spec.measured)
            means = await q.series(conn, source_id, parameter, start, end, spec.average)
            latest = await q.latest_values(conn, source_id)
        units = {v.parameter: v.unit for v in latest}
        day = end.astimezone(LOCAL_TZ).date()
        limits = limits_by_parameter(source_limits(registry_for(settings), source_id, day)).get(
            parameter, []
        )
        unit = units.get(parameter) or (limits[0].unit if limits else "")
        raw = spec.measured is q.Resolution.RAW
        return chart_payload(
            source_id=source_id,
            parameter=parameter,
            unit=unit,
            window=window,
            start=start,
            end=end,
            measured=measured,
            measured_interval_s=src.interval_s if raw else 3600,
            measured_label=_text(LABELS["measured_raw" if raw else "measured_hourly"], lang),
            means=means,
            means_period=spec.average_period,
            means_label=_text(LABELS[f"average_{spec.average.value}"], lang),
            limits=limit_lines(limits, lang),
            lang=lang,
        )

    @router.get("/api/violations/{violation_id}/chart", response_model=ChartData)
    async def violation_chart(request: Request, violation_id: str) -> dict[str, Any]:
        """The episode from 12 h before it to 6 h after (or now), against the limit it was
        judged on."""
        lang = _lang(request)
        async with request.app.state.pool.connection() as conn:
            found = await q.violations_by_id(conn, [violation_id])
            if not found:
                raise HTTPException(404, f"no violation {violation_id!r}")
            v = found[0]
            src = await q.get_source(conn, v.source_id)
            start = v.started_at - timedelta(hours=12)
            end = max(min((v.ended_at or now()) + timedelta(hours=6), now()), v.last_at)
            raw = await q.series(conn, v.source_id, v.parameter, start, end, q.Resolution.RAW)
            hourly = await q.series(conn, v.source_id, v.parameter, start, end, q.Resolution.HOURLY)
            units = {x.parameter: x.unit for x in await q.latest_values(conn, v.source_id)}
        lines = []
        if v.limit is not None:
            known = v.period in {b.value for b in Basis}
            basis = BASIS_TEXT[Basis(v.period)] if known else None
            lines.append(
                {
                    "value": v.limit,
                    "label": f"{_text(LABELS['limit'], lang)} {_num(v.limit)}"
                    + (f" · {_text(basis, lang)}" if basis else ""),
                    "basis": v.period,
                    "rule_id": v.rule_id,
                    "legal_basis": v.legal_basis,
                }
            )
        return chart_payload(
            source_id=v.source_id,
            parameter=v.parameter,
            unit=units.get(v.parameter, ""),
            window="episode",
            start=start,
            end=end,
            measured=raw,
            measured_interval_s=src.interval_s if src else 300,
            measured_label=_text(LABELS["measured_raw"], lang),
            means=hourly,
            means_period=timedelta(hours=1),
            means_label=_text(LABELS["average_hourly"], lang),
            limits=lines,
            lang=lang,
        )

    return router
