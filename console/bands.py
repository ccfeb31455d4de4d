"""Official band colours as CSS classes, so pages need no ``style=`` attribute (the CSP forbids
inline styles, console/headers.py).

The colours stay where they are defined — VN_AQI in ``AQI_BANDS`` below (Decision
1459/QĐ-TCMT), VN_WQI in the Decision 1460 tables — and ``stylesheet()`` turns them into the
rules served at /bands.css; templates only name a class. A colour never stands alone: the board
prints the VN_AQI category's name next to it (``aqi_name``, Decision 1459 Table 1).
"""

from __future__ import annotations

from functools import cache

from console.i18n import Lang
from thresholds.aqi import CATEGORIES, category
from thresholds.water_quality import wqi_category, wqi_tables

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


def aqi_name(aqi: int | None, lang: Lang) -> str:
    """The category's name (Decision 1459 Table 1: Tốt … Nguy hại); above 500: Nguy hại."""
    if aqi is None:
        return ""
    info = CATEGORIES[category(max(aqi, 0))]
    return info.name_vi if lang is Lang.VI else info.name_en


def aqi_class(aqi: int | None) -> str:
    """``aqi-<category>`` of a VN_AQI value (above 500: the last band), ``aqi-none`` for None."""
    if aqi is None:
        return "aqi-none"
    for upper, key, _ in AQI_BANDS:
        if aqi <= upper:
            return f"aqi-{key}"
    return f"aqi-{AQI_BANDS[-1][1]}"


def wqi_class(value: int | None) -> str:
    """``wqi-<lower bound>`` of a VN_WQI value's band, ``wqi-none`` outside the table."""
    category = wqi_category(value)
    return f"wqi-{category.low}" if category else "wqi-none"


@cache
def stylesheet() -> str:
    rules = [
        f".aqi-{key} {{ background: {colour}; color: {aqi_text_colour(upper)}; }}"
        for upper, key, colour in AQI_BANDS
    ]
    for c in wqi_tables()["categories"]:
        r, g, b = c["rgb"]
        rules.append(f".wqi-{c['low']} {{ background: #{r:02x}{g:02x}{b:02x}; }}")
    rules.append(".aqi-none, .wqi-none { background: #cccccc; }")
    return "\n".join(rules) + "\n"
