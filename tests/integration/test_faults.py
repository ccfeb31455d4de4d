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
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest

from core.records import DeviceStatus, RawReading
from core.settings import Settings
from core.topics import RAW, bootstrap_servers, ensure_topics
from stations.feed import KafkaFeed
from stations.registry import load_registry
from stations.sim_registry import series_for
from stations.simulator import Series, readings, start_clear_of_calibration, value_at
from storage.migrate import migrate
from streams.embedded import EmbeddedPostgres, free_port
from tests.conftest import WorkerProcess, wait_until
from tests.integration.drain import wait_drained

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


def wait_settled(settings: Settings, n: int, timeout: float, log: Any) -> None:
    """Until ``n`` readings are stored and the worker group has committed every input record
    (tests/integration/drain.py: a quiet database alone also fits a worker still restarting)."""
    assert settings.database_url
    url = settings.database_url
    wait_until(lambda: counts(url)[0] >= n, timeout, interval=0.3, message=log)
    wait_drained(settings, timeout, log)


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


@dataclass(frozen=True)
class Outcome:
    """What a run leaves in the database, minus what follows the wall clock (outages, early
    warnings), which two runs at different moments may rightly differ in."""

    verdicts: dict[tuple[str, str, datetime], str]
    averages: list[tuple[Any, ...]]
    events: list[tuple[Any, ...]]
    violations: list[tuple[Any, ...]]

    @classmethod
    def of(cls, url: str) -> Outcome:
        events, violations = violation_state(url)
        return cls(qc_verdicts(url), final_averages(url), events, violations)


def assert_same(got: Outcome, want: Outcome) -> None:
    """Every reading once with the undisturbed verdict, the same averages and violations."""
    lost = sorted(set(want.verdicts) - set(got.verdicts))
    assert not lost, f"{len(lost)} readings lost: {lost[:5]}"
    extra = sorted(set(got.verdicts) - set(want.verdicts))
    assert not extra, f"{len(extra)} readings not in the undisturbed run: {extra[:5]}"
    differ = [(k, v, want.verdicts[k]) for k, v in got.verdicts.items() if want.verdicts[k] != v]
    assert not differ, f"{len(differ)} QC verdicts differ from the undisturbed run: {differ[:5]}"
    assert len(want.averages) > 50, "the input must produce final averages"
    for name, a, b in (
        ("averages", got.averages, want.averages),
        ("violation events", got.events, want.events),
        ("violations", got.violations, want.violations),
    ):
        assert a == b, (
            f"{name} only in the disturbed run: {sorted(set(a) - set(b))[:5]}; "
            f"only undisturbed: {sorted(set(b) - set(a))[:5]}"
        )


def assert_nothing_skipped(worker: WorkerProcess) -> None:
    """The worker delivered every partition in sequence from its committed offset: the
    consumer's backstop for a skipped message (streams/consumer.py) never fired. Before the
    in-sequence delivery about one SIGKILL restart in ten skipped a range."""
    assert "was never acked while later ones were" not in worker.log(tail=None)


def undisturbed(ref: Settings, batch: Sequence[RawReading], log_path: Path) -> Outcome:
    """The reference: the same input through one worker that nothing disturbs."""
    assert ref.database_url
    migrate(ref.database_url)
    ensure_topics(ref)
    produce(ref, batch)
    ref_worker = WorkerProcess(ref, log_path).start()
    try:
        wait_settled(ref, len(batch), 90, ref_worker.log)
    finally:
        ref_worker.stop()
    return Outcome.of(ref.database_url)


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


# --- (a) PostgreSQL down for 30 s while the worker persists ------------------------------------


def test_postgres_down_30s_mid_stream_loses_and_duplicates_nothing(
    settings: Settings,
    second_settings: Settings,
    worker: WorkerProcess,
    pg_server: EmbeddedPostgres | str,
    tmp_path: Path,
) -> None:
    assert isinstance(pg_server, EmbeddedPostgres), "stopping PostgreSQL needs the embedded one"
    assert settings.database_url
    url = settings.database_url
    start = start_clear_of_calibration(datetime.now(UTC) - timedelta(hours=8), 4)
    series = _series(["HD-KK-01", "HD-KK-04"])
    high = (start + timedelta(hours=1), start + timedelta(hours=3))
    batch = make_input(series, start, start + timedelta(hours=4), high)
    n = len(batch)
    reference = undisturbed(second_settings, batch, tmp_path / "reference.log")
    assert any(e[2] == "opened" for e in reference.events), "the high block must open one"

    migrate(url)
    ensure_topics(settings)
    # The first half, then the second while PostgreSQL is down: mid-stream however fast the
    # worker is (it once stored a whole 4-hour input in its first write).
    produce(settings, batch[: n // 2])
    worker.start()
    wait_until(lambda: counts(url)[0] > 0, 90, message=worker.log)
    stopped_at = counts(url)[0]
    try:
        pg_server.pg_ctl("stop")
        assert 0 < stopped_at <= n // 2, f"the outage must start mid-stream ({stopped_at} of {n})"
        produce(settings, batch[n // 2 :])
        time.sleep(30)
        assert worker.proc is not None and worker.proc.poll() is None, worker.log()
    finally:
        pg_server.pg_ctl("start")
    wait_settled(settings, n, 90, worker.log)
    assert worker.proc.poll() is None, f"the worker died: {worker.log()}"
    assert "retry in" in worker.log_path.read_text(errors="replace"), "no retry was logged"
    assert counts(url)[0] == n
    assert_same(Outcome.of(url), reference)
    assert_nothing_skipped(worker)


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
    wait_settled(settings, n, 60, worker.log)
    before = Outcome.of(url)
    flags = reading_flags(url)
    assert any(e[2] == "opened" for e in before.events), "the high block must open a violation"

    produce(settings, day)  # the resend: every reading again, same values
    # One device-error reading per series after the day (status 02 is never averaged): the
    # first verdict of the resent readings must stand beside a new reading's.
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
    wait_settled(settings, n + len(markers), 60, worker.log)
    assert counts(url)[0] == n + len(markers), "a resent reading was stored twice"
    flags["device_error"] = flags.get("device_error", 0) + len(markers)
    assert reading_flags(url) == flags  # the first verdict stands: no row became "duplicate"
    now = Outcome.of(url)
    assert_same(replace(now, verdicts={k: now.verdicts[k] for k in before.verdicts}), before)


# --- (c) SIGKILL + restart gives the same final averages as an undisturbed run ---------------


def test_sigkill_restart_gives_the_undisturbed_averages(
    settings: Settings, second_settings: Settings, tmp_path: Path
) -> None:
    start = _hour(datetime.now(UTC)) - timedelta(hours=10)
    # Enough work (~13 k readings, a few seconds of one worker) for the kill to land while
    # both stages are busy: a smaller input is digested before the test can react. The killed
    # worker takes 100 messages a batch (the default, 5,000, takes the whole input in one,
    # and a batch stores its averages at once); the reference takes the default.
    series = _series(["HD-KK-01", "HD-KK-04", "HD-KT-01", "HD-NT-03"])
    high = (start + timedelta(hours=1), start + timedelta(hours=4))
    batch = make_input(series, start, start + timedelta(hours=8), high)
    n = len(batch)
    reference = undisturbed(second_settings, batch, tmp_path / "reference.log")

    # the same input, killed once averages are being stored
    url = settings.database_url
    assert url
    migrate(url)
    ensure_topics(settings)
    produce(settings, batch)
    worker = WorkerProcess(settings.model_copy(update={"stream_batch": 100}), tmp_path / "w.log")
    try:
        worker.start()
        wait_until(lambda: counts(url)[1] > 0, 90, interval=0.05, message=worker.log)
        worker.kill()
        at_kill = counts(url)
        assert at_kill[1] < len(reference.averages), (
            f"the kill must land mid-stream (had {at_kill} readings/averages/events)"
        )
        worker.start()
        wait_settled(settings, n, 90, lambda: f"missing {missing(url, batch)[:5]}; {worker.log()}")
        assert counts(url)[0] == n
        assert_same(Outcome.of(url), reference)
        assert_nothing_skipped(worker)
    finally:
        worker.stop()
