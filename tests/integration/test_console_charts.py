"""The console's chart JSON, the source page's limit column and the board's AQI names, against a
real PostgreSQL (fixtures of tests/integration/test_console_api.py).

HD-NT-01 gets six hours of COD readings every 5 minutes around 100 mg/L, one valid 400 mg/L
(the value an old y-axis cut off at 105), one reading flagged ``calibrating``, a silent hour, and
two 1-h means (one invalid). Its limits come from the shipped registry: QCVN 40:2011 Table 1
column B, COD 150 × Kq 1.1 × Kf 0.9 = 148.5 mg/L (1-h mean), pH 5.5–9.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest

from tests.integration.test_console_api import app, clients, db

__all__ = ["app", "clients", "db"]

pytestmark = pytest.mark.integration

T0 = datetime.now(UTC).replace(second=0, microsecond=0)
T0 = T0 - timedelta(minutes=T0.minute % 5 + 6 * 60)  # six hours ago, on the 5-minute grid
PEAK_AT = T0 + timedelta(hours=2)
FLAGGED_AT = T0 + timedelta(hours=1)
GAP = (T0 + timedelta(hours=3), T0 + timedelta(hours=4))  # no readings in [start, end)


def cod_readings() -> list[tuple[datetime, float, str]]:
    out = []
    at = T0
    k = 0
    while at < T0 + timedelta(hours=6):
        if not GAP[0] <= at < GAP[1]:
            value, flag = 100.0 + (k % 5), "valid"
            if at == PEAK_AT:
                value = 400.0
            elif at == FLAGGED_AT:
                value, flag = 20.0, "calibrating"
            out.append((at, value, flag))
        at += timedelta(minutes=5)
        k += 1
    return out


def insert_cod_series(conninfo: str) -> None:
    """The readings above, a pH reading, and two 1-h means (the first invalid)."""
    with psycopg.connect(conninfo, autocommit=True) as conn:
        rows = [(at, "COD", v, "mg/L", flag) for at, v, flag in cod_readings()]
        rows.append((T0 + timedelta(hours=5), "pH", 7.2, "-", "valid"))
        for at, param, value, unit, flag in rows:
            conn.execute(
                "INSERT INTO readings VALUES ('HD-NT-01',%s,%s,%s,%s,'00',%s,%s,%s,%s,"
                "'sim','test')",
                (param, at, value, unit, flag, value, unit, at),
            )
        for hour, value, valid in [(1, 95.0, False), (2, 125.0, True)]:
            start = T0 + timedelta(hours=hour)
            conn.execute(
                "INSERT INTO averages (source_id, parameter, period, window_start, window_end,"
                " value, unit, samples, expected, completeness, valid) VALUES ('HD-NT-01','COD',"
                "'1h', %s, %s, %s, 'mg/L', 12, 12, 1.0, %s)",
                (start, start + timedelta(hours=1), value, valid),
            )


@pytest.fixture
def cod(db: str) -> str:
    insert_cod_series(db)
    return db


def _series(payload: dict[str, Any], key: str) -> dict[str, Any]:
    return next(s for s in payload["series"] if s["key"] == key)


async def test_source_chart_json(clients: Any, cod: str) -> None:
    c, _ = clients["reg"]
    r = await c.get("/api/sources/HD-NT-01/chart?parameter=COD&window=24h&lang=en")
    assert r.status_code == 200, r.text
    d = r.json()
    assert (d["parameter"], d["unit"], d["window"]) == ("COD", "mg/L", "24h")
    assert d["end"] - d["start"] == 24 * 3600
    assert d["max"] == 400.0  # the y-axis must reach it (tests/e2e/test_console_charts_browser.py)
    measured, flagged = _series(d, "measured"), _series(d, "flagged")
    by_time = dict(zip(measured["t"], measured["v"], strict=True))
    assert by_time[PEAK_AT.timestamp()] == 400.0
    assert by_time[FLAGGED_AT.timestamp()] is None  # the line breaks at the flagged value
    assert (flagged["t"], flagged["v"], flagged["flags"]) == (
        [FLAGGED_AT.timestamp()],
        [20.0],
        ["calibrating"],
    )
    # the silent hour is a gap in the line, not a straight bridge
    assert [v for t, v in by_time.items() if GAP[0].timestamp() <= t < GAP[1].timestamp()] == [None]
    valid = [v for v in measured["v"] if v is not None]
    smoothed = _series(d, "smoothed")
    smooth = [v for v in smoothed["v"] if v is not None]
    assert len(smooth) == len(valid) and smoothed["method"] == "savgol(11,2)"
    assert max(smooth) < 400.0  # smoothing flattens the single peak
    # the smoothed line breaks where the measured one does (flagged value, silent hour)
    assert smoothed["v"].count(None) == measured["v"].count(None) == 2
    average = _series(d, "average")
    half_hour = 1800
    assert average["t"] == [(T0 + timedelta(hours=h)).timestamp() + half_hour for h in (1, 2)]
    assert average["v"] == [None, 125.0]  # the invalid mean is not drawn
    assert [(x["value"], x["label"], x["rule_id"]) for x in d["limits"]] == [
        (148.5, "Limit ≤ 148.5 mg/L · 1 h mean", "QCVN_40_2011:B:COD:1h")
    ]
    assert "Bảng 1" in d["limits"][0]["legal_basis"]


async def test_thirty_day_chart_draws_hourly_and_daily_means(clients: Any, cod: str) -> None:
    c, _ = clients["op"]
    d = (await c.get("/api/sources/HD-NT-01/chart?parameter=COD&window=30d")).json()
    measured, flagged = _series(d, "measured"), _series(d, "flagged")
    assert [v for v in measured["v"] if v is not None] == [125.0]
    assert (flagged["v"], flagged["flags"]) == ([95.0], ["invalid"])
    assert _series(d, "average")["v"], "the day's mean of the valid readings"
    assert d["limits"][0]["label"] == "Giới hạn ≤ 148.5 mg/L · TB 1 giờ"  # Vietnamese by default


async def test_chart_of_a_range_limit_and_bad_requests(clients: Any, cod: str) -> None:
    c, _ = clients["op"]
    d = (await c.get("/api/sources/HD-NT-01/chart?parameter=pH&lang=en")).json()
    assert [x["value"] for x in d["limits"]] == [5.5, 9.0]  # one line per bound
    assert (await c.get("/api/sources/NOPE/chart?parameter=COD")).status_code == 404
    wrong = await c.get("/api/sources/HD-KK-01/chart?parameter=COD")
    assert (wrong.status_code, wrong.json()["detail"]) == (
        404,
        "HD-KK-01 measures no 'COD' (PM2.5, SO2, WS)",
    )
    bad = await c.get("/api/sources/HD-NT-01/chart?parameter=COD&window=1y")
    assert bad.status_code == 422
    assert (await c.get("/api/sources/HD-NT-01/chart")).status_code == 422  # no parameter
    anon, _ = clients["anon"]
    assert (await anon.get("/api/sources/HD-NT-01/chart?parameter=COD")).status_code == 401


async def test_violation_chart_uses_the_judged_limit(clients: Any) -> None:
    c, _ = clients["reg"]
    d = (await c.get("/api/violations/V-PM25/chart?lang=en")).json()
    assert [(x["value"], x["label"]) for x in d["limits"]] == [(50.0, "Limit 50 · 1 h mean")]
    assert _series(d, "measured")["v"] == [41.0, 40.0]
    assert (await c.get("/api/violations/NOPE/chart")).status_code == 404


async def test_source_page_shows_each_limit_with_its_basis(clients: Any, cod: str) -> None:
    c, _ = clients["reg"]
    text = (await c.get("/sources/HD-NT-01?lang=en")).text
    assert "≤ 148.5 mg/L · 1 h mean" in text
    assert "5.5–9 · 1 h mean" in text  # pH: unitless, a range
    assert 'data-src="/api/sources/HD-NT-01/chart?window=24h&amp;lang=en&amp;parameter=COD"' in text
    air = (await c.get("/sources/HD-KK-01?lang=vi")).text
    assert "≤ 45 µg/Nm3 · TB ngày" in air and "≤ 25 µg/Nm3 · TB năm" in air
    assert '<td class="limit">—' not in text + air


async def test_board_names_the_aqi_category_and_has_tools(clients: Any) -> None:
    c, _ = clients["reg"]
    vi = (await c.get("/board?lang=vi")).text
    aqi = '<span class="aqi aqi-unhealthy_sensitive">123</span>'
    assert f'{aqi} <span class="aqi-name">Kém</span>' in vi  # VN_AQI 123: Kém (101–150)
    assert "Nguy hại" in vi  # the legend names every band
    en = (await c.get("/board?lang=en")).text
    assert '<span class="aqi-name">Poor</span>' in en and "Hazardous" in en
    # the tools are hidden until /static/board.js shows them: without it, every row shows
    assert '<form class="filters board-tools" id="board-tools" hidden>' in en
    assert 'data-kind="ambient_air" data-state="online"' in en
