"""The alert console: server-rendered pages, a JSON API under /api (OpenAPI at /openapi.json)
and live updates over Server-Sent Events.

Handlers stay thin: they check who is asking, call ``storage.queries`` or ``console.auth``, and
render. Page routes send a visitor without a session to /login; API routes answer 401. Every
POST/PUT/DELETE must carry the session's CSRF token (``X-CSRF-Token`` header or ``csrf_token``
form field), or 403.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import asdict
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import quote, unquote

import psycopg
import uvicorn
from fastapi import Depends, FastAPI, HTTPException, Query, Request, Response
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, StreamingResponse
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from prometheus_client import CollectorRegistry, generate_latest
from psycopg import AsyncConnection
from psycopg_pool import AsyncConnectionPool
from pydantic import BaseModel, Field

import console.forwarding as forwarding  # the forwarder's delivery ledger (issue 20)
import console.manual_validation as manual_validation  # operators' decisions (issue 21)
import console.notifications as delivery_log  # the notifications' delivery log (notify/)
from console import api_models as m
from console import auth, chart_data, open_data, scheduled, tokens
from console.bands import AQI_BANDS, aqi_class, aqi_name, wqi_class
from console.bands import stylesheet as band_stylesheet
from console.headers import security_headers
from console.i18n import LANG_COOKIE, Lang, parse_lang, translate
from console.live import ViolationFeed, event_stream
from console.metrics_refresh import refreshing
from console.passwords import MAX_LENGTH as MAX_PASSWORD
from console.public import install_public
from core.clock import Clock, utc_now
from core.metrics import Metrics
from core.settings import Settings
from core.tls import cert_and_key
from reports.api import build_router
from storage import queries as q
from thresholds.averaging import LOCAL_TZ, ewma, savgol_smooth

log = logging.getLogger(__name__)

HERE = Path(__file__).parent
UNSAFE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
SEVERITY_CLASS = {
    "none": "sev0",
    "<1.1": "sev1",
    "1.1-1.5": "sev2",
    "1.5-2": "sev3",
    "2-3": "sev4",
    "3-5": "sev5",
    "5-10": "sev6",
    ">=10": "sev7",
}
REPORT_KINDS = ("compliance", "air-quality", "province", "export")  # reports/model.py

Conn = AsyncConnection[Any]


class LoginRequired(Exception):
    """A page was asked for without a session: answered with a redirect to /login."""


class AckRequest(BaseModel):
    note: str = Field(min_length=1, max_length=2000, description="What was done, by whom")


class NewUser(BaseModel):
    username: str = Field(min_length=1, max_length=64)
    password: str = Field(min_length=1, max_length=MAX_PASSWORD)  # policy: console/passwords.py
    role: auth.Role


class PasswordChangeRequest(BaseModel):
    current_password: str = Field(max_length=MAX_PASSWORD)
    new_password: str = Field(max_length=MAX_PASSWORD)


class PasswordResetRequest(BaseModel):
    new_password: str = Field(max_length=MAX_PASSWORD)


class UserUpdate(BaseModel):
    disabled: bool


class Health(BaseModel):
    status: str
    database: bool


def _now() -> datetime:
    return datetime.now(UTC)


async def get_conn(request: Request) -> AsyncIterator[Conn]:
    pool: AsyncConnectionPool = request.app.state.pool
    async with pool.connection() as conn:
        yield conn


ConnDep = Annotated[Conn, Depends(get_conn)]


async def optional_session(request: Request, conn: ConnDep) -> auth.Session | None:
    if "session" not in request.state._state:
        token = request.cookies.get(auth.SESSION_COOKIE)
        policy: auth.AuthPolicy = request.app.state.auth_policy
        request.state.session = await auth.session_for(conn, token, _now(), policy)
    s: auth.Session | None = request.state.session
    return s


async def _check_csrf(request: Request, session: auth.Session) -> None:
    if request.method not in UNSAFE_METHODS:
        return
    given = request.headers.get(auth.CSRF_HEADER)
    if not given and request.headers.get("content-type", "").startswith(
        ("application/x-www-form-urlencoded", "multipart/form-data")
    ):
        form = await request.form()
        value = form.get(auth.CSRF_FIELD)
        given = value if isinstance(value, str) else None
    if not auth.tokens_match(session.csrf_token, given):
        raise HTTPException(403, "missing or wrong CSRF token")


async def api_user(
    request: Request, session: Annotated[auth.Session | None, Depends(optional_session)]
) -> auth.Session:
    if session is None:
        raise HTTPException(401, "not logged in", headers={"WWW-Authenticate": "Cookie"})
    await _check_csrf(request, session)
    return session


async def page_user(
    request: Request, session: Annotated[auth.Session | None, Depends(optional_session)]
) -> auth.Session:
    if session is None:
        raise LoginRequired()
    await _check_csrf(request, session)
    return session


def require_roles(
    *roles: auth.Role,
) -> Callable[[auth.Session], Awaitable[auth.Session]]:
    async def check(session: Annotated[auth.Session, Depends(api_user)]) -> auth.Session:
        if session.user.role not in roles:
            allowed = ", ".join(r.value for r in roles)
            raise HTTPException(403, f"role {session.user.role} may not do this ({allowed})")
        return session

    return check


ApiUser = Annotated[auth.Session, Depends(api_user)]
PageUser = Annotated[auth.Session, Depends(page_user)]
AckUser = Annotated[auth.Session, Depends(require_roles(*auth.ACK_ROLES))]
AdminUser = Annotated[auth.Session, Depends(require_roles(auth.Role.ADMIN))]


def request_lang(request: Request) -> Lang:
    return (
        parse_lang(request.query_params.get("lang"))
        or parse_lang(request.cookies.get(LANG_COOKIE))
        or Lang.VI
    )


def client_ip(request: Request) -> str:
    return request.client.host if request.client else "unknown"


def violation_filter(
    state: str | None = None,
    kind: str | None = None,
    source: str | None = None,
    district: str | None = None,
    severity: Annotated[list[str] | None, Query()] = None,
    since: datetime | None = None,
    until: datetime | None = None,
    limit: int = 200,
) -> q.ViolationFilter:
    return q.ViolationFilter(
        state=state or None,
        kind=kind or None,
        source_id=source or None,
        district=district or None,
        severity=tuple(s for s in severity or [] if s),
        since=since,
        until=until,
        limit=limit,
    )


FilterDep = Annotated[q.ViolationFilter, Depends(violation_filter)]


def create_app(
    settings: Settings,
    *,
    poll_interval_s: float = 1.0,
    secure_cookies: bool = False,
    clock: Clock = utc_now,
) -> FastAPI:
    """The console application for ``settings.database_url`` (already migrated).

    ``secure_cookies`` adds the Secure flag: set it when the console sits behind HTTPS.
    ``clock`` is the public page's "now" (tests pin it to the hour they seeded).
    """
    if not settings.database_url:
        raise ValueError("console needs settings.database_url (resolve the embedded one first)")
    conninfo = settings.database_url
    tz = LOCAL_TZ  # the worker's and the SQL views' local clock
    metrics = Metrics(CollectorRegistry())  # one per app: tests build many apps in a process
    policy = auth.AuthPolicy.from_settings(settings)
    hasher = auth.Hasher(settings.console_hash_concurrency)
    secure_cookies = secure_cookies or settings.console_behind_tls

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        pool = AsyncConnectionPool(
            conninfo,
            min_size=1,
            max_size=8,
            open=False,
            timeout=10.0,
            kwargs={"autocommit": True},
            check=AsyncConnectionPool.check_connection,
        )
        await pool.open(wait=True)
        feed = ViolationFeed(pool, poll_interval_s)
        await feed.start()
        app.state.pool, app.state.feed = pool, feed
        try:
            async with refreshing(pool, metrics, tz), manual_validation.producing(app, settings):
                yield
        finally:
            await feed.stop()
            await pool.close()

    app = FastAPI(
        title="quantrac console",
        description="Alerts, station board and data of Hải Dương automatic monitoring.",
        version="0.1.0",
        lifespan=lifespan,
    )
    app.state.auth_policy = policy
    app.mount("/static", StaticFiles(directory=HERE / "static"), name="static")

    @app.middleware("http")
    async def refuse_nul(request: Request, call_next: Any) -> Response:
        """A NUL byte can never be valid in a path or query here, and PostgreSQL text rejects
        it: answer 400 rather than let it reach the database as a 500."""
        if "\x00" in unquote(request.url.path) or "\x00" in unquote(request.url.query):
            return JSONResponse({"detail": "NUL characters are not accepted"}, status_code=400)
        response: Response = await call_next(request)
        return response

    @app.middleware("http")
    async def add_security_headers(request: Request, call_next: Any) -> Response:
        """CSP, frame denial, nosniff, referrer policy; HSTS over TLS (console/headers.py)."""
        response: Response = await call_next(request)
        over_tls = settings.console_behind_tls or request.url.scheme == "https"
        response.headers.update(security_headers(request.url.path, over_tls=over_tls))
        return response

    @app.get("/bands.css", include_in_schema=False)
    async def bands_css() -> Response:
        """The AQI and WQI band colours as CSS classes (console/bands.py): no inline styles."""
        return Response(
            band_stylesheet(),
            media_type="text/css; charset=utf-8",
            headers={"Cache-Control": "public, max-age=3600"},
        )

    @app.exception_handler(psycopg.errors.DataError)
    async def bad_data(request: Request, exc: psycopg.errors.DataError) -> JSONResponse:
        return JSONResponse({"detail": f"invalid value: {exc.sqlstate}"}, status_code=400)

    @app.get("/metrics", include_in_schema=False)
    async def metrics_page() -> Response:
        """Prometheus exposition: open/unacknowledged violations, completeness (from the DB)."""
        return Response(
            generate_latest(metrics.registry), media_type="text/plain; version=0.0.4; charset=utf-8"
        )

    # Regulator exports (reports/): any logged-in role may read and export.
    app.include_router(build_router(settings, dependencies=[Depends(api_user)]))
    app.include_router(open_data.build_router(settings))  # API tokens or a session, GET only
    app.include_router(tokens.build_admin_router(require_roles(auth.Role.ADMIN)))
    app.include_router(chart_data.build_router(settings, dependencies=[Depends(api_user)]))
    install_public(app, settings, clock)  # /public: no login, cached (console/public.py)
    templates = Jinja2Templates(directory=HERE / "templates")

    def localtime(value: datetime | None, fmt: str = "%d/%m/%Y %H:%M") -> str:
        return value.astimezone(tz).strftime(fmt) if value else "—"

    def age_text(seconds: float | None) -> str:
        if seconds is None:
            return "—"
        s = int(seconds)
        if s < 120:
            return f"{s} s"
        if s < 7200:
            return f"{s // 60} min"
        if s < 172800:
            return f"{s // 3600} h"
        return f"{s // 86400} d"

    def fmt_num(value: float | None) -> str:
        return "—" if value is None else f"{value:.4g}"

    templates.env.filters["localtime"] = localtime
    templates.env.filters["age"] = age_text
    templates.env.filters["num"] = fmt_num
    templates.env.globals.update(
        aqi_class=aqi_class,
        wqi_class=wqi_class,
        severity_class=lambda s: SEVERITY_CLASS.get(s, "sev0"),
        severities=list(SEVERITY_CLASS),
        aqi_bands=AQI_BANDS,
        aqi_name=aqi_name,
    )

    def render(
        request: Request,
        name: str,
        session: auth.Session | None,
        status_code: int = 200,
        **context: Any,
    ) -> HTMLResponse:
        lang = request_lang(request)
        response = templates.TemplateResponse(
            request,
            name,
            {
                "t": lambda key: translate(key, lang),
                "lang": lang,
                "session": session,
                "user": session.user if session else None,
                "can_ack": bool(session and session.user.role in auth.ACK_ROLES),
                "is_admin": bool(session and session.user.role is auth.Role.ADMIN),
                "csrf_token": session.csrf_token if session else "",
                "path": request.url.path,
                **context,
            },
            status_code=status_code,
        )
        if request.query_params.get("lang") and parse_lang(request.query_params["lang"]):
            response.set_cookie(
                LANG_COOKIE, lang.value, max_age=365 * 86400, samesite="strict", httponly=True
            )
        return response

    app.include_router(delivery_log.build_router(render, page_user, api_user, get_conn))
    app.include_router(scheduled.build_router(render, page_user, api_user, get_conn))
    app.include_router(forwarding.build_router(render, page_user, api_user, get_conn))
    app.include_router(manual_validation.build_router(api_user, get_conn, settings))

    @app.exception_handler(LoginRequired)
    async def _to_login(request: Request, exc: LoginRequired) -> Response:
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        return RedirectResponse(f"/login?next={quote(target)}", status_code=303)

    # --- health, login, logout -----------------------------------------------------------

    @app.get("/healthz", response_model=Health, tags=["ops"])
    async def healthz(request: Request) -> Response:
        try:
            async with request.app.state.pool.connection(timeout=3.0) as conn:
                await conn.execute("SELECT 1")
        except Exception:  # any failure means "not ready"; the reason goes to the log
            log.exception("health check: database unreachable")
            return JSONResponse({"status": "degraded", "database": False}, status_code=503)
        return JSONResponse({"status": "ok", "database": True})

    def _login_page(
        request: Request, error: str | None = None, status_code: int = 200
    ) -> HTMLResponse:
        token = request.cookies.get(auth.LOGIN_CSRF_COOKIE) or secrets.token_urlsafe(24)
        nxt = request.query_params.get("next", "/")
        response = render(
            request,
            "login.html",
            None,
            status_code,
            login_csrf=token,
            error=error,
            next=nxt if nxt.startswith("/") and not nxt.startswith("//") else "/",
        )
        response.set_cookie(
            auth.LOGIN_CSRF_COOKIE,
            token,
            httponly=True,
            samesite="strict",
            secure=secure_cookies,
            path="/login",
        )
        return response

    @app.get("/login", response_class=HTMLResponse, tags=["session"])
    async def login_page(request: Request) -> HTMLResponse:
        return _login_page(request)

    @app.post(
        "/login",
        status_code=303,
        tags=["session"],
        responses={**m.REDIRECT, 400: {}, 401: {}, 403: {}, 429: {}},
    )
    async def login_submit(request: Request) -> Response:
        """Form login (username, password, csrf_token = the login page's token).

        No pooled connection is held while the password is verified (console/auth.py)."""
        form = await request.form()
        username, password = str(form.get("username", "")), str(form.get("password", ""))
        if any("\x00" in str(v) for v in form.values()):
            raise HTTPException(400, "NUL characters are not accepted")
        expected = request.cookies.get(auth.LOGIN_CSRF_COOKIE, "")
        given = str(form.get(auth.CSRF_FIELD, "")) or request.headers.get(auth.CSRF_HEADER)
        if not expected or not auth.tokens_match(expected, given):
            raise HTTPException(403, "missing or wrong CSRF token")
        malformed = auth.login_form_error(username, password)
        if malformed:
            metrics.console_logins.labels("malformed").inc()
            return _login_page(request, malformed, 400)
        result, token = await auth.login(
            request.app.state.pool,
            hasher,
            policy,
            username,
            password,
            ip=client_ip(request),
            user_agent=request.headers.get("user-agent", ""),
            now=_now(),
        )
        metrics.console_logins.labels(result.value).inc()
        lang = request_lang(request)
        if result is auth.LoginResult.THROTTLED:
            return _login_page(request, translate("throttled", lang), 429)
        if token is None:
            return _login_page(request, translate("bad_login", lang), 401)
        nxt = str(form.get("next", "/"))
        if not nxt.startswith("/") or nxt.startswith(("//", "/\\")) or "\\" in nxt:
            nxt = "/"  # only local paths: no //host or /\host open redirects
        response = RedirectResponse(nxt, status_code=303)
        response.set_cookie(
            auth.SESSION_COOKIE,
            token,
            max_age=int(policy.session_max.total_seconds()),
            httponly=True,
            samesite="strict",
            secure=secure_cookies,
        )
        response.delete_cookie(auth.LOGIN_CSRF_COOKIE, path="/login")
        return response

    @app.post(
        "/logout", status_code=303, tags=["session"], responses={**m.REDIRECT, 401: {}, 403: {}}
    )
    async def logout(request: Request, conn: ConnDep, session: ApiUser) -> Response:
        await auth.logout(conn, request.cookies[auth.SESSION_COOKIE], session.user.username)
        response = RedirectResponse("/login", status_code=303)
        response.delete_cookie(auth.SESSION_COOKIE)
        return response

    @app.get("/api/me", response_model=m.Me, tags=["session"])
    async def me(session: ApiUser) -> dict[str, str]:
        return {
            "username": session.user.username,
            "role": session.user.role.value,
            "csrf_token": session.csrf_token,
        }

    # --- violations ------------------------------------------------------------------------

    @app.get("/api/violations", response_model=list[q.ViolationRow], tags=["violations"])
    async def api_violations(conn: ConnDep, session: ApiUser, f: FilterDep) -> Any:
        return await q.list_violations(conn, f)

    @app.get(
        "/api/violations/{violation_id}", response_model=q.ViolationDetail, tags=["violations"]
    )
    async def api_violation(violation_id: str, conn: ConnDep, session: ApiUser) -> Any:
        detail = await q.violation_detail(conn, violation_id)
        if detail is None:
            raise HTTPException(404, f"no violation {violation_id!r}")
        return detail

    @app.post(
        "/api/violations/{violation_id}/ack",
        response_model=q.ViolationRow,
        tags=["violations"],
        responses={401: {}, 403: {}, 404: {}},
    )
    async def api_ack(violation_id: str, body: AckRequest, conn: ConnDep, session: AckUser) -> Any:
        """Acknowledge a violation with a note (operator, admin); audited. Every
        acknowledgement is kept (``acknowledgements`` of the violation's detail); the violation's
        ``acknowledged_by/at`` and ``ack_note`` stay those of the first."""
        user = session.user.username
        note = body.note.strip()
        if not note:
            raise HTTPException(422, "note must not be blank")
        async with conn.transaction():
            cur = await conn.execute(
                "SELECT state FROM violations WHERE violation_id = %s FOR UPDATE",
                (violation_id,),
            )
            row = await cur.fetchone()
            if row is None:
                raise HTTPException(404, f"no violation {violation_id!r}")
            now = _now()
            await conn.execute(
                "INSERT INTO acknowledgements (violation_id, username, note, at)"
                " VALUES (%s, %s, %s, %s)",
                (violation_id, user, note, now),
            )
            await conn.execute(
                "UPDATE violations SET acknowledged_at = %s, acknowledged_by = %s,"
                " ack_note = %s WHERE violation_id = %s AND acknowledged_at IS NULL",
                (now, user, note, violation_id),
            )
            await auth.audit(
                conn,
                user,
                "acknowledge",
                f"violation:{violation_id}",
                {"note": note, "state": row[0]},
            )
        found = await q.violations_by_id(conn, [violation_id])
        return found[0]

    @app.get(
        "/api/events",
        tags=["violations"],
        response_class=StreamingResponse,
        responses={**m.EVENT_STREAM, 401: {}},
    )
    async def api_events(request: Request) -> StreamingResponse:
        """Server-Sent Events: ``event: violation`` with the violation's JSON on each change.

        The session is checked again at every keepalive and before each batch of events; when
        it is gone (logout, expiry, user disabled) the stream sends ``event: session_ended`` and
        closes. No pooled connection is held while the stream is open."""
        token = request.cookies.get(auth.SESSION_COOKIE)
        pool: AsyncConnectionPool = request.app.state.pool

        async def current() -> auth.Session | None:
            async with pool.connection() as conn:
                return await auth.session_for(conn, token, _now(), policy)

        session = await current()
        if session is None:
            raise HTTPException(401, "not logged in", headers={"WWW-Authenticate": "Cookie"})
        username = session.user.username

        async def session_valid() -> bool:
            now_session = await current()
            return now_session is not None and now_session.user.username == username

        return StreamingResponse(
            event_stream(
                request.app.state.feed,
                session_valid,
                keepalive_s=settings.console_sse_keepalive_s,
            ),
            media_type="text/event-stream",
            headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
        )

    # --- sources, series, board ----------------------------------------------------------

    @app.get("/api/sources", response_model=list[q.SourceRow], tags=["sources"])
    async def api_sources(conn: ConnDep, session: ApiUser) -> Any:
        return await q.list_sources(conn)

    async def _source_or_404(conn: Conn, source_id: str) -> q.SourceRow:
        src = await q.get_source(conn, source_id)
        if src is None:
            raise HTTPException(404, f"no source {source_id!r}")
        return src

    @app.get("/api/sources/{source_id}", response_model=m.SourceDetail, tags=["sources"])
    async def api_source(source_id: str, conn: ConnDep, session: ApiUser) -> dict[str, Any]:
        src = await _source_or_404(conn, source_id)
        latest = await q.latest_values(conn, source_id)
        limits = await q.latest_limits(conn, source_id)
        open_v = await q.list_violations(conn, q.ViolationFilter(state="open", source_id=source_id))
        return {
            "source": asdict(src),
            "latest": [asdict(v) | {"limit": limits.get(v.parameter)} for v in latest],
            "open_violations": [asdict(v) for v in open_v],
        }

    @app.get(
        "/api/sources/{source_id}/series", response_model=list[q.SeriesPoint], tags=["sources"]
    )
    async def api_series(
        source_id: str,
        parameter: str,
        conn: ConnDep,
        session: ApiUser,
        resolution: q.Resolution = q.Resolution.RAW,
        start: datetime | None = None,
        end: datetime | None = None,
    ) -> Any:
        """Values in [start, end); defaults: raw 24 h, hourly 7 days, daily 30 days."""
        await _source_or_404(conn, source_id)
        end = end or _now()
        span = {
            q.Resolution.RAW: timedelta(hours=24),
            q.Resolution.HOURLY: timedelta(days=7),
            q.Resolution.DAILY: timedelta(days=30),
        }[resolution]
        start = start or end - span
        if end - start > timedelta(days=400):
            raise HTTPException(422, "at most 400 days per request")
        return await q.series(conn, source_id, parameter, start, end, resolution)

    @app.get(
        "/api/sources/{source_id}/smoothed",
        response_model=list[m.SmoothedPoint],
        tags=["sources"],
    )
    async def api_smoothed(
        source_id: str,
        parameter: str,
        conn: ConnDep,
        session: ApiUser,
        method: Literal["savgol", "ewma"] = "savgol",
        start: datetime | None = None,
        end: datetime | None = None,
    ) -> list[dict[str, Any]]:
        """A display series: the valid raw values of [start, end) (default 24 h) smoothed by
        Savitzky–Golay (window 11, order 2) or EWMA (α 0.3). For charts only: compliance is
        judged on the regulatory averages, never on this."""
        await _source_or_404(conn, source_id)
        end = end or _now()
        start = start or end - timedelta(hours=24)
        if end - start > timedelta(days=31):
            raise HTTPException(422, "at most 31 days per request")
        raw = [
            p
            for p in await q.series(conn, source_id, parameter, start, end, q.Resolution.RAW)
            if p.valid and p.value is not None
        ]
        values = [float(p.value) for p in raw if p.value is not None]
        smooth = savgol_smooth(values, 11, 2) if method == "savgol" else ewma(values, 0.3)
        return [
            {"at": p.at, "value": p.value, "smoothed": v} for p, v in zip(raw, smooth, strict=True)
        ]

    @app.get("/api/board", response_model=list[q.BoardRow], tags=["sources"])
    async def api_board(conn: ConnDep, session: ApiUser) -> Any:
        return await q.station_board(conn, _now(), LOCAL_TZ.key)

    @app.get(
        "/api/audit",
        response_model=list[q.AuditEntry],
        tags=["audit"],
        responses={401: {}, 403: {}},
    )
    async def api_audit(
        conn: ConnDep, session: AdminUser, target: str | None = None, limit: int = 200
    ) -> Any:
        """The audit log (logins, acknowledgements, user changes): admins only."""
        return await q.audit_entries(conn, target=target, limit=limit)

    # --- users (admin) ---------------------------------------------------------------------

    @app.get(
        "/api/users", response_model=list[m.UserRow], tags=["users"], responses={401: {}, 403: {}}
    )
    async def api_users(conn: ConnDep, session: AdminUser) -> list[dict[str, Any]]:
        return await auth.list_users(conn)

    @app.post(
        "/api/users",
        response_model=m.UserCreated,
        status_code=201,
        tags=["users"],
        responses={401: {}, 403: {}},
    )
    async def api_create_user(body: NewUser, conn: ConnDep, session: AdminUser) -> dict[str, str]:
        try:
            user = await auth.create_user_async(
                conn,
                hasher,
                body.username,
                body.password,
                body.role,
                created_by=session.user.username,
            )
        except auth.UserError as exc:
            raise HTTPException(409 if "exists" in str(exc) else 422, str(exc)) from None
        return {"username": user.username, "role": user.role.value}

    @app.put(
        "/api/users/{username}",
        response_model=m.UserState,
        tags=["users"],
        responses={401: {}, 403: {}, 404: {}},
    )
    async def api_update_user(
        username: str, body: UserUpdate, conn: ConnDep, session: AdminUser
    ) -> dict[str, Any]:
        if username == session.user.username and body.disabled:
            raise HTTPException(422, "an admin cannot disable their own account")
        if not await auth.set_disabled(conn, username, body.disabled, actor=session.user.username):
            raise HTTPException(404, f"no user {username!r}")
        return {"username": username, "disabled": body.disabled}

    @app.post(
        "/api/users/{username}/password",
        response_model=m.PasswordDone,
        tags=["users"],
        responses={401: {}, 403: {}, 404: {}, 422: {}},
    )
    async def api_reset_password(
        request: Request, username: str, body: PasswordResetRequest, session: AdminUser
    ) -> dict[str, str]:
        """An admin sets another user's password; that user's sessions end (audited)."""
        if username == session.user.username:
            raise HTTPException(422, "change your own password with POST /api/me/password")
        try:
            found = await auth.reset_password(
                request.app.state.pool,
                hasher,
                username,
                body.new_password,
                actor=session.user.username,
            )
        except auth.UserError as exc:
            raise HTTPException(422, str(exc)) from None
        if not found:
            raise HTTPException(404, f"no user {username[:80]!r}")
        return {"username": username, "password": "reset"}

    async def _change_own_password(
        request: Request, session: auth.Session, current: str, new: str
    ) -> auth.PasswordChange:
        """Shared by the API and the form: UserError for a weak new password."""
        return await auth.change_password(
            request.app.state.pool,
            hasher,
            policy,
            session.user.username,
            current,
            new,
            ip=client_ip(request),
            keep_token=request.cookies[auth.SESSION_COOKIE],
            now=_now(),
        )

    @app.post(
        "/api/me/password",
        response_model=m.PasswordDone,
        tags=["session"],
        responses={401: {}, 403: {}, 422: {}, 429: {}},
    )
    async def api_change_password(
        request: Request, body: PasswordChangeRequest, session: ApiUser
    ) -> dict[str, str]:
        """Change one's own password (current + new); one's other sessions end (audited)."""
        try:
            outcome = await _change_own_password(
                request, session, body.current_password, body.new_password
            )
        except auth.UserError as exc:
            raise HTTPException(422, str(exc)) from None
        if outcome is auth.PasswordChange.THROTTLED:
            raise HTTPException(429, "too many failed attempts; wait and try again")
        if outcome is auth.PasswordChange.WRONG_CURRENT:
            raise HTTPException(403, "the current password is wrong")
        return {"username": session.user.username, "password": "changed"}

    @app.get("/password", response_class=HTMLResponse, include_in_schema=False)
    async def password_page(request: Request, session: PageUser) -> HTMLResponse:
        return render(request, "password.html", session)

    @app.post("/password", response_class=HTMLResponse, include_in_schema=False)
    async def password_submit(request: Request, session: PageUser) -> HTMLResponse:
        """The form behind /password (csrf_token, current_password, new_password)."""
        form = await request.form()
        current, new = str(form.get("current_password", "")), str(form.get("new_password", ""))
        lang = request_lang(request)
        try:
            outcome = await _change_own_password(request, session, current, new)
        except auth.UserError as exc:
            return render(request, "password.html", session, 422, error=str(exc))
        if outcome is auth.PasswordChange.THROTTLED:
            return render(
                request, "password.html", session, 429, error=translate("throttled", lang)
            )
        if outcome is auth.PasswordChange.WRONG_CURRENT:
            error = translate("wrong_current_password", lang)
            return render(request, "password.html", session, 403, error=error)
        return render(request, "password.html", session, done=True)

    # --- pages ---------------------------------------------------------------------------

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    async def alerts_page(
        request: Request, conn: ConnDep, session: PageUser, f: FilterDep
    ) -> HTMLResponse:
        f = q.ViolationFilter(**{**asdict(f), "state": f.state or "open"})
        rows = await q.list_violations(conn, f)
        sources = await q.list_sources(conn)
        districts = sorted({s.district for s in sources})
        return render(
            request, "alerts.html", session, violations=rows, filter=f, districts=districts
        )

    @app.get("/violations/{violation_id}", response_class=HTMLResponse, include_in_schema=False)
    async def violation_page(
        violation_id: str, request: Request, conn: ConnDep, session: PageUser
    ) -> HTMLResponse:
        detail = await q.violation_detail(conn, violation_id)
        if detail is None:
            return render(request, "error.html", session, 404, message="not_found")
        v = detail.violation
        is_admin = session.user.role is auth.Role.ADMIN  # the audit log is theirs alone
        audit_rows = (
            await q.audit_entries(conn, target=f"violation:{violation_id}") if is_admin else []
        )
        return render(
            request,
            "violation.html",
            session,
            d=detail,
            v=v,
            audit=audit_rows,
        )

    @app.get("/board", response_class=HTMLResponse, include_in_schema=False)
    async def board_page(request: Request, conn: ConnDep, session: PageUser) -> HTMLResponse:
        rows = await q.station_board(conn, _now(), LOCAL_TZ.key)
        return render(request, "board.html", session, rows=rows)

    @app.get("/sources/{source_id}", response_class=HTMLResponse, include_in_schema=False)
    async def source_page(
        source_id: str, request: Request, conn: ConnDep, session: PageUser
    ) -> HTMLResponse:
        src = await q.get_source(conn, source_id)
        if src is None:
            return render(request, "error.html", session, 404, message="not_found")
        latest = await q.latest_values(conn, source_id)
        # the limits the source is held to today, from the registry (as `quantrac limits`)
        day = _now().astimezone(LOCAL_TZ).date()
        limits = chart_data.limits_by_parameter(
            chart_data.source_limits(chart_data.registry_for(settings), source_id, day)
        )
        params = src.parameters or sorted({v.parameter for v in latest})
        open_v = await q.list_violations(conn, q.ViolationFilter(state="open", source_id=source_id))
        return render(
            request,
            "source.html",
            session,
            src=src,
            latest=latest,
            limits=limits,
            limit_text=lambda lim: chart_data.limit_text(lim, request_lang(request)),
            exceeds=chart_data.exceeds_any,
            params=params,
            open_violations=open_v,
            **await manual_validation.page_context(conn, session, source_id, settings),
        )

    @app.get("/reports", response_class=HTMLResponse, include_in_schema=False)
    async def reports_page(request: Request, session: PageUser, conn: ConnDep) -> HTMLResponse:
        month = datetime.now(tz).strftime("%Y-%m")
        sources = [r.id for r in await q.list_sources(conn)]
        return render(
            request, "reports.html", session, kinds=REPORT_KINDS, month=month, sources=sources
        )

    @app.get("/audit", response_class=HTMLResponse, include_in_schema=False)
    async def audit_page(request: Request, conn: ConnDep, session: PageUser) -> HTMLResponse:
        if session.user.role is not auth.Role.ADMIN:
            return render(request, "error.html", session, 403, message="forbidden")
        rows = await q.audit_entries(conn, limit=500)
        return render(request, "audit.html", session, rows=rows)

    @app.get("/users", response_class=HTMLResponse, include_in_schema=False)
    async def users_page(request: Request, conn: ConnDep, session: PageUser) -> HTMLResponse:
        if session.user.role is not auth.Role.ADMIN:
            return render(request, "error.html", session, 403, message="forbidden")
        return render(request, "users.html", session, users=await auth.list_users(conn))

    return app


def console_server(settings: Settings, *, host: str | None = None) -> uvicorn.Server:
    """The console on ``settings.console_port``: HTTPS with Secure cookies when a certificate
    and key are set (``settings.tls_cert_file``/``tls_key_file``), plain HTTP otherwise."""
    pair = cert_and_key(settings)
    config = uvicorn.Config(
        create_app(settings, secure_cookies=pair is not None),
        host=host or settings.console_host,
        port=settings.console_port,
        log_level=settings.log_level.lower(),
        timeout_graceful_shutdown=3,
        ssl_certfile=str(pair[0]) if pair else None,
        ssl_keyfile=str(pair[1]) if pair else None,
    )
    return uvicorn.Server(config)


def run_console(settings: Settings, *, host: str | None = None) -> None:
    """Migrate the database, then serve the console (:func:`console_server`)."""
    from storage.migrate import migrate

    if not settings.database_url:
        raise ValueError("console needs settings.database_url (wrap in streams.runtime.services)")
    migrate(settings.database_url)
    host = host or settings.console_host
    server = console_server(settings, host=host)
    scheme = "https" if settings.tls_on else "http"
    log.info("console at %s://%s:%d/", scheme, host, settings.console_port)
    server.run()
    if not server.started:  # as uvicorn.run: a failed start (port taken, bad certificate)
        raise SystemExit(3)
