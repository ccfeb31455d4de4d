"""Console login hardening against a real PostgreSQL: hashing off the event loop, throttling per
address and per username and address (counted atomically), password changes and admin resets
under the password policy, the absolute session lifetime and Secure cookies.

Uses the console tests' fixtures (tests/integration/test_console_api.py): a migrated database with
one user per role, all with ``PASSWORD``.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
from fastapi import FastAPI

from console.app import create_app
from console.auth import verify_password
from core.settings import Settings
from tests.integration import test_console_api as console_api
from tests.integration.test_console_api import PASSWORD, audit_rows, login, running

db = console_api.db
app = console_api.app
clients = console_api.clients

pytestmark = pytest.mark.integration

NEW_PASSWORD = "tram-quan-trac-2026"


def client(app: FastAPI, ip: str = "10.0.0.7", scheme: str = "http") -> httpx.AsyncClient:
    return httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app, client=(ip, 5555)),
        base_url=f"{scheme}://testserver",
    )


def app_with(db: str, tmp_path: Path, **overrides: Any) -> FastAPI:
    return create_app(Settings(database_url=db, data_dir=tmp_path, **overrides), poll_interval_s=5)


async def post_login(c: httpx.AsyncClient, username: str, password: str) -> httpx.Response:
    if "qt_login_csrf" not in c.cookies:
        await c.get("/login")
    form = {"username": username, "password": password, "csrf_token": c.cookies["qt_login_csrf"]}
    return await c.post("/login", data=form)


def failed_attempts(db: str) -> int:
    with psycopg.connect(db) as conn:
        row = conn.execute("SELECT count(*) FROM login_attempts WHERE NOT success").fetchone()
    assert row is not None
    return int(row[0])


# --- hashing off the event loop ----------------------------------------------------------------


async def test_healthz_answers_while_a_burst_of_logins_is_hashed(db: str, tmp_path: Path) -> None:
    """10 concurrent logins, verified one at a time (concurrency 1): /healthz, asked once they
    are all under way, answers before the second of them has finished. With argon2 on the
    event loop (and a pooled connection held per login) it waited for several of them."""
    app = app_with(db, tmp_path, console_hash_concurrency=1)
    finished: list[str] = []
    async with running(app):
        clients = [client(app, f"10.0.1.{i}") for i in range(10)]
        for c in clients:
            await c.get("/login")

        async def one_login(i: int, c: httpx.AsyncClient) -> None:
            r = await post_login(c, "op", PASSWORD)
            assert r.status_code == 303
            finished.append(f"login{i}")

        logins = [asyncio.create_task(one_login(i, c)) for i, c in enumerate(clients)]
        await asyncio.sleep(0.02)  # every login is on its way
        async with client(app) as h:
            health = await h.get("/healthz")
        logins_done_at_health = len(finished)
        await asyncio.gather(*logins)
        for c in clients:
            await c.aclose()
    assert health.status_code == 200
    assert len(finished) == 10
    assert logins_done_at_health <= 1, f"/healthz waited for {logins_done_at_health} logins"


# --- throttling --------------------------------------------------------------------------------


async def test_concurrent_guesses_are_counted_atomically(app: FastAPI, db: str) -> None:
    """12 wrong passwords at once for one username from one address: exactly the limit (5) are
    checked (401), the rest are refused (429) without looking at the password."""
    async with running(app):
        cs = [client(app) for _ in range(12)]
        for c in cs:
            await c.get("/login")
        answers = await asyncio.gather(*(post_login(c, "reg", "wrong-password-x") for c in cs))
        for c in cs:
            await c.aclose()
    codes = sorted(r.status_code for r in answers)
    assert codes == [401] * 5 + [429] * 7
    assert failed_attempts(db) == 5


async def test_password_spraying_from_one_address_is_throttled(db: str, tmp_path: Path) -> None:
    """One address trying one password over many usernames: past the per-address limit every
    login from it is refused, even a right one; another address is not affected."""
    app = app_with(db, tmp_path, console_login_failures_per_ip=3)
    async with running(app), client(app, "10.9.9.9") as sprayer, client(app, "10.0.0.8") as other:
        for name in ("adm", "reg", "ghost"):  # one failure each: the per-user limit is far
            assert (await post_login(sprayer, name, "Spring2026!spray")).status_code == 401
        r = await post_login(sprayer, "op", PASSWORD)
        assert r.status_code == 429
        assert "qt_session" not in sprayer.cookies
        assert (await post_login(other, "op", PASSWORD)).status_code == 303
        # the metric counts each outcome
        text = (await other.get("/metrics")).text
    assert 'quantrac_console_logins_total{result="throttled"} 1.0' in text
    assert 'quantrac_console_logins_total{result="bad_credentials"} 3.0' in text
    assert 'quantrac_console_logins_total{result="ok"} 1.0' in text
    throttled = audit_rows(db, "login_throttled")
    assert [(a, d["ip"], d["scope"]) for a, _, d in throttled] == [("op", "10.9.9.9", "ip")]


# --- password changes ------------------------------------------------------------------------


async def test_user_changes_own_password(clients: Any, app: FastAPI, db: str) -> None:
    c, csrf = clients["op"]
    h = {"X-CSRF-Token": csrf}
    url = "/api/me/password"
    # CSRF like every other state change
    r = await c.post(url, json={"current_password": PASSWORD, "new_password": NEW_PASSWORD})
    assert r.status_code == 403
    wrong = await c.post(
        url, json={"current_password": "not-it-at-all", "new_password": NEW_PASSWORD}, headers=h
    )
    assert wrong.status_code == 403 and "current password" in wrong.json()["detail"]
    for weak, rule in [
        ("short-pass", "12"),
        ("qwerty123456", "common"),
        ("password2026!", "common"),
    ]:
        r = await c.post(url, json={"current_password": PASSWORD, "new_password": weak}, headers=h)
        assert r.status_code == 422 and rule in r.json()["detail"], (weak, r.text)
    # a second session of the same user ends with the change; this one stays
    async with client(app) as other:
        await login(other, "op")
        ok = await c.post(
            url, json={"current_password": PASSWORD, "new_password": NEW_PASSWORD}, headers=h
        )
        assert ok.status_code == 200, ok.text
        assert (await other.get("/api/me")).status_code == 401
    assert (await c.get("/api/me")).status_code == 200
    async with client(app, "10.0.0.9") as fresh:
        assert (await post_login(fresh, "op", PASSWORD)).status_code == 401
        assert (await post_login(fresh, "op", NEW_PASSWORD)).status_code == 303
    assert [(a, t) for a, t, _ in audit_rows(db, "password_changed")] == [("op", "user:op")]


async def test_password_form_changes_password_with_csrf(clients: Any, db: str) -> None:
    c, csrf = clients["reg"]
    page = await c.get("/password")
    assert page.status_code == 200 and 'name="new_password"' in page.text
    form = {"current_password": PASSWORD, "new_password": NEW_PASSWORD}
    assert (await c.post("/password", data=form)).status_code == 403  # no token
    r = await c.post("/password", data={**form, "csrf_token": csrf})
    assert r.status_code == 200 and 'id="password-done"' in r.text
    with psycopg.connect(db) as conn:
        row = conn.execute("SELECT password_hash FROM users WHERE username = 'reg'").fetchone()
    assert row is not None and verify_password(row[0], NEW_PASSWORD)


async def test_admin_resets_another_users_password(clients: Any, app: FastAPI, db: str) -> None:
    adm, csrf = clients["adm"]
    op, _ = clients["op"]
    h = {"X-CSRF-Token": csrf}
    body = {"new_password": NEW_PASSWORD}
    assert (await adm.post("/api/users/op/password", json=body)).status_code == 403  # no token
    weak = await adm.post("/api/users/op/password", json={"new_password": "op"}, headers=h)
    assert weak.status_code == 422
    assert (await adm.post("/api/users/ghost/password", json=body, headers=h)).status_code == 404
    assert (await adm.post("/api/users/adm/password", json=body, headers=h)).status_code == 422
    r = await adm.post("/api/users/op/password", json=body, headers=h)
    assert r.status_code == 200, r.text
    assert (await op.get("/api/me")).status_code == 401  # every session of op ended
    async with client(app, "10.0.0.9") as fresh:
        assert (await post_login(fresh, "op", NEW_PASSWORD)).status_code == 303
    assert [(a, t) for a, t, _ in audit_rows(db, "password_reset")] == [("adm", "user:op")]
    # only an admin may reset
    c, reg_csrf = clients["reg"]
    r = await c.post("/api/users/adm/password", json=body, headers={"X-CSRF-Token": reg_csrf})
    assert r.status_code == 403


async def test_admin_creates_users_under_the_policy(clients: Any) -> None:
    adm, csrf = clients["adm"]
    for weak in ["eleven-char", "administrator", "1234567890123", "aaaaaaaaaaaaaaaa"]:
        r = await adm.post(
            "/api/users",
            json={"username": "newbie", "password": weak, "role": "operator"},
            headers={"X-CSRF-Token": csrf},
        )
        assert r.status_code == 422, weak


# --- sessions and cookies ---------------------------------------------------------------------


async def test_session_older_than_the_absolute_lifetime_is_refused(app: FastAPI, db: str) -> None:
    async with running(app), client(app) as c:
        await login(c, "op")
        with psycopg.connect(db, autocommit=True) as conn:
            # active a moment ago, idle expiry far ahead: only its age ends it
            conn.execute(
                "UPDATE sessions SET created_at = now() - interval '25 hours',"
                " last_seen = now(), expires_at = now() + interval '11 hours'"
            )
        assert (await c.get("/api/me")).status_code == 401


async def test_sliding_expiry_never_passes_the_absolute_lifetime(db: str, tmp_path: Path) -> None:
    app = app_with(db, tmp_path, console_session_idle_s=3600, console_session_max_s=5400)
    async with running(app), client(app) as c:
        await login(c, "op")
        with psycopg.connect(db, autocommit=True) as conn:
            conn.execute("UPDATE sessions SET created_at = now() - interval '80 minutes'")
        assert (await c.get("/api/me")).status_code == 200
        with psycopg.connect(db) as conn:
            row = conn.execute("SELECT expires_at - created_at FROM sessions").fetchone()
    assert row is not None and row[0] == timedelta(seconds=5400)


@pytest.mark.parametrize("behind_tls", [False, True])
async def test_secure_cookie_flag_follows_the_setting(
    db: str, tmp_path: Path, behind_tls: bool
) -> None:
    app = app_with(db, tmp_path, console_behind_tls=behind_tls)
    # a proxy terminates TLS: the browser speaks https (httpx keeps Secure cookies for it only)
    async with running(app), client(app, scheme="https") as c:
        page = await c.get("/login")
        r = await post_login(c, "op", PASSWORD)
    cookies = [*page.headers.get_list("set-cookie"), *r.headers.get_list("set-cookie")]
    session = next(h for h in cookies if h.startswith("qt_session="))
    login_csrf = next(h for h in cookies if h.startswith("qt_login_csrf="))
    assert ("Secure" in session) is behind_tls and ("Secure" in login_csrf) is behind_tls
    max_age = int(session.split("Max-Age=")[1].split(";")[0])
    assert max_age == int(Settings.model_fields["console_session_max_s"].default)
