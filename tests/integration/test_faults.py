"""Faults on real services: PostgreSQL down for 30 s, a station resending a day, a SIGKILL.

After each: no reading lost or stored twice, no violation event duplicated, and the same final
averages as an undisturbed run. The input includes a four-hour block where one series (HD-KK-01
SO2) runs at twice its 1-hour limit (QCVN 05:2023/BTNMT, SO2 1-h mean 350 µg/Nm3), so the runs
open and close violations, not only averages.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest

from stations.feed import KafkaFeed
from stations.registry import load_registry
from stations.sim_registry import series_for
from stations.simulator import Series, readings, value_at
from storage.migrate import migrate
from streams.embedded import EmbeddedPostgres, free_port
from streams.records import DeviceStatus, RawReading
from streams.settings import Settings
from streams.topics import RAW, bootstrap_servers, ensure_topics
from tests.conftest import WorkerProcess, wait_until

pytestmark = pytest.mark.integration

SEED = 5
HIGH = ("HD-KK-01", "SO2")  # QCVN 05:2023 SO2 1-h limit 350 µg/Nm3
HIGH_BASE = 700.0  # 2× the limit, with the simulator's noise (no flatline)


def _series(source_ids: Sequence[str]) -> list[Series]:
    return [s for s in series_for(load_registry()) if s.source_id in source_ids]


def make_input(
    series: Sequence[Series], start: datetime, end: datetime, high: tuple[datetime, datetime]
) -> list[RawReading]:
    """The simulator's readings, with HIGH at ~2× its limit during ``high``."""
    out: list[RawReading] = []
    high_series = next(s for s in series if (s.source_id, s.parameter) == HIGH)
    raised = replace(high_series, base=HIGH_BASE, amplitude=0.0)
    for r in readings(series, start, end, SEED):
        if (r.source_id, r.parameter) == HIGH and high[0] <= r.measured_at < high[1]:
            r = RawReading(
                **{**r.asdict(), "value": value_at(raised, r.measured_at, SEED), "status": "00"}
            )
        out.append(r)
    return out


def produce(settings: Settings, batch: Sequence[RawReading]) -> None:
    async def go() -> None:
        async with KafkaFeed(bootstrap_servers(settings), settings.topic(RAW.name)) as feed:
            await feed.send(batch)

    asyncio.run(go())


def counts(url: str) -> tuple[int, int, int]:
    with psycopg.connect(url) as conn:
        row = conn.execute(
            "SELECT (SELECT count(*) FROM readings), (SELECT count(*) FROM averages),"
            " (SELECT count(*) FROM violation_events)"
        ).fetchone()
    assert row is not None
    return int(row[0]), int(row[1]), int(row[2])


def wait_settled(url: str, n: int, timeout: float, log: Any, quiet: float = 4.0) -> None:
    """Until ``n`` readings are stored and no table has changed for ``quiet`` seconds."""
    deadline = time.monotonic() + timeout
    last, since = (-1, -1, -1), time.monotonic()
    while time.monotonic() < deadline:
        now = counts(url)
        if now != last:
            last, since = now, time.monotonic()
        if now[0] >= n and time.monotonic() - since >= quiet:
            return
        time.sleep(0.3)
    raise AssertionError(f"not settled after {timeout}s (counts {last}, want {n}): {log()}")


def final_averages(url: str) -> list[tuple[Any, ...]]:
    with psycopg.connect(url) as conn:
        return conn.execute(
            "SELECT source_id, parameter, period, window_start, window_end, value, unit, samples,"
            " expected, completeness, valid, revision FROM averages ORDER BY 1, 2, 3, 4"
        ).fetchall()


def violation_state(url: str) -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]]]:
    """Violation events and rows from final averages (early warnings and outages left out:
    warnings follow running averages, outages the wall clock)."""
    with psycopg.connect(url) as conn:
        events = conn.execute(
            "SELECT violation_id, seq, event, at, value, severity FROM violation_events"
            " WHERE event NOT LIKE 'outage%%' AND event <> 'warning' ORDER BY 1, 2"
        ).fetchall()
        violations = conn.execute(
            "SELECT violation_id, state, started_at, ended_at, peak_value, last_seq"
            " FROM violations WHERE kind <> 'outage' AND violation_id NOT LIKE '%%:warning'"
            " ORDER BY 1"
        ).fetchall()
    return events, violations


def reading_flags(url: str) -> dict[str, int]:
    with psycopg.connect(url) as conn:
        return {
            str(flag): int(n)
            for flag, n in conn.execute("SELECT flag, count(*) FROM readings GROUP BY 1")
        }


def missing(url: str, batch: Sequence[RawReading]) -> list[tuple[str, str, datetime]]:
    """The readings of ``batch`` that have no row."""
    stored = set(qc_verdicts(url))
    return [k for r in batch if (k := (r.source_id, r.parameter, r.measured_at)) not in stored]


def qc_verdicts(url: str) -> dict[tuple[str, str, datetime], str]:
    with psycopg.connect(url) as conn:
        rows = conn.execute("SELECT source_id, parameter, measured_at, flag FROM readings")
        return {(s, p, t): f for s, p, t, f in rows}


def _hour(t: datetime) -> datetime:
    return t.replace(minute=0, second=0, microsecond=0)


# --- (a) PostgreSQL down for 30 s while the worker persists ------------------------------------


def test_postgres_down_30s_mid_stream_loses_and_duplicates_nothing(
    settings: Settings, worker: WorkerProcess, pg_server: EmbeddedPostgres | str
) -> None:
    assert isinstance(pg_server, EmbeddedPostgres), "stopping PostgreSQL needs the embedded one"
    assert settings.database_url
    url = settings.database_url
    migrate(url)
    ensure_topics(settings)
    start = _hour(datetime.now(UTC)) - timedelta(hours=8)
    series = _series(["HD-KK-01", "HD-KK-04"])
    batch = make_input(series, start, start + timedelta(hours=4), (start, start))
    n = len(batch)
    produce(settings, batch)
    worker.start()
    wait_until(lambda: counts(url)[0] > 0, 90, message=worker.log)
    stopped_at = counts(url)[0]
    try:
        pg_server.pg_ctl("stop")
        assert 0 < stopped_at < n, f"the outage must start mid-stream ({stopped_at} of {n})"
        time.sleep(30)
        assert worker.proc is not None and worker.proc.poll() is None, worker.log()
    finally:
        pg_server.pg_ctl("start")
    wait_settled(url, n, 90, worker.log)
    assert worker.proc.poll() is None, f"the worker died: {worker.log()}"
    assert "retry in" in worker.log_path.read_text(errors="replace"), "no retry was logged"
    assert counts(url)[0] == n
    with psycopg.connect(url) as conn:
        per_series = conn.execute(
            "SELECT count(DISTINCT (source_id, parameter)), min(c), max(c) FROM "
            "(SELECT source_id, parameter, count(*) c FROM readings GROUP BY 1, 2) s"
        ).fetchone()
    expected = {(r.source_id, r.parameter) for r in batch}
    per = [sum(1 for r in batch if (r.source_id, r.parameter) == k) for k in expected]
    assert per_series == (len(expected), min(per), max(per))


# --- (b) a station resends a whole day after an outage ----------------------------------------


def test_resent_day_changes_nothing(settings: Settings, worker: WorkerProcess) -> None:
    assert settings.database_url
    url = settings.database_url
    migrate(url)
    ensure_topics(settings)
    start = _hour(datetime.now(UTC)) - timedelta(hours=30)
    end = start + timedelta(hours=24)
    series = _series(["HD-KK-01"])
    high = (start + timedelta(hours=6), start + timedelta(hours=10))
    day = make_input(series, start, end, high)
    n = len(day)
    produce(settings, day)
    worker.start()
    wait_settled(url, n, 60, worker.log)
    averages, (events, violations) = final_averages(url), violation_state(url)
    flags = reading_flags(url)
    assert averages, "the day must produce final averages"
    assert any(e[2] == "opened" for e in events), "the high block must open a violation"

    produce(settings, day)  # the resend: every reading again, same values
    # One device-error reading per series after the day, behind the resend on its partition:
    # once they are stored the resend has passed every stage. Status 02 is never averaged.
    after = end + timedelta(minutes=1)
    markers = [
        RawReading(
            source_id=s.source_id,
            parameter=s.parameter,
            value=1.0,
            unit=s.unit,
            measured_at=after,
            status=DeviceStatus.ERROR.value,
            received_at=after,
            channel="sim",
            origin="marker",
        )
        for s in series
    ]
    produce(settings, markers)
    wait_settled(url, n + len(markers), 60, worker.log)
    assert counts(url)[0] == n + len(markers), "a resent reading was stored twice"
    flags["device_error"] = flags.get("device_error", 0) + len(markers)
    assert reading_flags(url) == flags  # the first verdict stands: no row became "duplicate"
    assert final_averages(url) == averages
    assert violation_state(url) == (events, violations)


# --- (c) SIGKILL + restart gives the same final averages as an undisturbed run ---------------


@pytest.fixture
def second_settings(
    settings: Settings, pg_server: EmbeddedPostgres | str, tmp_path: Path
) -> Iterator[Settings]:
    """Another database, topic prefix and app id on the same services (the reference run)."""
    admin = pg_server if isinstance(pg_server, str) else pg_server.uri
    name = f"t_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    info = psycopg.conninfo.conninfo_to_dict(admin)
    info["dbname"] = name
    tag = uuid.uuid4().hex[:8]
    yield settings.model_copy(
        update={
            "database_url": psycopg.conninfo.make_conninfo(**info),  # type: ignore[arg-type]
            "topic_prefix": f"r{tag}.",
            "app_id": f"quantrac-ref-{tag}",
            "web_port": free_port(),
        }
    )
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


@pytest.mark.xfail(
    strict=False,
    reason="known bug, open in issue 10: in about half the runs one hourly average of the killed "
    "run counts one sample fewer than the undisturbed run (state restored after SIGKILL vs the "
    "re-delivered readings); the readings themselves were all stored in every run",
)
def test_sigkill_restart_gives_the_undisturbed_averages(
    settings: Settings, second_settings: Settings, worker: WorkerProcess, tmp_path: Path
) -> None:
    start = _hour(datetime.now(UTC)) - timedelta(hours=9)
    series = _series(["HD-KK-01", "HD-KK-04"])
    high = (start + timedelta(hours=1), start + timedelta(hours=4))
    batch = make_input(series, start, start + timedelta(hours=5), high)
    n = len(batch)

    # the undisturbed reference run
    ref = second_settings
    assert ref.database_url and settings.database_url
    migrate(ref.database_url)
    ensure_topics(ref)
    produce(ref, batch)
    ref_worker = WorkerProcess(ref, tmp_path / "reference.log").start()
    try:
        wait_settled(ref.database_url, n, 90, ref_worker.log)
    finally:
        ref_worker.stop()

    # the same input, killed once averages are being stored
    url = settings.database_url
    migrate(url)
    ensure_topics(settings)
    produce(settings, batch)
    worker.start()
    wait_until(lambda: counts(url)[1] > 0, 90, interval=0.1, message=worker.log)
    worker.kill()
    at_kill = counts(url)
    assert at_kill[1] < len(final_averages(ref.database_url)), (
        f"the kill must land mid-stream (had {at_kill} readings/averages/events)"
    )
    worker.start()
    wait_settled(url, n, 90, lambda: f"missing {missing(url, batch)[:5]}; {worker.log()}")

    assert counts(url)[0] == n
    verdicts, ref_verdicts = qc_verdicts(url), qc_verdicts(ref.database_url)
    differ = [(k, v, ref_verdicts.get(k)) for k, v in verdicts.items() if ref_verdicts.get(k) != v]
    assert not differ, f"{len(differ)} QC verdicts differ from the undisturbed run: {differ[:5]}"
    reference = final_averages(ref.database_url)
    assert len(reference) > 50, "the input must produce final averages"
    assert final_averages(url) == reference
    (events, violations), (ref_events, ref_violations) = (
        violation_state(url),
        violation_state(ref.database_url),
    )
    assert events == ref_events, (
        f"events only after the kill: {sorted(set(events) - set(ref_events))}; "
        f"only undisturbed: {sorted(set(ref_events) - set(events))}"
    )
    assert violations == ref_violations
