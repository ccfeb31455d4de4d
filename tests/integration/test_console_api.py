"""The alert console's HTTP API and pages against a real PostgreSQL (tests/conftest.py).

Each test gets a fresh database, migrated, with three sources, three violations and one user per
role inserted directly; the app runs in-process over ``httpx.ASGITransport`` (lifespan entered by
hand), except the Server-Sent Events test, which needs a real socket and runs uvicorn.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
import uvicorn
from fastapi import FastAPI
from psycopg.types.json import Jsonb

from console.app import console_server, create_app
from console.auth import UserError, cli_add_user, create_user
from console.bands import aqi_colour
from console.bands import stylesheet as band_stylesheet
from core.settings import Settings
from storage import queries as q
from storage.migrate import migrate
from streams.embedded import free_port
from tests.integration.tls_support import TlsFiles, tls_files

pytestmark = pytest.mark.integration
__all__ = ["tls_files"]  # fixture used by name

PASSWORD = "correct horse battery"
THROTTLE_FAILURES = Settings.model_fields["console_login_failures_per_user_ip"].default
USERS = {"op": "operator", "reg": "regulator", "adm": "admin"}
NOW = datetime.now(UTC).replace(microsecond=0)

AIR_SPEC = {
    "parameters": [
        {"code": "PM2.5", "unit": "µg/Nm3", "range": [0, 1000]},
        {"code": "SO2", "unit": "µg/Nm3", "range": [0, 2000]},
        {"code": "WS", "unit": "m/s", "range": [0, 60], "interval_s": 60},
    ]
}
SOURCES = [
    ("HD-KK-01", "Trạm Quảng trường", "ambient_air", "TP Hải Dương", 300, AIR_SPEC),
    ("HD-NT-01", "Cửa xả KCN Đại An", "wastewater", "TP Hải Dương", 300, {"parameters": []}),
    ("HD-KT-01", "Ống khói Phả Lại", "stack", "Chí Linh", 60, {"parameters": []}),
]
# violation_id, kind, source, parameter, state, severity, started (minutes ago), value, limit
VIOLATIONS = [
    ("V-PM25", "exceedance", "HD-KK-01", "PM2.5", "open", "1.1-1.5", 120, 60.0, 50.0),
    ("V-DUST", "exceedance", "HD-KT-01", "Dust", "open", ">=10", 30, 2000.0, 100.0),
    ("V-OUT", "outage", "HD-NT-01", "COD", "closed", "none", 600, None, None),
]
ALL_IDS = {v[0] for v in VIOLATIONS}


def _insert_violation(conn: psycopg.Connection[Any], row: tuple[Any, ...]) -> None:
    vid, kind, source, param, state, severity, minutes, value, limit = row
    started = NOW - timedelta(minutes=minutes)
    conn.execute(
        "INSERT INTO violations (violation_id, kind, source_id, parameter, rule_id, period,"
        ' state, started_at, ended_at, last_at, value, "limit", ratio, peak_value, peak_ratio,'
        " severity, legal_basis, last_seq) VALUES (%s,%s,%s,%s,'rule',%s,%s,%s,%s,%s,%s,%s,%s,"
        "%s,%s,%s,'QCVN',%s)",
        (
            vid,
            kind,
            source,
            param,
            "1h",
            state,
            started,
            NOW if state == "closed" else None,
            started + timedelta(hours=1),
            value,
            limit,
            value / limit if value and limit else None,
            value,
            value / limit if value and limit else None,
            severity,
            1,
        ),
    )
    for seq, event in enumerate(("opened", "updated")):
        conn.execute(
            "INSERT INTO violation_events (violation_id, seq, event, at, value, ratio, severity,"
            " payload) VALUES (%s,%s,%s,%s,%s,NULL,%s,%s)",
            (vid, seq, event, started, value, severity, Jsonb({"message": f"{event} {vid}"})),
        )


@pytest.fixture
def db(database_url: str) -> str:
    migrate(database_url)
    with psycopg.connect(database_url, autocommit=True) as conn:
        for sid, name, kind, district, interval_s, spec in SOURCES:
            conn.execute(
                "INSERT INTO sources (id, name, kind, district, interval_s, spec)"
                " VALUES (%s,%s,%s,%s,%s,%s)",
                (sid, name, kind, district, interval_s, Jsonb(spec)),
            )
        for row in VIOLATIONS:
            _insert_violation(conn, row)
        # HD-KK-01 reports now (online); HD-KT-01 last reported 30 min ago at 60 s (stale).
        # From the clock at seeding, not NOW (the module's import): the board judges ages by
        # its own clock, and a long suite reaches these tests more than 15 min after import.
        seeded = datetime.now(UTC).replace(microsecond=0)
        for i, (sid, param, minutes) in enumerate(
            [("HD-KK-01", "PM2.5", 1), ("HD-KK-01", "PM2.5", 6), ("HD-KT-01", "Dust", 30)]
        ):
            at = seeded - timedelta(minutes=minutes)
            conn.execute(
                "INSERT INTO readings VALUES (%s,%s,%s,%s,'µg/Nm3','00','valid',%s,'µg/Nm3',"
                "%s,'sim','test')",
                (sid, param, at, 40.0 + i, 40.0 + i, at),
            )
        conn.execute(
            "INSERT INTO averages (source_id, parameter, period, window_start, window_end, value,"
            " unit, samples, expected, completeness, valid) VALUES ('HD-KK-01','PM2.5','1h',"
            " %s, %s, 55.0, 'µg/Nm3', 12, 12, 1.0, true)",
            (NOW - timedelta(hours=2), NOW - timedelta(hours=1)),
        )
        conn.execute(
            "INSERT INTO aqi VALUES ('HD-KK-01','hourly',%s,123,'unhealthy_sensitive','PM2.5',%s)",
            (NOW - timedelta(hours=1), Jsonb({"PM2.5": 123})),
        )
    for name, role in USERS.items():
        create_user(database_url, name, PASSWORD, role)
    return database_url


@pytest.fixture
def app(db: str, tmp_path: Path) -> FastAPI:
    return create_app(Settings(database_url=db, data_dir=tmp_path), poll_interval_s=0.2)


@asynccontextmanager
async def running(app: FastAPI) -> AsyncIterator[None]:
    async with app.router.lifespan_context(app):
        yield


def new_client(app: FastAPI) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app, client=("10.0.0.7", 5555)),
        base_url="http://testserver",
    )


async def login(client: httpx.AsyncClient, username: str, password: str = PASSWORD) -> str:
    """Log in through the form; return the session's CSRF token."""
    page = await client.get("/login")
    assert page.status_code == 200
    token = client.cookies.get("qt_login_csrf")
    assert token
    r = await client.post(
        "/login", data={"username": username, "password": password, "csrf_token": token}
    )
    assert r.status_code == 303, r.text
    me = await client.get("/api/me")
    assert me.json()["username"] == username
    return str(me.json()["csrf_token"])


@pytest.fixture
async def clients(app: FastAPI) -> AsyncIterator[dict[str, tuple[httpx.AsyncClient, str]]]:
    """One logged-in client per role, plus an anonymous one under key 'anon'."""
    async with running(app):
        out: dict[str, tuple[httpx.AsyncClient, str]] = {}
        for name in [*USERS, "anon"]:
            c = new_client(app)
            out[name] = (c, await login(c, name) if name in USERS else "")
        try:
            yield out
        finally:
            for c, _ in out.values():
                await c.aclose()


def audit_rows(conninfo: str, action: str) -> list[tuple[Any, ...]]:
    with psycopg.connect(conninfo) as conn:
        return conn.execute(
            "SELECT actor, target, detail FROM audit_log WHERE action = %s ORDER BY id", (action,)
        ).fetchall()


# --- authentication --------------------------------------------------------------------------

API_GETS = [
    "/api/me",
    "/api/violations",
    "/api/violations/V-PM25",
    "/api/sources",
    "/api/sources/HD-KK-01",
    "/api/sources/HD-KK-01/series?parameter=PM2.5",
    "/api/sources/HD-KK-01/smoothed?parameter=PM2.5",
    "/api/board",
    "/api/events",
    "/api/audit",
    "/api/users",
]
PAGES = ["/", "/violations/V-PM25", "/board", "/sources/HD-KK-01", "/reports", "/audit", "/users"]


async def test_healthz_and_openapi_need_no_login(app: FastAPI) -> None:
    async with running(app), new_client(app) as c:
        r = await c.get("/healthz")
        assert r.json() == {"status": "ok", "database": True}
        paths = (await c.get("/openapi.json")).json()["paths"]
    for path in [
        "/api/violations",
        "/api/violations/{violation_id}",
        "/api/violations/{violation_id}/ack",
        "/api/sources",
        "/api/sources/{source_id}",
        "/api/sources/{source_id}/series",
        "/api/board",
        "/api/events",
        "/api/users",
        "/login",
        "/logout",
        "/healthz",
    ]:
        assert path in paths, path


async def test_anonymous_gets_401_from_api_and_login_redirect_from_pages(app: FastAPI) -> None:
    async with running(app), new_client(app) as c:
        for path in API_GETS:
            assert (await c.get(path)).status_code == 401, path
        for method, path in [
            ("POST", "/api/violations/V-PM25/ack"),
            ("POST", "/api/users"),
            ("PUT", "/api/users/op"),
            ("POST", "/logout"),
        ]:
            r = await c.request(method, path, json={"note": "x"})
            assert r.status_code == 401, path
        for path in PAGES:
            r = await c.get(path)
            assert r.status_code == 303, path
            assert r.headers["location"].startswith("/login?next=")


async def test_login_sets_strict_httponly_cookie_and_audits(app: FastAPI, db: str) -> None:
    async with running(app), new_client(app) as c:
        await c.get("/login")
        token = c.cookies["qt_login_csrf"]
        bad = await c.post(
            "/login", data={"username": "op", "password": "nope-nope", "csrf_token": token}
        )
        assert bad.status_code == 401
        ok = await c.post(
            "/login",
            data={"username": "op", "password": PASSWORD, "csrf_token": token, "next": "/board"},
        )
        assert ok.status_code == 303 and ok.headers["location"] == "/board"
        cookie = next(h for h in ok.headers.get_list("set-cookie") if h.startswith("qt_session="))
        assert "HttpOnly" in cookie and "SameSite=strict" in cookie
    assert [r[0] for r in audit_rows(db, "login")] == ["op"]  # fixture logins use other apps
    assert [r[0] for r in audit_rows(db, "login_failed")] == ["op"]


@pytest.mark.parametrize(
    "data",
    [
        pytest.param({"username": "op", "password": PASSWORD}, id="no-token"),
        pytest.param(
            {"username": "op", "password": PASSWORD, "csrf_token": "forged"}, id="wrong-token"
        ),
    ],
)
async def test_login_form_needs_its_csrf_token(app: FastAPI, data: dict[str, str]) -> None:
    async with running(app), new_client(app) as c:
        await c.get("/login")
        r = await c.post("/login", data=data)
        assert r.status_code == 403
        assert "qt_session" not in c.cookies


async def test_login_throttled_after_repeated_failures(app: FastAPI, db: str) -> None:
    async with running(app), new_client(app) as c:
        await c.get("/login")
        token = c.cookies["qt_login_csrf"]
        for _ in range(THROTTLE_FAILURES):
            r = await c.post(
                "/login", data={"username": "reg", "password": "wrong-pass", "csrf_token": token}
            )
            assert r.status_code == 401
        # now even the right password is refused for this username from this address
        r = await c.post(
            "/login", data={"username": "reg", "password": PASSWORD, "csrf_token": token}
        )
        assert r.status_code == 429
        # another user from the same address is not affected
        r = await c.post(
            "/login", data={"username": "op", "password": PASSWORD, "csrf_token": token}
        )
        assert r.status_code == 303
    assert len(audit_rows(db, "login_throttled")) == 1


async def test_logout_ends_session_and_audits(clients: Any, db: str) -> None:
    c, csrf = clients["reg"]
    r = await c.post("/logout", headers={"X-CSRF-Token": csrf})
    assert r.status_code == 303
    assert (await c.get("/api/me")).status_code == 401
    assert [r[0] for r in audit_rows(db, "logout")] == ["reg"]


# --- violations ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("", ALL_IDS),
        ("?state=open", {"V-PM25", "V-DUST"}),
        ("?state=closed", {"V-OUT"}),
        ("?kind=outage", {"V-OUT"}),
        ("?district=Chí Linh", {"V-DUST"}),
        ("?severity=>=10&severity=1.1-1.5", {"V-DUST", "V-PM25"}),
        ("?source=HD-KK-01", {"V-PM25"}),
        ("?state=open&kind=outage", set()),
    ],
)
async def test_violation_filters(clients: Any, query: str, expected: set[str]) -> None:
    c, _ = clients["reg"]
    r = await c.get("/api/violations" + query)
    assert r.status_code == 200
    assert {v["violation_id"] for v in r.json()} == expected


async def test_violations_newest_first(clients: Any) -> None:
    c, _ = clients["op"]
    ids = [v["violation_id"] for v in (await c.get("/api/violations")).json()]
    assert ids == ["V-DUST", "V-PM25", "V-OUT"]


async def test_violation_detail_and_404(clients: Any) -> None:
    c, _ = clients["reg"]
    d = (await c.get("/api/violations/V-PM25")).json()
    assert d["violation"]["source_name"] == "Trạm Quảng trường"
    assert [e["event"] for e in d["events"]] == ["opened", "updated"]
    assert d["events"][0]["message"] == "opened V-PM25"
    assert d["acknowledgements"] == []
    assert (await c.get("/api/violations/NOPE")).status_code == 404


async def test_operator_acknowledges_with_note(clients: Any, db: str) -> None:
    c, csrf = clients["op"]
    r = await c.post(
        "/api/violations/V-PM25/ack", json={"note": "gọi nhà máy"}, headers={"X-CSRF-Token": csrf}
    )
    assert r.status_code == 200, r.text
    assert r.json()["acknowledged_by"] == "op"
    with psycopg.connect(db) as conn:
        acks = conn.execute("SELECT violation_id, username, note FROM acknowledgements").fetchall()
        v = conn.execute(
            "SELECT acknowledged_by, ack_note, acknowledged_at IS NOT NULL FROM violations"
            " WHERE violation_id = 'V-PM25'"
        ).fetchone()
    assert acks == [("V-PM25", "op", "gọi nhà máy")]
    assert v == ("op", "gọi nhà máy", True)
    assert audit_rows(db, "acknowledge") == [
        ("op", "violation:V-PM25", {"note": "gọi nhà máy", "state": "open"})
    ]
    detail = (await c.get("/api/violations/V-PM25")).json()
    assert [a["note"] for a in detail["acknowledgements"]] == ["gọi nhà máy"]


@pytest.mark.parametrize(
    ("who", "headers", "body", "status"),
    [
        pytest.param("reg", "good", {"note": "x"}, 403, id="regulator-cannot-ack"),
        pytest.param("op", None, {"note": "x"}, 403, id="no-csrf"),
        pytest.param("op", "forged", {"note": "x"}, 403, id="wrong-csrf"),
        pytest.param("op", "good", {"note": ""}, 422, id="empty-note"),
        pytest.param("op", "good", {"note": "   "}, 422, id="blank-note"),
    ],
)
async def test_ack_refused(
    clients: Any, db: str, who: str, headers: str | None, body: dict[str, str], status: int
) -> None:
    c, csrf = clients[who]
    h = {} if headers is None else {"X-CSRF-Token": csrf if headers == "good" else headers}
    r = await c.post("/api/violations/V-PM25/ack", json=body, headers=h)
    assert r.status_code == status, r.text
    with psycopg.connect(db) as conn:
        assert conn.execute("SELECT count(*) FROM acknowledgements").fetchone() == (0,)
    assert audit_rows(db, "acknowledge") == []


async def test_ack_unknown_violation_is_404(clients: Any) -> None:
    c, csrf = clients["adm"]
    r = await c.post("/api/violations/NOPE/ack", json={"note": "x"}, headers={"X-CSRF-Token": csrf})
    assert r.status_code == 404


# --- sources, series, board ---------------------------------------------------------------


async def test_sources_and_source_detail(clients: Any) -> None:
    c, _ = clients["reg"]
    assert [s["id"] for s in (await c.get("/api/sources")).json()] == [
        "HD-KK-01",
        "HD-KT-01",
        "HD-NT-01",
    ]
    d = (await c.get("/api/sources/HD-KK-01")).json()
    assert d["source"]["parameters"] == ["PM2.5", "SO2", "WS"]
    assert [(v["parameter"], v["value"], v["limit"]) for v in d["latest"]] == [
        ("PM2.5", 40.0, 50.0)  # the newest of the two readings; limit from its violation
    ]
    assert [v["violation_id"] for v in d["open_violations"]] == ["V-PM25"]
    assert (await c.get("/api/sources/NOPE")).status_code == 404


@pytest.mark.parametrize(
    ("resolution", "values"),
    [("raw", [41.0, 40.0]), ("hourly", [55.0]), ("daily", None)],
)
async def test_series(clients: Any, resolution: str, values: list[float] | None) -> None:
    c, _ = clients["op"]
    end = datetime.now(UTC) + timedelta(minutes=1)  # after the readings, seeded just now
    r = await c.get(
        f"/api/sources/HD-KK-01/series?parameter=PM2.5&resolution={resolution}"
        f"&start={(NOW - timedelta(days=2)).isoformat().replace('+00:00', 'Z')}"
        f"&end={end.isoformat().replace('+00:00', 'Z')}"
    )
    assert r.status_code == 200, r.text
    got = [p["value"] for p in r.json()]
    if values is None:  # the readings fall in one or two local days, mean 40.5 or 41/40
        assert sorted(got) in ([40.5], [40.0, 41.0])
    else:
        assert got == values
    bad = await c.get("/api/sources/HD-KK-01/series?parameter=PM2.5&resolution=weekly")
    assert bad.status_code == 422


@pytest.mark.parametrize("method", ["savgol", "ewma"])
async def test_smoothed_display_series_is_apart_from_averages(clients: Any, method: str) -> None:
    c, _ = clients["reg"]
    r = await c.get(f"/api/sources/HD-KK-01/smoothed?parameter=PM2.5&method={method}")
    assert r.status_code == 200, r.text
    points = r.json()
    assert [p["value"] for p in points] == [41.0, 40.0]  # the raw valid values, oldest first
    # EWMA(α 0.3): y0 = 41, y1 = 0.3·40 + 0.7·41 = 40.7; Savitzky–Golay on 2 points keeps them
    expected = [41.0, 40.7] if method == "ewma" else [41.0, 40.0]
    assert [p["smoothed"] for p in points] == pytest.approx(expected)
    bad = await c.get("/api/sources/HD-KK-01/smoothed?parameter=PM2.5&method=median")
    assert bad.status_code == 422


async def test_board(clients: Any) -> None:
    c, _ = clients["reg"]
    rows = {r["source_id"]: r for r in (await c.get("/api/board")).json()}
    assert rows["HD-KK-01"]["status"] == "online"
    assert rows["HD-KT-01"]["status"] == "stale"  # 30 min at a 60 s interval
    assert rows["HD-NT-01"]["status"] == "offline"  # never reported
    assert rows["HD-KK-01"]["aqi"] == 123
    assert rows["HD-KK-01"]["open_violations"] == 1
    assert rows["HD-NT-01"]["open_violations"] == 0
    assert rows["HD-NT-01"]["completeness_today"] in (None, 0.0)


async def test_board_completeness_at_fixed_time(db: str) -> None:
    """Local noon: 12 h at 300 s = 144 expected PM2.5 and SO2 each, 720 WS at 60 s."""
    noon = datetime(2024, 5, 10, 5, 0, tzinfo=UTC)  # 12:00 Asia/Ho_Chi_Minh
    async with await psycopg.AsyncConnection.connect(db, autocommit=True) as conn:
        for i in range(100):
            await conn.execute(
                "INSERT INTO readings VALUES ('HD-KK-01','SO2',%s,1,'u','00',%s,1,'u',%s,'sim',"
                "'t')",
                (noon - timedelta(minutes=5 * i), "valid" if i < 80 else "spike", noon),
            )
        rows = {r.source_id: r for r in await q.station_board(conn, noon)}
    assert rows["HD-KK-01"].completeness_today == pytest.approx(80 / (144 + 144 + 720))
    assert rows["HD-KK-01"].status is q.StationStatus.ONLINE


# --- users ---------------------------------------------------------------------------------


async def test_admin_manages_users(clients: Any, db: str) -> None:
    c, csrf = clients["adm"]
    h = {"X-CSRF-Token": csrf}
    assert {u["username"] for u in (await c.get("/api/users")).json()} == set(USERS)
    r = await c.post(
        "/api/users",
        json={"username": "new", "password": "a-long-passphrase", "role": "regulator"},
        headers=h,
    )
    assert r.status_code == 201, r.text
    dup = await c.post(
        "/api/users",
        json={"username": "new", "password": "a-long-passphrase", "role": "regulator"},
        headers=h,
    )
    assert dup.status_code == 409
    weak = await c.post(
        "/api/users", json={"username": "x", "password": "short", "role": "admin"}, headers=h
    )
    assert weak.status_code == 422
    assert ("adm", "user:new", {"role": "regulator"}) in audit_rows(db, "user_created")
    # disabling a user ends their session
    op, _ = clients["op"]
    r = await c.put("/api/users/op", json={"disabled": True}, headers=h)
    assert r.status_code == 200
    assert (await op.get("/api/me")).status_code == 401
    assert (await c.put("/api/users/ghost", json={"disabled": True}, headers=h)).status_code == 404
    assert (await c.put("/api/users/adm", json={"disabled": True}, headers=h)).status_code == 422


@pytest.mark.parametrize("who", ["op", "reg"])
async def test_only_admin_manages_users(clients: Any, who: str) -> None:
    c, csrf = clients[who]
    h = {"X-CSRF-Token": csrf}
    assert (await c.get("/api/users")).status_code == 403
    r = await c.post(
        "/api/users", json={"username": "z", "password": "a-long-pass", "role": "admin"}, headers=h
    )
    assert r.status_code == 403
    assert (await c.put("/api/users/adm", json={"disabled": True}, headers=h)).status_code == 403
    assert (await c.get("/users")).status_code == 403


async def test_users_post_needs_csrf(clients: Any) -> None:
    c, _ = clients["adm"]
    r = await c.post(
        "/api/users", json={"username": "z", "password": "a-long-pass", "role": "admin"}
    )
    assert r.status_code == 403


def test_cli_add_user(database_url: str) -> None:
    cli_add_user(database_url, "root", "s3cret-admin", "admin")  # migrates an empty database
    with psycopg.connect(database_url) as conn:
        row = conn.execute("SELECT role, password_hash FROM users").fetchone()
    assert row is not None and row[0] == "admin" and row[1].startswith("$argon2id$")
    assert audit_rows(database_url, "user_created") == [("cli", "user:root", {"role": "admin"})]
    for args in [
        ("root", "s3cret-admin", "admin"),
        ("x", "s3cret-admin", "boss"),
        ("y", "short", "admin"),
    ]:
        with pytest.raises(UserError):
            cli_add_user(database_url, *args)


# --- pages ---------------------------------------------------------------------------------


@pytest.mark.parametrize("path", PAGES)
async def test_pages_render_for_admin(clients: Any, path: str) -> None:
    c, _ = clients["adm"]
    r = await c.get(path)
    assert r.status_code == 200, r.text
    assert "<html" in r.text


async def test_alert_page_shows_ack_only_to_operators(clients: Any) -> None:
    op = (await clients["op"][0].get("/")).text
    reg = (await clients["reg"][0].get("/")).text
    assert 'id="v-V-PM25"' in op and 'id="v-V-PM25"' in reg
    assert "ack-button" in op and "ack-button" not in reg
    assert 'id="v-V-OUT"' not in op  # closed: not on the default (open) list
    assert "Cảnh báo đang mở" in op  # Vietnamese by default


async def test_english_via_query_then_cookie(clients: Any) -> None:
    c, _ = clients["reg"]
    assert "Open alerts" in (await c.get("/?lang=en")).text
    assert "Open alerts" in (await c.get("/")).text  # remembered
    assert "Cảnh báo đang mở" in (await c.get("/?lang=vi")).text


async def test_violation_page_draws_limit_and_history(clients: Any) -> None:
    text = (await clients["reg"][0].get("/violations/V-PM25")).text
    # the episode chart is drawn in the browser from its JSON (test_console_charts.py)
    assert 'data-src="/api/violations/V-PM25/chart?lang=vi"' in text
    assert "opened V-PM25" in text
    assert (await clients["reg"][0].get("/violations/NOPE")).status_code == 404


async def test_board_page_uses_official_aqi_colour(clients: Any) -> None:
    c = clients["reg"][0]
    text = (await c.get("/board")).text
    assert '<span class="aqi aqi-unhealthy_sensitive">123</span>' in text  # AQI 123
    css = await c.get("/bands.css")
    assert css.headers["content-type"].startswith("text/css")
    assert ".aqi-unhealthy_sensitive { background: rgb(255,126,0); color: #000; }" in css.text
    assert css.text == band_stylesheet()


# Decision 1459/QĐ-TCMT (2019), Table: VN_AQI ranges and colours (RGB)
@pytest.mark.parametrize(
    ("aqi", "colour"),
    [
        (0, "rgb(0,228,0)"),
        (50, "rgb(0,228,0)"),
        (51, "rgb(255,255,0)"),
        (100, "rgb(255,255,0)"),
        (101, "rgb(255,126,0)"),
        (150, "rgb(255,126,0)"),
        (151, "rgb(255,0,0)"),
        (200, "rgb(255,0,0)"),
        (201, "rgb(143,63,151)"),
        (300, "rgb(143,63,151)"),
        (301, "rgb(126,0,35)"),
        (500, "rgb(126,0,35)"),
        (None, None),
    ],
)
def test_aqi_colour(aqi: int | None, colour: str | None) -> None:
    assert aqi_colour(aqi) == colour


@pytest.mark.parametrize(
    ("age_s", "interval_s", "status"),
    [
        (None, 300, q.StationStatus.OFFLINE),
        (60, 300, q.StationStatus.ONLINE),
        (900, 300, q.StationStatus.ONLINE),  # floor of 15 min
        (901, 300, q.StationStatus.STALE),
        (3600, 300, q.StationStatus.STALE),
        (3601, 300, q.StationStatus.OFFLINE),
        (7200, 3600, q.StationStatus.ONLINE),  # 2 intervals
        (7201, 3600, q.StationStatus.STALE),
        (21601, 3600, q.StationStatus.OFFLINE),
    ],
)
def test_station_status(age_s: float | None, interval_s: int, status: q.StationStatus) -> None:
    assert q.station_status(age_s, interval_s) is status


# --- live updates over SSE -----------------------------------------------------------------


@pytest.fixture
def server(app: FastAPI) -> Iterator[str]:
    with serving(app) as base:
        yield base


@contextmanager
def serving(app: FastAPI) -> Iterator[str]:
    """``app`` under uvicorn on a free loopback port (SSE needs a real socket)."""
    port = free_port()
    srv = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on")
    )
    thread = threading.Thread(target=srv.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not srv.started:
        assert time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        srv.should_exit = True
        thread.join(10)


async def test_sse_pushes_new_and_acknowledged_violations(server: str, db: str) -> None:
    async with httpx.AsyncClient(base_url=server, timeout=10) as c:
        csrf = await login(c, "op")
        async with c.stream("GET", "/api/events") as stream:
            assert stream.headers["content-type"].startswith("text/event-stream")
            lines = stream.aiter_lines()

            async def next_event(kind: str) -> dict[str, Any]:
                event = None
                async for line in lines:
                    if line.startswith("event: "):
                        event = line[7:]
                    elif line.startswith("data: ") and event == kind:
                        return dict(json.loads(line[6:]))
                raise AssertionError("stream ended")

            await asyncio.wait_for(next_event("hello"), 5)
            t0 = time.monotonic()
            with psycopg.connect(db, autocommit=True) as conn:
                _insert_violation(
                    conn, ("V-NEW", "exceedance", "HD-KK-01", "SO2", "open", "2-3", 5, 250.0, 100.0)
                )
            v = await asyncio.wait_for(next_event("violation"), 5)
            assert v["violation_id"] == "V-NEW" and v["severity"] == "2-3"
            assert time.monotonic() - t0 < 5
            r = await c.post(
                "/api/violations/V-NEW/ack", json={"note": "ok"}, headers={"X-CSRF-Token": csrf}
            )
            assert r.status_code == 200
            v = await asyncio.wait_for(next_event("violation"), 5)
            assert (v["violation_id"], v["acknowledged_by"]) == ("V-NEW", "op")


async def test_wastewater_violation_shows_decree_45_band_article_and_flow_bracket(
    clients: Any, db: str
) -> None:
    """Decree 45/2022 Art. 18 (docs/regulations.md §8b, [S58]): 1.2× is the 1.1–<1.5× band, and
    30 m³/ngày the 20–<40 bracket (VND 5–10 M). Written with the worker's row mapping; the ambient
    V-PM25 of the fixture has no Decree 45 columns and the page says none applies."""
    from core.records import ViolationEvent
    from storage.rows import violation_row
    from storage.writer import VIOLATION_COLUMNS
    from thresholds.severity import FlowBasis, Penalty, default_penalties

    schedule = default_penalties().schedule_for("wastewater", "COD")
    a = Penalty(schedule, 30.0, FlowBasis.PERMITTED).assess(1.2)
    started = NOW - timedelta(minutes=90)
    event = ViolationEvent(
        violation_id="V-COD",
        event="opened",
        seq=0,
        source_id="HD-NT-01",
        parameter="COD",
        rule_id="QCVN_40_2011:B:COD:1h",
        period="1h",
        started_at=started,
        at=started + timedelta(hours=1),
        value=180.0,
        limit=150.0,
        ratio=1.2,
        severity=a.severity.value,
        peak_value=180.0,
        peak_ratio=1.2,
        penalty_article=a.article,
        penalty_sanction=a.sanction,
        penalty_verified=a.verified,
        flow_bracket=a.flow_bracket,
        flow_basis=a.flow_basis,
        flow_value=a.flow_value,
    )
    with psycopg.connect(db, autocommit=True) as conn:
        cols = ", ".join(f'"{c}"' for c in VIOLATION_COLUMNS)
        marks = ", ".join(["%s"] * len(VIOLATION_COLUMNS))
        conn.execute(f"INSERT INTO violations ({cols}) VALUES ({marks})", violation_row(event))
    c, _ = clients["reg"]
    v = (await c.get("/api/violations/V-COD")).json()["violation"]
    assert v["severity"] == "1.1-1.5"
    assert v["penalty_article"].startswith("Nghị định 45/2022/NĐ-CP Điều 18 khoản 2 điểm d")
    assert v["penalty_sanction"] == "phạt tiền theo lượng nước thải: 5–10 triệu đồng"
    assert v["penalty_verified"] is True
    assert (v["flow_bracket"], v["flow_basis"], v["flow_value"]) == (
        "20–<40 m³/ngày",
        "permitted",
        30.0,
    )
    page = (await c.get("/violations/V-COD")).text
    assert "Điều 18 khoản 2 điểm d" in page and "20–&lt;40 m³/ngày" in page
    listing = (await c.get("/")).text
    assert "20–&lt;40 m³/ngày" in listing
    ambient = (await c.get("/api/violations/V-PM25")).json()["violation"]
    assert ambient["penalty_article"] is None and ambient["flow_bracket"] is None
    assert 'id="penalty">không áp dụng' in (await c.get("/violations/V-PM25")).text


# --- HTTPS ---------------------------------------------------------------------------------


def test_console_serves_https_with_secure_cookies(
    db: str, tmp_path: Path, tls_files: TlsFiles
) -> None:
    """``quantrac console``'s server with a certificate and key: HTTPS only, verified against
    the generated certificate (host name ``localhost``), session cookies marked Secure."""
    port = free_port()
    settings = Settings(
        database_url=db,
        data_dir=tmp_path,
        console_port=port,
        tls_cert_file=tls_files.cert,
        tls_key_file=tls_files.key,
        log_level="WARNING",
    )
    srv = console_server(settings, host="127.0.0.1")
    thread = threading.Thread(target=srv.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not srv.started:
        assert thread.is_alive() and time.monotonic() < deadline, "console did not start"
        time.sleep(0.05)
    try:
        base = f"https://localhost:{port}"
        with httpx.Client(base_url=base, verify=tls_files.client_context(), timeout=10) as c:
            health = c.get("/healthz")
            form = c.get("/login")
            token = c.cookies.get("qt_login_csrf")
            login = c.post(
                "/login", data={"username": "op", "password": PASSWORD, "csrf_token": token}
            )
            me = c.get("/api/me")
        with pytest.raises(httpx.HTTPError):  # no plain HTTP on the HTTPS port
            httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=5)
    finally:
        srv.should_exit = True
        thread.join(10)

    assert health.status_code == 200 and health.json() == {"status": "ok", "database": True}
    assert "; secure" in form.headers["set-cookie"].lower()
    assert login.status_code == 303
    session_cookie = next(
        h for h in login.headers.get_list("set-cookie") if h.startswith("qt_session=")
    )
    assert "; secure" in session_cookie.lower()
    assert me.json()["username"] == "op"


# --- audit log and acknowledgement history ---------------------------------------------------


async def test_audit_log_is_for_admins_only(clients: Any) -> None:
    """Issue 16: the audit trail (who logged in from where, who changed users) is admin-only."""
    for who in ("op", "reg"):
        c, _ = clients[who]
        assert (await c.get("/api/audit")).status_code == 403, who
        assert (await c.get("/api/audit", params={"target": "violation:V-PM25"})).status_code == 403
        page = await c.get("/audit")
        assert page.status_code == 403 and 'id="audit"' not in page.text, who
        alerts = (await c.get("/")).text
        assert 'href="/audit"' not in alerts, who  # no menu entry either
        detail = (await c.get("/violations/V-PM25")).text
        assert 'id="audit"' not in detail and 'id="acks"' in detail, who
    adm, _ = clients["adm"]
    entries = (await adm.get("/api/audit")).json()
    assert {"login"} <= {e["action"] for e in entries}
    assert 'id="audit"' in (await adm.get("/audit")).text
    assert 'href="/audit"' in (await adm.get("/")).text
    assert 'id="audit"' in (await adm.get("/violations/V-PM25")).text


async def test_second_acknowledgement_keeps_the_first_acknowledger(clients: Any, db: str) -> None:
    """Issue 16: a later acknowledgement is added to the history; the violation's
    acknowledged_by/at and note stay the first one's, in the API, the page and the database."""
    op, op_csrf = clients["op"]
    adm, adm_csrf = clients["adm"]
    first = await op.post(
        "/api/violations/V-PM25/ack",
        json={"note": "gọi nhà máy"},
        headers={"X-CSRF-Token": op_csrf},
    )
    assert first.status_code == 200, first.text
    second = await adm.post(
        "/api/violations/V-PM25/ack",
        json={"note": "đã kiểm tra lại"},
        headers={"X-CSRF-Token": adm_csrf},
    )
    assert second.status_code == 200, second.text
    for answer in (first.json(), second.json()):
        assert (answer["acknowledged_by"], answer["ack_note"]) == ("op", "gọi nhà máy")
    assert second.json()["acknowledged_at"] == first.json()["acknowledged_at"]
    detail = (await adm.get("/api/violations/V-PM25")).json()
    assert detail["violation"]["acknowledged_by"] == "op"
    assert [(a["username"], a["note"]) for a in detail["acknowledgements"]] == [
        ("op", "gọi nhà máy"),
        ("adm", "đã kiểm tra lại"),
    ]
    page = (await op.get("/violations/V-PM25")).text
    acks = page[page.index('id="acks"') : page.index("</table>", page.index('id="acks"'))]
    assert acks.index("gọi nhà máy") < acks.index("đã kiểm tra lại")
    with psycopg.connect(db) as conn:
        row = conn.execute(
            "SELECT acknowledged_by, ack_note FROM violations WHERE violation_id = 'V-PM25'"
        ).fetchone()
        n = conn.execute("SELECT count(*) FROM acknowledgements").fetchone()
    assert row == ("op", "gọi nhà máy") and n == (2,)
    assert [r[0] for r in audit_rows(db, "acknowledge")] == ["op", "adm"]


def test_migration_0009_restores_the_first_acknowledger(db: str) -> None:
    """Rows written before the fix carry the last acknowledger: 0009 puts the first one back
    from the history (re-applied here over such a row)."""
    first, later = NOW - timedelta(minutes=50), NOW - timedelta(minutes=20)
    with psycopg.connect(db, autocommit=True) as conn:
        for user, note, at in [("op", "first", first), ("adm", "later", later)]:
            conn.execute(
                "INSERT INTO acknowledgements (violation_id, username, note, at)"
                " VALUES ('V-DUST', %s, %s, %s)",
                (user, note, at),
            )
        conn.execute(  # what the console used to leave behind
            "UPDATE violations SET acknowledged_at = %s, acknowledged_by = 'adm',"
            " ack_note = 'later' WHERE violation_id = 'V-DUST'",
            (later,),
        )
        conn.execute("DELETE FROM schema_migrations WHERE version = 9")
    assert [m.version for m in migrate(db)] == [9]
    with psycopg.connect(db) as conn:
        rows = conn.execute(
            "SELECT violation_id, acknowledged_at, acknowledged_by, ack_note FROM violations"
            " ORDER BY violation_id"
        ).fetchall()
    assert ("V-DUST", first, "op", "first") in rows
    assert [r for r in rows if r[0] != "V-DUST" and r[2] is not None] == []  # others untouched
