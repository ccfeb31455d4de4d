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
