"""The open-data API and API tokens against a real PostgreSQL (issue 20).

The console's test data (tests/integration/test_console_api.py: three sources, violations,
readings, an hourly average and AQI) plus a surface-water station, a daily average, a daily
AQI, a water-quality day and two facilities. Tokens are made with storage/api_tokens.py (as the
CLI does) or through the admins' API; clients send them as ``Authorization: Bearer``.
"""

from __future__ import annotations

import csv
import io
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
from fastapi import FastAPI
from psycopg.types.json import Jsonb

from console.app import create_app
from core.settings import Settings
from storage import api_tokens as tk
from tests.integration.test_console_api import (
    NOW,
    db,
    login,
    new_client,
    running,
)

pytestmark = pytest.mark.integration
__all__ = ["db"]  # fixture used by name

OPEN = "/api/v1/open"
FORMULA_NAME = '=HYPERLINK("http://evil.example","click")'
# Every open-data route, with a query that finds the fixture's rows.
ENDPOINTS = [
    f"{OPEN}/stations",
    f"{OPEN}/stations/HD-KK-01",
    f"{OPEN}/latest",
    f"{OPEN}/averages?period=1h",
    f"{OPEN}/averages?period=day",
    f"{OPEN}/aqi?kind=hourly",
    f"{OPEN}/aqi?kind=daily",
    f"{OPEN}/water-quality",
    f"{OPEN}/violations/summary",
]


@pytest.fixture
def open_db(db: str) -> str:
    """The console fixture plus what the open-data routes read beyond it."""
    day0 = (NOW - timedelta(days=1)).replace(hour=0, minute=0, second=0)
    with psycopg.connect(db, autocommit=True) as conn:
        conn.execute(
            "UPDATE sources SET facility_id = 'F-DAIAN', facility = 'KCN Đại An'"
            " WHERE id = 'HD-NT-01'"
        )
        conn.execute(
            "UPDATE sources SET facility_id = 'F-PHALAI', facility = %s WHERE id = 'HD-KT-01'",
            (FORMULA_NAME,),
        )
        conn.execute(
            "INSERT INTO sources (id, name, kind, district, interval_s, spec, lat, lon)"
            " VALUES ('HD-NM-01', 'Sông Thái Bình', 'surface_water', 'Nam Sách', 300, %s,"
            " 21.0, 106.3)",
            (Jsonb({"parameters": [{"code": "DO", "unit": "mg/L"}]}),),
        )
        conn.execute(
            "INSERT INTO averages (source_id, parameter, period, window_start, window_end,"
            " value, unit, samples, expected, completeness, valid) VALUES ('HD-KK-01',"
            " 'PM2.5', 'day', %s, %s, NULL, 'µg/Nm3', 144, 288, 0.5, false)",
            (day0, day0 + timedelta(days=1)),
        )
        conn.execute(
            "INSERT INTO aqi VALUES ('HD-KK-01', 'daily', %s, 88, 'moderate', 'PM2.5', %s)",
            (day0, Jsonb({"PM2.5": 88})),
        )
        conn.execute(
            "INSERT INTO water_quality_days (source_id, day, day_start, water_class,"
            " target_class, alert, wqi, wqi_meets_minimum, wqi_groups, means, classes,"
            " skipped, over_table1, revision) VALUES ('HD-NM-01', %s, %s, 'C', 'B', true, 61,"
            " true, '{}', %s, '{}', '{}', '{}', 1)",
            (day0.date(), day0, Jsonb({"DO": 4.1})),
        )
    return db


def make_token(
    conninfo: str,
    scope: str = "read",
    *,
    sources: list[str] | None = None,
    days: float | None = None,
    now: datetime | None = None,
) -> tk.NewToken:
    with psycopg.connect(conninfo, autocommit=True) as conn:
        return tk.create(
            conn,
            f"client {scope}",
            scope,
            days=days,
            sources=sources or [],
            actor="test",
            now=now or datetime.now(UTC),
        )


def bearer(token: tk.NewToken | str) -> dict[str, str]:
    secret = token if isinstance(token, str) else token.secret
    return {"Authorization": f"Bearer {secret}"}


def uses(conninfo: str, token_id: str) -> dict[tuple[str, str], int]:
    with psycopg.connect(conninfo) as conn:
        rows = conn.execute(
            "SELECT route, outcome, sum(n) FROM api_token_uses WHERE token_id = %s"
            " GROUP BY route, outcome",
            (token_id,),
        ).fetchall()
    return {(r, o): int(n) for r, o, n in rows}


@pytest.fixture
def open_app(open_db: str, tmp_path: Path) -> FastAPI:
    return create_app(Settings(database_url=open_db, data_dir=tmp_path), poll_interval_s=0.2)


@pytest.fixture
async def client(open_app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    async with running(open_app), new_client(open_app) as c:
        yield c


# --- the OpenAPI document ---------------------------------------------------------------------


def _has_model(response: dict[str, Any]) -> bool:
    """A success answer documents a model: a JSON $ref (or a list of them), a typed non-JSON
    body (files, CSV, HTML, event streams), or a redirect's Location."""
    if "Location" in response.get("headers", {}):
        return True
    for media, body in (response.get("content") or {}).items():
        schema = body.get("schema") or {}
        if media == "application/json":
            if "$ref" in schema or "$ref" in (schema.get("items") or {}):
                return True
        elif schema.get("type"):
            return True
    return False


async def test_every_route_has_a_response_model_in_the_openapi_document(
    client: httpx.AsyncClient,
) -> None:
    doc = (await client.get("/openapi.json")).json()
    missing = []
    for path, operations in doc["paths"].items():
        for method, op in operations.items():
            answers = [r for code, r in op["responses"].items() if code[0] in "23"]
            if not any(_has_model(r) for r in answers):
                missing.append(f"{method.upper()} {path}")
    assert len(doc["paths"]) > 30
    assert not missing, "routes without a response model: " + ", ".join(missing)
    assert f"{OPEN}/averages" in doc["paths"] and "/api/reports/{kind}" in doc["paths"]


# --- reading with a token ---------------------------------------------------------------------


async def test_a_read_token_reads_every_open_data_endpoint(
    client: httpx.AsyncClient, open_db: str
) -> None:
    token = make_token(open_db)
    got: dict[str, Any] = {}
    for path in ENDPOINTS:
        r = await client.get(path, headers=bearer(token))
        assert r.status_code == 200, (path, r.text)
        assert r.headers["content-type"].startswith("application/json")
        got[path] = r.json()

    stations = {s["id"]: s for s in got[f"{OPEN}/stations"]["items"]}
    assert sorted(stations) == ["HD-KK-01", "HD-KT-01", "HD-NM-01", "HD-NT-01"]
    assert stations["HD-KK-01"]["parameters"][2] == {"code": "WS", "unit": "m/s", "interval_s": 60}
    assert stations["HD-KK-01"]["parameters"][0]["interval_s"] == 300  # the station's default
    assert "spec" not in stations["HD-KK-01"] and "permit" not in stations["HD-KK-01"]
    assert got[f"{OPEN}/stations/HD-KK-01"]["id"] == "HD-KK-01"

    latest = {(v["source_id"], v["parameter"]): v for v in got[f"{OPEN}/latest"]["items"]}
    assert latest[("HD-KK-01", "PM2.5")]["value"] == 40.0  # the newest of the two
    assert latest[("HD-KT-01", "Dust")]["flag"] == "valid"

    (hourly,) = got[f"{OPEN}/averages?period=1h"]["items"]
    assert (hourly["value"], hourly["completeness"], hourly["valid"]) == (55.0, 1.0, True)
    assert (hourly["samples"], hourly["expected"]) == (12, 12)
    (daily,) = got[f"{OPEN}/averages?period=day"]["items"]
    assert (daily["value"], daily["completeness"], daily["valid"]) == (None, 0.5, False)

    (aqi_h,) = got[f"{OPEN}/aqi?kind=hourly"]["items"]
    assert (aqi_h["aqi"], aqi_h["category"], aqi_h["dominant"]) == (
        123,
        "unhealthy_sensitive",
        "PM2.5",
    )
    assert got[f"{OPEN}/aqi?kind=daily"]["items"][0]["aqi"] == 88

    (water,) = got[f"{OPEN}/water-quality"]["items"]
    assert (water["source_id"], water["water_class"], water["wqi"], water["alert"]) == (
        "HD-NM-01",
        "C",
        61,
        True,
    )
    assert water["means"] == {"DO": 4.1}

    summary = {f["facility_key"]: f for f in got[f"{OPEN}/violations/summary"]["items"]}
    assert set(summary) == {"F-DAIAN", "F-PHALAI", "HD-KK-01"}
    assert summary["F-DAIAN"]["outages"] == 1 and summary["F-DAIAN"]["open"] == 0
    assert summary["F-PHALAI"]["exceedances"] == 1 and summary["F-PHALAI"]["peak_ratio"] == 20.0
    assert summary["HD-KK-01"]["facility_id"] is None  # an ambient station stands alone
    assert "ack_note" not in summary["F-PHALAI"] and "acknowledged_by" not in summary["F-PHALAI"]

    counted = uses(open_db, token.token.id)
    assert sum(n for (_, outcome), n in counted.items() if outcome == "ok") == len(ENDPOINTS)
    assert counted[(f"{OPEN}/stations/{{source_id}}", "ok")] == 1
    with psycopg.connect(open_db) as conn:
        row = conn.execute(
            "SELECT last_used_at FROM api_tokens WHERE id = %s", (token.token.id,)
        ).fetchone()
    assert row is not None and row[0] is not None


async def test_csv_is_formula_safe_and_pages_say_where_to_go_next(
    client: httpx.AsyncClient, open_db: str
) -> None:
    h = bearer(make_token(open_db))
    r = await client.get(f"{OPEN}/violations/summary?format=csv", headers=h)
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(r.text)))
    phalai = next(row for row in rows if row["facility_key"] == "F-PHALAI")
    assert phalai["facility"] == "'" + FORMULA_NAME  # shown as text, never run
    assert phalai["peak_ratio"] == "20.0" and phalai["sources"] == "HD-KT-01"

    stations = list(
        csv.reader(
            io.StringIO((await client.get(f"{OPEN}/stations?format=csv&limit=1", headers=h)).text)
        )
    )
    assert stations[0][:3] == ["id", "name", "kind"] and len(stations) == 2
    kk = (await client.get(f"{OPEN}/stations/HD-KK-01?format=csv", headers=h)).text
    assert "PM2.5 (µg/Nm3);SO2 (µg/Nm3);WS (m/s)" in kk

    first = (await client.get(f"{OPEN}/stations?limit=3", headers=h)).json()
    assert [len(first["items"]), first["next_offset"]] == [3, 3]
    rest = (await client.get(f"{OPEN}/stations?limit=3&offset=3", headers=h)).json()
    assert [s["id"] for s in rest["items"]] == ["HD-NT-01"] and rest["next_offset"] is None
    paged = await client.get(f"{OPEN}/stations?limit=1&format=csv", headers=h)
    assert paged.headers["X-Next-Offset"] == "1"
    for bad in ("limit=0", "limit=1001", "offset=-1", "format=xml"):
        assert (await client.get(f"{OPEN}/stations?{bad}", headers=h)).status_code == 422, bad


async def test_time_filters_are_applied_and_guarded(
    client: httpx.AsyncClient, open_db: str
) -> None:
    h = bearer(make_token(open_db))
    hour = (NOW - timedelta(hours=2)).isoformat()
    params = {"period": "1h", "start": hour, "end": (NOW - timedelta(hours=1)).isoformat()}
    inside = await client.get(f"{OPEN}/averages", params=params, headers=h)
    assert len(inside.json()["items"]) == 1
    params["start"] = (NOW - timedelta(hours=2) + timedelta(seconds=1)).isoformat()
    assert (await client.get(f"{OPEN}/averages", params=params, headers=h)).json()["items"] == []
    old = {
        "start": (NOW - timedelta(days=20)).isoformat(),
        "end": (NOW - timedelta(days=10)).isoformat(),
    }
    assert (await client.get(f"{OPEN}/violations/summary", params=old, headers=h)).json()[
        "items"
    ] == []

    for query, message in [
        ({"start": "2026-01-01T00:00:00"}, "time zone offset"),
        ({"start": NOW.isoformat(), "end": NOW.isoformat()}, "before end"),
        ({"start": (NOW - timedelta(days=94)).isoformat()}, "at most 93 days"),
        ({"start": "yesterday"}, "datetime"),
    ]:
        r = await client.get(f"{OPEN}/averages", params=query, headers=h)
        assert r.status_code == 422, query
        assert message in r.text, (query, r.text)


# --- refusals -----------------------------------------------------------------------------------


async def test_revoked_expired_and_unknown_tokens_get_401(
    client: httpx.AsyncClient, open_db: str
) -> None:
    revoked = make_token(open_db)
    with psycopg.connect(open_db, autocommit=True) as conn:
        tk.revoke(conn, revoked.token.id, actor="test", now=datetime.now(UTC))
    expired = make_token(open_db, days=1, now=datetime.now(UTC) - timedelta(days=2))
    good = make_token(open_db)
    forged = good.secret[:-4] + ("AAAA" if not good.secret.endswith("AAAA") else "BBBB")
    path = f"{OPEN}/stations"
    assert (await client.get(path, headers=bearer(good))).status_code == 200
    for headers, why in [
        (bearer(revoked), "revoked"),
        (bearer(expired), "expired"),
        (bearer(forged), "unknown"),
        (bearer("qt_abcdefgh_" + "x" * 43), "unknown"),
        (bearer("not-a-token"), "unknown"),
        ({"Authorization": "Bearer"}, "Bearer <token>"),
        ({"Authorization": f"Basic {good.secret}"}, "Bearer <token>"),
        ({}, "API token is needed"),
    ]:
        r = await client.get(path, headers=headers)
        assert r.status_code == 401, (headers, r.text)
        assert why in r.json()["detail"]
        assert r.headers["WWW-Authenticate"].startswith("Bearer")
    assert uses(open_db, revoked.token.id) == {(path, "revoked"): 1}
    assert uses(open_db, expired.token.id) == {(path, "expired"): 1}


async def test_an_ingest_token_cannot_read_open_data(
    client: httpx.AsyncClient, open_db: str
) -> None:
    ingest = make_token(open_db, "ingest", sources=["HD-KK-01"])
    r = await client.get(f"{OPEN}/stations", headers=bearer(ingest))
    assert r.status_code == 403 and "not read" in r.json()["detail"]
    assert uses(open_db, ingest.token.id) == {(f"{OPEN}/stations", "scope"): 1}


async def test_each_token_has_its_rate_limit(open_db: str, tmp_path: Path) -> None:
    settings = Settings(
        database_url=open_db, data_dir=tmp_path, api_burst=3, api_requests_per_minute=1
    )
    app = create_app(settings, poll_interval_s=0.2)
    one, two = make_token(open_db), make_token(open_db)
    async with running(app), new_client(app) as c:
        codes = [
            (await c.get(f"{OPEN}/stations", headers=bearer(one))).status_code for _ in range(4)
        ]
        assert codes == [200, 200, 200, 429]
        over = await c.get(f"{OPEN}/latest", headers=bearer(one))
        assert over.status_code == 429 and 1 <= int(over.headers["Retry-After"]) <= 60
        assert "Retry-After" in over.json()["detail"]
        assert (await c.get(f"{OPEN}/stations", headers=bearer(two))).status_code == 200
    counted = uses(open_db, one.token.id)
    assert counted[(f"{OPEN}/stations", "ok")] == 3
    assert counted[(f"{OPEN}/stations", "rate_limited")] == 1


async def test_a_console_session_reads_open_data_without_a_token(
    client: httpx.AsyncClient,
) -> None:
    await login(client, "reg")
    assert (await client.get(f"{OPEN}/water-quality")).status_code == 200


# --- administration ---------------------------------------------------------------------------


async def test_admins_create_list_and_revoke_tokens_through_the_api(
    open_app: FastAPI, open_db: str
) -> None:
    async with running(open_app), new_client(open_app) as adm, new_client(open_app) as reg:
        csrf = await login(adm, "adm")
        reg_csrf = await login(reg, "reg")
        body = {"name": "Sở TN&MT portal", "scope": "read", "expires_days": 30}
        assert (
            await reg.post("/api/tokens", json=body, headers={"X-CSRF-Token": reg_csrf})
        ).status_code == 403
        assert (await adm.post("/api/tokens", json=body)).status_code == 403  # no CSRF token
        h = {"X-CSRF-Token": csrf}
        bad = await adm.post("/api/tokens", json={"name": "x", "scope": "ingest"}, headers=h)
        assert bad.status_code == 422 and "--sources" in bad.json()["detail"]
        unknown = {"name": "x", "scope": "ingest", "sources": ["HD-XX-99"]}
        bad = await adm.post("/api/tokens", json=unknown, headers=h)
        assert bad.status_code == 422 and "HD-XX-99" in bad.json()["detail"]

        created = await adm.post("/api/tokens", json=body, headers=h)
        assert created.status_code == 201, created.text
        secret, token_id = created.json()["secret"], created.json()["token"]["id"]
        assert secret.startswith(f"qt_{token_id}_")
        expires = datetime.fromisoformat(created.json()["token"]["expires_at"])
        assert timedelta(days=29) < expires - datetime.now(UTC) <= timedelta(days=30)

        async with new_client(open_app) as machine:
            assert (
                await machine.get(f"{OPEN}/stations", headers=bearer(secret))
            ).status_code == 200
            listed = (await adm.get("/api/tokens")).json()
            assert [t["id"] for t in listed] == [token_id]
            assert "secret" not in listed[0] and listed[0]["last_used_at"] is not None
            used = (await adm.get(f"/api/tokens/{token_id}/uses")).json()
            assert used[0]["route"] == f"{OPEN}/stations" and used[0]["n"] == 1
            assert used[0]["ip"] == "10.0.0.7"

            revoked = await adm.post(f"/api/tokens/{token_id}/revoke", headers=h)
            assert revoked.status_code == 200 and revoked.json()["revoked_by"] == "adm"
            again = await adm.post(f"/api/tokens/{token_id}/revoke", headers=h)
            assert again.status_code == 409 and "already revoked" in again.json()["detail"]
            assert (await adm.post("/api/tokens/zzzzzzzz/revoke", headers=h)).status_code == 404
            assert (
                await machine.get(f"{OPEN}/stations", headers=bearer(secret))
            ).status_code == 401

    with psycopg.connect(open_db) as conn:
        stored = conn.execute("SELECT api_tokens::text FROM api_tokens").fetchone()
        audit = conn.execute(
            "SELECT actor, action, target FROM audit_log WHERE action LIKE 'token_%' ORDER BY id"
        ).fetchall()
    assert stored is not None and secret not in stored[0] and secret[-43:] not in stored[0]
    assert tk.digest(secret) in stored[0]  # only its hash is kept
    assert audit == [
        ("adm", "token_created", f"token:{token_id}"),
        ("adm", "token_revoked", f"token:{token_id}"),
    ]
