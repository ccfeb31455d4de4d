"""Forward-only schema migrations, applied in order and recorded in ``schema_migrations``.

A migration is ``NNNN_name.sql``; a pair ``NNNN_name.plain.sql`` / ``NNNN_name.timescale.sql``
is one migration with a variant per flavour: the TimescaleDB one when the extension is preloaded
and creatable (detect_flavour), the plain PostgreSQL one otherwise. Re-running applies nothing
(each version is recorded once).
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


class MigrationFailed(RuntimeError):
    """A migration's statement failed; carries which one, and the server's own error as cause."""

    def __init__(self, migration: Migration, flavour: Flavour, statement: int | None) -> None:
        where = f" statement {statement}" if statement is not None else ""
        super().__init__(f"migration {migration.path.name} ({flavour}){where} failed")
        self.migration = migration
        self.flavour = flavour
        self.statement = statement


def _preloaded(conn: psycopg.Connection) -> bool:
    row = conn.execute("SELECT current_setting('shared_preload_libraries')").fetchone()
    entries = (row[0] if row else "").split(",")
    names = {Path(e.strip().strip('"')).name.removesuffix(".so") for e in entries}
    return "timescaledb" in names


def detect_flavour(conn: psycopg.Connection) -> Flavour:
    """TimescaleDB only when this session can really use it: available, preloaded, creatable.

    Being listed in pg_available_extensions is not enough: without shared_preload_libraries
    the first hypertable fails, and CREATE EXTENSION then ends the session (a FATAL error).
    """
    row = conn.execute(
        "SELECT installed_version FROM pg_available_extensions WHERE name = 'timescaledb'"
    ).fetchone()
    if row is None:
        return Flavour.PLAIN
    if not _preloaded(conn):
        log.warning(
            "timescaledb is available but not in shared_preload_libraries, so it cannot be"
            " used: plain flavour"
        )
        return Flavour.PLAIN
    if row[0] is None:  # not created in this database yet: can this role create it?
        try:
            with conn.transaction(force_rollback=True):
                conn.execute("CREATE EXTENSION IF NOT EXISTS timescaledb")
        except psycopg.Error as exc:
            log.warning(
                "timescaledb is preloaded but cannot be created here (%s): plain flavour",
                str(exc).strip(),
            )
            return Flavour.PLAIN
    return Flavour.TIMESCALE


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


# Retention floor. The longest report period is a calendar year (reports/periods.py), and last
# year's report must stay reproducible until this year ends: two years of readings and averages.
# That also keeps every continuous aggregate's refresh window (at most 3 months plus its 1-month
# bucket, 0002_rollups.timescale.sql) clear of dropped chunks: a refresh over dropped raw data
# rewrites the aggregate from what is left (TimescaleDB docs, "About data retention with
# continuous aggregates": the refresh window must not overlap deleted data).
MIN_RETENTION_DAYS = 2 * 366
RETAINED_TABLES = ("readings", "averages")


class RetentionTooShort(ValueError):
    """A retention that would delete data reports, evidence or the aggregates still need."""

    def __init__(self, days: int) -> None:
        super().__init__(
            f"--retention-days {days} is shorter than the floor of {MIN_RETENTION_DAYS} days"
            " (a year's report, reproducible through the following year; it also keeps the"
            " continuous aggregates' refresh windows clear of dropped data)"
        )
        self.days = days


def check_retention(days: int) -> None:
    if days < MIN_RETENTION_DAYS:
        raise RetentionTooShort(days)


def set_retention(conn: psycopg.Connection, days: int) -> None:
    """Replace the retention policies (``if_not_exists`` would keep an older value silently)."""
    check_retention(days)
    for table in RETAINED_TABLES:
        conn.execute("SELECT remove_retention_policy(%s, if_exists => true)", (table,))
        conn.execute("SELECT add_retention_policy(%s, make_interval(days => %s))", (table, days))
        log.info("retention of %s: %d days", table, days)


def _log_notice(diag: psycopg.errors.Diagnostic) -> None:
    level = logging.WARNING if diag.severity == "WARNING" else logging.INFO
    log.log(level, "database %s: %s", diag.severity, diag.message_primary)


def migrate(conninfo: str, *, retention_days: int | None = None) -> list[Migration]:
    """Apply pending migrations; return the ones applied (empty when up to date).

    ``retention_days`` (TimescaleDB) replaces the readings/averages retention policies; None
    leaves them as they are. Refused below MIN_RETENTION_DAYS before anything is applied."""
    if retention_days is not None:
        check_retention(retention_days)
    applied: list[Migration] = []
    with psycopg.connect(conninfo, autocommit=True) as conn:
        conn.add_notice_handler(_log_notice)  # the server's warnings, e.g. a policy kept as-is
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
                    for i, statement in enumerate(split_statements(sql), 1):
                        try:
                            conn.execute(statement.encode())
                        except psycopg.Error as exc:
                            raise MigrationFailed(mig, flavour, i) from exc
                    conn.execute(*record)
                else:
                    try:
                        with conn.transaction():
                            conn.execute(sql.encode())
                            conn.execute(*record)
                    except psycopg.Error as exc:
                        raise MigrationFailed(mig, flavour, None) from exc
                log.info("applied migration %04d_%s (%s)", mig.version, mig.name, flavour)
                applied.append(mig)
            if flavour is Flavour.TIMESCALE and retention_days is not None:
                set_retention(conn, retention_days)
            elif retention_days is not None:
                log.warning("retention needs TimescaleDB: plain flavour keeps everything")
        finally:
            # A FATAL error (or a lost server) closes the session, which frees the lock too;
            # unlocking then would raise "the connection is closed" and hide the real error.
            if not conn.closed:
                conn.execute("SELECT pg_advisory_unlock(%s)", (_LOCK_KEY,))
    return applied
