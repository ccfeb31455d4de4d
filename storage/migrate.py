"""Forward-only schema migrations, applied in order and recorded in ``schema_migrations``.

A migration is ``NNNN_name.sql``; a pair ``NNNN_name.plain.sql`` / ``NNNN_name.timescale.sql``
is one migration with a variant per flavour: the TimescaleDB one when the extension is available,
the plain PostgreSQL one otherwise. Re-running applies nothing (each version is recorded once).
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

import psycopg

log = logging.getLogger(__name__)

MIGRATIONS_DIR = Path(__file__).parent / "migrations"
_NAME = re.compile(
    r"^(?P<version>\d{4})_(?P<name>[a-z0-9_]+?)(?:\.(?P<flavour>plain|timescale))?\.sql$"
)
_LOCK_KEY = 0x5155414E  # advisory lock: two processes migrating at once take turns


class Flavour(StrEnum):
    PLAIN = "plain"
    TIMESCALE = "timescale"


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    path: Path


NO_TRANSACTION = "-- quantrac: no-transaction"


def split_statements(sql: str) -> list[str]:
    """Split a migration on statement-ending semicolons (our files keep them at line ends)."""
    body = "\n".join(line for line in sql.splitlines() if not line.lstrip().startswith("--"))
    return [s.strip() for s in re.split(r";\s*\n", body + "\n") if s.strip()]


def detect_flavour(conn: psycopg.Connection) -> Flavour:
    row = conn.execute(
        "SELECT 1 FROM pg_available_extensions WHERE name = 'timescaledb'"
    ).fetchone()
    return Flavour.TIMESCALE if row else Flavour.PLAIN


def plan(flavour: Flavour, directory: Path = MIGRATIONS_DIR) -> list[Migration]:
    """The migrations for this flavour, in version order."""
    chosen: dict[int, Migration] = {}
    for path in sorted(directory.glob("*.sql")):
        m = _NAME.match(path.name)
        if not m:
            raise ValueError(f"migration file name {path.name!r} is not NNNN_name[.flavour].sql")
        if m["flavour"] not in (None, flavour.value):
            continue
        version = int(m["version"])
        if version in chosen:
            raise ValueError(
                f"two migrations with version {version}: {chosen[version].path.name}, {path.name}"
            )
        chosen[version] = Migration(version, m["name"], path)
    return [chosen[v] for v in sorted(chosen)]


def migrate(conninfo: str, *, retention_days: int | None = None) -> list[Migration]:
    """Apply pending migrations; return the ones applied (empty when up to date)."""
    applied: list[Migration] = []
    with psycopg.connect(conninfo, autocommit=True) as conn:
        conn.execute("SELECT pg_advisory_lock(%s)", (_LOCK_KEY,))
        try:
            flavour = detect_flavour(conn)
            log.info("database flavour: %s", flavour)
            conn.execute(
                "CREATE TABLE IF NOT EXISTS schema_migrations (version integer PRIMARY KEY,"
                " name text NOT NULL, flavour text NOT NULL,"
                " applied_at timestamptz NOT NULL DEFAULT now())"
            )
            done = {r[0] for r in conn.execute("SELECT version FROM schema_migrations")}
            for mig in plan(flavour):
                if mig.version in done:
                    continue
                sql = mig.path.read_text()
                record = (
                    "INSERT INTO schema_migrations (version, name, flavour) VALUES (%s,%s,%s)",
                    (mig.version, mig.name, flavour.value),
                )
                if NO_TRANSACTION in sql:
                    # TimescaleDB continuous aggregates cannot be created in a transaction:
                    # run statement by statement; each is written to be safe to re-run.
                    for statement in split_statements(sql):
                        conn.execute(statement.encode())
                    conn.execute(*record)
                else:
                    with conn.transaction():
                        conn.execute(sql.encode())
                        conn.execute(*record)
                log.info("applied migration %04d_%s (%s)", mig.version, mig.name, flavour)
                applied.append(mig)
            if flavour is Flavour.TIMESCALE and retention_days:
                for table in ("readings", "averages"):
                    conn.execute(
                        "SELECT add_retention_policy(%s, make_interval(days => %s),"
                        " if_not_exists => true)",
                        (table, retention_days),
                    )
        finally:
            conn.execute("SELECT pg_advisory_unlock(%s)", (_LOCK_KEY,))
    return applied
