"""Users, roles, sessions, CSRF and login throttling for the console.

Passwords are hashed with argon2id (memory-hard). A session is a random cookie value whose
SHA-256 is stored in ``sessions``, with its own CSRF token; the cookie is HttpOnly and
SameSite=Strict. Every state change must echo the session's CSRF token (header
``X-CSRF-Token`` or form field ``csrf_token``). Five failed logins for one username from one
address within five minutes lock that pair out (HTTP 429) until the window passes.
"""

from __future__ import annotations

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

SESSION_COOKIE = "qt_session"
LOGIN_CSRF_COOKIE = "qt_login_csrf"  # double-submit token for the login form (no session yet)
CSRF_HEADER = "X-CSRF-Token"
CSRF_FIELD = "csrf_token"
SESSION_TTL = timedelta(hours=12)
THROTTLE_FAILURES = 5
THROTTLE_WINDOW = timedelta(minutes=5)
USERNAME = re.compile(r"^[A-Za-z0-9_.@-]{1,64}$")
MIN_PASSWORD = 8

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


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def verify_password(stored_hash: str, password: str) -> bool:
    try:
        return _hasher.verify(stored_hash, password)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


def token_digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def tokens_match(expected: str, given: str | None) -> bool:
    return bool(given) and hmac.compare_digest(expected.encode(), (given or "").encode())


def check_new_user(username: str, password: str, role: str) -> Role:
    """Validate the inputs of a new user; return the role or raise UserError naming the field."""
    if not USERNAME.match(username):
        raise UserError(f"username {username!r}: 1–64 of letters, digits, _ . @ -")
    if len(password) < MIN_PASSWORD:
        raise UserError(f"password for {username!r}: at least {MIN_PASSWORD} characters")
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
    conn: AsyncConnection[Any], username: str, password: str, role: str, *, created_by: str
) -> User:
    r = check_new_user(username, password, role)
    try:
        async with conn.transaction():
            await conn.execute(
                "INSERT INTO users (username, password_hash, role, created_by)"
                " VALUES (%s, %s, %s, %s)",
                (username, hash_password(password), r.value, created_by),
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


async def recent_failures(conn: AsyncConnection[Any], username: str, ip: str, now: datetime) -> int:
    cur = await conn.execute(
        "SELECT count(*) FROM login_attempts WHERE username = %s AND ip = %s"
        " AND NOT success AND at > %s",
        (username, ip, now - THROTTLE_WINDOW),
    )
    row = await cur.fetchone()
    return int(row[0]) if row else 0


class LoginResult(StrEnum):
    OK = "ok"
    BAD_CREDENTIALS = "bad_credentials"
    THROTTLED = "throttled"


async def login(
    conn: AsyncConnection[Any],
    username: str,
    password: str,
    *,
    ip: str,
    user_agent: str,
    now: datetime,
) -> tuple[LoginResult, str | None]:
    """Check a password; on success create a session and return its cookie value.

    Throttled pairs are refused before the password is looked at, so guessing stops counting.
    """
    if await recent_failures(conn, username, ip, now) >= THROTTLE_FAILURES:
        await audit(conn, username, "login_throttled", f"user:{username}", {"ip": ip})
        await conn.commit()
        return LoginResult.THROTTLED, None
    cur = await conn.execute(
        "SELECT password_hash, disabled FROM users WHERE username = %s", (username,)
    )
    row = await cur.fetchone()
    ok = verify_password(row[0] if row else _DUMMY_HASH, password)
    ok = ok and row is not None and not row[1]
    async with conn.transaction():
        await conn.execute(
            "INSERT INTO login_attempts (username, ip, at, success) VALUES (%s, %s, %s, %s)",
            (username, ip, now, ok),
        )
        if not ok:
            await audit(conn, username, "login_failed", f"user:{username}", {"ip": ip})
            return LoginResult.BAD_CREDENTIALS, None
        token = secrets.token_urlsafe(32)
        await conn.execute(
            "INSERT INTO sessions (id_hash, username, csrf_token, created_at, last_seen,"
            " expires_at, ip, user_agent) VALUES (%s, %s, %s, %s, %s, %s, %s, %s)",
            (
                token_digest(token),
                username,
                secrets.token_urlsafe(32),
                now,
                now,
                now + SESSION_TTL,
                ip,
                user_agent[:300],
            ),
        )
        await audit(conn, username, "login", f"user:{username}", {"ip": ip})
    return LoginResult.OK, token


async def session_for(
    conn: AsyncConnection[Any], token: str | None, now: datetime
) -> Session | None:
    """The live session behind a cookie value (sliding expiry), or None."""
    if not token:
        return None
    cur = await conn.execute(
        "UPDATE sessions s SET last_seen = %s, expires_at = %s"
        " FROM users u WHERE s.id_hash = %s AND u.username = s.username"
        " AND s.expires_at > %s AND NOT u.disabled"
        " RETURNING u.username, u.role, u.full_name, s.csrf_token, s.expires_at",
        (now, now + SESSION_TTL, token_digest(token), now),
    )
    row = await cur.fetchone()
    await conn.commit()
    if row is None:
        return None
    return Session(User(row[0], Role(row[1]), row[2]), row[3], row[4])


async def logout(conn: AsyncConnection[Any], token: str, username: str) -> None:
    async with conn.transaction():
        await conn.execute("DELETE FROM sessions WHERE id_hash = %s", (token_digest(token),))
        await audit(conn, username, "logout", f"user:{username}", {})
