"""The public page and its JSON feed (issue 20) against a real PostgreSQL.

The database holds the real registry's sources, 24 hours of hourly VN_AQI
for every ambient-air station and a surface-water day for every river station, written through
the pipeline's BatchWriter, and operator data that must never show: a violation of a wastewater
outfall with an acknowledgement note, an audit entry, users. The app runs in-process
(httpx.ASGITransport), with no session cookie.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
from fastapi import FastAPI
from markupsafe import escape
from psycopg.types.json import Jsonb
from psycopg_pool import AsyncConnectionPool

from console.app import create_app
from console.auth import create_user
from console.headers import CSP
from core.parameters import SourceKind
from core.records import AqiRecord, WaterQualityDay
from core.settings import Settings
from stations.registry import Registry, load_registry
from storage.migrate import migrate
from storage.rows import aqi_row, water_quality_row
from storage.writer import AQI, WATER_QUALITY_DAYS, BatchWriter
from thresholds.aqi import CATEGORIES, category
from thresholds.aqi_advice import advice_for
from thresholds.averaging import LOCAL_TZ

pytestmark = pytest.mark.integration

REGISTRY: Registry = load_registry()
AIR = [s.id for s in REGISTRY.of_kind(SourceKind.AMBIENT_AIR)]
WATER = [s.id for s in REGISTRY.of_kind(SourceKind.SURFACE_WATER)]
EMISSION = [s for s in REGISTRY.sources if s.kind.is_emission]
# The current hourly VN_AQI of each air station: every Table 1 category appears.
CURRENT = dict(zip(AIR, [30, 75, 120, 180, 250, 350, 45, 95, 101, 51], strict=True))
WQI = dict(zip(WATER, [95, 80, 60, 40, 20, 5, 88, 70, None, 55], strict=True))
CLASSES = dict(zip(WATER, ["A", "B", "C", "D", "D", "D", "A", "B", None, "C"], strict=True))
SECRETS = ["SECRET-ACK-NOTE-4821", "SECRET-AUDIT-7731", "op-secret-user"]


def last_hour(now: datetime) -> datetime:
    """The start of the last complete hour."""
    return now.replace(minute=0, second=0, microsecond=0) - timedelta(hours=1)


async def _write(conninfo: str, now: datetime) -> None:
    pool = AsyncConnectionPool(conninfo, min_size=1, max_size=2, open=False)
    await pool.open(wait=True)
    try:
        aqi_rows = []
        hour0 = last_hour(now)
        for sid, aqi in CURRENT.items():
            for i in range(24):
                value = max(0, aqi - 3 * i) if i else aqi
                aqi_rows.append(
                    aqi_row(
                        AqiRecord(
                            source_id=sid,
                            kind="hourly",
                            window_start=hour0 - timedelta(hours=i),
                            aqi=value,
                            category=category(value).value,
                            dominant="PM2.5",
                            sub_indices={"PM2.5": value, "NO2": value // 2, "SO2": None},
                        )
                    )
                )
        await BatchWriter(pool, AQI).write(aqi_rows)
        today = now.astimezone(LOCAL_TZ).date()
        water_rows = []
        for sid in WATER:
            target = REGISTRY.get(sid).target_class
            for back, wqi in ((2, 99), (1, WQI[sid])):  # an older day first: the newest shows
                day = today - timedelta(days=back)
                start = datetime.combine(day, datetime.min.time(), LOCAL_TZ).astimezone(UTC)
                water_rows.append(
                    water_quality_row(
                        WaterQualityDay(
                            source_id=sid,
                            day=day.isoformat(),
                            day_start=start,
                            water_class=CLASSES[sid] if back == 1 else "A",
                            target_class=target,
                            alert=False,
                            wqi=wqi,
                            wqi_meets_minimum=False,
                            wqi_groups={"I": 100.0},
                            wqi_note="",
                            means={"DO": 6.1},
                            classes={"DO": "A"},
                            skipped={},
                            over_table1=[],
                            revision=1,
                        )
                    )
                )
        await BatchWriter(pool, WATER_QUALITY_DAYS).write(water_rows)
    finally:
        await pool.close()


def _operator_data(conninfo: str, now: datetime) -> None:
    """A violation of a wastewater outfall, its acknowledgement, an audit entry."""
    outfall = next(s.id for s in EMISSION)
    with psycopg.connect(conninfo, autocommit=True) as conn:
        conn.execute(
            "INSERT INTO violations (violation_id, kind, source_id, parameter, rule_id, period,"
            ' state, started_at, last_at, value, "limit", ratio, peak_value, peak_ratio,'
            " severity, legal_basis, last_seq) VALUES ('V-SECRET','exceedance',%s,'COD','r',"
            "'1h','open',%s,%s,300,100,3,300,3,'3-5','QCVN 40:2011',1)",
            (outfall, now - timedelta(hours=3), now - timedelta(hours=2)),
        )
        conn.execute(
            "INSERT INTO acknowledgements (violation_id, username, note) VALUES"
            " ('V-SECRET', 'op-secret-user', %s)",
            (SECRETS[0],),
        )
        conn.execute(
            "INSERT INTO audit_log (actor, action, target, detail) VALUES"
            " ('op-secret-user', 'acknowledge', 'violation:V-SECRET', %s)",
            (Jsonb({"note": SECRETS[1]}),),
        )
    create_user(conninfo, "op-secret-user", "correct horse battery", "operator")


def _permit(f: Any) -> str:
    return str(getattr(f.permit, "number", f.permit))


def _sources(conninfo: str) -> None:
    """The registry's sources as storage.sources.sync_sources mirrors them (facility name and
    permit on the emission points)."""
    with psycopg.connect(conninfo, autocommit=True) as conn:
        for s in REGISTRY.sources:
            f = REGISTRY.facility(s.facility) if s.facility else None
            conn.execute(
                "INSERT INTO sources (id, name, kind, district, lat, lon, facility_id, facility,"
                " permit, interval_s, spec) VALUES (%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s)",
                (
                    s.id,
                    s.name,
                    s.kind.value,
                    s.district.value,
                    s.lat,
                    s.lon,
                    f.id if f else None,
                    f.name if f else None,
                    _permit(f) if f else None,
                    s.interval_s,
                    Jsonb({"parameters": [{"code": p.code.value} for p in s.parameters]}),
                ),
            )


def seed_public(conninfo: str, now: datetime) -> None:
    migrate(conninfo)
    _sources(conninfo)
    asyncio.run(_write(conninfo, now))
    _operator_data(conninfo, now)


@pytest.fixture
def seeded_at() -> datetime:
    """The moment the data is seeded, and the app's "now": the feed's 24 hours and its current
    value are relative to it, so a test that straddles an hour's turn still sees 24."""
    return datetime.now(UTC)


@pytest.fixture
def public_db(database_url: str, seeded_at: datetime) -> str:
    seed_public(database_url, seeded_at)
    return database_url


@pytest.fixture
def public_app(public_db: str, seeded_at: datetime, tmp_path: Path) -> FastAPI:
    settings = Settings(database_url=public_db, data_dir=tmp_path)
    return create_app(settings, poll_interval_s=0.2, clock=lambda: seeded_at)


@pytest.fixture
async def anon(public_app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    async with (
        public_app.router.lifespan_context(public_app),
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=public_app), base_url="http://testserver"
        ) as client,
    ):
        yield client


def _by_id(feed: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {s["id"]: s for s in feed["stations"]}


async def test_feed_has_every_public_station_with_category_and_advice(
    anon: httpx.AsyncClient, seeded_at: datetime
) -> None:
    r = await anon.get("/public/api/stations.json")
    assert r.status_code == 200
    assert r.headers["cache-control"] == "public, max-age=60"
    assert r.headers["access-control-allow-origin"] == "*"
    assert "set-cookie" not in r.headers
    stations = _by_id(r.json())
    assert set(stations) == set(AIR) | set(WATER)  # no outfall, no stack
    for sid, aqi in CURRENT.items():
        s = stations[sid]
        assert s["kind"] == "ambient_air" and s["water"] is None
        assert s["lat"] == REGISTRY.get(sid).lat and s["lon"] == REGISTRY.get(sid).lon
        cur = s["aqi"]
        key = category(aqi)
        info, advice = CATEGORIES[key], advice_for(aqi)
        assert cur["aqi"] == aqi and cur["dominant"] == "PM2.5"
        assert cur["sub_indices"] == {"PM2.5": aqi, "NO2": aqi // 2, "SO2": None}
        assert cur["category"]["key"] == key.value
        assert cur["category"]["name"] == {"vi": info.name_vi, "en": info.name_en}
        assert cur["category"]["rgb"] == list(info.rgb) and cur["category"]["hex"] == info.hex
        assert cur["advice"]["health"] == {"vi": advice.health.vi, "en": advice.health.en}
        assert cur["advice"]["general"]["vi"] == advice.general.vi
        assert cur["advice"]["sensitive"]["vi"] == advice.sensitive.vi
        hours = s["last_24h"]
        assert len(hours) == 24 and hours[-1]["aqi"] == aqi  # oldest first
        assert hours[0]["aqi"] == max(0, aqi - 3 * 23)
    assert {stations[s]["aqi"]["category"]["key"] for s in AIR} == {c.value for c in CATEGORIES}
    yesterday = (seeded_at.astimezone(LOCAL_TZ).date() - timedelta(days=1)).isoformat()
    for sid in WATER:
        s = stations[sid]
        assert s["kind"] == "surface_water" and s["aqi"] is None and s["last_24h"] == []
        w = s["water"]
        assert w["day"] == yesterday  # the newest of the two days
        assert w["water_class"] == CLASSES[sid] and w["wqi"] == WQI[sid]
        assert w["wqi_meets_minimum"] is False
    assert stations[WATER[0]]["water"]["wqi_category"] == {"vi": "Rất tốt", "en": "Excellent"}
    assert stations[WATER[8]]["water"]["wqi_category"] is None  # no index that day
    feed = r.json()
    assert [c["key"] for c in feed["categories"]] == [c.value for c in CATEGORIES]
    assert feed["source"]["advice_verified"] is False  # the YAML's flag travels with the text
    assert "Bảng 4" in feed["source"]["advice"] and "Bảng 5" in feed["source"]["advice"]


async def test_stale_and_missing_aqi_show_no_current_value(
    anon: httpx.AsyncClient, public_db: str, seeded_at: datetime
) -> None:
    now = seeded_at
    with psycopg.connect(public_db, autocommit=True) as conn:
        conn.execute("DELETE FROM aqi WHERE source_id = %s", (AIR[9],))
        conn.execute(
            "DELETE FROM aqi WHERE source_id = %s AND window_start > %s",
            (AIR[8], last_hour(now) - timedelta(hours=4)),
        )
    stations = _by_id((await anon.get("/public/api/stations.json")).json())
    assert stations[AIR[9]]["aqi"] is None and stations[AIR[9]]["last_24h"] == []
    assert stations[AIR[8]]["aqi"] is None  # 5 hours old: not current (CURRENT_MAX_AGE 3 h)
    assert len(stations[AIR[8]]["last_24h"]) == 20  # the chart keeps what there is
    page = (await anon.get("/public")).text
    assert page.count('<p class="no-data">Chưa có số liệu hiện tại</p>') == 2


async def test_page_without_login_in_both_languages(anon: httpx.AsyncClient) -> None:
    r = await anon.get("/public")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
    assert r.headers["cache-control"] == "public, max-age=60"
    assert r.headers["vary"] == "Accept-Language"
    assert r.headers["content-security-policy"] == CSP  # the console's, unchanged
    assert "set-cookie" not in r.headers
    page = r.text
    assert '<html lang="vi">' in page
    for s in REGISTRY.sources:
        if s.kind in (SourceKind.AMBIENT_AIR, SourceKind.SURFACE_WATER):
            assert f'id="station-{s.id}"' in page and f'id="marker-{s.id}"' in page
            assert s.name in page
    for aqi in CURRENT.values():
        info, advice = CATEGORIES[category(aqi)], advice_for(aqi)
        assert f'<span class="aqi-category">{info.name_vi}</span>' in page
        assert advice.sensitive.vi in page and advice.general.vi in page
        assert info.hex in page  # the map marker's fill
    assert "<script>" not in page and "style=" not in page  # the CSP would refuse them
    assert "<image" not in page  # no tile server by default
    en = (await anon.get("/public?lang=en")).text
    assert '<html lang="en">' in en
    assert f'<span class="aqi-category">{CATEGORIES[category(180)].name_en}</span>' in en
    assert advice_for(180).sensitive.en in en and str(escape("quantrac's translation")) in en
    by_header = await anon.get("/public", headers={"Accept-Language": "fr;q=1, en-GB;q=0.8"})
    assert '<html lang="en">' in by_header.text
    ranked = await anon.get("/public", headers={"Accept-Language": "en;q=0.5, vi;q=0.9"})
    assert '<html lang="vi">' in ranked.text
    query_wins = await anon.get("/public?lang=vi", headers={"Accept-Language": "en"})
    assert '<html lang="vi">' in query_wins.text


async def test_no_operator_data_reachable(anon: httpx.AsyncClient) -> None:
    bodies = [
        (await anon.get(p)).text
        for p in ("/public", "/public?lang=en", "/public/api/stations.json")
    ]
    forbidden = [*SECRETS, "V-SECRET", *(s.id for s in EMISSION)]
    for f in REGISTRY.facilities:
        forbidden += [f.name, f.operator, _permit(f)]
    for body in bodies:
        for text in forbidden:
            assert text not in body, text
        for word in ("acknowledg", "audit", "violation", "facility", "permit", "csrf"):
            assert word not in body.lower(), word
    # the console stays closed to an anonymous visitor
    for path in ("/", "/board", "/audit", "/sources/HD-KK-01", "/violations/V-SECRET"):
        r = await anon.get(path, follow_redirects=False)
        assert r.status_code == 303 and r.headers["location"].startswith("/login"), path
    for path in ("/api/violations", "/api/violations/V-SECRET", "/api/audit", "/api/board"):
        assert (await anon.get(path)).status_code == 401, path
    for path in ("/public/api/violations", "/public/audit", "/public/api/stations.json/x"):
        assert (await anon.get(path)).status_code == 404, path
    assert (await anon.post("/public/api/stations.json")).status_code == 405
    for path in ("/public", "/public/api/stations.json"):
        head = await anon.head(path)
        assert head.status_code == 200 and head.headers["cache-control"] == "public, max-age=60"


async def test_map_tiles_by_setting(public_db: str, tmp_path: Path) -> None:
    tiles = "http://127.0.0.1:9/tiles/{z}/{x}/{y}.png"
    app = create_app(
        Settings(database_url=public_db, data_dir=tmp_path, public_map_tile_url=tiles),
        poll_interval_s=0.2,
    )
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as c:
            r = await c.get("/public")
            login = await c.get("/login")
    assert '<image href="http://127.0.0.1:9/tiles/10/' in r.text
    csp = r.headers["content-security-policy"]
    assert "img-src 'self' http://127.0.0.1:9" in csp
    assert csp.replace(" http://127.0.0.1:9", "") == CSP  # nothing else widened
    assert login.headers["content-security-policy"] == CSP  # the console's pages: unchanged


@pytest.mark.parametrize(
    "template", ["ftp://tiles.example/{z}/{x}/{y}.png", "https://tiles.example/{z}/{x}.png"]
)
def test_bad_tile_template_is_refused_at_start(
    template: str, database_url: str, tmp_path: Path
) -> None:
    settings = Settings(database_url=database_url, data_dir=tmp_path, public_map_tile_url=template)
    with pytest.raises(ValueError, match=r"QUANTRAC_PUBLIC_MAP_TILE_URL=.*expected an http"):
        create_app(settings)


async def test_database_gone_is_a_clear_503_not_cached(public_db: str, tmp_path: Path) -> None:
    app = create_app(Settings(database_url=public_db, data_dir=tmp_path), poll_interval_s=0.2)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as c:
            assert (await c.get("/public")).status_code == 200
            # every connection of the pool is cut; reconnecting is refused from now on
            name = psycopg.conninfo.conninfo_to_dict(public_db)["dbname"]
            with psycopg.connect(public_db, dbname="postgres", autocommit=True) as conn:
                conn.execute(f"ALTER DATABASE {name} ALLOW_CONNECTIONS false")
                conn.execute(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s",
                    (name,),
                )
            try:
                page, feed = await asyncio.gather(  # each waits out the pool's timeout
                    c.get("/public?lang=en"), c.get("/public/api/stations.json")
                )
            finally:
                with psycopg.connect(public_db, dbname="postgres", autocommit=True) as conn:
                    conn.execute(f"ALTER DATABASE {name} ALLOW_CONNECTIONS true")
    assert page.status_code == 503 and feed.status_code == 503
    assert "temporarily unavailable" in page.text and "Traceback" not in page.text
    assert feed.json() == {"detail": "The data is temporarily unavailable; please try again later."}
    for r in (page, feed):
        assert r.headers["cache-control"] == "no-store" and r.headers["retry-after"] == "30"
