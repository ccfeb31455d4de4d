"""API tokens at the gateway's HTTP door (issue 20), against the real embedded broker and
PostgreSQL: an ingest token posts for its sources, a read token cannot ingest, a revoked,
expired or unknown token gets 401, and each use is counted."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import psycopg
import pytest

from core.settings import Settings
from stations.registry import Registry
from storage import api_tokens as tk
from storage.migrate import migrate
from storage.sources import sync_sources
from tests.integration.gateway_support import (
    RunningGateway,
    gw_settings,
    read_topic,
    registry,
    running_gateway,
)

pytestmark = pytest.mark.integration
__all__ = ["gw_settings", "registry"]  # fixtures used by name

T = "20261124100500"  # five minutes before the gateway's fixed clock
SO2 = {"parameter": "SO2", "value": 12.5, "unit": "µg/Nm3", "measured_at": T, "status": "00"}
STACK_FILE = "HD_NDPL_KHI001_20261124100500.txt"  # HD-KT-01


def _doc(source_id: str = "HD-KK-01") -> bytes:
    return json.dumps({"source_id": source_id, "readings": [SO2]}).encode()


@pytest.fixture
def tokens_db(database_url: str, registry: Registry) -> str:
    migrate(database_url)
    sync_sources(database_url, registry)
    return database_url


def token(
    conninfo: str,
    scope: str,
    sources: list[str],
    *,
    days: float | None = None,
    now: datetime | None = None,
) -> tk.NewToken:
    with psycopg.connect(conninfo, autocommit=True) as conn:
        return tk.create(
            conn,
            f"datalogger {scope}",
            scope,
            days=days,
            sources=sources,
            actor="test",
            now=now or datetime.now(UTC),
        )


@pytest.fixture
def gateway(gw_settings: Settings, registry: Registry, tokens_db: str) -> Iterator[RunningGateway]:
    store = tk.CachedTokens(tokens_db, cache_s=0.0)  # no cache: a revocation counts at once
    try:
        with running_gateway(gw_settings, registry, tokens=store) as gw:
            yield gw
    finally:
        store.close()


def post(gw: RunningGateway, path: str, secret: str | None, body: bytes) -> httpx.Response:
    headers = {"Authorization": f"Bearer {secret}"} if secret else {}
    return httpx.post(f"{gw.http_url}{path}", content=body, headers=headers, timeout=15)


def uses(conninfo: str, token_id: str) -> list[tuple[Any, ...]]:
    with psycopg.connect(conninfo) as conn:
        return conn.execute(
            "SELECT door, route, outcome, n FROM api_token_uses WHERE token_id = %s"
            " ORDER BY route, outcome",
            (token_id,),
        ).fetchall()


def test_an_ingest_token_posts_for_its_sources_only(
    gateway: RunningGateway, gw_settings: Settings, tokens_db: str
) -> None:
    one = token(tokens_db, "ingest", ["HD-KK-01"])
    two = token(tokens_db, "ingest", ["HD-KK-01", "HD-KT-01"])
    ok = post(gateway, "/ingest", one.secret, _doc())
    unnamed = post(gateway, "/ingest", two.secret, _doc())
    named = post(gateway, "/ingest?source=HD-KK-01", two.secret, _doc())
    stack = b"Dust\t45.2\tmg/Nm3\t20261124100500\t00\n"
    as_file = post(gateway, f"/ingest/file/{STACK_FILE}?source=HD-KT-01", two.secret, stack)
    not_its = post(gateway, "/ingest?source=HD-NT-01", two.secret, _doc("HD-NT-01"))
    other_body = post(gateway, "/ingest", one.secret, _doc("HD-KT-01"))
    raw = read_topic(gw_settings, "readings.raw", 2, until=lambda m: len(m) >= 2)

    assert ok.status_code == 202 and ok.json()["source_id"] == "HD-KK-01", ok.text
    assert unnamed.status_code == 403 and "?source=" in unnamed.json()["error"]
    assert named.status_code == 202 and named.json()["accepted"] == 1
    assert as_file.status_code == 202, as_file.text
    assert as_file.json()["source_id"] == "HD-KT-01"
    assert not_its.status_code == 403 and "may not post for HD-NT-01" in not_its.json()["error"]
    assert other_body.status_code == 403  # the body is another source's: sender_mismatch
    assert [r["reason"] for r in other_body.json()["rejections"]] == ["sender_mismatch"]
    kk = [m for m in raw if m.value["source_id"] == "HD-KK-01"]
    assert len(kk) == 2 and all(m.value["channel"] == "http" for m in kk)
    assert {m.value["source_id"] for m in raw} == {"HD-KK-01", "HD-KT-01"}
    assert uses(tokens_db, one.token.id) == [("gateway", "/ingest", "ok", 2)]
    assert uses(tokens_db, two.token.id) == [
        ("gateway", "/ingest", "ok", 1),
        ("gateway", "/ingest", "scope", 2),
        ("gateway", "/ingest/file/{name}", "ok", 1),
    ]


def test_a_read_token_cannot_ingest(
    gateway: RunningGateway, gw_settings: Settings, tokens_db: str
) -> None:
    read = token(tokens_db, "read", [])
    r = post(gateway, "/ingest", read.secret, _doc())
    f = post(gateway, f"/ingest/file/{STACK_FILE}", read.secret, b"x")
    raw = read_topic(gw_settings, "readings.raw", 0, settle_s=0.5)
    assert r.status_code == 403 and "not ingest" in r.json()["error"]
    assert f.status_code == 403
    assert raw == []
    assert not (gw_settings.data_dir / "archive").exists() or not any(
        (gw_settings.data_dir / "archive").rglob("*.json")
    )
    assert [u[2] for u in uses(tokens_db, read.token.id)] == ["scope", "scope"]


def _other(c: str) -> str:
    return "R" if c == "Q" else "Q"


def test_revoked_expired_and_unknown_tokens_get_401(
    gateway: RunningGateway, gw_settings: Settings, tokens_db: str
) -> None:
    live = token(tokens_db, "ingest", ["HD-KK-01"])
    expired = token(
        tokens_db, "ingest", ["HD-KK-01"], days=1, now=datetime.now(UTC) - timedelta(days=2)
    )
    assert post(gateway, "/ingest", live.secret, _doc()).status_code == 202
    with psycopg.connect(tokens_db, autocommit=True) as conn:
        tk.revoke(conn, live.token.id, actor="test", now=datetime.now(UTC))
    answers = {
        "revoked": post(gateway, "/ingest", live.secret, _doc()),
        "expired": post(gateway, "/ingest", expired.secret, _doc()),
        # one character off (a secret that ends in "Q" already would be the revoked token itself)
        "unknown": post(gateway, "/ingest", live.secret[:-1] + _other(live.secret[-1]), _doc()),
        "malformed": post(gateway, "/ingest", "qt_nonsense", _doc()),
    }
    raw = read_topic(gw_settings, "readings.raw", 1)
    for why, r in answers.items():
        assert r.status_code == 401, (why, r.text)
        assert r.headers["WWW-Authenticate"].startswith("Bearer"), why
    assert "revoked" in answers["revoked"].json()["error"]
    assert "expired" in answers["expired"].json()["error"]
    assert len(raw) == 1  # only the post before the revocation
    assert uses(tokens_db, live.token.id) == [
        ("gateway", "/ingest", "ok", 1),
        ("gateway", "/ingest", "revoked", 1),
    ]
    assert uses(tokens_db, expired.token.id) == [("gateway", "/ingest", "expired", 1)]


def test_a_gateway_without_a_token_store_refuses_bearer_tokens(
    gw_settings: Settings, registry: Registry, tokens_db: str
) -> None:
    ingest = token(tokens_db, "ingest", ["HD-KK-01"])
    with running_gateway(gw_settings, registry) as gw:
        r = post(gw, "/ingest", ingest.secret, _doc())
    assert r.status_code == 401 and "not enabled" in r.json()["error"]
