"""API tokens in the console: who is asking the open-data API, and the admins' token routes.

``Authorization: Bearer qt_…`` authenticates a machine client (storage/api_tokens.py). A request
with no Authorization header may use a browser session instead (GET only, so no CSRF is at
stake). Unknown, revoked and expired tokens get 401; an ingest token gets 403 here. Each client
(token id, or user) has a token bucket (console/rate_limit.py): past it, 429 with Retry-After.

Each use of a known token is counted in ``api_token_uses`` (one upsert per request, aggregated
per token, minute, route, outcome and address); creation and revocation go to ``audit_log``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Request
from psycopg import AsyncConnection
from psycopg_pool import AsyncConnectionPool
from pydantic import BaseModel, Field

from console import auth
from console.rate_limit import TokenBuckets
from core.api_tokens import MAX_DAYS, ApiToken, Scope, Verdict, bearer
from core.settings import Settings
from storage import api_tokens as tk

Conn = AsyncConnection[Any]
DOOR = "console"
CHALLENGE = 'Bearer realm="quantrac open data"'


@dataclass(frozen=True)
class Client:
    """Who reads the open-data API: ``token:<id>`` or ``user:<name>``."""

    key: str
    token_id: str | None


async def _conn(request: Request) -> AsyncIterator[Conn]:
    pool: AsyncConnectionPool = request.app.state.pool
    async with pool.connection() as conn:
        yield conn


ConnDep = Annotated[Conn, Depends(_conn)]


def _now() -> datetime:
    return datetime.now(UTC)


def _route(request: Request) -> str:
    route = request.scope.get("route")
    return str(getattr(route, "path", request.url.path))


def _ip(request: Request) -> str:
    return request.client.host if request.client else "unknown"


def _unauthorized(message: str, error: str = "invalid_token") -> HTTPException:
    return HTTPException(
        401, message, headers={"WWW-Authenticate": f'{CHALLENGE}, error="{error}"'}
    )


def read_client(buckets: TokenBuckets) -> Callable[..., Awaitable[Client]]:
    """The dependency of every open-data route: a read token or a session, within its rate."""

    async def client(request: Request, conn: ConnDep) -> Client:
        now = _now()
        header = request.headers.get("authorization")
        if header:
            found = await _token_client(request, conn, header, now)
        else:
            policy: auth.AuthPolicy = request.app.state.auth_policy
            token = request.cookies.get(auth.SESSION_COOKIE)
            session = await auth.session_for(conn, token, now, policy)
            if session is None:
                raise HTTPException(
                    401,
                    "an API token is needed (Authorization: Bearer qt_…), or a console session",
                    headers={"WWW-Authenticate": CHALLENGE},
                )
            found = Client(f"user:{session.user.username}", None)
        wait = buckets.take(found.key)
        if wait > 0:
            if found.token_id:
                await _record(request, conn, found.token_id, "rate_limited", now)
            raise HTTPException(
                429,
                f"over {buckets.rate * 60:g} requests a minute (burst {buckets.burst});"
                " send again after Retry-After",
                headers={"Retry-After": buckets.retry_after(wait)},
            )
        if found.token_id:
            await _record(request, conn, found.token_id, Verdict.OK, now)
        return found

    return client


async def _token_client(request: Request, conn: Conn, header: str, now: datetime) -> Client:
    secret = bearer(header)
    if secret is None:
        raise _unauthorized("Authorization must be 'Bearer <token>'", "invalid_request")
    token = await tk.authenticate_async(conn, secret)
    if token is None:
        raise _unauthorized("unknown API token")
    verdict = token.verdict(now)
    if verdict is not Verdict.OK:
        await _record(request, conn, token.id, verdict, now)
        raise _unauthorized(f"API token {token.id} is {verdict.value}")
    if token.scope is not Scope.READ:
        await _record(request, conn, token.id, "scope", now)
        raise HTTPException(403, f"API token {token.id} has scope {token.scope}, not read")
    return Client(f"token:{token.id}", token.id)


async def _record(request: Request, conn: Conn, token_id: str, outcome: str, now: datetime) -> None:
    await tk.record_use_async(
        conn, token_id, door=DOOR, route=_route(request), outcome=outcome, ip=_ip(request), now=now
    )


def buckets_for(settings: Settings) -> TokenBuckets:
    return TokenBuckets(settings.api_requests_per_minute, settings.api_burst)


# --- admin routes -------------------------------------------------------------------------------


class TokenOut(BaseModel):
    id: str
    name: str
    scope: Scope
    sources: list[str]
    created_at: datetime
    created_by: str
    expires_at: datetime | None
    revoked_at: datetime | None
    revoked_by: str | None
    last_used_at: datetime | None


class TokenCreated(BaseModel):
    token: TokenOut
    secret: str = Field(description="The bearer token: shown once, kept only as a hash")


class NewTokenRequest(BaseModel):
    name: str = Field(min_length=1, max_length=80, description="Who the client is")
    scope: Scope
    expires_days: float | None = Field(None, gt=0, le=MAX_DAYS, description="None: never")
    sources: list[str] = Field(default_factory=list, max_length=500, description="ingest only")


class TokenUse(BaseModel):
    minute: datetime
    door: str
    route: str
    outcome: str
    ip: str
    n: int


def _actor(request: Request) -> str:
    """The admin behind this request (the admin dependency has loaded the session)."""
    session: auth.Session = request.state.session
    return session.user.username


def _out(t: ApiToken) -> TokenOut:
    return TokenOut(**t.public())


def build_admin_router(admin: Callable[..., Awaitable[auth.Session]]) -> APIRouter:
    """``/api/tokens``: list, create, revoke, uses; ``admin`` is the console's admin check
    (session, CSRF on POST, role admin)."""
    router = APIRouter(
        prefix="/api/tokens",
        tags=["tokens"],
        dependencies=[Depends(admin)],
        responses={401: {}, 403: {}},
    )

    @router.get("", response_model=list[TokenOut])
    async def list_tokens(conn: ConnDep, request: Request) -> list[TokenOut]:
        return [_out(t) for t in await tk.list_tokens_async(conn)]

    @router.post("", response_model=TokenCreated, status_code=201, responses={422: {}})
    async def create_token(body: NewTokenRequest, conn: ConnDep, request: Request) -> TokenCreated:
        """A new token; its secret is in this answer only."""
        try:
            new = await tk.create_async(
                conn,
                body.name,
                body.scope.value,
                days=body.expires_days,
                sources=body.sources,
                actor=_actor(request),
                now=_now(),
            )
        except tk.TokenError as exc:
            raise HTTPException(422, str(exc)) from None
        return TokenCreated(token=_out(new.token), secret=new.secret)

    @router.post("/{token_id}/revoke", response_model=TokenOut, responses={404: {}, 409: {}})
    async def revoke_token(token_id: str, conn: ConnDep, request: Request) -> TokenOut:
        try:
            token = await tk.revoke_async(conn, token_id, actor=_actor(request), now=_now())
        except tk.TokenError as exc:
            raise HTTPException(404 if "no such" in str(exc) else 409, str(exc)) from None
        return _out(token)

    @router.get("/{token_id}/uses", response_model=list[TokenUse], responses={404: {}})
    async def token_uses(
        token_id: str, conn: ConnDep, request: Request, limit: int = 200
    ) -> list[TokenUse]:
        """The token's counted uses, newest minute first."""
        cur = await conn.execute("SELECT 1 FROM api_tokens WHERE id = %s", (token_id,))
        if await cur.fetchone() is None:
            raise HTTPException(404, f"no token {token_id[:40]!r}")
        cur = await conn.execute(
            "SELECT minute, door, route, outcome, ip, n FROM api_token_uses WHERE token_id = %s"
            " ORDER BY minute DESC, route, outcome LIMIT %s",
            (token_id, max(1, min(limit, 5000))),
        )
        cols = ("minute", "door", "route", "outcome", "ip", "n")
        return [TokenUse(**dict(zip(cols, r, strict=True))) for r in await cur.fetchall()]

    return router
