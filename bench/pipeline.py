"""Pipeline benchmarks on real services: throughput, replay, latency, memory of the worker.

Each run gets its own database, topic prefix and app id on the shared embedded broker and
PostgreSQL. The bench databases get one extra column, ``stored_at DEFAULT clock_timestamp()``, on
``readings`` and ``violation_events`` (the writer names its columns, so the default fills it at
insert time): a reading's latency is ``stored_at − received_at``, exact to the row.

Time layout (measured time, T = start of the run, aligned to the minute):
- replay data: every series at its registry cadence over [T − 1 h − H, T − 1 h − 5 min),
  produced at once;
- 100× load: what the province delivers in 100·d seconds from T − 1 h, sent 100 times faster
  during d wall seconds;
- nominal load: real time, for d wall seconds.
In both latency runs a source delivers each reading at a fixed, source-specific phase of its
interval after the measurement (stations are not synchronised; without it every 1-minute series
would fire in the same second and a 60-s window would hold one 5-minute slot or none).
``received_at`` is the wall-clock send time of each reading.

Violation latency uses probes: series with a 1-hour upper limit that carry no other data get one
reading at 1.5× the limit; its running hourly mean is past the limit, so check_thresholds
publishes an early-warning ViolationEvent at once. (An ``opened`` event waits, by design, for
the hour to close.) Probe series are left out of the background load.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import itertools
import statistics
import time
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import psutil
import psycopg
from aiokafka import AIOKafkaProducer

from bench.cpu import CpuMeter, Snapshot, per_reading
from core.records import Channel, RawReading, raw_batches
from core.settings import Settings
from core.topics import RAW, bootstrap_servers, ensure_topics
from stations.feed import KafkaFeed
from stations.registry import load_registry
from stations.sim_registry import series_for
from stations.simulator import Series, readings, status_at, value_at
from storage.migrate import migrate
from streams.embedded import free_port
from streams.runtime import QuantracProcess
from thresholds.catalogue import Basis, RuleKind, load_catalogue
from thresholds.limits import resolve_limits

ROOT = Path(__file__).resolve().parent.parent
SEED = 11
HOUR = timedelta(hours=1)
LOOKBACK_S = 300  # the longest reporting interval: every series is in phase when a run starts


# ---- services ---------------------------------------------------------------------------------


def fresh_database(admin_url: str, tag: str, stamps: bool = True) -> str:
    """A new migrated database; ``stamps`` adds the ``stored_at`` columns latency needs."""
    name = f"bench_{tag}_{uuid.uuid4().hex[:6]}"
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    info = psycopg.conninfo.conninfo_to_dict(admin_url)
    info["dbname"] = name
    url = psycopg.conninfo.make_conninfo(**info)  # type: ignore[arg-type]
    migrate(url)
    with psycopg.connect(url, autocommit=True) as conn:
        for table in ("readings", "violation_events") if stamps else ():
            conn.execute(
                f"ALTER TABLE {table} ADD COLUMN stored_at timestamptz DEFAULT clock_timestamp()"
            )
    return url


def drop_database(admin_url: str, url: str) -> None:
    name = psycopg.conninfo.conninfo_to_dict(url)["dbname"]
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def run_settings(kafka_url: str, database_url: str, data_dir: Path, tag: str) -> Settings:
    return Settings(
        kafka_url=kafka_url,
        database_url=database_url,
        data_dir=data_dir,
        topic_prefix=f"bench-{tag}.",
        app_id=f"quantrac-bench-{tag}",
    )


class Worker(QuantracProcess):
    """A benchmark worker: its own web port, and its memory on request."""

    def __init__(self, settings: Settings, log_path: Path) -> None:
        super().__init__(settings.model_copy(update={"web_port": free_port()}), log_path)

    def rss_mib(self) -> float:
        assert self.proc is not None
        return float(psutil.Process(self.proc.pid).memory_info().rss) / 2**20

    def suspend(self) -> None:
        assert self.proc is not None
        psutil.Process(self.proc.pid).suspend()

    def resume(self) -> None:
        assert self.proc is not None
        psutil.Process(self.proc.pid).resume()


@contextlib.contextmanager
def workers(settings: Settings, n: int, log_dir: Path) -> Iterator[list[Worker]]:
    ws = [Worker(settings, log_dir / f"{settings.app_id}-{i}.log") for i in range(n)]
    try:
        for w in ws:
            w.start()
        wait_ready(ws)
        yield ws
    finally:
        for w in ws:
            w.stop()


def wait_ready(ws: Sequence[Worker], timeout: float = 90.0, quiet: float = 3.0) -> float:
    """Wait until every worker logged "Worker ready" and no rebalance happened for ``quiet`` s."""
    t0 = time.monotonic()
    last_change, last_marks = time.monotonic(), -1
    while time.monotonic() - t0 < timeout:
        logs = [w.log(tail=None) for w in ws]
        dead = [w for w in ws if not w.alive()]
        if dead:
            raise RuntimeError(f"a worker exited during start-up: {dead[0].log()[-2000:]}")
        marks = sum(
            log.count("Worker ready") + log.count("_on_partitions_assigned") for log in logs
        )
        if marks != last_marks:
            last_marks, last_change = marks, time.monotonic()
        if all("Worker ready" in log for log in logs) and time.monotonic() - last_change >= quiet:
            return time.monotonic() - t0
        time.sleep(0.2)
    raise RuntimeError(f"workers not ready after {timeout:.0f}s: {ws[0].log()[-2000:]}")


# ---- database probes --------------------------------------------------------------------------


def scalar(url: str, sql: str) -> Any:
    with psycopg.connect(url) as conn:
        row = conn.execute(sql).fetchone()
        return row[0] if row else None


def counts(url: str) -> tuple[int, int, int]:
    with psycopg.connect(url) as conn:
        row = conn.execute(
            "SELECT (SELECT count(*) FROM readings), (SELECT count(*) FROM averages),"
            " (SELECT count(*) FROM violation_events)"
        ).fetchone()
    assert row is not None
    return int(row[0]), int(row[1]), int(row[2])


def events_by_kind(url: str) -> dict[str, int]:
    with psycopg.connect(url) as conn:
        rows = conn.execute("SELECT event, count(*) FROM violation_events GROUP BY 1").fetchall()
    return {str(e): int(n) for e, n in sorted(rows)}


@dataclass(frozen=True)
class Drain:
    readings: int
    seconds_readings: float  # from the first send to the last expected reading row
    averages: int
    violation_events: int
    seconds_all: float  # until readings, averages and events stopped changing
    complete: bool


def drain(
    url: str,
    expected: int,
    t0: float,
    timeout: float,
    settle: float = 3.0,
    on_stored: Callable[[], None] = lambda: None,
) -> Drain:
    """Poll row counts until ``expected`` readings are stored and every count is stable;
    ``on_stored`` is called once, when the readings are."""
    done_at: float | None = None
    last: tuple[int, int, int] = (-1, -1, -1)
    changed_at = time.monotonic()
    while time.monotonic() - t0 < timeout:
        now = counts(url)
        if now != last:
            last, changed_at = now, time.monotonic()
        if done_at is None and now[0] >= expected:
            done_at = time.monotonic()
            on_stored()
        if done_at is not None and time.monotonic() - changed_at >= settle:
            break
        time.sleep(0.25)
    end = done_at if done_at is not None else time.monotonic()
    return Drain(
        readings=last[0],
        seconds_readings=end - t0,
        averages=last[1],
        violation_events=last[2],
        seconds_all=max(changed_at, end) - t0,
        complete=done_at is not None,
    )


def percentiles(xs: Sequence[float]) -> dict[str, float | int | None]:
    if not xs:
        return {"n": 0, "p50": None, "p95": None, "p99": None, "max": None}
    s = sorted(xs)
    q = statistics.quantiles(s, n=100, method="inclusive") if len(s) > 1 else [s[0]] * 99
    return {
        "n": len(s),
        "p50": round(q[49], 3),
        "p95": round(q[94], 3),
        "p99": round(q[98], 3),
        "max": round(s[-1], 3),
    }


# ---- load -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Probe:
    series: Series
    value: float  # 1.5× the 1-hour upper limit, inside the instrument range


def probes(day: date, n: int) -> list[Probe]:
    """``n`` series with a 1-hour upper limit, spread over sources (first of each, round-robin)."""
    registry, catalogue = load_registry(), load_catalogue()
    by_key = {(s.source_id, s.parameter): s for s in series_for(registry)}
    per_source: list[list[Probe]] = []
    for src in registry.sources:
        mine: list[Probe] = []
        for lim in resolve_limits(src, catalogue, day):
            spec = src.parameter(lim.parameter)
            series = by_key.get((src.id, str(lim.parameter)))
            if (
                lim.period is not Basis.HOUR
                or lim.kind is not RuleKind.UPPER
                or lim.max is None
                or spec is None
                or series is None
                or str(lim.unit) != str(spec.unit)
                or spec.range[1] < 1.5 * lim.max
                or any(p.series == series for p in mine)
            ):
                continue
            mine.append(Probe(series, round(1.5 * lim.max, 3)))
        if mine:
            per_source.append(mine)
    out: list[Probe] = []
    depth = 0
    while len(out) < n and any(len(m) > depth for m in per_source):
        out.extend(m[depth] for m in per_source if len(m) > depth)
        depth += 1
    return out[:n]


def background(exclude: Sequence[Probe]) -> list[Series]:
    skip = {(p.series.source_id, p.series.parameter) for p in exclude}
    return [s for s in series_for(load_registry()) if (s.source_id, s.parameter) not in skip]


def replay_data(series: Sequence[Series], start: datetime, end: datetime) -> list[RawReading]:
    return list(readings(series, start, end, SEED))


@dataclass(frozen=True)
class Send:
    at: float  # wall seconds after the phase starts
    series: Series
    measured_at: datetime
    value: float | None = None  # None: the simulator's value; else a probe's


def phase(source_id: str, interval_s: int) -> int:
    """Where in its interval a source delivers: stations are not synchronised (deterministic)."""
    return int.from_bytes(hashlib.sha256(source_id.encode()).digest()[:4], "big") % interval_s


def paced(
    series: Sequence[Series],
    probe_list: Sequence[Probe],
    start: datetime,
    wall_s: float,
    speed: float,
    lookback_s: int = LOOKBACK_S,
) -> list[Send]:
    """The readings delivered during the phase: a reading measured at t is sent at
    (t − start + its source's phase) / speed, when that falls in [0, wall_s); measured times
    start ``lookback_s`` before ``start``. Probes are spread evenly over the phase."""
    end = start + timedelta(seconds=speed * wall_s)
    by_key = {(s.source_id, s.parameter): s for s in series}
    out: list[Send] = []
    for r in readings(series, start - timedelta(seconds=lookback_s), end, SEED):
        s = by_key[(r.source_id, r.parameter)]
        at = ((r.measured_at - start).total_seconds() + phase(s.source_id, s.interval_s)) / speed
        if 0 <= at < wall_s:
            out.append(Send(at, s, r.measured_at))
    for i, p in enumerate(probe_list):
        at = (i + 0.5) * wall_s / len(probe_list)
        measured = start + timedelta(seconds=int(at * speed))
        out.append(Send(at, p.series, measured, p.value))
    out.sort(key=lambda s: s.at)
    return out


async def send_paced(settings: Settings, plan: Sequence[Send], origin: str) -> int:
    """Send each reading at its time, one ``send()`` per source's delivery as the gateway does
    (the readings a source measured at one moment fall due together: one RawBatch);
    ``received_at`` is the moment they are handed to the producer."""
    topic = settings.topic(RAW.name)
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap_servers(settings), linger_ms=2, acks="all"
    )
    await producer.start()
    loop = asyncio.get_running_loop()
    futures = []
    try:
        t0 = loop.time()
        for at, due in itertools.groupby(plan, key=lambda item: item.at):
            delay = t0 + at - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            now = datetime.now(UTC)
            group = [
                RawReading(
                    source_id=s.source_id,
                    parameter=s.parameter,
                    value=value_at(s, t, SEED) if item.value is None else item.value,
                    unit=s.unit,
                    measured_at=t,
                    status=status_at(s, t, SEED).value if item.value is None else "00",
                    received_at=now,
                    channel=Channel.SIMULATOR.value,
                    origin=f"{origin}:{s.source_id}:{s.parameter}:{t:%Y%m%d%H%M%S}",
                )
                for item in due
                for s, t in [(item.series, item.measured_at)]
            ]
            for b in raw_batches(group):
                futures.append(
                    await producer.send(
                        topic, key=b.source_id.encode(), value=b.dumps(serializer="json")
                    )
                )
        await asyncio.gather(*futures)
    finally:
        await producer.stop()
    return len(plan)


async def produce_all(settings: Settings, batch: Sequence[RawReading]) -> float:
    t0 = time.perf_counter()
    async with KafkaFeed(bootstrap_servers(settings), settings.topic(RAW.name)) as feed:
        await feed.send(batch)
    return time.perf_counter() - t0


def produce_stopped(settings: Settings, ws: Sequence[Worker], batch: Sequence[RawReading]) -> float:
    """Produce ``batch`` while the workers are stopped (SIGSTOP, well inside their session
    timeout), then resume them; the seconds producing took. A replay's clock starts at the
    resume: it measures the workers, not this process making and sending readings on the same
    two cores (two workers need both, so a producer beside them cost them more than one)."""
    for w in ws:
        w.suspend()
    try:
        return asyncio.run(produce_all(settings, batch))
    finally:
        for w in ws:
            w.resume()


# ---- phases -----------------------------------------------------------------------------------


def meter(ws: Sequence[Worker], services: Mapping[str, int]) -> CpuMeter:
    """The CPU meter of a run: its workers, and each service (name → pid) they use."""
    assert all(w.proc is not None for w in ws)
    return CpuMeter(
        {
            "workers": [w.proc.pid for w in ws if w.proc],
            **{name: [pid] for name, pid in services.items()},
        }
    )


def throughput(
    settings: Settings,
    ws: Sequence[Worker],
    batch: Sequence[RawReading],
    timeout: float,
    services: Mapping[str, int],
) -> dict[str, Any]:
    """Produce ``batch`` to workers that are ready and stopped; time from their resume until
    it is all stored, and the CPU every process of the run spent meanwhile (bench/cpu.py)."""
    assert settings.database_url
    cpu = meter(ws, services)
    produce_s = produce_stopped(settings, ws, batch)
    before, t0 = cpu.snapshot(), time.monotonic()
    after: list[Snapshot] = []
    d = drain(
        settings.database_url,
        len(batch),
        t0,
        timeout,
        on_stored=lambda: after.append(cpu.snapshot()),
    )
    seconds = cpu.seconds(before, after[0]) if after else {}
    return {
        "workers": len(ws),
        "readings_sent": len(batch),
        "produce_seconds": round(produce_s, 2),
        "readings_stored": d.readings,
        "complete": d.complete,
        "seconds_to_readings": round(d.seconds_readings, 2),
        "readings_per_s": round(d.readings / d.seconds_readings, 1),
        "averages_stored": d.averages,
        "violation_events_stored": d.violation_events,
        "violation_events_by_kind": events_by_kind(settings.database_url),
        "seconds_to_all": round(d.seconds_all, 2),
        "workers_alive": all(w.alive() for w in ws),
        "cpu": per_reading(seconds, d.readings, d.seconds_readings) if seconds else None,
    }


def latency(
    settings: Settings,
    plan: Sequence[Send],
    origin: str,
    probe_list: Sequence[Probe],
    wall_s: float,
) -> dict[str, Any]:
    """Send ``plan`` at its pace; then read per-row latencies from the database."""
    assert settings.database_url
    url = settings.database_url
    t0 = time.monotonic()
    sent = asyncio.run(send_paced(settings, plan, origin))
    send_s = time.monotonic() - t0

    def stored() -> int:
        return int(scalar(url, f"SELECT count(*) FROM readings WHERE origin LIKE '{origin}:%'"))

    deadline = time.monotonic() + 60
    while stored() < sent and time.monotonic() < deadline:
        time.sleep(0.5)
    time.sleep(2.0)  # the last violation events follow their readings by a few batches
    probe_keys = {(p.series.source_id, p.series.parameter) for p in probe_list}
    with psycopg.connect(url) as conn:
        lat = [
            float(r[0])
            for r in conn.execute(
                "SELECT extract(epoch FROM stored_at - received_at) FROM readings"
                f" WHERE origin LIKE '{origin}:%'"
            )
        ]
        sent_at = {
            (r[0], r[1]): r[2]
            for r in conn.execute(
                "SELECT source_id, parameter, received_at FROM readings"
                f" WHERE origin LIKE '{origin}:%'"
            )
            if (r[0], r[1]) in probe_keys
        }
        first_event: dict[tuple[str, str], datetime] = {}
        for vid, at in conn.execute(
            "SELECT violation_id, stored_at FROM violation_events WHERE event = 'warning'"
        ):
            for key in sent_at:
                if vid.startswith(f"{key[0]}:{key[1]}:"):
                    first_event[key] = min(at, first_event.get(key, at))
    v_lat = [(first_event[k] - sent_at[k]).total_seconds() for k in first_event]
    return {
        "wall_seconds": wall_s,
        "sent": sent,
        "send_seconds": round(send_s, 2),
        "offered_per_s": round(sent / wall_s, 1),
        "stored": len(lat),
        "reading_latency_s": percentiles(lat),
        "probes": len(probe_list),
        "violation_latency_s": percentiles(v_lat),
    }


# ---- the long replay (throughput, year extrapolation, memory) ------------------------------
# The long replay: one worker digests N readings (1 M by default; --replay-readings).
#
# The readings are every background series at the registry's cadence over the hours N takes
# (about 30 h for 300 k, 98 h for 1 M), ending where the latency runs begin, produced in 6-hour
# chunks so neither the benchmark process nor the broker holds more than two chunks ahead of the
# worker. It gives the throughput of one worker (steady state, and for the first chunk alone),
# the year extrapolation, and the worker's RSS
# at start and after every 100 k readings. It runs at the production late horizon (72 h): late is
# event time behind each series' newest reading, so the replay, in order, is judged like live data
# whatever its age, and per-series state is pruned by event time (windows keep the horizon + 24 h;
# QC keeps a horizon of timestamps; tests/unit/test_windows.py, test_qc.py). The RSS samples are
# therefore a soak: flat once the replay is longer than the horizon, or a leak.

CHUNK = timedelta(hours=6)
CHECKPOINT = 100_000


def hours_for(series: Sequence[Series], target: int) -> float:
    return target / (sum(1 / s.interval_s for s in series) * 3600)


def long_replay(
    settings: Settings,
    worker: Worker,
    series: Sequence[Series],
    end: datetime,
    target: int,
    services: Mapping[str, int],
    timeout_s: float = 1800.0,
    say: Callable[[str], None] = print,
) -> dict[str, Any]:
    assert settings.database_url
    url = settings.database_url
    cpu = meter([worker], services)
    start = end - timedelta(hours=hours_for(series, target))
    samples: list[tuple[int, float]] = [(0, round(worker.rss_mib(), 1))]
    next_mark = CHECKPOINT

    def sample(stored: int) -> None:
        nonlocal next_mark
        while stored >= next_mark:
            samples.append((stored, round(worker.rss_mib(), 1)))
            say(f"  {stored:,} readings stored, worker RSS {samples[-1][1]} MiB")
            next_mark += CHECKPOINT

    # The first 6-h chunk alone, measured as the two workers' replay is (``throughput``). Then
    # the rest. Each is produced with the worker stopped and timed from its resume
    # (``produce_stopped``). Progress is polled every 0.25 s for the chunk, as ``drain`` does,
    # and every 2 s for the rest (0.5 s near the end): a count(*) over a million rows every
    # 0.25 s cost the database a growing share of a core, and made the replay look slower the
    # longer it ran.
    t1 = min(start + CHUNK, end)
    chunk = list(readings(series, start, t1, SEED))
    produce_stopped(settings, [worker], chunk)
    before, t0 = cpu.snapshot(), time.monotonic()
    sent, stored = len(chunk), 0
    while stored < sent and time.monotonic() - t0 < timeout_s:
        time.sleep(0.25)
        stored = counts(url)[0]
        sample(stored)
    seconds = time.monotonic() - t0
    first = {
        "readings": sent,
        "seconds": round(seconds, 2),
        "readings_per_s": round(sent / seconds, 1),
        "cpu": per_reading(cpu.seconds(before, cpu.snapshot()), sent, seconds),
    }
    rest: list[RawReading] = []
    t = t1
    while t < end:
        rest += readings(series, t, min(t + CHUNK, end), SEED)
        t += CHUNK
    produce_s = produce_stopped(settings, [worker], rest)
    before, t_rest = cpu.snapshot(), time.monotonic()
    sent += len(rest)
    while stored < sent and time.monotonic() - t_rest < timeout_s:
        time.sleep(0.5 if sent - stored < 50_000 else 2.0)
        stored = counts(url)[0]
        sample(stored)
    rest_s = time.monotonic() - t_rest
    rest_cpu = per_reading(cpu.seconds(before, cpu.snapshot()), len(rest), rest_s) if rest else None
    d = drain(url, sent, t0, timeout_s)
    sample(d.readings)
    samples.append((d.readings, round(worker.rss_mib(), 1)))
    rest_rate = round(len(rest) / rest_s, 1) if rest else first["readings_per_s"]
    return {
        "readings_sent": sent,
        "replay_hours": round((end - start).total_seconds() / 3600, 1),
        "readings_stored": d.readings,
        "complete": d.complete,
        "seconds_to_readings": round(d.seconds_readings, 2),
        # the replay after the first chunk, produced while the worker was stopped: its rate
        "readings_per_s": rest_rate,
        "rest": {
            "readings": len(rest),
            "produce_seconds": round(produce_s, 2),
            "seconds": round(rest_s, 2),
            "cpu": rest_cpu,
        },
        "first_chunk": first,
        "averages_stored": d.averages,
        "violation_events_stored": d.violation_events,
        "violation_events_by_kind": events_by_kind(url),
        "seconds_to_all": round(d.seconds_all, 2),
        "workers_alive": worker.alive(),
        "rss_by_readings": samples,
    }


@dataclass(frozen=True)
class Plan:
    replay_readings: int = 1_000_000  # one worker: throughput, year extrapolation, memory
    replay_hours: float = 24.0  # one worker and two, on the same readings (many batches each)
    latency_seconds: float = 60.0
    fast_seconds: float = 30.0
    probes_nominal: int = 20
    probes_fast: int = 40
    drain_timeout: float = 240.0


def nominal_rate(series: Sequence[Series]) -> float:
    return sum(1 / s.interval_s for s in series)


def run_pipeline(
    kafka_url: str,
    admin_url: str,
    data_dir: Path,
    plan: Plan,
    services: Mapping[str, int],
    say: Callable[[str], None] = print,
) -> dict[str, Any]:
    """Phase 1: one worker (long replay: throughput and memory; then 100× and nominal latency);
    phase 2: one worker, then two, on the last ``replay_hours`` of data. Each on its own
    database and topics. ``services``: the broker's and the database's pids (name → pid),
    whose CPU the throughput phases count beside the workers' (bench/cpu.py)."""
    t_run = datetime.now(UTC).replace(second=0, microsecond=0)
    all_series = series_for(load_registry())
    probe_list = probes((t_run + timedelta(hours=7)).date(), plan.probes_nominal + plan.probes_fast)
    series = background(probe_list)
    replay_start = t_run - HOUR - timedelta(hours=plan.replay_hours)
    replay_end = t_run - HOUR - timedelta(seconds=LOOKBACK_S)  # the 100× run looks back
    batch = replay_data(series, replay_start, replay_end)
    say(
        f"replay data: {len(batch):,} readings of {len(series)} series over "
        f"{plan.replay_hours:g} h (probe series held out: {len(probe_list)})"
    )
    out: dict[str, Any] = {
        "series": len(all_series),
        "sources": len({s.source_id for s in all_series}),
        "nominal_readings_per_s": round(nominal_rate(all_series), 3),
        "replay_hours": plan.replay_hours,
        "background_series": len(series),
    }

    # -- one worker ---------------------------------------------------------------------------
    url = fresh_database(admin_url, "w1")
    long_hours = hours_for(series, plan.replay_readings)
    # the production late horizon: late is event time behind each series' newest reading, so an
    # in-order replay is judged whatever its age, and the state is pruned as it would be in
    # production (the replay is a soak of the state's size)
    s1 = run_settings(kafka_url, url, data_dir, f"w1{uuid.uuid4().hex[:4]}")
    ensure_topics(s1)
    try:
        with workers(s1, 1, data_dir) as ws:
            w = ws[0]
            say(
                f"1 worker ready, RSS {w.rss_mib():.0f} MiB; replaying "
                f"{plan.replay_readings:,} readings ({long_hours:.0f} h) in 6-h chunks"
            )
            out["one_worker"] = long_replay(
                s1, w, series, replay_end, plan.replay_readings, services, say=say
            )
            say(f"  {out['one_worker']}")
            fast_probes = probe_list[plan.probes_nominal :]
            fast = paced(series, fast_probes, t_run - HOUR, plan.fast_seconds, 100.0)
            say(f"100× load: {len(fast):,} readings in {plan.fast_seconds:g} s")
            out["latency_100x"] = {
                "mode": "time compressed 100×: measured time "
                f"{100 * plan.fast_seconds / 60:g} min replayed in {plan.fast_seconds:g} s",
                **latency(s1, fast, "bench-100x", fast_probes, plan.fast_seconds),
            }
            say(f"  {out['latency_100x']}")
            nominal_probes = probe_list[: plan.probes_nominal]
            start = datetime.now(UTC)
            nom = paced(series, nominal_probes, start, plan.latency_seconds, 1.0)
            say(f"nominal load: {len(nom):,} readings in {plan.latency_seconds:g} s (real time)")
            out["latency_nominal"] = {
                "mode": "real time: each series when its interval falls due",
                **latency(s1, nom, "bench-nominal", nominal_probes, plan.latency_seconds),
            }
            say(f"  {out['latency_nominal']}")
            samples = out["one_worker"]["rss_by_readings"]
            out["memory"] = {
                "rss_start_mib": samples[0][1],
                "rss_after_replay_mib": samples[-1][1],
                "readings_after_replay": samples[-1][0],
                "rss_end_mib": round(w.rss_mib(), 1),
                "readings_end": counts(url)[0],
                "rss_by_readings": samples,
            }
            out["one_worker"]["workers_alive_at_end"] = w.alive()
    finally:
        drop_database(admin_url, url)

    # -- one worker, then two, on the same replay ---------------------------------------------
    # The ratio compares like with like: the same readings, to fresh workers, topics and
    # database (the long replay's first chunk is other hours, and 83 h old).
    for n, name in ((1, "one_worker_same_replay"), (2, "two_workers")):
        url2 = fresh_database(admin_url, f"r{n}")
        s2 = run_settings(kafka_url, url2, data_dir, f"r{n}{uuid.uuid4().hex[:4]}")
        ensure_topics(s2)
        try:
            with workers(s2, n, data_dir) as ws:
                say(f"{n} worker(s) ready; replaying {len(batch):,} readings")
                out[name] = throughput(s2, ws, batch, plan.drain_timeout, services)
                out[name]["rss_end_mib"] = [round(w.rss_mib(), 1) for w in ws]
                say(f"  {out[name]}")
        finally:
            drop_database(admin_url, url2)
    return out


def year_extrapolation(readings_per_s: float, nominal_per_s: float) -> dict[str, Any]:
    """A year of data at the measured replay rate, assuming the rate stays constant."""
    year_s = 365 * 86400
    registry_year = nominal_per_s * year_s
    issue_year = 480 * year_s / 300  # the issue's figure: ~480 series at 5-minute intervals
    return {
        "assumption": "replay rate measured on the replay data stays constant for a year's "
        "volume (per-series state is bounded; readings-table growth and index depth ignored)",
        "registry_year_readings": round(registry_year),
        "registry_year_hours": round(registry_year / readings_per_s / 3600, 2),
        "issue_year_readings": round(issue_year),
        "issue_year_hours": round(issue_year / readings_per_s / 3600, 2),
    }
