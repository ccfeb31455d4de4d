"""The public page's data: what citizens and the province's app may see, and nothing else.

Only the ambient-air and surface-water stations are public (never wastewater outfalls or stacks,
whose data belong to the facilities' files). The queries name their columns: the station's name,
district and coordinates, its hourly VN_AQI (value, dominant parameter, sub-indices) and its
latest surface-water day (class, VN_WQI). Violations, acknowledgements, the audit log, users and
facilities are never read here, so no change elsewhere can leak them through this page.

The feed is bilingual (Vietnamese, the decision's text; English, quantrac's translation), so one
cached answer serves every reader.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta
from typing import Any, Literal

from psycopg import AsyncConnection
from pydantic import BaseModel, Field

from thresholds.aqi import CATEGORIES, category
from thresholds.aqi_advice import advice_for, advice_source
from thresholds.water_quality import wqi_category

PUBLIC_KINDS = ("ambient_air", "surface_water")
CHART_HOURS = 24
# A station's newest hourly VN_AQI counts as current while its hour started at most this long
# ago (the hour being measured plus two hours of delivery delay): quantrac's choice, the decision
# names no age. Older: "no current value", the chart still shows what there is.
CURRENT_MAX_AGE = timedelta(hours=3)


class Text(BaseModel):
    vi: str
    en: str


class AqiCategoryOut(BaseModel):
    key: str = Field(description="good | moderate | poor | bad | very_bad | hazardous")
    name: Text = Field(description="Decision 1459/QĐ-TCMT, Table 1")
    colour: Text
    rgb: tuple[int, int, int]
    hex: str
    low: int
    high: int


class AqiAdviceOut(BaseModel):
    health: Text = Field(description="Decision 1459/QĐ-TCMT, section 3, Table 4")
    general: Text = Field(description="Table 5: ordinary people")
    sensitive: Text = Field(description="Table 5: sensitive groups")


class AqiHour(BaseModel):
    at: datetime = Field(description="start of the hour (UTC)")
    aqi: int | None


class CurrentAqi(BaseModel):
    aqi: int
    at: datetime = Field(description="start of the hour (UTC)")
    dominant: str | None = Field(description="the parameter with the highest sub-index")
    sub_indices: dict[str, int | None]
    category: AqiCategoryOut
    advice: AqiAdviceOut


class WaterOut(BaseModel):
    day: date = Field(description="local day (Asia/Ho_Chi_Minh)")
    water_class: str | None = Field(description="QCVN 08:2023 class A–D")
    wqi: int | None = Field(description="VN_WQI, Decision 1460/QĐ-TCMT")
    wqi_category: Text | None
    wqi_hex: str | None
    wqi_meets_minimum: bool = Field(
        description="false: fewer than 3 of 5 parameter groups; the index is for information"
    )


class PublicStation(BaseModel):
    id: str
    name: str
    kind: Literal["ambient_air", "surface_water"]
    district: str
    lat: float | None
    lon: float | None
    aqi: CurrentAqi | None = Field(None, description="air stations: the current hourly VN_AQI")
    last_24h: list[AqiHour] = Field(default_factory=list, description="hourly VN_AQI, 24 h")
    water: WaterOut | None = Field(None, description="surface water: the newest day")


class PublicSource(BaseModel):
    aqi_method: str
    advice: str
    advice_verified: bool
    advice_translation_en: str
    water: str


class PublicFeed(BaseModel):
    generated_at: datetime
    stations: list[PublicStation]
    categories: list[AqiCategoryOut] = Field(description="Decision 1459/QĐ-TCMT, Table 1")
    source: PublicSource


def category_out(aqi: int) -> AqiCategoryOut:
    key = category(min(aqi, 500))
    info = CATEGORIES[key]
    return AqiCategoryOut(
        key=key.value,
        name=Text(vi=info.name_vi, en=info.name_en),
        colour=Text(vi=info.colour_vi, en=info.colour_en),
        rgb=info.rgb,
        hex=info.hex,
        low=info.low,
        high=info.high,
    )


def advice_out(aqi: int) -> AqiAdviceOut:
    a = advice_for(aqi)
    return AqiAdviceOut(
        health=Text(vi=a.health.vi, en=a.health.en),
        general=Text(vi=a.general.vi, en=a.general.en),
        sensitive=Text(vi=a.sensitive.vi, en=a.sensitive.en),
    )


def _water(row: tuple[Any, ...] | None) -> WaterOut | None:
    if row is None:
        return None
    day, water_class, wqi, meets = row
    cat = wqi_category(wqi)
    return WaterOut(
        day=day,
        water_class=water_class,
        wqi=wqi,
        wqi_category=Text(vi=cat.name_vi, en=cat.name_en) if cat else None,
        wqi_hex=cat.hex if cat else None,
        wqi_meets_minimum=meets,
    )


async def public_feed(conn: AsyncConnection[Any], now: datetime) -> PublicFeed:
    """Every public station with its current VN_AQI and advice, 24 h of hourly VN_AQI, and its
    newest surface-water day."""
    cur = await conn.execute(
        "SELECT id, name, kind, district, lat, lon FROM sources WHERE kind = ANY(%s) ORDER BY id",
        (list(PUBLIC_KINDS),),
    )
    stations = await cur.fetchall()
    ids = [s[0] for s in stations]
    # the last 24 complete hours (and the current one, should its row exist already)
    since = now.replace(minute=0, second=0, microsecond=0) - timedelta(hours=CHART_HOURS)
    cur = await conn.execute(
        "SELECT source_id, window_start, aqi, dominant, sub_indices FROM aqi"
        " WHERE kind = 'hourly' AND source_id = ANY(%s) AND window_start >= %s"
        " AND window_start <= %s ORDER BY source_id, window_start",
        (ids, since, now),
    )
    hours: dict[str, list[tuple[Any, ...]]] = {}
    for sid, *rest in await cur.fetchall():
        hours.setdefault(sid, []).append(tuple(rest))
    cur = await conn.execute(
        "SELECT DISTINCT ON (source_id) source_id, day, water_class, wqi, wqi_meets_minimum"
        " FROM water_quality_days WHERE source_id = ANY(%s) ORDER BY source_id, day DESC",
        (ids,),
    )
    water = {sid: tuple(rest) for sid, *rest in await cur.fetchall()}
    out = []
    for sid, name, kind, district, lat, lon in stations:
        rows = hours.get(sid, [])
        current = None
        latest = next((r for r in reversed(rows) if r[1] is not None), None)
        if latest is not None and now - latest[0] <= CURRENT_MAX_AGE:
            at, aqi, dominant, subs = latest
            current = CurrentAqi(
                aqi=aqi,
                at=at,
                dominant=dominant,
                sub_indices={str(k): v for k, v in (subs or {}).items()},
                category=category_out(aqi),
                advice=advice_out(aqi),
            )
        out.append(
            PublicStation(
                id=sid,
                name=name,
                kind=kind,
                district=district,
                lat=lat,
                lon=lon,
                aqi=current,
                last_24h=[AqiHour(at=r[0], aqi=r[1]) for r in rows],
                water=_water(water.get(sid)) if kind == "surface_water" else None,
            )
        )
    src = advice_source()
    return PublicFeed(
        generated_at=now,
        stations=out,
        categories=[category_out(c.low) for c in CATEGORIES.values()],
        source=PublicSource(
            aqi_method="VN_AQI giờ / hourly VN_AQI — Quyết định 1459/QĐ-TCMT (12/11/2019), mục 2",
            advice=f"{src.decision}: {src.tables['health']}, {src.tables['activities']}",
            advice_verified=src.verified,
            advice_translation_en=src.translation_en,
            water="QCVN 08:2023/BTNMT (class); VN_WQI — Quyết định 1460/QĐ-TCMT (12/11/2019)",
        ),
    )
