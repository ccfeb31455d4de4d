"""No default secrets in production: every process refuses to start on an empty or placeholder
secret, and ``quantrac secrets init`` replaces the placeholders of the deploy env files.

The secrets a quantrac process reads (``process_secrets``): the password inside
``QUANTRAC_DATABASE_URL`` (required over TCP; a Unix-socket connection, as the embedded
PostgreSQL of the demo and the tests uses, is authenticated by the operating system) and the
password inside ``QUANTRAC_MQTT_URL`` when it names a user. The console needs no secret of its
own: its sessions are random tokens stored hashed in the database. Unset URLs mean the embedded
services, which have no secrets to check.

The env files also hold the secrets of the containers beside quantrac (``POSTGRES_PASSWORD``,
``GF_SECURITY_ADMIN_PASSWORD``); ``init_env_files`` fills those too, keeping the database
password the same in ``POSTGRES_PASSWORD`` and in every ``*_DATABASE_URL``.
"""

from __future__ import annotations

import os
import re
import secrets
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from psycopg import conninfo as pg_conninfo
from psycopg.errors import ProgrammingError

from core.settings import Settings

# Compared after lower-casing and dropping everything but letters and digits.
_PLACEHOLDER_WORDS = frozenset(
    {"changeme", "replaceme", "changethis", "placeholder", "password", "passwd", "secret"}
    | {"todo", "tbd", "xxx", "xxxx", "example", "default", "none", "null"}
)
_SECRET_KEY = re.compile(r"PASSWORD|SECRET|TOKEN")
_URL_PASSWORD = re.compile(r"(?P<head>://[^:/@\s]*:)(?P<password>[^@\s]*)(?P<tail>@)")
DB_PASSWORD_KEY = "POSTGRES_PASSWORD"


class SecretError(RuntimeError):
    """A secret is empty or a placeholder; the message names the variable, never the value."""


def is_placeholder(value: str) -> bool:
    """``CHANGE-ME``, ``changeme``, ``<password>``, ``xxx`` … (an empty value is not: see
    ``Secret.required``)."""
    word = re.sub(r"[^a-z0-9]", "", value.lower())
    return word in _PLACEHOLDER_WORDS or word.startswith("changeme")


@dataclass(frozen=True)
class Secret:
    variable: str  # what the operator sets, e.g. "QUANTRAC_DATABASE_URL (its password)"
    value: str | None
    required: bool  # an empty value is refused too


def _database_secret(url: str) -> Secret:
    name = "QUANTRAC_DATABASE_URL (its password)"
    try:
        params = pg_conninfo.conninfo_to_dict(url)
    except ProgrammingError:
        raise SecretError("QUANTRAC_DATABASE_URL: not a valid PostgreSQL conninfo/URL") from None
    host = str(params.get("host") or "")
    over_socket = not host or all(h.startswith("/") for h in host.split(","))
    password = params.get("password")
    return Secret(name, None if password is None else str(password), not over_socket)


def process_secrets(settings: Settings) -> list[Secret]:
    """Every secret a quantrac process reads from these settings (the configured ones)."""
    found = []
    if settings.database_url:
        found.append(_database_secret(settings.database_url))
    if settings.mqtt_url and urlsplit(settings.mqtt_url).username:
        found.append(
            Secret("QUANTRAC_MQTT_URL (its password)", urlsplit(settings.mqtt_url).password, True)
        )
    # notifications (notify/): the webhook signing key and the SMTP login's password, when set
    if settings.notify_webhook_secret is not None:
        found.append(Secret("QUANTRAC_NOTIFY_WEBHOOK_SECRET", settings.notify_webhook_secret, True))
    if settings.notify_smtp_user:
        found.append(Secret("QUANTRAC_NOTIFY_SMTP_PASSWORD", settings.notify_smtp_password, True))
    # scheduled reports (reports/scheduler.py): their SMTP login's password, when a login is set
    if settings.schedule_smtp_user:
        found.append(
            Secret("QUANTRAC_SCHEDULE_SMTP_PASSWORD", settings.schedule_smtp_password, True)
        )
    return found


def check_secrets(settings: Settings) -> None:
    """Raise SecretError naming each secret that is empty (where required) or a placeholder."""
    problems = []
    for s in process_secrets(settings):
        if not s.value:
            if s.required:
                problems.append(f"{s.variable} is empty")
        elif is_placeholder(s.value):
            problems.append(f"{s.variable} is a placeholder")
    if problems:
        raise SecretError(
            "refusing to start: "
            + "; ".join(problems)
            + ". Set a real secret (`quantrac secrets init` fills deploy/env/*.env)."
        )


# --- env files -------------------------------------------------------------------------------


@dataclass(frozen=True)
class EnvSecret:
    file: str
    key: str
    how: str  # "value" or "url password"
    current: str


def _env_secrets(env_dir: Path) -> list[EnvSecret]:
    """Every secret-looking assignment of ``env_dir/*.env``: a PASSWORD/SECRET/TOKEN key, a
    password inside a URL, or any placeholder value."""
    found = []
    for path in sorted(env_dir.glob("*.env")):
        for line in path.read_text(encoding="utf-8").splitlines():
            key, sep, value = line.partition("=")
            if not sep or line.lstrip().startswith("#"):
                continue
            url = _URL_PASSWORD.search(value)
            if url:
                found.append(EnvSecret(path.name, key.strip(), "url password", url["password"]))
            elif _SECRET_KEY.search(key) or is_placeholder(value):
                found.append(EnvSecret(path.name, key.strip(), "value", value.strip()))
    return found


def _is_database(s: EnvSecret) -> bool:
    return s.key == DB_PASSWORD_KEY or (s.how == "url password" and s.key.endswith("DATABASE_URL"))


def _weak(value: str) -> bool:
    return not value or is_placeholder(value)


def placeholders_in(env_dir: Path) -> list[EnvSecret]:
    """The secrets of ``env_dir`` still empty or a placeholder (``quantrac secrets check``)."""
    return [s for s in _env_secrets(env_dir) if _weak(s.current)]


def new_secret() -> str:
    """32 characters from [A-Za-z0-9_-]: safe in a URL's userinfo and in an env file."""
    return secrets.token_urlsafe(24)


def init_env_files(env_dir: Path) -> list[EnvSecret]:
    """Replace every empty or placeholder secret of ``env_dir/*.env`` in place with a random
    one; return what was set. Idempotent: real values are kept, and the database password is
    one value wherever it appears (an existing real one is reused for the others)."""
    found = _env_secrets(env_dir)
    db_real = {s.current for s in found if _is_database(s) and not _weak(s.current)}
    if len(db_real) > 1:
        where = ", ".join(f"{s.key} in {s.file}" for s in found if _is_database(s))
        raise SecretError(f"the database password differs between {where}: make them equal")
    db_password = db_real.pop() if db_real else new_secret()
    todo = [s for s in found if _weak(s.current)]
    for name in sorted({s.file for s in todo}):
        path = env_dir / name
        lines = path.read_text(encoding="utf-8").splitlines(keepends=True)
        for i, line in enumerate(lines):
            key, sep, value = line.partition("=")
            mine = [s for s in todo if s.file == name and s.key == key.strip()]
            if not sep or not mine or line.lstrip().startswith("#"):
                continue
            secret = db_password if _is_database(mine[0]) else new_secret()
            url = _URL_PASSWORD.search(value)
            if mine[0].how == "url password" and url:
                value = value[: url.start("password")] + secret + value[url.end("password") :]
            else:
                value = secret + ("\n" if line.endswith("\n") else "")
            lines[i] = f"{key}={value}"
        tmp = path.with_suffix(".env.tmp")
        tmp.write_text("".join(lines), encoding="utf-8")
        os.chmod(tmp, 0o600)  # it holds secrets now
        tmp.replace(path)
    return todo
