"""Inline SVG charts rendered on the server: no charting library, nothing fetched at run time."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from html import escape
from zoneinfo import ZoneInfo

from storage.queries import SeriesPoint


@dataclass(frozen=True)
class Line:
    label: str
    points: list[SeriesPoint]
    css: str  # class name: colour lives in the stylesheet
    dots: bool = False


#: VN_AQI bands (Decision 1459/QĐ-TCMT, Table 6): upper bound, category key, RGB colour.
AQI_BANDS: tuple[tuple[int, str, str], ...] = (
    (50, "good", "rgb(0,228,0)"),
    (100, "moderate", "rgb(255,255,0)"),
    (150, "unhealthy_sensitive", "rgb(255,126,0)"),
    (200, "unhealthy", "rgb(255,0,0)"),
    (300, "very_unhealthy", "rgb(143,63,151)"),
    (500, "hazardous", "rgb(126,0,35)"),
)


def aqi_colour(aqi: int | None) -> str | None:
    """Official colour of a VN_AQI value; values above 500 keep the maroon of the last band."""
    if aqi is None:
        return None
    for upper, _, colour in AQI_BANDS:
        if aqi <= upper:
            return colour
    return AQI_BANDS[-1][2]


def aqi_text_colour(aqi: int | None) -> str:
    """Black on the light bands, white on the dark ones, for legibility."""
    return "#000" if aqi is None or aqi <= 150 else "#fff"


def _ticks(lo: float, hi: float, n: int = 4) -> list[float]:
    if hi <= lo:
        return [lo]
    step = (hi - lo) / n
    return [lo + i * step for i in range(n + 1)]


def line_chart(
    lines: list[Line],
    *,
    start: datetime,
    end: datetime,
    limit: float | None = None,
    tz: str = "Asia/Ho_Chi_Minh",
    unit: str = "",
    width: int = 720,
    height: int = 220,
    time_format: str = "%d/%m %H:%M",
) -> str:
    """An SVG line chart of ``lines`` over [start, end] with an optional dashed limit line."""
    pad_l, pad_r, pad_t, pad_b = 56, 12, 12, 28
    w, h = width - pad_l - pad_r, height - pad_t - pad_b
    values = [p.value for line in lines for p in line.points if p.value is not None]
    if limit is not None:
        values.append(limit)
    lo, hi = (min(values), max(values)) if values else (0.0, 1.0)
    lo = min(lo, 0.0) if lo >= 0 else lo
    if hi - lo < 1e-9:
        hi = lo + 1.0
    hi += (hi - lo) * 0.05
    t0, t1 = start.timestamp(), max(end.timestamp(), start.timestamp() + 1)

    def x(at: datetime) -> float:
        return pad_l + (at.timestamp() - t0) / (t1 - t0) * w

    def y(v: float) -> float:
        return pad_t + h - (v - lo) / (hi - lo) * h

    parts = [
        f'<svg class="chart" viewBox="0 0 {width} {height}" width="100%" role="img"'
        f' xmlns="http://www.w3.org/2000/svg">',
        f'<rect class="plot" x="{pad_l}" y="{pad_t}" width="{w}" height="{h}"/>',
    ]
    for tick in _ticks(lo, hi):
        parts.append(
            f'<line class="grid" x1="{pad_l}" x2="{pad_l + w}" y1="{y(tick):.1f}"'
            f' y2="{y(tick):.1f}"/><text class="axis" x="{pad_l - 4}" y="{y(tick) + 4:.1f}"'
            f' text-anchor="end">{tick:.4g}</text>'
        )
    zone = ZoneInfo(tz)
    for i in range(5):
        at = datetime.fromtimestamp(t0 + (t1 - t0) * i / 4, zone)
        anchor = "start" if i == 0 else "end" if i == 4 else "middle"
        parts.append(
            f'<text class="axis" x="{x(at):.1f}" y="{height - 8}" text-anchor="{anchor}">'
            f"{escape(at.strftime(time_format))}</text>"
        )
    for line in lines:
        segments: list[list[str]] = [[]]
        for p in line.points:
            if p.value is None or not p.valid:
                if segments[-1]:
                    segments.append([])
                continue
            segments[-1].append(f"{x(p.at):.1f},{y(p.value):.1f}")
        for seg in segments:
            if len(seg) > 1:
                parts.append(f'<polyline class="{line.css}" points="{" ".join(seg)}"/>')
        if line.dots or sum(len(s) for s in segments) < 3:
            for p in line.points:
                if p.value is not None and p.valid:
                    parts.append(
                        f'<circle class="{line.css}" cx="{x(p.at):.1f}" cy="{y(p.value):.1f}"'
                        ' r="2.5"/>'
                    )
    if limit is not None:
        parts.append(
            f'<line class="limit" x1="{pad_l}" x2="{pad_l + w}" y1="{y(limit):.1f}"'
            f' y2="{y(limit):.1f}"/><text class="limit-label" x="{pad_l + w - 4}"'
            f' y="{y(limit) - 4:.1f}" text-anchor="end">{limit:.4g} {escape(unit)}</text>'
        )
    legend_x = pad_l + 6
    for line in lines:
        parts.append(
            f'<text class="legend {line.css}" x="{legend_x}" y="{pad_t + 14}">'
            f"{escape(line.label)}</text>"
        )
        legend_x += 9 * len(line.label) + 24
    if not values:
        parts.append(
            f'<text class="axis" x="{pad_l + w / 2}" y="{pad_t + h / 2}" text-anchor="middle">'
            "—</text>"
        )
    parts.append("</svg>")
    return "".join(parts)
