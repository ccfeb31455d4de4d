"""Idempotent batched writes: COPY into a temporary staging table, then INSERT … ON CONFLICT;
for insert-only tables, COPY straight into the table while no conflict is met.

The caller hands a whole batch and awaits ``write``; it returns only once the database has
committed it, retrying with capped exponential backoff while the database is unreachable. The
persist agents await it before their Kafka offsets are acknowledged, so an outage stops
consumption (backpressure) instead of buffering without bound, and a crash replays the batch,
which the conflict clause turns into a no-op.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from operator import itemgetter
from typing import Any, TypeVar
from zoneinfo import ZoneInfo

import psycopg
from psycopg_pool import AsyncConnectionPool

log = logging.getLogger(__name__)

Row = tuple[Any, ...]
T = TypeVar("T")


def is_transient(exc: BaseException) -> bool:
    """A failure of the link, not of the rows: keep the batch, wait, try again.

    Class 54 (program limit exceeded, e.g. a key too large for its index) is an
    OperationalError in psycopg but is the row's fault: retrying it would stall forever."""
    if isinstance(exc, OSError):
        return True
    if isinstance(exc, psycopg.OperationalError):
        return not (exc.sqlstate or "").startswith("54")
    return False


async def retrying(
    attempt: Callable[[], Awaitable[T]],
    what: str,
    *,
    retry_max_s: float,
    on_error: Callable[[BaseException], None] | None = None,
) -> T:
    """``attempt()`` again, with capped exponential backoff from 0.2 s, for as long as it fails
    for the link (``is_transient``): the caller waits out a database outage instead of
    buffering. Any other failure propagates (the rows' fault: the caller decides)."""
    delay = 0.2
    while True:
        try:
            return await attempt()
        except Exception as exc:
            if not is_transient(exc):
                raise
            if on_error:
                on_error(exc)
            log.warning("%s failed (%s); retry in %.1fs", what, exc.__class__.__name__, delay)
            await asyncio.sleep(delay)
            delay = min(delay * 2, retry_max_s)


def is_data_error(exc: BaseException) -> bool:
    """A failure some row of the batch causes, whatever the link: PostgreSQL's classes 22
    (data exception: NUL, out of range, bad syntax), 23 (integrity) and 54 (too large), and
    what psycopg refuses before sending (a value it cannot adapt or encode)."""
    if is_transient(exc):
        return False
    if isinstance(exc, psycopg.DataError | psycopg.IntegrityError | psycopg.OperationalError):
        return True
    return isinstance(exc, ValueError | TypeError | OverflowError)  # UnicodeEncodeError too


@dataclass(frozen=True)
class TableSpec:
    """How one kind of record lands in its table."""

    table: str
    columns: tuple[str, ...]
    key: tuple[str, ...]  # the primary key: rows in one batch are de-duplicated on it
    on_conflict: str  # the conflict clause that makes a replay harmless
    keep_last_by: str | None = None  # within a batch, keep the row with the largest value here
    last_wins: bool = False  # without keep_last_by: the batch's last row per key wins (upserts)
    time_column: str | None = None  # continuous aggregates over the table bucket this column

    @property
    def inserts_only(self) -> bool:
        """A row already stored wins: where nothing is stored, a plain COPY stores the same."""
        return self.on_conflict == "ON CONFLICT DO NOTHING"

    def dedupe(self, rows: Sequence[Row]) -> list[Row]:
        """One row per key (ON CONFLICT DO UPDATE may touch a row only once per statement)."""
        key = itemgetter(*(self.columns.index(c) for c in self.key))
        if len(set(map(key, rows))) == len(rows):
            return list(rows)  # the usual batch: no key twice (counted at C speed)
        order_idx = self.columns.index(self.keep_last_by) if self.keep_last_by else None
        chosen: dict[Any, Row] = {}
        for row in rows:
            k = key(row)
            old = chosen.get(k)
            if (
                old is None
                or (order_idx is not None and row[order_idx] >= old[order_idx])
                or (order_idx is None and self.last_wins)
            ):
                chosen[k] = row
        return list(chosen.values())


def _update_all(spec_columns: Sequence[str], key: Sequence[str]) -> str:
    return ", ".join(f'"{c}" = EXCLUDED."{c}"' for c in spec_columns if c not in key)


READING_COLUMNS = (
    "source_id",
    "parameter",
    "measured_at",
    "value",
    "unit",
    "status",
    "flag",
    "raw_value",
    "raw_unit",
    "received_at",
    "channel",
    "origin",
    "archive_path",
    "raw_position",
    "manual_id",
)
READINGS = TableSpec(
    "readings",
    READING_COLUMNS,
    ("source_id", "parameter", "measured_at"),
    "ON CONFLICT DO NOTHING",
    time_column="measured_at",
)

# TimescaleDB: for each continuous aggregate over a table, the buckets [lo, hi] touches that lie
# below its watermark. Real-time aggregation (materialized_only = false) reads raw rows only above
# the watermark, and the refresh policy looks back a bounded window, so a late row below it would
# leave the aggregate stale for good (raw 289, aggregate 288) while the plain views are exact.
# The watermark and bucket catalogue are TimescaleDB's own (2.28: what the real-time view reads).
_LATE_BUCKETS = """
SELECT format('%%I.%%I', ca.user_view_schema, ca.user_view_name),
       time_bucket(b.width, %(lo)s::timestamptz, b.tz),
       ((time_bucket(b.width, least(%(hi)s::timestamptz, w.mark - interval '1 microsecond'), b.tz)
         AT TIME ZONE b.tz) + b.width) AT TIME ZONE b.tz
FROM _timescaledb_catalog.continuous_agg ca
JOIN _timescaledb_catalog.hypertable h ON h.id = ca.raw_hypertable_id
CROSS JOIN LATERAL (
    SELECT bucket_width::interval AS width, coalesce(bucket_timezone, 'UTC') AS tz
    FROM _timescaledb_catalog.continuous_aggs_bucket_function f
    WHERE f.mat_hypertable_id = ca.mat_hypertable_id) b
CROSS JOIN LATERAL (
    SELECT _timescaledb_functions.to_timestamp(
        _timescaledb_functions.cagg_watermark(ca.mat_hypertable_id)) AS mark) w
WHERE h.table_name = %(table)s AND %(lo)s::timestamptz < w.mark
"""
_ZONE = """
SELECT min(coalesce(f.bucket_timezone, 'UTC'))
FROM _timescaledb_catalog.continuous_agg ca
JOIN _timescaledb_catalog.hypertable h ON h.id = ca.raw_hypertable_id
JOIN _timescaledb_catalog.continuous_aggs_bucket_function f USING (mat_hypertable_id)
WHERE h.table_name = %(table)s
"""

_COLUMN_TYPES = """
SELECT a.attname, t.typname FROM pg_attribute a JOIN pg_type t ON t.oid = a.atttypid
WHERE a.attrelid = %(table)s::regclass AND a.attnum > 0 AND NOT a.attisdropped
"""
# Column types whose binary COPY stores or refuses a row as text COPY does (a value the binary
# dumper cannot send raises before sending, and the writer then uses text). Not int2/int4: their
# binary dumpers wrap an out-of-range int silently where text COPY refuses it. bpchar and
# varchar go as text: same wire format, and the server applies their length the same way.
_BINARY = {
    "text": "text",
    "varchar": "text",
    "bpchar": "text",
    "float8": "float8",
    "int8": "int8",
    "timestamptz": "timestamptz",
}

AVERAGE_COLUMNS = (
    "source_id",
    "parameter",
    "period",
    "window_start",
    "window_end",
    "value",
    "unit",
    "samples",
    "expected",
    "completeness",
    "valid",
    "revision",
)
_AVG_KEY = ("source_id", "parameter", "period", "window_start")
AVERAGES = TableSpec(
    "averages",
    AVERAGE_COLUMNS,
    _AVG_KEY,
    f"ON CONFLICT ({', '.join(_AVG_KEY)}) DO UPDATE SET {_update_all(AVERAGE_COLUMNS, _AVG_KEY)},"
    " updated_at = now() WHERE averages.revision <= EXCLUDED.revision",
    keep_last_by="revision",
)

AQI_COLUMNS = ("source_id", "kind", "window_start", "aqi", "category", "dominant", "sub_indices")
_AQI_KEY = ("source_id", "kind", "window_start")
AQI = TableSpec(
    "aqi",
    AQI_COLUMNS,
    _AQI_KEY,
    f"ON CONFLICT ({', '.join(_AQI_KEY)}) DO UPDATE SET {_update_all(AQI_COLUMNS, _AQI_KEY)}",
    last_wins=True,  # a day's AQI is recomputed as its hours arrive: the latest one stands
)

EVENT_COLUMNS = ("violation_id", "seq", "event", "at", "value", "ratio", "severity", "payload")
VIOLATION_EVENTS = TableSpec(
    "violation_events", EVENT_COLUMNS, ("violation_id", "seq"), "ON CONFLICT DO NOTHING"
)

VIOLATION_COLUMNS = (
    "violation_id",
    "kind",
    "source_id",
    "parameter",
    "rule_id",
    "period",
    "state",
    "started_at",
    "ended_at",
    "last_at",
    "value",
    "limit",
    "ratio",
    "peak_value",
    "peak_ratio",
    "severity",
    "legal_basis",
    "last_seq",
    "penalty_article",
    "penalty_sanction",
    "penalty_verified",
    "flow_bracket",
    "flow_basis",
    "flow_value",
    # reference-O2 correction of stacks (0015_reference_o2.sql)
    "measured_value",
    "o2_measured",
    "o2_reference",
    "peak_measured_value",
    "peak_o2_measured",
    "correction_basis",
    "found_late",  # 0016_found_late.sql
    "retracted",  # 0017_manual_validation.sql
)
VIOLATIONS = TableSpec(
    "violations",
    VIOLATION_COLUMNS,
    ("violation_id",),
    f"ON CONFLICT (violation_id) DO UPDATE SET "
    f"{_update_all(VIOLATION_COLUMNS, ('violation_id', 'started_at'))}"
    " WHERE violations.last_seq < EXCLUDED.last_seq",
    keep_last_by="last_seq",
)

WATER_QUALITY_COLUMNS = (
    "source_id",
    "day",
    "day_start",
    "water_class",
    "target_class",
    "alert",
    "wqi",
    "wqi_meets_minimum",
    "wqi_groups",
    "wqi_note",
    "means",
    "classes",
    "skipped",
    "over_table1",
    "revision",
)
_WQ_KEY = ("source_id", "day")
WATER_QUALITY_DAYS = TableSpec(
    "water_quality_days",
    WATER_QUALITY_COLUMNS,
    _WQ_KEY,
    f"ON CONFLICT ({', '.join(_WQ_KEY)}) DO UPDATE SET "
    f"{_update_all(WATER_QUALITY_COLUMNS, _WQ_KEY)}, updated_at = now()"
    " WHERE water_quality_days.revision < EXCLUDED.revision",
    keep_last_by="revision",
)

REJECTION_COLUMNS = (
    "rejection_id",
    "reason",
    "message",
    "channel",
    "source_id",
    "origin",
    "line",
    "field",
    "original",
    "received_at",
    "archive_path",
)
REJECTIONS = TableSpec("rejections", REJECTION_COLUMNS, ("rejection_id",), "ON CONFLICT DO NOTHING")


class BatchWriter:
    """Writes batches for one TableSpec through a shared async pool; retries until committed."""

    def __init__(
        self,
        pool: AsyncConnectionPool,
        spec: TableSpec,
        *,
        retry_max_s: float = 30.0,
        on_write: Callable[[str, int, float], None] | None = None,
        on_error: Callable[[str, BaseException], None] | None = None,
    ) -> None:
        self.pool = pool
        self.spec = spec
        self.retry_max_s = retry_max_s
        self._on_write = on_write
        self._on_error = on_error
        cols = ", ".join(f'"{c}"' for c in spec.columns)
        self._stage = f"stage_{spec.table}"
        self._create_stage = (
            f"CREATE TEMP TABLE IF NOT EXISTS {self._stage} "
            f"(LIKE {spec.table} INCLUDING DEFAULTS) ON COMMIT DELETE ROWS"
        )
        self._copy_stage = f"COPY {self._stage} ({cols}) FROM STDIN"
        self._copy_table = f"COPY {spec.table} ({cols}) FROM STDIN"
        self._merge = (
            f"INSERT INTO {spec.table} ({cols}) SELECT {cols} FROM {self._stage} {spec.on_conflict}"
        )
        self._time_idx = spec.columns.index(spec.time_column) if spec.time_column else None
        self._zone: str | None = None  # the continuous aggregates' bucket time zone, if any
        self._asked = False  # asked the catalogue (once per writer)
        self._types: list[str] | None = None  # binary COPY's column types (None: text COPY)
        self._typed = False  # read the columns' types (once per writer)
        # Insert-only tables: COPY straight into the table until a conflict says a batch is
        # being replayed; then merge until a merge finds every row new again.
        self._copy_first = spec.inserts_only

    async def write(self, rows: Sequence[Row]) -> int:
        """Commit ``rows``; return how many were new or changed. Blocks while the DB is down."""
        if not rows:
            return 0
        # An insert-only batch is de-duplicated only if it is merged: a key twice fails the COPY
        # straight into the table as a stored key does (the merge then keeps the first).
        batch = list(rows) if self.spec.inserts_only else self.spec.dedupe(rows)
        committed: list[int] = []  # rows changed by each part already committed
        started = 0.0

        async def attempt() -> int:
            nonlocal started
            started = time.perf_counter()
            for part in (await self._parts(batch))[len(committed) :]:
                committed.append(await self._write_once(part))
            return sum(committed)

        # a failure of the rows propagates: the caller decides (streams/errors.py)
        what = f"writing {len(batch)} rows to {self.spec.table}"
        changed = await retrying(attempt, what, retry_max_s=self.retry_max_s, on_error=self._error)
        if changed and self._time_idx is not None:
            await self._refresh_late(batch, self._time_idx)
        if self._on_write:
            self._on_write(self.spec.table, len(batch), time.perf_counter() - started)
        return changed

    def _error(self, exc: BaseException) -> None:
        if self._on_error:
            self._on_error(self.spec.table, exc)

    async def _aggregate_zone(self) -> str | None:
        """The time zone the continuous aggregates over this table bucket in (None: there are
        none, e.g. the plain flavour). Ours share one, Asia/Ho_Chi_Minh, and day or month
        buckets, whose boundaries are all local midnights."""
        if not self._asked:
            async with self.pool.connection() as conn:
                cur = await conn.execute(
                    "SELECT to_regclass('_timescaledb_catalog.continuous_agg') IS NOT NULL"
                )
                found = await cur.fetchone()
                if found and found[0]:
                    cur = await conn.execute(_ZONE, {"table": self.spec.table})
                    zone = await cur.fetchone()
                    self._zone = zone[0] if zone else None
                await conn.rollback()
            self._asked = True
        return self._zone

    async def _parts(self, batch: list[Row]) -> list[list[Row]]:
        """The batch, one part per local day when continuous aggregates bucket the table.

        On TimescaleDB 2.28.3 a transaction whose rows straddle a bucket boundary leaves the
        later bucket unmaterialised by the next refresh (and it is then lost); one transaction
        per local day avoids it. Each part is idempotent, so a replay after a crash between
        parts is harmless, and the batch is acknowledged only once all have committed."""
        if self._time_idx is None or (zone := await self._aggregate_zone()) is None:
            return [batch]
        tz = ZoneInfo(zone)
        days: dict[object, list[Row]] = {}
        for row in batch:
            days.setdefault(row[self._time_idx].astimezone(tz).date(), []).append(row)
        return list(days.values())

    async def _refresh_late(self, batch: Sequence[Row], time_idx: int) -> None:
        """Refresh the continuous-aggregate buckets this committed batch changed below their
        watermark (see _LATE_BUCKETS); retried like the write, as it is idempotent."""
        times = [row[time_idx] for row in batch]

        async def attempt() -> None:
            if await self._aggregate_zone() is None:
                return
            async with self.pool.connection() as conn:
                await conn.set_autocommit(True)  # a refresh cannot run in a transaction
                try:
                    cur = await conn.execute(
                        _LATE_BUCKETS,
                        {"lo": min(times), "hi": max(times), "table": self.spec.table},
                    )
                    for view, start, end in await cur.fetchall():
                        await conn.execute(
                            "CALL refresh_continuous_aggregate(%s, %s, %s)", (view, start, end)
                        )
                        log.info("refreshed %s over %s..%s for late rows", view, start, end)
                finally:
                    await conn.set_autocommit(False)

        what = f"refreshing aggregates of {self.spec.table}"
        await retrying(attempt, what, retry_max_s=self.retry_max_s, on_error=self._error)

    async def _write_once(self, batch: Sequence[Row]) -> int:
        """One transaction; binary COPY when the columns allow it, else (or when a value cannot
        be sent in binary) text COPY, so a value is stored or refused exactly as in text."""
        types = await self._column_types()
        if types is not None:
            try:
                return await self._insert(batch, types)
            except (TypeError, ValueError, OverflowError) as exc:  # refused before sending
                log.debug("%s: binary COPY cannot send a value (%s); text COPY", self.spec.table,
                          exc)  # fmt: skip
        return await self._insert(batch, None)

    async def _insert(self, batch: Sequence[Row], types: list[str] | None) -> int:
        async with self.pool.connection() as conn:
            if self._copy_first:
                try:
                    async with conn.transaction():
                        return await self._copy(conn, self._copy_table, batch, types)
                except psycopg.errors.UniqueViolation:
                    self._copy_first = False  # stored before (a replay): the merge skips it
            rows = self.spec.dedupe(batch) if self.spec.inserts_only else batch
            async with conn.transaction():
                await conn.execute(self._create_stage)
                await self._copy(conn, self._copy_stage, rows, types)
                cur = await conn.execute(self._merge)
                changed = max(cur.rowcount, 0)
            if self.spec.inserts_only:
                self._copy_first = changed == len(rows)  # every row new: the replay is over
            return changed

    @staticmethod
    async def _copy(
        conn: psycopg.AsyncConnection[Any], sql: str, batch: Sequence[Row], types: list[str] | None
    ) -> int:
        cur = conn.cursor()
        async with cur.copy(sql if types is None else f"{sql} (FORMAT BINARY)") as copy:
            if types is not None:
                copy.set_types(types)
            for row in batch:
                await copy.write_row(row)
        return max(cur.rowcount, 0)

    async def _column_types(self) -> list[str] | None:
        """The spec's column types for binary COPY, or None when one is not in _BINARY (read
        from the catalogue once, so a migration that changes a type is followed)."""
        if not self._typed:
            async with self.pool.connection() as conn:
                cur = await conn.execute(_COLUMN_TYPES, {"table": self.spec.table})
                found: dict[str, str] = dict(await cur.fetchall())
                await conn.rollback()
            names = [_BINARY.get(found.get(c, "")) for c in self.spec.columns]
            self._types = None if None in names else [n for n in names if n]
            self._typed = True
        return self._types
