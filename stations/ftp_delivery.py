"""The simulator's dataloggers: Circular 10 files per source and reporting interval, delivered
over FTP to the gateway (or, for benchmarks, straight to Kafka), in real time or accelerated.

Planning is pure and deterministic by seed (:func:`plan_files`):

- one file per source per reporting interval (``Source.interval_s``) holding every parameter
  measured in it, named ``PROVINCE_FACILITY_STATION_yyyyMMddHHmmss.txt`` (``format_file``);
- **clock skew**: some dataloggers' clocks are off by a fixed −180…+60 s (stamps shift, values
  do not); positive skew stays inside the gateway's future tolerance;
- **outages**: a source's link drops for a while (default 45 min, ~1 % of hours); the files
  written meanwhile are delivered together when it returns (``resend=True``), as loggers do;
- **a bad line now and then** (~2 % of files): NaN, an unknown symbol, a status word or a
  truncated line, which the gateway dead-letters while keeping the rest of the file.

Delivery (:func:`simulate`) walks a simulated clock: ``backfill_hours`` behind now, advancing
``speed`` × real time (``speed <= 0``: catch up at once) and never beyond now, so no file is
sent before its time. FTP uploads use ``ftplib`` (FTPS, verifying the gateway's certificate,
when ``QUANTRAC_GATEWAY_FTP_TLS`` is not ``off``) with the account passwords in
``data_dir/ftp_users.json`` (created by the gateway); a ``4xx`` reply or a lost connection is
retried later, a ``5xx`` (rejected file) is logged and counted, never retried.
"""

from __future__ import annotations

import asyncio
import contextlib
import ftplib
import hashlib
import io
import logging
import math
import random
import signal
import ssl
from collections import defaultdict
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Literal

from core.clock import Clock, utc_now
from core.progress import Progress
from core.records import Channel, RawReading
from core.settings import Settings
from core.tls import client_context
from core.topics import RAW, bootstrap_servers
from stations.accounts import Accounts, accounts_path, wait_for
from stations.circular10 import format_file
from stations.feed import KafkaFeed
from stations.registry import Registry, load_registry
from stations.scenarios import ScenarioKnobs, episodic_sources, scenario_readings
from stations.sim_registry import series_for
from stations.simulator import Series, align

log = logging.getLogger(__name__)

Via = Literal["ftp", "kafka"]


@dataclass(frozen=True)
class DeliveryKnobs:
    latency_s: float = 20.0  # a logger writes and sends its file shortly after measuring
    outage_prob_per_hour: float = 0.01
    outage_minutes: int = 45
    skew_share: float = 0.1  # share of sources whose clock is off
    skew_range_s: tuple[int, int] = (-180, 60)
    bad_line_prob: float = 0.02  # per file

    @classmethod
    def perfect(cls) -> DeliveryKnobs:
        """No outages, skew or bad lines: every file on time and clean."""
        return cls(outage_prob_per_hour=0.0, skew_share=0.0, bad_line_prob=0.0)


@dataclass(frozen=True)
class FileDelivery:
    source_id: str
    name: str
    body: bytes
    readings: tuple[RawReading, ...]  # as written (stamps skewed), bad line excluded
    due_at: datetime  # when the logger sends it (after an outage: when the link returns)
    resend: bool = False  # held back by an outage
    bad_lines: int = 0


class BadLine(StrEnum):
    NAN = "nan"
    UNKNOWN_SYMBOL = "unknown_symbol"
    STATUS_WORD = "status_word"
    TRUNCATED = "truncated"


def _rng(seed: int, *parts: object) -> random.Random:
    digest = hashlib.sha256(repr(("delivery", seed, *parts)).encode()).digest()
    return random.Random(int.from_bytes(digest[:8], "big"))


def clock_skew_s(source_id: str, seed: int, knobs: DeliveryKnobs) -> int:
    rng = _rng(seed, "skew", source_id)
    return rng.randint(*knobs.skew_range_s) if rng.random() < knobs.skew_share else 0


def outage_end(source_id: str, t: datetime, seed: int, knobs: DeliveryKnobs) -> datetime | None:
    """When the link returns, if ``source_id`` is cut off at ``t``."""
    hour = t.replace(minute=0, second=0, microsecond=0)
    if _rng(seed, "outage", source_id, int(hour.timestamp())).random() >= (
        knobs.outage_prob_per_hour
    ):
        return None
    end = hour + timedelta(minutes=knobs.outage_minutes)
    return end if t < end else None


def corrupt_line(line: bytes, kind: BadLine) -> bytes:
    fields = line.split(b"\t")
    if kind == BadLine.NAN:
        fields[1] = b"NaN"
    elif kind == BadLine.UNKNOWN_SYMBOL:
        fields[0] = b"XYZ"
    elif kind == BadLine.STATUS_WORD:
        fields[4] = b"OK"
    else:
        fields = fields[:3]
    return b"\t".join(fields)


def _skewed(r: RawReading, skew: timedelta) -> RawReading:
    return RawReading(**{**r.asdict(), "measured_at": r.measured_at + skew})


def plan_source(
    source_id: str,
    series: Sequence[Series],
    registry: Registry,
    start: datetime,
    end: datetime,
    seed: int,
    *,
    knobs: DeliveryKnobs,
    scenario: ScenarioKnobs,
    episodic: frozenset[str],
) -> list[FileDelivery]:
    """Files of one source for the windows starting in [start, end) (aligned to its interval)."""
    interval = registry.get(source_id).interval_s
    skew = timedelta(seconds=clock_skew_s(source_id, seed, knobs))
    out: list[FileDelivery] = []
    w = align(start, interval)
    if w < start:
        w += timedelta(seconds=interval)
    while w < end:
        w_end = w + timedelta(seconds=interval)
        measured = [
            _skewed(r, skew)
            for r in scenario_readings(series, w, w_end, seed, episodic=episodic, knobs=scenario)
        ]
        if measured:
            out.append(_file(source_id, measured, registry, seed, knobs))
        w = w_end
    return out


def _file(
    source_id: str,
    measured: list[RawReading],
    registry: Registry,
    seed: int,
    knobs: DeliveryKnobs,
) -> FileDelivery:
    name, body = format_file(measured, registry)
    last = max(r.measured_at for r in measured)
    rng = _rng(seed, "bad", source_id, int(last.timestamp()))
    kept = tuple(measured)
    bad = 0
    if rng.random() < knobs.bad_line_prob:
        lines = body.split(b"\r\n")
        i = rng.randrange(len(measured))
        lines[i] = corrupt_line(lines[i], rng.choice(list(BadLine)))
        body = b"\r\n".join(lines)
        kept = kept[:i] + kept[i + 1 :]
        bad = 1
    due = last + timedelta(seconds=knobs.latency_s)
    back = outage_end(source_id, due, seed, knobs)
    if back is not None:
        return FileDelivery(source_id, name, body, kept, back, resend=True, bad_lines=bad)
    return FileDelivery(source_id, name, body, kept, due, bad_lines=bad)


def plan_files(
    series: Sequence[Series],
    registry: Registry,
    start: datetime,
    end: datetime,
    seed: int = 1,
    *,
    knobs: DeliveryKnobs | None = None,
    scenario: ScenarioKnobs | None = None,
) -> list[FileDelivery]:
    """Every file the dataloggers write for windows starting in [start, end), by due time."""
    knobs = knobs or DeliveryKnobs()
    scenario = scenario or ScenarioKnobs()
    episodic = episodic_sources(registry, seed, scenario.episode_sources)
    by_source: dict[str, list[Series]] = defaultdict(list)
    for s in series:
        by_source[s.source_id].append(s)
    files = [
        f
        for source_id, ss in sorted(by_source.items())
        for f in plan_source(
            source_id,
            ss,
            registry,
            start,
            end,
            seed,
            knobs=knobs,
            scenario=scenario,
            episodic=episodic,
        )
    ]
    return sorted(files, key=lambda f: (f.due_at, f.source_id))


# ---------------------------------------------------------------------------------------------
# delivery


class Outcome(StrEnum):
    ACCEPTED = "accepted"  # 226: some or all readings accepted
    REJECTED = "rejected"  # 5xx: the gateway refused the file (dead-lettered there)
    RETRY = "retry"  # 4xx or no connection: send again later


class FtpUploader:
    """One persistent FTP session per source, as a datalogger keeps (reconnects on error).

    With ``tls`` (a verifying client context) each session is FTPS: AUTH TLS before the login,
    then PROT P, so the password and every file travel encrypted."""

    def __init__(
        self,
        host: str,
        port: int,
        accounts: Accounts,
        timeout_s: float = 30,
        *,
        tls: ssl.SSLContext | None = None,
    ) -> None:
        self.host = host
        self.port = port
        self.accounts = accounts
        self.timeout_s = timeout_s
        self.tls = tls
        self._sessions: dict[str, ftplib.FTP] = {}

    def _session(self, source_id: str) -> ftplib.FTP:
        ftp = self._sessions.get(source_id)
        if ftp is None:
            ftp = ftplib.FTP() if self.tls is None else ftplib.FTP_TLS(context=self.tls)
            ftp.connect(self.host, self.port, timeout=self.timeout_s)
            ftp.login(source_id, self.accounts.password(source_id))  # FTP_TLS: AUTH TLS first
            if isinstance(ftp, ftplib.FTP_TLS):
                ftp.prot_p()
            self._sessions[source_id] = ftp
        return ftp

    def upload(self, f: FileDelivery) -> Outcome:
        try:
            self._session(f.source_id).storbinary(f"STOR {f.name}", io.BytesIO(f.body))
        except ftplib.error_perm as exc:
            log.info("FTP %s %s rejected: %s", f.source_id, f.name, exc)
            return Outcome.REJECTED
        except (ftplib.Error, OSError, EOFError) as exc:
            log.warning("FTP %s %s: %s; will resend", f.source_id, f.name, exc)
            self._drop(f.source_id)
            return Outcome.RETRY
        return Outcome.ACCEPTED

    def _drop(self, source_id: str) -> None:
        ftp = self._sessions.pop(source_id, None)
        if ftp is not None:
            with contextlib.suppress(OSError, EOFError, ftplib.Error):
                ftp.close()

    def close(self) -> None:
        for source_id in list(self._sessions):
            with contextlib.suppress(OSError, EOFError, ftplib.Error):
                self._sessions[source_id].quit()
            self._drop(source_id)


@dataclass
class SimStats:
    files: int = 0
    accepted: int = 0
    rejected: int = 0
    retries: int = 0
    resent_after_outage: int = 0
    readings: int = 0  # readings in accepted files (bad lines excluded)
    given_up: int = 0
    outcomes: dict[str, int] = field(default_factory=dict)


MAX_ATTEMPTS = 20
RETRY_AFTER = timedelta(seconds=30)


class _Clock:
    """Simulated time: ``backfill`` behind now, running ``speed`` × real time, capped at now."""

    def __init__(self, now: Clock, backfill: timedelta, speed: float) -> None:
        self.now = now
        self.real_start = now()
        self.sim_start = self.real_start - backfill
        self.speed = speed

    def __call__(self) -> datetime:
        real = self.now()
        if self.speed <= 0 or math.isinf(self.speed):
            return real
        return min(real, self.sim_start + (real - self.real_start) * self.speed)


async def simulate(
    settings: Settings,
    *,
    via: Via = "ftp",
    speed: float = 60.0,
    backfill_hours: float = 3.0,
    seed: int = 1,
    stop: asyncio.Event | None = None,
    registry: Registry | None = None,
    series: Sequence[Series] | None = None,
    knobs: DeliveryKnobs | None = None,
    scenario: ScenarioKnobs | None = None,
    tick_s: float = 1.0,
    until_caught_up: bool = False,
    now: Clock = utc_now,
    workers: int = 8,
    on_tick: Callable[[timedelta, timedelta, SimStats], None] | None = None,
) -> SimStats:
    """Deliver simulated files until ``stop`` is set, or with ``until_caught_up`` (batch runs
    and tests) until the simulated clock reached now and every file due by now was delivered."""
    registry = registry or load_registry(settings.registry_path)
    series = list(series if series is not None else series_for(registry))
    knobs = knobs or DeliveryKnobs()
    scenario = scenario or ScenarioKnobs()
    stop = stop or asyncio.Event()
    clock = _Clock(now, timedelta(hours=backfill_hours), speed)
    stats = SimStats()
    by_source: dict[str, list[Series]] = defaultdict(list)
    for s in series:
        by_source[s.source_id].append(s)
    episodic = episodic_sources(registry, seed, scenario.episode_sources)
    cursors = {sid: clock.sim_start for sid in by_source}
    pending: list[tuple[FileDelivery, int]] = []
    send = await _sender(settings, via, registry, stats, workers)
    try:
        while True:
            sim_now = clock()
            for sid, ss in by_source.items():
                # whole windows only: [w, w + interval) is fully measured once w + interval <= now
                end = align(sim_now, registry.get(sid).interval_s)
                if end > cursors[sid]:
                    files = plan_source(
                        sid,
                        ss,
                        registry,
                        cursors[sid],
                        end,
                        seed,
                        knobs=knobs,
                        scenario=scenario,
                        episodic=episodic,
                    )
                    pending += [(f, 0) for f in files]
                    cursors[sid] = end
            due = sorted((p for p in pending if p[0].due_at <= sim_now), key=lambda p: p[0].due_at)
            pending = [p for p in pending if p[0].due_at > sim_now]
            retry = await send.deliver(due, sim_now)
            pending += retry
            caught_up = clock() >= now() - timedelta(seconds=1)
            if on_tick is not None:  # progress: simulated time done of the time to catch up
                on_tick(clock() - clock.sim_start, now() - clock.sim_start, stats)
            if until_caught_up and caught_up and not any(p[0].due_at <= now() for p in pending):
                break  # files due later (latency, outage end, retries) are left unsent
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=tick_s)
            if stop.is_set():
                break
    finally:
        await send.close()
    return stats


class _Sender:
    def __init__(self, stats: SimStats) -> None:
        self.stats = stats

    async def deliver(
        self, due: list[tuple[FileDelivery, int]], sim_now: datetime
    ) -> list[tuple[FileDelivery, int]]:
        raise NotImplementedError

    async def close(self) -> None:
        return None

    def count(self, f: FileDelivery, outcome: Outcome) -> None:
        s = self.stats
        s.outcomes[outcome.value] = s.outcomes.get(outcome.value, 0) + 1
        if outcome == Outcome.RETRY:
            s.retries += 1
            return
        s.files += 1
        s.resent_after_outage += f.resend
        if outcome == Outcome.ACCEPTED:
            s.accepted += 1
            s.readings += len(f.readings)
        else:
            s.rejected += 1


class _FtpSender(_Sender):
    def __init__(self, uploader: FtpUploader, stats: SimStats, workers: int) -> None:
        super().__init__(stats)
        self.uploader = uploader
        self.pool = ThreadPoolExecutor(workers, thread_name_prefix="datalogger")

    def _source_batch(
        self, files: list[tuple[FileDelivery, int]]
    ) -> list[tuple[FileDelivery, int, Outcome]]:
        out = []
        for f, attempts in files:  # one source, in order, on one session
            outcome = self.uploader.upload(f)
            out.append((f, attempts, outcome))
            if outcome == Outcome.RETRY:  # link down: the rest waits too
                out += [(g, n, Outcome.RETRY) for g, n in files[len(out) :]]
                break
        return out

    async def deliver(
        self, due: list[tuple[FileDelivery, int]], sim_now: datetime
    ) -> list[tuple[FileDelivery, int]]:
        groups: dict[str, list[tuple[FileDelivery, int]]] = defaultdict(list)
        for p in due:
            groups[p[0].source_id].append(p)
        loop = asyncio.get_running_loop()
        results = await asyncio.gather(
            *(loop.run_in_executor(self.pool, self._source_batch, g) for g in groups.values())
        )
        retry: list[tuple[FileDelivery, int]] = []
        for batch in results:
            for f, attempts, outcome in batch:
                self.count(f, outcome)
                if outcome != Outcome.RETRY:
                    continue
                if attempts + 1 >= MAX_ATTEMPTS:
                    self.stats.given_up += 1
                    log.error(
                        "FTP %s %s: given up after %d attempts", f.source_id, f.name, MAX_ATTEMPTS
                    )
                else:
                    retry.append((replace(f, due_at=sim_now + RETRY_AFTER), attempts + 1))
        return retry

    async def close(self) -> None:
        await asyncio.get_running_loop().run_in_executor(self.pool, self.uploader.close)
        self.pool.shutdown(wait=True)


class _KafkaSender(_Sender):
    def __init__(self, feed: KafkaFeed, stats: SimStats) -> None:
        super().__init__(stats)
        self.feed = feed

    async def deliver(
        self, due: list[tuple[FileDelivery, int]], sim_now: datetime
    ) -> list[tuple[FileDelivery, int]]:
        batch = [
            RawReading(
                **{
                    **r.asdict(),
                    "received_at": sim_now,
                    "channel": Channel.SIMULATOR.value,
                    "origin": f.name,
                }
            )
            for f, _ in due
            for r in f.readings
        ]
        if batch:
            await self.feed.send(batch)
        for f, _ in due:
            self.count(f, Outcome.ACCEPTED)
        return []

    async def close(self) -> None:
        await self.feed.__aexit__(None, None, None)


async def _sender(
    settings: Settings, via: Via, registry: Registry, stats: SimStats, workers: int
) -> _Sender:
    if via == "kafka":
        feed = KafkaFeed(bootstrap_servers(settings), settings.topic(RAW.name))
        await feed.__aenter__()
        return _KafkaSender(feed, stats)
    if via != "ftp":
        raise ValueError(f"via must be 'ftp' or 'kafka', not {via!r}")
    accounts = await asyncio.to_thread(wait_for, accounts_path(settings.data_dir), 60)
    # the gateway binds this address; one bound to every interface answers on loopback
    host = settings.gateway_host
    host = "127.0.0.1" if host in ("0.0.0.0", "::") else host
    # FTPS whenever the gateway offers it (the demo runs both from the same settings)
    tls = client_context(settings) if settings.gateway_ftp_tls != "off" else None
    uploader = FtpUploader(host, settings.gateway_ftp_port, accounts, tls=tls)
    return _FtpSender(uploader, stats, workers)


def run_simulator(
    settings: Settings,
    *,
    via: Via = "ftp",
    speed: float = 60.0,
    backfill_hours: float = 3.0,
    seed: int = 1,
) -> SimStats:
    """``quantrac simulate``: runs until SIGTERM/SIGINT; returns what was delivered."""

    progress = Progress("simulate backfill")
    caught_up = False

    def on_tick(done: timedelta, total: timedelta, stats: SimStats) -> None:
        nonlocal caught_up
        if caught_up:
            return
        minutes, of = int(done.total_seconds() // 60), int(total.total_seconds() // 60)
        progress.update(minutes, max(of, 1), unit="simulated min")
        if done >= total - timedelta(seconds=1):
            caught_up = True
            progress.finish(f"caught up: {stats.files} files, {stats.readings} readings")

    async def main() -> SimStats:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        return await simulate(
            settings,
            via=via,
            speed=speed,
            backfill_hours=backfill_hours,
            seed=seed,
            stop=stop,
            on_tick=on_tick,
        )

    stats = asyncio.run(main())
    log.info("simulator stopped: %s", stats)
    return stats
