"""API tokens in the database: create, list, revoke, look up, count each use.

The format, scopes and verdicts are core/api_tokens.py. Both the console (async) and the CLI
and the gateway's token cache (sync, :class:`CachedTokens`) use this module: the SQL is shared.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
from psycopg import AsyncConnection
from psycopg.types.json import Jsonb

from core.api_tokens import (
    MAX_DAYS,
    NAME,
    ApiToken,
    Scope,
    TokenStoreDown,
    Verdict,
    digest,
    mint,
    parse_id,
    secret_matches,
)

log = logging.getLogger(__name__)


class TokenError(ValueError):
    """A token could not be created or revoked: the message names the field."""


@dataclass(frozen=True)
class NewToken:
    token: ApiToken
    secret: str  # the whole ``qt_<id>_<secret>`` string: shown once, never stored


def check_new(name: str, scope: str, days: float | None, sources: list[str]) -> Scope:
    """Validate a new token's fields; the scope, or TokenError naming the field."""
    if not NAME.match(name):
        raise TokenError("name: 1–80 characters, no control characters")
    try:
        s = Scope(scope)
    except ValueError:
        raise TokenError(f"scope {scope[:40]!r}: one of read, ingest") from None
    if days is not None and not 0 < days <= MAX_DAYS:
        raise TokenError(f"expires: 0 < days <= {MAX_DAYS} (or none for no expiry)")
    if s is Scope.INGEST and not sources:
        raise TokenError("an ingest token needs --sources: the sources it may post for")
    if s is Scope.READ and sources:
        raise TokenError("sources apply to ingest tokens only (open data is for every source)")
    return s


_COLS = (
    "id, name, scope, sources, created_at, created_by, expires_at, revoked_at, revoked_by,"
    " last_used_at"
)
_INSERT = (
    "INSERT INTO api_tokens (id, name, secret_hash, scope, sources, created_by, expires_at)"
    f" VALUES (%s, %s, %s, %s, %s, %s, %s) RETURNING {_COLS}"
)
_UNKNOWN_SOURCES = "SELECT x FROM unnest(%s::text[]) x WHERE x NOT IN (SELECT id FROM sources)"
_AUDIT = "INSERT INTO audit_log (actor, action, target, detail) VALUES (%s, %s, %s, %s)"
_LIST = f"SELECT {_COLS} FROM api_tokens ORDER BY created_at, id"
_REVOKE = (
    "UPDATE api_tokens SET revoked_at = %s, revoked_by = %s WHERE id = %s AND revoked_at IS NULL"
    f" RETURNING {_COLS}"
)
_LOOKUP = f"SELECT {_COLS}, secret_hash FROM api_tokens WHERE id = %s"
_USE = (
    "INSERT INTO api_token_uses (token_id, minute, door, route, outcome, ip, n)"
    " VALUES (%s, date_trunc('minute', %s::timestamptz), %s, %s, %s, %s, 1)"
    " ON CONFLICT (token_id, minute, door, route, outcome, ip)"
    " DO UPDATE SET n = api_token_uses.n + 1"
)
_LAST_USED = "UPDATE api_tokens SET last_used_at = %s WHERE id = %s"
# A use count is no evidence: its commit need not wait for the WAL flush (a crash may lose the
# last fraction of a second of counts, never a token or a revocation).
_NO_FLUSH_WAIT = "SET LOCAL synchronous_commit = off"


def _row(r: tuple[Any, ...]) -> ApiToken:
    return ApiToken(r[0], r[1], Scope(r[2]), tuple(r[3]), *r[4:10])


def _match(row: tuple[Any, ...] | None, token: str) -> ApiToken | None:
    """The token behind a looked-up row if the secret matches (constant-time), else None."""
    if not secret_matches(row[10] if row else None, token) or row is None:
        return None
    return _row(row)


def _new_args(
    name: str, scope: Scope, days: float | None, sources: list[str], actor: str, now: datetime
) -> tuple[str, tuple[Any, ...]]:
    token_id, secret = mint()
    expires = now + timedelta(days=days) if days is not None else None
    return secret, (token_id, name, digest(secret), scope.value, sources, actor, expires)


def _audit_created(t: ApiToken) -> tuple[Any, ...]:
    detail = {"name": t.name, "scope": t.scope.value, "sources": list(t.sources)}
    if t.expires_at:
        detail["expires_at"] = t.expires_at.isoformat()
    return (t.created_by, "token_created", f"token:{t.id}", Jsonb(detail))


# --- sync (CLI, gateway) ----------------------------------------------------------------------


def create(
    conn: psycopg.Connection[Any],
    name: str,
    scope: str,
    *,
    days: float | None,
    sources: list[str],
    actor: str,
    now: datetime,
) -> NewToken:
    s = check_new(name, scope, days, sources)
    with conn.transaction():
        unknown = [r[0] for r in conn.execute(_UNKNOWN_SOURCES, (sources,)).fetchall()]
        if unknown:
            raise TokenError(f"sources: not registered: {', '.join(unknown)}")
        secret, args = _new_args(name, s, days, sources, actor, now)
        row = conn.execute(_INSERT, args).fetchone()
        assert row is not None
        token = _row(row)
        conn.execute(_AUDIT, _audit_created(token))
    return NewToken(token, secret)


def list_tokens(conn: psycopg.Connection[Any]) -> list[ApiToken]:
    return [_row(r) for r in conn.execute(_LIST).fetchall()]


def revoke(conn: psycopg.Connection[Any], token_id: str, *, actor: str, now: datetime) -> ApiToken:
    with conn.transaction():
        row = conn.execute(_REVOKE, (now, actor, token_id)).fetchone()
        if row is None:
            raise TokenError(_why_not_revoked(conn.execute(_LOOKUP, (token_id,)).fetchone()))
        conn.execute(_AUDIT, (actor, "token_revoked", f"token:{token_id}", Jsonb({})))
    return _row(row)


def authenticate(conn: psycopg.Connection[Any], token: str) -> ApiToken | None:
    """The token row if the string is one of ours (whatever its verdict), else None."""
    token_id = parse_id(token)
    if token_id is None:
        return None
    return _match(conn.execute(_LOOKUP, (token_id,)).fetchone(), token)


def record_use(
    conn: psycopg.Connection[Any],
    token_id: str,
    *,
    door: str,
    route: str,
    outcome: str,
    ip: str,
    now: datetime,
) -> None:
    with conn.transaction():
        conn.execute(_NO_FLUSH_WAIT)
        conn.execute(_USE, (token_id, now, door, route[:200], outcome, ip[:64]))
        if outcome == Verdict.OK:
            conn.execute(_LAST_USED, (now, token_id))


def _why_not_revoked(row: tuple[Any, ...] | None) -> str:
    if row is None:
        return "no such token"
    return f"token {row[0]} was already revoked at {row[7]:%Y-%m-%d %H:%M:%S %Z}"


# --- async (console) --------------------------------------------------------------------------


async def create_async(
    conn: AsyncConnection[Any],
    name: str,
    scope: str,
    *,
    days: float | None,
    sources: list[str],
    actor: str,
    now: datetime,
) -> NewToken:
    s = check_new(name, scope, days, sources)
    async with conn.transaction():
        cur = await conn.execute(_UNKNOWN_SOURCES, (sources,))
        unknown = [r[0] for r in await cur.fetchall()]
        if unknown:
            raise TokenError(f"sources: not registered: {', '.join(unknown)}")
        secret, args = _new_args(name, s, days, sources, actor, now)
        cur = await conn.execute(_INSERT, args)
        row = await cur.fetchone()
        assert row is not None
        token = _row(row)
        await conn.execute(_AUDIT, _audit_created(token))
    return NewToken(token, secret)


async def list_tokens_async(conn: AsyncConnection[Any]) -> list[ApiToken]:
    cur = await conn.execute(_LIST)
    return [_row(r) for r in await cur.fetchall()]


async def revoke_async(
    conn: AsyncConnection[Any], token_id: str, *, actor: str, now: datetime
) -> ApiToken:
    async with conn.transaction():
        cur = await conn.execute(_REVOKE, (now, actor, token_id))
        row = await cur.fetchone()
        if row is None:
            cur = await conn.execute(_LOOKUP, (token_id,))
            raise TokenError(_why_not_revoked(await cur.fetchone()))
        await conn.execute(_AUDIT, (actor, "token_revoked", f"token:{token_id}", Jsonb({})))
    return _row(row)


async def authenticate_async(conn: AsyncConnection[Any], token: str) -> ApiToken | None:
    token_id = parse_id(token)
    if token_id is None:
        return None
    cur = await conn.execute(_LOOKUP, (token_id,))
    return _match(await cur.fetchone(), token)


async def record_use_async(
    conn: AsyncConnection[Any],
    token_id: str,
    *,
    door: str,
    route: str,
    outcome: str,
    ip: str,
    now: datetime,
) -> None:
    async with conn.transaction():
        await conn.execute(_NO_FLUSH_WAIT)
        await conn.execute(_USE, (token_id, now, door, route[:200], outcome, ip[:64]))
        if outcome == Verdict.OK:
            await conn.execute(_LAST_USED, (now, token_id))


# --- the gateway's cached lookups ---------------------------------------------------------------

MAX_CACHED = 1000


class CachedTokens:
    """The gateway's view of the token table: ``find`` and ``record`` off the event loop.

    The gateway otherwise needs no database; for tokens it reads ``api_tokens`` over one
    lazily opened connection, in a worker thread. A token found is trusted for ``cache_s``
    seconds (``QUANTRAC_API_TOKEN_CACHE_S``, default 5): a revocation or expiry takes effect
    within that delay. Unknown strings are never cached (no one can fill the memory). With the
    database unreachable, :class:`TokenStoreDown`.
    """

    def __init__(
        self,
        conninfo: str,
        cache_s: float,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.conninfo = conninfo
        self.cache_s = cache_s
        self.clock = clock
        self._conn: psycopg.Connection[Any] | None = None
        self._lock = threading.Lock()  # one connection, one statement at a time
        self._cache: dict[str, tuple[ApiToken, float]] = {}

    def _run(self, fn: Callable[[psycopg.Connection[Any]], Any]) -> Any:
        with self._lock:
            for attempt in (1, 2):  # a connection the server dropped is replaced once
                try:
                    if self._conn is None or self._conn.closed:
                        self._conn = psycopg.connect(
                            self.conninfo, autocommit=True, connect_timeout=5
                        )
                    return fn(self._conn)
                except psycopg.OperationalError as exc:
                    self._close_locked()
                    if attempt == 2:
                        first = (str(exc).strip().splitlines() or ["unreachable"])[0]
                        raise TokenStoreDown(first) from exc
            raise AssertionError("unreachable")

    async def find(self, secret: str) -> ApiToken | None:
        """The token behind ``secret`` (whatever its verdict), or None when it is not one."""
        key = digest(secret)
        hit = self._cache.get(key)
        now = self.clock()
        if hit is not None and now - hit[1] < self.cache_s:
            return hit[0]
        token = await asyncio.to_thread(self._run, lambda c: authenticate(c, secret))
        if token is None:
            self._cache.pop(key, None)
            return None
        if len(self._cache) >= MAX_CACHED:
            self._cache.clear()
        self._cache[key] = (token, now)
        return token

    async def record(self, token_id: str, *, route: str, outcome: str, ip: str) -> None:
        """Count one use; a failure to count is logged, never held against the sender."""
        now = datetime.now(UTC)
        try:
            await asyncio.to_thread(
                self._run,
                lambda c: record_use(
                    c, token_id, door="gateway", route=route, outcome=outcome, ip=ip, now=now
                ),
            )
        except TokenStoreDown as exc:
            log.warning("token %s: use not counted (%s)", token_id, exc)

    def close(self) -> None:
        with self._lock:
            self._close_locked()

    def _close_locked(self) -> None:
        if self._conn is not None:
            with contextlib.suppress(psycopg.Error):
                self._conn.close()
            self._conn = None
