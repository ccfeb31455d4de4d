"""``quantrac tokens create|list|revoke``: API tokens for machine clients from the command line.

``create`` prints the token once (it is stored only as a hash; lost, it is revoked and replaced).
Every change is audited with the actor ``cli`` (audit_log ``token_created``/``token_revoked``).
"""

from __future__ import annotations

import json
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg

from core.api_tokens import Verdict
from storage import api_tokens as tk

ACTOR = "cli"


def _now() -> datetime:
    return datetime.now(UTC)


def _connect(conninfo: str) -> psycopg.Connection[Any]:
    """A connection to a migrated database (the table may be new)."""
    from storage.migrate import migrate

    migrate(conninfo)
    return psycopg.connect(conninfo, autocommit=True)


def create(
    conninfo: str,
    name: str,
    scope: str,
    *,
    days: float | None,
    sources: list[str],
    registry_path: Path | None = None,
) -> str:
    """A new token; an ingest token's sources must be registered (the registry is mirrored
    into the database first, as the worker does, so a fresh install can make tokens)."""
    from core.errors import RegistryError
    from stations.registry import load_registry
    from storage.sources import sync_sources

    ids = [i.strip() for s in sources for i in s.split(",") if i.strip()]
    tk.check_new(name, scope, days, ids)  # before any database is touched
    with _connect(conninfo) as conn:
        if ids:
            try:
                sync_sources(conninfo, load_registry(registry_path))
            except RegistryError as exc:
                raise tk.TokenError(f"the registry cannot be read: {exc}") from None
        new = tk.create(conn, name, scope, days=days, sources=ids, actor=ACTOR, now=_now())
    t = new.token
    expiry = f"expires {t.expires_at:%Y-%m-%d %H:%M %Z}" if t.expires_at else "never expires"
    scope_text = f"{t.scope} for {', '.join(t.sources)}" if t.sources else str(t.scope)
    return (
        f"created token {t.id} ({t.name}: {scope_text}; {expiry})\n"
        "the token, shown this once (send it as 'Authorization: Bearer <token>'):\n"
        f"{new.secret}"
    )


def _state(t: tk.ApiToken, now: datetime) -> str:
    verdict = t.verdict(now)
    return "active" if verdict is Verdict.OK else verdict.value


def list_text(conninfo: str, *, as_json: bool) -> str:
    with _connect(conninfo) as conn:
        tokens = tk.list_tokens(conn)
    now = _now()
    if as_json:
        rows = [t.public() | {"state": _state(t, now)} for t in tokens]
        return json.dumps(rows, default=str, ensure_ascii=False, indent=2)
    table = [("id", "name", "scope", "sources", "state", "expires", "last_used")] + [
        (
            t.id,
            t.name,
            t.scope.value,
            ",".join(t.sources) or "-",
            _state(t, now),
            f"{t.expires_at:%Y-%m-%d}" if t.expires_at else "never",
            f"{t.last_used_at:%Y-%m-%d %H:%M}" if t.last_used_at else "-",
        )
        for t in tokens
    ]
    widths = [max(len(r[i]) for r in table) for i in range(len(table[0]))]
    return "\n".join(
        "  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in table
    )


def revoke(conninfo: str, token_id: str) -> str:
    with _connect(conninfo) as conn:
        t = tk.revoke(conn, token_id, actor=ACTOR, now=_now())
    return f"revoked token {t.id} ({t.name})"


def fail(message: str) -> int:
    print(f"quantrac tokens: {message}", file=sys.stderr)
    return 2
