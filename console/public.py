"""The public air and water page (issue 20): no login, for citizens and the province's app.

``GET /public`` is the page (Vietnamese by default, ``?lang=en`` or an English Accept-Language for
English); ``GET /public/api/stations.json`` is the same data as a bilingual JSON feed. Both read
only ``console.public_data`` (public stations, VN_AQI, water class and VN_WQI), take no session,
set no cookie and may be cached by browsers and proxies for a minute. The page runs under the
console's Content-Security-Policy (its script and styles come from /static); a configured map tile
server's origin is the one addition, to img-src, on these paths only.
"""

from __future__ import annotations

import logging
from datetime import datetime
from pathlib import Path
from typing import Any

import psycopg
from fastapi import APIRouter, FastAPI, Request, Response
from fastapi.responses import HTMLResponse, JSONResponse
from fastapi.templating import Jinja2Templates
from markupsafe import Markup
from psycopg_pool import PoolTimeout

from console.bands import aqi_class, aqi_text_colour, wqi_class
from console.i18n import Lang, parse_lang
from console.public_data import CURRENT_MAX_AGE, PublicFeed, PublicStation, public_feed
from console.public_map import NO_DATA, Marker, station_map, tile_origin
from core.clock import Clock, utc_now
from core.settings import Settings
from thresholds.averaging import LOCAL_TZ

log = logging.getLogger(__name__)

HERE = Path(__file__).parent
PREFIX = "/public"
CACHE_CONTROL = "public, max-age=60"
FEED_PATH = f"{PREFIX}/api/stations.json"


#: key → (Vietnamese, English): the page's own wording (console/i18n.py holds the console's).
WORDS: dict[str, tuple[str, str]] = {
    "title": (
        "Chất lượng không khí và nước mặt tỉnh Hải Dương",
        "Air and surface water quality, Hải Dương province",
    ),
    "map": ("Bản đồ trạm quan trắc", "Map of the monitoring stations"),
    "legend": ("Thang VN_AQI (QĐ 1459/QĐ-TCMT, Bảng 1)", "VN_AQI scale (Decision 1459, Table 1)"),
    "shapes": (
        "● trạm không khí: VN_AQI giờ · ■ trạm nước mặt: VN_WQI ngày gần nhất (QĐ 1460/QĐ-TCMT)",
        "● air station: hourly VN_AQI · ■ surface water station: latest daily VN_WQI (Decision"
        " 1460/QĐ-TCMT)",
    ),
    "ambient_air": ("Trạm không khí xung quanh", "Ambient air station"),
    "surface_water": ("Trạm nước mặt", "Surface water station"),
    "aqi_hour": ("VN_AQI giờ", "Hourly VN_AQI"),
    "at": ("lúc", "at"),
    "dominant": ("Thông số có AQI cao nhất", "Parameter with the highest sub-index"),
    "sub_indices": ("AQI từng thông số", "Sub-indices"),
    "no_current": ("Chưa có số liệu hiện tại", "No current value"),
    "health": ("Ảnh hưởng tới sức khỏe", "Effect on health"),
    "general": ("Khuyến nghị cho người bình thường", "Advice for ordinary people"),
    "sensitive": ("Khuyến nghị cho nhóm người nhạy cảm", "Advice for sensitive groups"),
    "chart": ("VN_AQI giờ, 24 giờ qua", "Hourly VN_AQI, last 24 hours"),
    "water_class": ("Loại nước (QCVN 08:2023)", "Water class (QCVN 08:2023)"),
    "wqi": ("VN_WQI (QĐ 1460/QĐ-TCMT)", "VN_WQI (Decision 1460)"),
    "day": ("Ngày", "Day"),
    "no_water": ("Chưa có số liệu ngày", "No daily result yet"),
    "wqi_minimum": (
        "chưa đủ 3/5 nhóm thông số: chỉ để tham khảo",
        "fewer than 3 of 5 parameter groups: for information only",
    ),
    "method": ("Phương pháp và nguồn", "Method and sources"),
    "method_aqi": (
        "VN_AQI giờ tính theo Quyết định 1459/QĐ-TCMT ngày 12/11/2019 của Tổng cục Môi trường"
        " (mục 2: Nowcast cho PM10, PM2.5; trung bình 1 giờ cho SO2, NO2, CO, O3; AQI là giá trị"
        " lớn nhất của các AQI thông số). Số liệu từ các trạm quan trắc tự động, liên tục"
        " của tỉnh.",
        "Hourly VN_AQI computed per Decision 1459/QĐ-TCMT of 12/11/2019 (section 2: NowCast for"
        " PM10 and PM2.5, 1-hour means for SO2, NO2, CO and O3; the AQI is the largest"
        " sub-index). Data from the province's automatic continuous monitoring stations.",
    ),
    "advice_source": (
        "Ảnh hưởng và khuyến nghị: QĐ 1459/QĐ-TCMT, mục 3, Bảng 4 và Bảng 5.",
        "Health effects and advice: Decision 1459/QĐ-TCMT, section 3, Tables 4 and 5. The"
        " English text is quantrac's translation; the Vietnamese text of the decision prevails.",
    ),
    "unverified": (
        "Nội dung khuyến nghị chép từ bản chép lại của quyết định, chưa đối chiếu với bản gốc.",
        "The advice was copied from a transcription of the decision, not yet checked against"
        " the signed original.",
    ),
    "current_rule": (
        "Giá trị hiện tại: giờ gần nhất trong vòng {h} giờ.",
        "Current value: the newest hour within {h} hours.",
    ),
    "water_source": (
        "Nước mặt: loại nước theo QCVN 08:2023/BTNMT, VN_WQI theo QĐ 1460/QĐ-TCMT.",
        "Surface water: class per QCVN 08:2023/BTNMT, VN_WQI per Decision 1460/QĐ-TCMT.",
    ),
    "unavailable": (
        "Số liệu tạm thời không truy cập được; vui lòng thử lại sau.",
        "The data is temporarily unavailable; please try again later.",
    ),
}


def word(key: str, lang: Lang) -> str:
    vi, en = WORDS[key]
    return vi if lang is Lang.VI else en


def accept_language(header: str | None) -> Lang | None:
    """The first of vi/en in an Accept-Language header, by q (e.g. ``en-GB,en;q=0.9``)."""
    ranked: list[tuple[float, int, Lang]] = []
    for i, part in enumerate((header or "").split(",")):
        tag, _, params = part.strip().partition(";")
        q = 1.0
        if params.strip().startswith("q="):
            try:
                q = float(params.strip()[2:])
            except ValueError:
                continue
        lang = parse_lang(tag.strip().lower().split("-")[0])
        if lang and q > 0:
            ranked.append((-q, i, lang))
    return min(ranked)[2] if ranked else None


def page_lang(request: Request) -> Lang:
    """``?lang=vi|en``, else Accept-Language, else Vietnamese. No cookie: the answer depends
    only on the URL and Accept-Language, so shared caches may keep it (``Vary``)."""
    return (
        parse_lang(request.query_params.get("lang"))
        or accept_language(request.headers.get("accept-language"))
        or Lang.VI
    )


def _markers(feed: PublicFeed, lang: Lang) -> list[Marker]:
    out = []
    for s in feed.stations:
        if s.lat is None or s.lon is None:
            continue
        if s.kind == "ambient_air":
            a = s.aqi
            label = str(a.aqi) if a else "–"
            if a:
                name = a.category.name.vi if lang is Lang.VI else a.category.name.en
                value = f"VN_AQI {a.aqi} ({name})"
            else:
                value = word("no_current", lang)
            out.append(
                Marker(
                    s.id,
                    label,
                    f"{s.name}: {value}",
                    s.lat,
                    s.lon,
                    a.category.hex if a else NO_DATA,
                    "circle",
                    aqi_text_colour(a.aqi) if a else "#000",
                )
            )
        else:
            w = s.water
            label = str(w.wqi) if w and w.wqi is not None else "–"
            text = (
                f"{word('water_class', lang)} {w.water_class or '–'}, VN_WQI {label}"
                if w
                else word("no_water", lang)
            )
            out.append(
                Marker(
                    s.id,
                    label,
                    f"{s.name}: {text}",
                    s.lat,
                    s.lon,
                    (w.wqi_hex or NO_DATA) if w else NO_DATA,
                    "square",
                )
            )
    return out


def build_public_router(settings: Settings, clock: Clock = utc_now) -> APIRouter:
    router = APIRouter(prefix=PREFIX, tags=["public"])
    templates = Jinja2Templates(directory=HERE / "templates")
    templates.env.globals.update(aqi_class=aqi_class, wqi_class=wqi_class)

    def localtime(value: datetime | None, fmt: str = "%H:%M %d/%m/%Y") -> str:
        return value.astimezone(LOCAL_TZ).strftime(fmt) if value else "—"

    templates.env.filters["localtime"] = localtime

    def _unavailable(lang: Lang, exc: Exception, *, json: bool) -> Response:
        log.warning("public page: database unavailable (%s)", exc.__class__.__name__)
        headers = {"Cache-Control": "no-store", "Retry-After": "30"}
        if json:
            return JSONResponse({"detail": word("unavailable", Lang.EN)}, 503, headers=headers)
        return HTMLResponse(f"<!doctype html><p>{word('unavailable', lang)}</p>", 503, headers)

    # HEAD too: caches, CDNs and uptime checks ask for it
    @router.head("/api/stations.json", include_in_schema=False)
    @router.get(
        "/api/stations.json",
        response_model=PublicFeed,
        responses={503: {"description": "the database is unreachable"}},
    )
    async def public_stations_json(request: Request) -> Response:
        """Every public station (ambient air, surface water): current hourly VN_AQI with the
        Decision 1459 category, colour and advice in Vietnamese and English, 24 h of hourly
        VN_AQI, and the newest surface-water class and VN_WQI. No login; cacheable 60 s."""
        try:
            async with request.app.state.pool.connection() as conn:
                feed = await public_feed(conn, clock())
        except (psycopg.OperationalError, PoolTimeout) as exc:
            return _unavailable(Lang.EN, exc, json=True)
        return Response(
            feed.model_dump_json(),
            media_type="application/json",
            headers={"Cache-Control": CACHE_CONTROL, "Access-Control-Allow-Origin": "*"},
        )

    @router.api_route(
        "", methods=["GET", "HEAD"], response_class=HTMLResponse, include_in_schema=False
    )
    async def public_page(request: Request) -> Response:
        lang = page_lang(request)
        try:
            async with request.app.state.pool.connection() as conn:
                feed = await public_feed(conn, clock())
        except (psycopg.OperationalError, PoolTimeout) as exc:
            return _unavailable(lang, exc, json=False)
        svg = station_map(
            _markers(feed, lang),
            zoom=settings.public_map_zoom,
            tile_url=settings.public_map_tile_url,
            title=word("map", lang),
        )
        stations: list[PublicStation] = feed.stations
        response = templates.TemplateResponse(
            request,
            "public.html",
            {
                "w": lambda key: word(key, lang),
                "lang": lang,
                "en": lang is Lang.EN,
                "feed": feed,
                "stations": stations,
                "map_svg": Markup(svg),
                "feed_path": FEED_PATH,
                "current_hours": int(CURRENT_MAX_AGE.total_seconds() // 3600),
            },
        )
        response.headers["Cache-Control"] = CACHE_CONTROL
        response.headers["Vary"] = "Accept-Language"
        return response

    return router


def with_img_origin(csp: str, origin: str) -> str:
    """The CSP with ``origin`` added to img-src (for map tiles)."""
    return "; ".join(
        f"{d} {origin}" if d.strip().startswith("img-src ") else d for d in csp.split("; ")
    )


def install_public(app: FastAPI, settings: Settings, clock: Clock = utc_now) -> None:
    """Add the public routes; call after the console's security-header middleware, so that this
    one (outermost) sees the CSP it set and widens img-src for a configured tile server.
    ``clock`` is what "now" is for the last 24 hours and the current value (tests pin it)."""
    template = settings.public_map_tile_url
    origin = tile_origin(template)
    if template and (origin is None or not all(k in template for k in ("{z}", "{x}", "{y}"))):
        raise ValueError(
            f"QUANTRAC_PUBLIC_MAP_TILE_URL={template!r}: expected an http(s) URL template with "
            "{z}, {x} and {y}, e.g. https://tile.openstreetmap.org/{z}/{x}/{y}.png"
        )
    app.include_router(build_public_router(settings, clock))
    if origin is None:
        return

    @app.middleware("http")
    async def tiles_in_csp(request: Request, call_next: Any) -> Response:
        response: Response = await call_next(request)
        if request.url.path == PREFIX and "content-security-policy" in response.headers:
            csp = response.headers["content-security-policy"]
            response.headers["Content-Security-Policy"] = with_img_origin(csp, origin)
        return response
