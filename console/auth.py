"""Users, roles, sessions, CSRF and login throttling for the console.

Passwords are hashed with argon2id (memory-hard), in worker threads, at most
``console_hash_concurrency`` at once (``Hasher``): a burst of logins waits its turn instead of
stopping the event loop (and /healthz with it). A password must pass ``console.passwords``.

A session is a random cookie value whose SHA-256 is stored in ``sessions``, with its own CSRF
token; the cookie is HttpOnly and SameSite=Strict (Secure with ``console_secure_cookies`` or
HTTPS). A session ends after ``console_session_idle_s`` unused, and ``console_session_max_s``
after its login however active. Every state change must echo the session's CSRF token (header
``X-CSRF-Token`` or form field ``csrf_token``).

Throttling: a login attempt is recorded as a failure *before* its password is checked, under a
per-address advisory lock, and turned into a success only after; so concurrent guesses are
counted exactly. Too many failures in ``console_login_window_s`` for one username from one
address, or for any usernames from one address (password spraying), answer HTTP 429 until the
window passes. A malformed username or an over-long password is refused before any query.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

import psycopg
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from psycopg import AsyncConnection
from psycopg.types.json import Jsonb
from psycopg_pool import AsyncConnectionPool

from console.passwords import MAX_LENGTH, WeakPassword, check_password
from core.settings import Settings

SESSION_COOKIE = "qt_session"
LOGIN_CSRF_COOKIE = "qt_login_csrf"  # double-submit token for the login form (no session yet)
CSRF_HEADER = "X-CSRF-Token"
CSRF_FIELD = "csrf_token"
USERNAME = re.compile(r"^[A-Za-z0-9_.@-]{1,64}$")  # as the users table's CHECK

_hasher = PasswordHasher()  # argon2id, library defaults (64 MiB, t=3)
# Verified when the username is unknown, so a miss costs as much time as a wrong password.
_DUMMY_HASH = _hasher.hash("quantrac-dummy-password")


class Role(StrEnum):
    OPERATOR = "operator"  # watches and acknowledges alerts
    REGULATOR = "regulator"  # reads and exports, read-only
    ADMIN = "admin"  # manages users (and may acknowledge)


#: Who may acknowledge a violation.
ACK_ROLES = frozenset({Role.OPERATOR, Role.ADMIN})


class UserError(ValueError):
    """A user could not be created: bad name, weak password, unknown role, or taken."""


@dataclass(frozen=True)
class User:
    username: str
    role: Role
    full_name: str = ""


@dataclass(frozen=True)
class Session:
    user: User
    csrf_token: str
    expires_at: datetime


@dataclass(frozen=True)
class AuthPolicy:
    """The login and session limits, from Settings (``console_*``)."""

    failures_per_user_ip: int
    failures_per_ip: int
    window: timedelta
    session_idle: timedelta
    session_max: timedelta

    @classmethod
    def from_settings(cls, settings: Settings) -> AuthPolicy:
        return cls(
            failures_per_user_ip=settings.console_login_failures_per_user_ip,
            failures_per_ip=settings.console_login_failures_per_ip,
            window=timedelta(seconds=settings.console_login_window_s),
            session_idle=timedelta(seconds=settings.console_session_idle_s),
            session_max=timedelta(seconds=settings.console_session_max_s),
        )


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def verify_password(stored_hash: str, password: str) -> bool:
    try:
        return _hasher.verify(stored_hash, password)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


class Hasher:
    """argon2id off the event loop: each hash or verification runs in a thread (argon2-cffi
    releases the GIL), at most ``concurrency`` at once, since each takes 64 MiB and a CPU."""

    def __init__(self, concurrency: int) -> None:
        self._slots = asyncio.Semaphore(concurrency)

    async def hash(self, password: str) -> str:
        async with self._slots:
            return await asyncio.to_thread(hash_password, password)

    async def verify(self, stored_hash: str, password: str) -> bool:
        async with self._slots:
            return await asyncio.to_thread(verify_password, stored_hash, password)


def token_digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def tokens_match(expected: str, given: str | None) -> bool:
    return bool(given) and hmac.compare_digest(expected.encode(), (given or "").encode())


def login_form_error(username: str, password: str) -> str | None:
    """Why a login form cannot be checked at all (no query is made), or None."""
    if not USERNAME.match(username):
        return "username: 1–64 of letters, digits, _ . @ -"
    if len(password) > MAX_LENGTH:
        return f"password: at most {MAX_LENGTH} characters"
    return None


def check_new_password(username: str, password: str) -> None:
    """The password policy (console/passwords.py) as a UserError naming the user."""
    try:
        check_password(password, username)
    except WeakPassword as exc:
        raise UserError(f"{exc} (user {username!r})") from None


def check_new_user(username: str, password: str, role: str) -> Role:
    """Validate the inputs of a new user; return the role or raise UserError naming the field."""
    if not USERNAME.match(username):
        raise UserError(f"username {username[:80]!r}: 1–64 of letters, digits, _ . @ -")
    check_new_password(username, password)
    try:
        return Role(role)
    except ValueError:
        allowed = ", ".join(r.value for r in Role)
        raise UserError(f"role {role!r} for {username!r}: one of {allowed}") from None


def create_user(
    conninfo: str, username: str, password: str, role: str, *, created_by: str = "cli"
) -> User:
    """Create a user from the command line (synchronous); audited as ``user_created``."""
    r = check_new_user(username, password, role)
    with psycopg.connect(conninfo) as conn, conn.transaction():
        try:
            conn.execute(
                "INSERT INTO users (username, password_hash, role, created_by)"
                " VALUES (%s, %s, %s, %s)",
                (username, hash_password(password), r.value, created_by),
            )
        except psycopg.errors.UniqueViolation:
            raise UserError(f"user {username!r} already exists") from None
        conn.execute(
            "INSERT INTO audit_log (actor, action, target, detail) VALUES (%s, %s, %s, %s)",
            (created_by, "user_created", f"user:{username}", Jsonb({"role": r.value})),
        )
    return User(username, r)


def cli_add_user(conninfo: str, username: str, password: str, role: str) -> User:
    """Entry point for ``quantrac users add``: migrates first, then creates the user."""
    from storage.migrate import migrate

    migrate(conninfo)
    return create_user(conninfo, username, password, role)


async def create_user_async(
    conn: AsyncConnection[Any],
    hasher: Hasher,
    username: str,
    password: str,
    role: str,
    *,
    created_by: str,
) -> User:
    r = check_new_user(username, password, role)
    password_hash = await hasher.hash(password)
    try:
        async with conn.transaction():
            await conn.execute(
                "INSERT INTO users (username, password_hash, role, created_by)"
                " VALUES (%s, %s, %s, %s)",
                (username, password_hash, r.value, created_by),
            )
            await audit(conn, created_by, "user_created", f"user:{username}", {"role": r.value})
    except psycopg.errors.UniqueViolation:
        raise UserError(f"user {username!r} already exists") from None
    return User(username, r)


async def list_users(conn: AsyncConnection[Any]) -> list[dict[str, Any]]:
    cur = await conn.execute(
        "SELECT username, role, full_name, disabled, created_at, created_by FROM users"
        " ORDER BY username"
    )
    cols = ("username", "role", "full_name", "disabled", "created_at", "created_by")
    return [dict(zip(cols, r, strict=True)) for r in await cur.fetchall()]


async def set_disabled(
    conn: AsyncConnection[Any], username: str, disabled: bool, *, actor: str
) -> bool:
    async with conn.transaction():
        cur = await conn.execute(
            "UPDATE users SET disabled = %s WHERE username = %s", (disabled, username)
        )
        if cur.rowcount == 0:
            return False
        if disabled:
            await conn.execute("DELETE FROM sessions WHERE username = %s", (username,))
        action = "user_disabled" if disabled else "user_enabled"
        await audit(conn, actor, action, f"user:{username}", {})
    return True


async def audit(
    conn: AsyncConnection[Any], actor: str, action: str, target: str, detail: dict[str, Any]
) -> None:
    await conn.execute(
        "INSERT INTO audit_log (actor, action, target, detail) VALUES (%s, %s, %s, %s)",
        (actor, action, target, Jsonb(detail)),
    )


class LoginResult(StrEnum):
    OK = "ok"
    BAD_CREDENTIALS = "bad_credentials"
    THROTTLED = "throttled"


async def _reserve_attempt(
    conn: AsyncConnection[Any], policy: AuthPolicy, username: str, ip: str, now: datetime
) -> int | None:
    """Record an attempt as a failure before its password is checked; None when throttled.

    The advisory lock serialises the count-then-insert of one address, so N concurrent guesses
    see each other's rows: at most the limit get their password checked.
    """
    async with conn.transaction():
        await conn.execute(
            "SELECT pg_advisory_xact_lock(hashtextextended('quantrac-login:' || %s, 0))", (ip,)
        )
        cur = await conn.execute(
            "SELECT count(*) FILTER (WHERE username = %s), count(*) FROM login_attempts"
            " WHERE ip = %s AND NOT success AND at > %s",
            (username, ip, now - policy.window),
        )
        row = await cur.fetchone()
        per_user, per_ip = (int(row[0]), int(row[1])) if row else (0, 0)
        if per_user >= policy.failures_per_user_ip or per_ip >= policy.failures_per_ip:
            scope = "user_ip" if per_user >= policy.failures_per_user_ip else "ip"
            await audit(
                conn, username, "login_throttled", f"user:{username}", {"ip": ip, "scope": scope}
            )
            return None
        cur = await conn.execute(
            "INSERT INTO login_attempts (username, ip, at, success) VALUES (%s, %s, %s, false)"
            " RETURNING id",
            (username, ip, now),
        )
        inserted = await cur.fetchone()
        assert inserted is not None
        return int(inserted[0])


async def _check_credentials(
    pool: AsyncConnectionPool[Any],
    hasher: Hasher,
    policy: AuthPolicy,
    username: str,
    password: str,
    *,
    ip: str,
    now: datetime,
) -> tuple[LoginResult, int | None]:
    """Throttle, then verify (no connection is held while hashing). Returns the attempt id."""
    async with pool.connection() as conn:
        attempt = await _reserve_attempt(conn, policy, username, ip, now)
        if attempt is None:
            return LoginResult.THROTTLED, None
        cur = await conn.execute(
            "SELECT password_hash, disabled FROM users WHERE username = %s", (username,)
        )
        row = await cur.fetchone()
    ok = await hasher.verify(row[0] if row else _DUMMY_HASH, password)
    if not (ok and row is not None and not row[1]):
        async with pool.connection() as conn:
            await audit(conn, username, "login_failed", f"user:{username}", {"ip": ip})
        return LoginResult.BAD_CREDENTIALS, attempt
    return LoginResult.OK, attempt


async def login(
    pool: AsyncConnectionPool[Any],
    hasher: Hasher,
    policy: AuthPolicy,
    username: str,
    password: str,
    *,
    ip: str,
    user_agent: str,
    now: datetime,
) -> tuple[LoginResult, str | None]:
    """Check a password; on success create a session and return its cookie value.

    Throttled logins are refused before the password is looked at, so guessing stops counting.
    The caller has checked ``login_form_error`` first.
    """
    result, attempt = await _check_credentials(
        pool, hasher, policy, username, password, ip=ip, now=now
    )
    if result is not LoginResult.OK:
        return result, None
    token = secrets.token_urlsafe(32)
    async with pool.connection() as conn, conn.transaction():
        await conn.execute("UPDATE login_attempts SET success = true WHERE id = %s", (attempt,))
        await conn.execute(
            "INSERT INTO sessions (id_hash, username, csrf_token, created_at, last_seen,"
            " expires_at, ip, user_agent) VALUES (%s, %s, %s, %s, %s, %s, %s, %s)",
            (
                token_digest(token),
                username,
                secrets.token_urlsafe(32),
                now,
                now,
                now + min(policy.session_idle, policy.session_max),
                ip,
                user_agent[:300],
            ),
        )
        await audit(conn, username, "login", f"user:{username}", {"ip": ip})
    return LoginResult.OK, token


async def session_for(
    conn: AsyncConnection[Any], token: str | None, now: datetime, policy: AuthPolicy
) -> Session | None:
    """The live session behind a cookie value, or None: sliding idle expiry, capped at the
    absolute lifetime counted from the login."""
    if not token:
        return None
    cur = await conn.execute(
        "UPDATE sessions s SET last_seen = %s, expires_at = LEAST(%s, s.created_at + %s)"
        " FROM users u WHERE s.id_hash = %s AND u.username = s.username"
        " AND s.expires_at > %s AND s.created_at > %s AND NOT u.disabled"
        " RETURNING u.username, u.role, u.full_name, s.csrf_token, s.expires_at",
        (
            now,
            now + policy.session_idle,
            policy.session_max,
            token_digest(token),
            now,
            now - policy.session_max,
        ),
    )
    row = await cur.fetchone()
    await conn.commit()
    if row is None:
        return None
    return Session(User(row[0], Role(row[1]), row[2]), row[3], row[4])


class PasswordChange(StrEnum):
    OK = "ok"
    WRONG_CURRENT = "wrong_current"
    THROTTLED = "throttled"


async def change_password(
    pool: AsyncConnectionPool[Any],
    hasher: Hasher,
    policy: AuthPolicy,
    username: str,
    current: str,
    new: str,
    *,
    ip: str,
    keep_token: str,
    now: datetime,
) -> PasswordChange:
    """A user's own change: the new password must pass the policy (UserError), the current one
    is checked like a login (a wrong one counts towards throttling). The user's other sessions
    end; this one (``keep_token``) stays. Audited as ``password_changed``."""
    check_new_password(username, new)
    if len(current) > MAX_LENGTH:
        return PasswordChange.WRONG_CURRENT
    result, attempt = await _check_credentials(
        pool, hasher, policy, username, current, ip=ip, now=now
    )
    if result is LoginResult.THROTTLED:
        return PasswordChange.THROTTLED
    if result is LoginResult.BAD_CREDENTIALS:
        return PasswordChange.WRONG_CURRENT
    new_hash = await hasher.hash(new)
    async with pool.connection() as conn, conn.transaction():
        await conn.execute("UPDATE login_attempts SET success = true WHERE id = %s", (attempt,))
        await conn.execute(
            "UPDATE users SET password_hash = %s WHERE username = %s", (new_hash, username)
        )
        await conn.execute(
            "DELETE FROM sessions WHERE username = %s AND id_hash <> %s",
            (username, token_digest(keep_token)),
        )
        await audit(conn, username, "password_changed", f"user:{username}", {"ip": ip})
    return PasswordChange.OK


async def reset_password(
    pool: AsyncConnectionPool[Any], hasher: Hasher, username: str, new: str, *, actor: str
) -> bool:
    """An admin sets another user's password (policy: UserError); every session of that user
    ends. False when there is no such user. Audited as ``password_reset`` by the admin."""
    check_new_password(username, new)
    new_hash = await hasher.hash(new)
    async with pool.connection() as conn, conn.transaction():
        cur = await conn.execute(
            "UPDATE users SET password_hash = %s WHERE username = %s", (new_hash, username)
        )
        if cur.rowcount == 0:
            return False
        await conn.execute("DELETE FROM sessions WHERE username = %s", (username,))
        await audit(conn, actor, "password_reset", f"user:{username}", {})
    return True


async def logout(conn: AsyncConnection[Any], token: str, username: str) -> None:
    async with conn.transaction():
        await conn.execute("DELETE FROM sessions WHERE id_hash = %s", (token_digest(token),))
        await audit(conn, username, "logout", f"user:{username}", {})
