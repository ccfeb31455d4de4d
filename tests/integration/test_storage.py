"""Schema and writer on a real PostgreSQL: migrations, idempotent batches, TimescaleDB path."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import psycopg
import pytest
from psycopg_pool import AsyncConnectionPool

from storage.migrate import Flavour, detect_flavour, migrate, plan
from storage.writer import AVERAGES, READINGS, BatchWriter, Row
from tests.integration.timescale_support import timescale_url

pytestmark = pytest.mark.integration
__all__ = ["timescale_url"]  # a fixture

T0 = datetime(2026, 11, 1, tzinfo=UTC)


def _tables(url: str) -> set[str]:
    with psycopg.connect(url) as conn:
        rows = conn.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = 'public'"
        ).fetchall()
    return {r[0] for r in rows}


def test_migrations_apply_once_then_are_no_ops(database_url: str) -> None:
    applied = migrate(database_url)
    assert [m.version for m in applied] == [m.version for m in plan(Flavour.PLAIN)]
    assert {
        "readings",
        "averages",
        "aqi",
        "violations",
        "violation_events",
        "rejections",
        "acknowledgements",
        "audit_log",
        "sources",
        "users",
        "readings_daily",
    } <= _tables(database_url)
    assert migrate(database_url) == []  # the second time applies nothing


def _reading_rows(n: int, value: float = 1.0) -> list[Row]:
    return [
        (
            "HD-NT-01",
            "COD",
            T0 + timedelta(minutes=5 * i),
            value,
            "mg/L",
            "00",
            "valid",
            value,
            "mg/L",
            T0,
            "sim",
            f"f{i}",
            None,
            i,
            None,
        )
        for i in range(n)
    ]


def _write(url: str, spec: object, rows: list[Row]) -> int:
    async def go() -> int:
        async with AsyncConnectionPool(url, min_size=1, max_size=1, open=False) as pool:
            return await BatchWriter(pool, spec, retry_max_s=1).write(rows)  # type: ignore[arg-type]

    return asyncio.run(go())


def test_replaying_a_batch_writes_nothing_twice(database_url: str) -> None:
    migrate(database_url)
    rows = _reading_rows(500)
    assert _write(database_url, READINGS, rows) == 500
    assert _write(database_url, READINGS, rows + rows) == 0  # replay, even doubled in a batch
    with psycopg.connect(database_url) as conn:
        assert conn.execute("SELECT count(*) FROM readings").fetchone() == (500,)


def test_averages_keep_the_newest_revision(database_url: str) -> None:
    migrate(database_url)

    def avg(value: float, revision: int) -> Row:
        return (
            "HD-NT-01",
            "COD",
            "1h",
            T0,
            T0 + timedelta(hours=1),
            value,
            "mg/L",
            12,
            12,
            1.0,
            True,
            revision,
        )

    _write(database_url, AVERAGES, [avg(100, 0)])
    _write(database_url, AVERAGES, [avg(120, 1), avg(110, 0)])  # a late correction, and a replay
    _write(database_url, AVERAGES, [avg(100, 0)])  # an old revision replayed: ignored
    with psycopg.connect(database_url) as conn:
        row = conn.execute("SELECT value, revision FROM averages").fetchone()
    assert row == (120, 1)


def test_timescaledb_features_when_the_extension_is_present(timescale_url: str) -> None:
    database_url = timescale_url  # a real TimescaleDB 2.28.3 (tests/timescale/setup.sh)
    with psycopg.connect(database_url) as conn:
        assert detect_flavour(conn) is Flavour.TIMESCALE
    migrate(database_url, retention_days=3650)
    with psycopg.connect(database_url) as conn:
        hypertables = {
            r[0]
            for r in conn.execute("SELECT hypertable_name FROM timescaledb_information.hypertables")
        }
        caggs = {
            r[0]
            for r in conn.execute(
                "SELECT view_name FROM timescaledb_information.continuous_aggregates"
            )
        }
        jobs = {r[0] for r in conn.execute("SELECT proc_name FROM timescaledb_information.jobs")}
    assert {"readings", "averages", "aqi"} <= hypertables
    assert {"readings_daily", "readings_monthly"} <= caggs
    assert {"policy_compression", "policy_retention", "policy_refresh_continuous_aggregate"} <= jobs
    assert migrate(database_url) == []


def test_migration_0006_drops_daily_aqi_rows_not_on_local_midnight(database_url: str) -> None:
    # Decision 1459/QĐ-TCMT: the day is the hours starting 00:00–23:00 local (UTC+7), so a daily
    # row starts at 17:00 UTC; rows from the old 01:00-local day (18:00 UTC) are removed.
    migrate(database_url)
    (m0006,) = [m for m in plan(Flavour.PLAIN) if m.version == 6]
    sql = m0006.path.read_text()
    right = datetime(2026, 11, 30, 17, tzinfo=UTC)
    with psycopg.connect(database_url) as conn:
        for kind, start in (("daily", right), ("daily", right + timedelta(hours=1)),
                            ("hourly", right + timedelta(hours=1))):  # fmt: skip
            conn.execute(
                "INSERT INTO aqi (source_id, kind, window_start, sub_indices)"
                " VALUES ('HD-KK-01', %s, %s, '{}')",
                (kind, start),
            )
        conn.execute(sql)
        rows = conn.execute("SELECT kind, window_start FROM aqi ORDER BY 1, 2").fetchall()
    assert rows == [("daily", right), ("hourly", right + timedelta(hours=1))]


def _stored(url: str, table: str = "readings") -> list[tuple[object, ...]]:
    with psycopg.connect(url) as conn:
        return conn.execute(
            f"SELECT * FROM {table} ORDER BY source_id, parameter, measured_at"
        ).fetchall()


def test_a_batch_partly_stored_before_stores_only_the_new_rows(database_url: str) -> None:
    # Readings are COPYed straight into the table; a batch that meets a stored key (a replay
    # overlapping new data) is merged instead, and the row stored first stays as it was.
    migrate(database_url)
    rows = _reading_rows(500)
    resent = [(*r[:3], 2.0, *r[4:]) for r in rows[200:300]]  # same keys, another value

    async def go() -> list[int]:
        async with AsyncConnectionPool(database_url, min_size=1, max_size=1, open=False) as pool:
            writer = BatchWriter(pool, READINGS, retry_max_s=1)
            counts = [await writer.write(rows[:300]), await writer.write(resent + rows[300:400])]
            assert not writer._copy_first  # a replay: the next batch is merged too
            counts.append(await writer.write(rows[400:450]))
            assert writer._copy_first  # that merge found only new rows: the replay is over
            counts.append(await writer.write(rows[450:]))
            return counts

    assert asyncio.run(go()) == [300, 100, 50, 50]
    stored = _stored(database_url)
    assert len(stored) == 500 and {r[3] for r in stored} == {1.0}


def test_a_key_twice_in_a_new_batch_keeps_its_first_row(database_url: str) -> None:
    migrate(database_url)
    rows = _reading_rows(10)
    again = (*rows[4][:3], 9.0, *rows[4][4:])
    assert _write(database_url, READINGS, [*rows, again]) == 10
    assert [r[3] for r in _stored(database_url)] == [1.0] * 10


def test_binary_copy_stores_and_refuses_each_row_as_text_copy_does(database_url: str) -> None:
    # The writer sends readings in binary COPY; each row below is stored, or refused, exactly as
    # the text COPY it replaced stores or refuses it (a reference table takes the text COPY).
    from streams.errors import write_rows

    migrate(database_url)
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute("CREATE TABLE readings_text (LIKE readings INCLUDING ALL)")
    (base,) = _reading_rows(1)

    def row(i: int, **change: object) -> Row:
        r = dict(zip(READINGS.columns, base, strict=True))
        r.update({"measured_at": T0 + timedelta(hours=i), "origin": f"o{i}", **change})
        return tuple(r.values())

    rows = [
        row(0),
        row(1, measured_at=datetime(2026, 11, 1, 1, 30)),  # naive: read in the session's zone
        row(2, value=7, raw_value=10**20),  # ints into float columns
        row(3, raw_position=2**63 - 1, manual_id=-(2**63)),  # bigint's bounds
        row(4, raw_position=2**63),  # past bigint
        row(5, status="000"),  # too long for char(2)
        row(6, value="x"),  # not a number
        row(7, unit="a\x00b"),  # NUL
        row(8, received_at="2026-11-01T00:00:00+07:00"),  # a string the server parses
        row(9, value=float("nan"), raw_value=float("-inf")),
        row(10, value="1.5"),  # a number in a string: text parses it
    ]

    def text_copy(r: Row) -> BaseException | None:
        cols = ", ".join(READINGS.columns)
        try:
            with (
                psycopg.connect(database_url) as conn,
                conn.cursor().copy(f"COPY readings_text ({cols}) FROM STDIN") as copy,
            ):
                copy.write_row(r)
        except Exception as exc:
            return exc
        return None

    async def go() -> list[BaseException | None]:
        async with AsyncConnectionPool(database_url, min_size=1, max_size=1, open=False) as pool:
            writer = BatchWriter(pool, READINGS, retry_max_s=1)
            assert await writer._column_types() is not None  # readings do go in binary
            return await write_rows(writer.write, rows)

    refused = asyncio.run(go())
    expected = [text_copy(r) for r in rows]
    assert [e is None for e in refused] == [e is None for e in expected]
    assert [e is None for e in refused] == [True, True, True, True, False, False, False, False,
                                            True, True, True]  # fmt: skip
    for got, want in zip(refused, expected, strict=True):
        if getattr(want, "sqlstate", None):  # the server's refusal: the same one
            assert getattr(got, "sqlstate", None) == want.sqlstate  # type: ignore[union-attr]
    with psycopg.connect(database_url) as conn:
        same = "SELECT array_agg(t::text ORDER BY t::text) FROM {} t"  # NaN = NaN in SQL
        assert (
            conn.execute(same.format("readings")).fetchone()
            == conn.execute(same.format("readings_text")).fetchone()
        )
