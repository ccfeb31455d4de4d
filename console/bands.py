"""Official band colours as CSS classes, so pages need no ``style=`` attribute (the CSP forbids
inline styles, console/headers.py).

The colours stay where they are defined — VN_AQI in ``console.charts.AQI_BANDS`` (Decision
1459/QĐ-TCMT), VN_WQI in the Decision 1460 tables — and ``stylesheet()`` turns them into the
rules served at /bands.css; templates only name a class.
"""

from __future__ import annotations

from functools import cache

from console.charts import AQI_BANDS, aqi_text_colour
from thresholds.water_quality import wqi_category, wqi_tables


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
