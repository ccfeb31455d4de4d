"""Fault: the gateway is SIGKILLed and restarted while dataloggers upload over FTP.

The real ``quantrac gateway`` runs as a child process on a free FTP port. Three sources deliver
a deterministic plan of Circular 10 files (``stations.ftp_delivery.plan_files``, with a bad line
now and then), one FTP session per source as a datalogger keeps, resending a file on a ``4xx``
reply or a lost connection (``FtpUploader``). Once every source has had some files acknowledged
the gateway is SIGKILLed, then started again on the same port and ``data_dir`` (so the same
account file); the dataloggers' resends deliver the rest. A worker then stores everything.

After it: every planned reading is stored exactly once with the value the station sent, every
file is archived once, every bad line is dead-lettered once, and QC verdicts, final averages and
violations are those of an undisturbed run of the same plan (the same files through another
gateway that is not killed).
A resend after the kill may publish a file twice (the gateway died after the broker's ack but
before its ``226``): ``readings.raw`` then holds more records than the plan, never fewer.

The plan raises HD-KK-01 SO2 to about twice its 1-hour limit for two hours (QCVN 05:2023/BTNMT
Table 1, SO2 1-h mean ≤ 350 µg/Nm3; the level ``test_faults`` uses), so the runs open and close a
violation, not only averages.
"""

from __future__ import annotations

import socket
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest

from core.settings import Settings
from core.topics import ensure_topics
from stations.accounts import Accounts, accounts_path, wait_for
from stations.ftp_delivery import DeliveryKnobs, FileDelivery, FtpUploader, Outcome, plan_files
from stations.registry import Registry, load_registry
from stations.sim_registry import series_for
from stations.simulator import Series, start_clear_of_calibration
from storage.migrate import migrate
from streams.embedded import free_port
from streams.runtime import QuantracProcess
from tests.conftest import WorkerProcess, wait_until
from tests.integration.gateway_support import Message, read_topic
from tests.integration.test_faults import (
    HIGH,
    HIGH_BASE,
    assert_same,
    counts,
    missing,
    second_settings,
    wait_settled,
)
from tests.integration.test_faults import Outcome as RunOutcome

pytestmark = pytest.mark.integration
__all__ = ["second_settings"]  # fixture used by name

SEED = 7
# A 5-minute air station (the raised SO2), a 1-minute one (many small files), a 5-minute outfall.
SOURCES = ("HD-KK-01", "HD-KK-04", "HD-NT-03")
# Hour 0 normal, hours 1-2 high, hours 3-6 normal. The first hour of a level change is mostly
# Hampel spikes (an incomplete average), so hour 2 opens the violation and hours 4-5 (two clear
# averages, ``Hysteresis.clear_windows``) close it; hour 6 stays open (no later reading).
HOURS = 7
HIGH_HOURS = (1, 3)
SO2_RULE = f"{HIGH[0]}:{HIGH[1]}:QCVN_05_2023:SO2:1h"  # violation ids start with source:rule
KNOBS = DeliveryKnobs(bad_line_prob=0.05, outage_prob_per_hour=0.0)  # clock skew kept
BAD_LINE_REASONS = {"not_finite", "unknown_parameter", "bad_status", "field_count"}
KILL_AFTER = 25  # files acknowledged per source before the kill (each source has 84 or more)
RETRY_PAUSE_S = 0.2  # a datalogger's wait before it sends a refused file again
DELIVERY_TIMEOUT_S = 150.0


def make_plan(registry: Registry, start: datetime) -> list[FileDelivery]:
    """The files of SOURCES for HOURS from ``start``, with HIGH at ~2x its limit in HIGH_HOURS."""
    series = [s for s in series_for(registry) if s.source_id in SOURCES]
    raised: list[Series] = [
        replace(s, base=HIGH_BASE, amplitude=0.0) if (s.source_id, s.parameter) == HIGH else s
        for s in series
    ]
    h1, h2 = (start + timedelta(hours=h) for h in HIGH_HOURS)
    end = start + timedelta(hours=HOURS)
    files = [
        *plan_files(series, registry, start, h1, SEED, knobs=KNOBS),
        *plan_files(raised, registry, h1, h2, SEED, knobs=KNOBS),
        *plan_files(series, registry, h2, end, SEED, knobs=KNOBS),
    ]
    return sorted(files, key=lambda f: (f.due_at, f.source_id))


# --- the gateway child and the dataloggers ----------------------------------------------------


def _accepts(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return True
    except OSError:
        return False


def start_gateway(settings: Settings, log_path: Path) -> QuantracProcess:
    """``quantrac gateway`` with ``settings``; returns once its FTP port takes connections."""
    gateway = QuantracProcess(settings, log_path, command="gateway").start()
    wait_until(
        lambda: not gateway.alive() or _accepts(settings.gateway_ftp_port),
        90,
        message=gateway.log,
    )
    assert gateway.alive(), f"the gateway exited: {gateway.log()}"
    return gateway


@dataclass(frozen=True)
class Attempt:
    source_id: str
    name: str
    started: float  # time.monotonic()
    ended: float
    outcome: Outcome


@dataclass
class Dataloggers:
    """One thread per source uploading its files in order on one FTP session, resending a file
    after a ``4xx`` or a lost connection until it is acknowledged (``226``) or refused (``5xx``)."""

    port: int
    accounts: Accounts
    files: Sequence[FileDelivery]
    attempts: list[Attempt] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _threads: list[threading.Thread] = field(default_factory=list)

    def by_source(self) -> dict[str, list[FileDelivery]]:
        out: dict[str, list[FileDelivery]] = defaultdict(list)
        for f in self.files:
            out[f.source_id].append(f)
        return out

    def start(self) -> Dataloggers:
        deadline = time.monotonic() + DELIVERY_TIMEOUT_S
        for source_id, files in self.by_source().items():
            t = threading.Thread(
                target=self._run, args=(files, deadline), name=f"logger-{source_id}", daemon=True
            )
            t.start()
            self._threads.append(t)
        return self

    def _run(self, files: list[FileDelivery], deadline: float) -> None:
        uploader = FtpUploader("127.0.0.1", self.port, self.accounts, timeout_s=30)
        try:
            for f in files:
                while True:
                    started = time.monotonic()
                    outcome = uploader.upload(f)
                    with self._lock:
                        self.attempts.append(
                            Attempt(f.source_id, f.name, started, time.monotonic(), outcome)
                        )
                    if outcome != Outcome.RETRY:
                        break
                    if time.monotonic() > deadline:
                        with self._lock:
                            self.errors.append(f"{f.source_id} {f.name}: still refused, gave up")
                        return
                    time.sleep(RETRY_PAUSE_S)
        except Exception as exc:  # surfaced by the test, not lost in a thread
            with self._lock:
                self.errors.append(f"{files[0].source_id}: {exc!r}")
        finally:
            uploader.close()

    def acknowledged(self) -> Counter[str]:
        with self._lock:
            return Counter(a.source_id for a in self.attempts if a.outcome == Outcome.ACCEPTED)

    def join(self) -> None:
        for t in self._threads:
            t.join(DELIVERY_TIMEOUT_S + 30)
        assert not any(t.is_alive() for t in self._threads), "a datalogger is still uploading"


def _key(m: Message) -> tuple[str, str, str]:
    return m.value["source_id"], m.value["parameter"], m.value["measured_at"]


# --- what the database holds ------------------------------------------------------------------


def stored_readings(url: str) -> dict[tuple[str, str, datetime], tuple[float, str]]:
    with psycopg.connect(url) as conn:
        rows = conn.execute(
            "SELECT source_id, parameter, measured_at, raw_value, raw_unit FROM readings"
        )
        return {(s, p, t): (v, u) for s, p, t, v, u in rows}


def dead_letters(url: str) -> list[tuple[Any, ...]]:
    with psycopg.connect(url) as conn:
        return conn.execute(
            "SELECT origin, line, reason, source_id, channel FROM rejections ORDER BY 1, 2"
        ).fetchall()


# --- the test ---------------------------------------------------------------------------------


def test_gateway_sigkill_during_ftp_uploads_loses_and_duplicates_nothing(
    settings: Settings, second_settings: Settings, worker: WorkerProcess, tmp_path: Path
) -> None:
    registry = load_registry()
    start = start_clear_of_calibration(datetime.now(UTC) - timedelta(hours=HOURS + 1), HOURS)
    files = make_plan(registry, start)
    planned = {(r.source_id, r.parameter, r.measured_at): r for f in files for r in f.readings}
    planned_iso = {(s, p, t.isoformat().replace("+00:00", "Z")) for s, p, t in planned}
    n = sum(len(f.readings) for f in files)
    bad = sorted(f.name for f in files if f.bad_lines)
    assert len(planned) == n, "the plan must not hold one reading twice"
    assert {f.source_id for f in files} == set(SOURCES)
    assert len(bad) >= 3, f"the plan must hold bad lines (has {len(bad)})"

    # each run: its own FTP/HTTP ports, data_dir (accounts, archive), topics and database
    ref_dir = tmp_path / "reference"
    ref_dir.mkdir()
    ref = second_settings.model_copy(
        update={
            "data_dir": ref_dir,
            "gateway_ftp_port": free_port(),
            "gateway_http_port": free_port(),
        }
    )
    run = settings.model_copy(
        update={"gateway_ftp_port": free_port(), "gateway_http_port": free_port()}
    )
    assert ref.database_url and run.database_url
    for each in (ref, run):
        migrate(str(each.database_url))
        ensure_topics(each)

    processes: list[QuantracProcess] = []
    try:
        # the undisturbed reference: the same files through a gateway that is not killed
        processes.append(start_gateway(ref, tmp_path / "gateway-reference.log"))
        ref_loggers = Dataloggers(
            ref.gateway_ftp_port, wait_for(accounts_path(ref.data_dir), 30), files
        ).start()
        ref_loggers.join()
        assert not ref_loggers.errors, ref_loggers.errors
        assert not [a for a in ref_loggers.attempts if a.outcome != Outcome.ACCEPTED]
        ref_worker = WorkerProcess(ref, tmp_path / "worker-reference.log").start()
        processes.append(ref_worker)

        # the same files, the gateway SIGKILLed mid-upload and restarted on the same port
        gateway = start_gateway(run, tmp_path / "gateway.log")
        processes.append(gateway)
        accounts = wait_for(accounts_path(run.data_dir), 30)
        loggers = Dataloggers(run.gateway_ftp_port, accounts, files).start()
        per_source = Counter(f.source_id for f in files)
        assert min(per_source.values()) > 2 * KILL_AFTER
        wait_until(
            lambda: (
                min(loggers.acknowledged()[s] for s in SOURCES) >= KILL_AFTER
                or bool(loggers.errors)
            ),
            60,
            interval=0.01,
            message=lambda: f"{loggers.acknowledged()} {loggers.errors} {gateway.log()}",
        )
        killed_at = time.monotonic()
        gateway.kill()
        at_kill = loggers.acknowledged()
        restarted = start_gateway(run, tmp_path / "gateway-restarted.log")
        processes.append(restarted)
        loggers.join()
        assert not loggers.errors, f"{loggers.errors}: {restarted.log()}"
        assert restarted.alive(), restarted.log()

        # the kill landed mid-upload for every source, and the resends delivered the rest
        final = Counter(a.source_id for a in loggers.attempts if a.outcome == Outcome.ACCEPTED)
        assert final == per_source, "every file must be acknowledged once, at last"
        assert not [a for a in loggers.attempts if a.outcome == Outcome.REJECTED]
        for s in SOURCES:
            assert 0 < at_kill[s] < per_source[s], f"{s}: {at_kill[s]} of {per_source[s]} files"
            retried = [
                a for a in loggers.attempts if a.source_id == s and a.outcome == Outcome.RETRY
            ]
            assert retried, f"{s}: no upload was cut by the kill"
            assert min(a.ended for a in retried) >= killed_at, f"{s}: refused before the kill"
        in_flight = [a for a in loggers.attempts if a.started < killed_at <= a.ended]
        assert in_flight, "no transfer was open when the gateway was killed"
        created = "ingest account(s)"  # the gateway's note when it writes new passwords
        assert created in gateway.log(None)
        assert created not in restarted.log(None), "the restart must reuse the accounts file"

        # published at least once (a file resent after the kill may be on the topic twice)
        raw = read_topic(
            run,
            "readings.raw",
            n,
            timeout_s=60,
            until=lambda out: len(out) >= n and planned_iso <= set(map(_key, out)),
        )
        on_topic = Counter(map(_key, raw))
        lost = set(planned_iso) - set(on_topic)
        assert not lost, (
            f"{len(lost)} planned readings never reached readings.raw: {sorted(lost)[:5]}"
        )
        assert set(on_topic) == set(planned_iso) and len(raw) >= n
        rejected = read_topic(
            run,
            "readings.rejected",
            len(bad),
            timeout_s=60,
            until=lambda out: {m.value["origin"] for m in out} >= set(bad),
        )
        assert sorted({m.value["origin"] for m in rejected}) == bad and len(rejected) >= len(bad)

        worker.start()
        processes.append(worker)
        wait_settled(ref, n, 120, ref_worker.log)
        wait_settled(
            run,
            n,
            120,
            lambda: (
                f"missing {missing(str(run.database_url), list(planned.values()))[:5]}; "
                f"{worker.log()}"
            ),
        )
    finally:
        for p in reversed(processes):
            p.stop()

    url, ref_url = str(run.database_url), str(ref.database_url)
    assert counts(url)[0] == n, "readings stored twice or lost"
    stored = stored_readings(url)
    assert set(stored) == set(planned)
    changed = [(k, v) for k, v in stored.items() if v != (planned[k].value, planned[k].unit)]
    assert not changed, f"{len(changed)} stored values differ from what was sent: {changed[:5]}"

    # the archive keeps each file once, byte for byte (a resent body maps to the same file;
    # a temporary file left by the kill is not an archived file)
    archived = {
        p.name: p.read_bytes()
        for p in (run.data_dir / "archive").rglob("*")
        if p.is_file() and not p.name.startswith(".tmp-")
    }
    assert archived == {f.name: f.body for f in files}

    letters = dead_letters(url)
    assert sorted(origin for origin, *_ in letters) == bad, "each bad line dead-lettered once"
    assert {reason for _, _, reason, _, _ in letters} <= BAD_LINE_REASONS
    assert letters == dead_letters(ref_url)

    reference = RunOutcome.of(ref_url)
    assert len(reference.verdicts) == n
    assert len(reference.averages) > 100, "the plan must produce final averages"
    so2 = [e[2] for e in reference.events if e[0].startswith(SO2_RULE)]
    assert "opened" in so2 and "closed" in so2, f"the high block must open and close: {so2}"
    assert_same(RunOutcome.of(url), reference)
