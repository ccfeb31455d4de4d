"""``quantrac users add|list|disable|passwd``: console users from the command line.

A password is read from a prompt (twice, on a terminal) or from stdin, never from the command
line, where shell history and ``ps`` would keep it; the console's policy applies
(console/passwords.py via console/auth.py). Every change is audited with the actor ``cli``."""

from __future__ import annotations

import asyncio
import getpass
import json
import sys
from typing import Any, TextIO

import psycopg
from psycopg_pool import AsyncConnectionPool

from console.auth import Hasher, UserError, cli_add_user, list_users, reset_password, set_disabled

ACTOR = "cli"


def read_password(stdin: TextIO, *, from_stdin: bool) -> str:
    """One line of stdin (``--password-stdin``, or stdin is not a terminal), else a prompt
    asked twice; UserError when empty or the two differ."""
    if from_stdin or not stdin.isatty():
        password = stdin.readline().rstrip("\r\n")
        if not password:
            raise UserError("no password on stdin (one line)")
        return password
    password = getpass.getpass("password: ")
    if getpass.getpass("again: ") != password:
        raise UserError("the two passwords differ")
    return password


def add(conninfo: str, username: str, role: str, password: str) -> str:
    user = cli_add_user(conninfo, username, password, role)
    return f"created {user.username} ({user.role})"


async def _list(conninfo: str) -> list[dict[str, Any]]:
    async with await psycopg.AsyncConnection.connect(conninfo) as conn:
        return await list_users(conn)


def list_text(conninfo: str, *, as_json: bool) -> str:
    users = asyncio.run(_list(conninfo))
    if as_json:
        return json.dumps(users, default=str, ensure_ascii=False, indent=2)
    rows = [("username", "role", "state", "created_by")] + [
        (u["username"], u["role"], "disabled" if u["disabled"] else "active", u["created_by"])
        for u in users
    ]
    widths = [max(len(str(r[i])) for r in rows) for i in range(4)]
    return "\n".join(
        "  ".join(str(c).ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows
    )


async def _disable(conninfo: str, username: str) -> bool:
    async with await psycopg.AsyncConnection.connect(conninfo) as conn:
        return await set_disabled(conn, username, True, actor=ACTOR)


def disable(conninfo: str, username: str) -> str:
    if not asyncio.run(_disable(conninfo, username)):
        raise UserError(f"no user {username!r}")
    return f"disabled {username} (sessions ended)"


async def _passwd(conninfo: str, username: str, password: str) -> bool:
    async with AsyncConnectionPool(conninfo, min_size=1, max_size=1, open=False) as pool:
        return await reset_password(pool, Hasher(1), username, password, actor=ACTOR)


def passwd(conninfo: str, username: str, password: str) -> str:
    if not asyncio.run(_passwd(conninfo, username, password)):
        raise UserError(f"no user {username!r}")
    return f"password of {username} set (sessions ended)"


def fail(message: str) -> int:
    print(f"quantrac users: {message}", file=sys.stderr)
    return 2
