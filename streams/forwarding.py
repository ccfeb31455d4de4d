"""``quantrac forward``: deliver every archived original file to each downstream receiver.

Why a process of its own, next to the gateway (sharing its ``data_dir/archive``) rather than
inside it: the gateway needs no database and keeps acknowledging stations while a receiver is
down or slow, and the forwarder can be stopped, restarted or upgraded without touching ingest.

The archive is the source of truth: everything the gateway accepted from a station's own account
is there, byte-exact, under ``<local date>/<source id>/<name>`` (quarantined bodies are not).
The forwarder

1. **scans** the archive every ``forward_poll_s`` (only day folders from each destination's
   cursor minus one day, and only source folders whose modification time changed) and adds
   each new file to the delivery ledger for every destination that wants it, in the order the
   files were archived (``storage/forward_ledger.py``: one row per destination and file, so a
   rescan after a restart adds nothing);
2. **delivers**, per destination, the oldest queued file of each source (in order per source),
   checking its bytes against the hash taken when it was queued; a failure is retried with
   exponential backoff (``retry_min_s`` … ``retry_max_s``), so a backlog drains by itself when a
   receiver returns; a file refused ``max_refusals`` times is set aside as failed;
3. marks a file delivered only after the receiver has it (FTP: renamed to its final name; HTTP:
   2xx or 409). A crash in between sends it again, and the receiver keeps one copy (FTP: an
   identical final file counts as delivered; HTTP: the same ``Idempotency-Key``).

A file archived whose broker acknowledgement then failed (the sender was told to resend) is
forwarded too: the resend maps to the same archived file, so it is still one file downstream.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import os
import signal
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Literal

from psycopg_pool import AsyncConnectionPool

from core.clock import Clock, utc_now
from core.metrics import Metrics
from core.settings import Settings
from stations.archive import LOCAL_TZ, UNKNOWN
from stations.forward_config import (
    Destination,
    idempotency_key,
    remote_name,
    remote_path,
    retry_delay,
)
from stations.forward_targets import Parcel, Refused, Target, Transient, target_for
from storage import forward_ledger as ledger

log = logging.getLogger(__name__)

Outcome = Literal["delivered", "transient", "refused", "missing"]
SETTLED_NS = 2_000_000_000  # a folder unchanged for 2 s is skipped until its mtime moves
LOCK_KEY = 0x51464F52  # one forwarder per database: two would race on the same files


class ForwarderBusy(RuntimeError):
    """Another forwarder holds the database's forwarding lock."""


# ---------------------------------------------------------------------------------------------
# scanning the archive


@dataclass(frozen=True)
class ArchivedFile:
    archive_path: str  # <date>/<source>/<name>
    day: date
    source_id: str
    name: str
    archived_at: datetime
    size: int
    mtime_ns: int


def day_folders(root: Path, start: date) -> list[str]:
    """The archive's day folders from ``start`` on, oldest first."""
    try:
        names = [e.name for e in os.scandir(root) if e.is_dir()]
    except FileNotFoundError:
        return []
    out = []
    for n in names:
        try:
            if date.fromisoformat(n) >= start:
                out.append(n)
        except ValueError:
            continue  # not a day folder
    return sorted(out)


def scan_source_folder(root: Path, day: str, source_id: str) -> list[ArchivedFile]:
    """The complete files of one ``<day>/<source>`` folder (Archive.store's temporary
    ``.tmp-*`` files are not), in archive order (modification time, then name)."""
    files = []
    with os.scandir(root / day / source_id) as entries:
        for e in entries:
            if e.name.startswith(".") or not e.is_file(follow_symlinks=False):
                continue
            st = e.stat(follow_symlinks=False)
            files.append(
                ArchivedFile(
                    archive_path=f"{day}/{source_id}/{e.name}",
                    day=date.fromisoformat(day),
                    source_id=source_id,
                    name=e.name,
                    archived_at=datetime.fromtimestamp(st.st_mtime_ns / 1e9, UTC),
                    size=st.st_size,
                    mtime_ns=st.st_mtime_ns,
                )
            )
    return sorted(files, key=lambda f: (f.mtime_ns, f.name))


def sha256_file(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@dataclass
class Scanner:
    """Finds newly archived files; remembers per source folder what it has already seen."""

    root: Path
    _folder_mtime: dict[tuple[str, str], int] = field(default_factory=dict)
    _seen: dict[tuple[str, str], set[str]] = field(default_factory=dict)

    def new_files(self, start: date) -> list[ArchivedFile]:
        """Files not returned before, from day folders ``>= start``, oldest first."""
        found: list[ArchivedFile] = []
        days = day_folders(self.root, start)
        for key in [k for k in self._seen if k[0] < start.isoformat()]:
            self._seen.pop(key, None)
            self._folder_mtime.pop(key, None)
        for day in days:
            for e in os.scandir(self.root / day):
                if not e.is_dir(follow_symlinks=False) or e.name == UNKNOWN:
                    continue
                key = (day, e.name)
                mtime = e.stat(follow_symlinks=False).st_mtime_ns
                if self._folder_mtime.get(key) == mtime:
                    continue  # nothing linked into it since the last look
                seen = self._seen.setdefault(key, set())
                for f in scan_source_folder(self.root, day, e.name):
                    if f.name not in seen:
                        found.append(f)
                        seen.add(f.name)
                # Trust an unchanged mtime only when it is old: a link in the same coarse
                # clock tick as our listing would leave it unchanged and the file unseen.
                if time.time_ns() - mtime > SETTLED_NS:
                    self._folder_mtime[key] = mtime
        return sorted(found, key=lambda f: (f.mtime_ns, f.archive_path))

    def forget(self, files: Sequence[ArchivedFile]) -> None:
        """Look at these again next time (they could not be queued)."""
        for f in files:
            key = (f.day.isoformat(), f.source_id)
            self._seen.get(key, set()).discard(f.name)
            self._folder_mtime.pop(key, None)


# ---------------------------------------------------------------------------------------------
# the forwarder


class Forwarder:
    """Scan + one delivery loop per destination, over one connection pool."""

    def __init__(
        self,
        destinations: Sequence[Destination],
        archive_root: Path,
        database_url: str,
        metrics: Metrics,
        *,
        poll_s: float = 2.0,
        clock: Clock = utc_now,
        targets: dict[str, Target] | None = None,
    ) -> None:
        self.destinations = list(destinations)
        self.root = archive_root
        self.database_url = database_url
        self.metrics = metrics
        self.poll_s = poll_s
        self.clock = clock
        self.scanner = Scanner(archive_root)
        self.targets = targets or {d.name: target_for(d) for d in self.destinations}
        self._wake = {d.name: asyncio.Event() for d in self.destinations}
        self._stop = asyncio.Event()
        for d in self.destinations:
            for kind in ("transient", "refused", "missing"):
                metrics.forward_attempt_failures.labels(d.name, kind)
            for already in ("false", "true"):
                metrics.forward_delivered.labels(d.name, already)

    async def run(self, stop: asyncio.Event) -> None:
        self._stop = stop
        pool = AsyncConnectionPool(
            self.database_url,
            min_size=1,
            max_size=len(self.destinations) + 2,
            open=False,
            timeout=30.0,
            kwargs={"autocommit": True},
            check=AsyncConnectionPool.check_connection,
        )
        await pool.open(wait=True)
        try:
            async with pool.connection() as lock_conn:  # held for the forwarder's life
                cur = await lock_conn.execute("SELECT pg_try_advisory_lock(%s)", (LOCK_KEY,))
                row = await cur.fetchone()
                if not (row and row[0]):
                    raise ForwarderBusy(
                        "another quantrac forward is running on this database (advisory lock "
                        f"{LOCK_KEY:#x} held); stop it first"
                    )
                try:
                    await self._run_tasks(pool, stop)
                finally:
                    await lock_conn.execute("SELECT pg_advisory_unlock(%s)", (LOCK_KEY,))
        finally:
            for t in self.targets.values():
                await asyncio.to_thread(t.close)
            await pool.close()

    async def _run_tasks(self, pool: AsyncConnectionPool, stop: asyncio.Event) -> None:
        async with asyncio.TaskGroup() as tg:
            tg.create_task(self._scan_loop(pool, stop))
            for d in self.destinations:
                tg.create_task(self._deliver_loop(pool, d, stop))

    # --- scanning ----------------------------------------------------------------------------

    async def _starts(self, pool: AsyncConnectionPool) -> dict[str, date]:
        """Per destination, the first day folder to look at: its cursor minus a day (files
        committed just after local midnight land in the day before), else ``since`` or today."""
        today = self.clock().astimezone(LOCAL_TZ).date()
        out = {}
        async with pool.connection() as conn:
            for d in self.destinations:
                cursor = await ledger.cursor_day(conn, d.name)
                if cursor is not None:
                    out[d.name] = cursor - timedelta(days=1)
                else:
                    out[d.name] = d.since or today
        return out

    async def scan_once(self, pool: AsyncConnectionPool) -> int:
        """Queue newly archived files for every destination that wants them; returns rows added."""
        starts = await self._starts(pool)
        files = await asyncio.to_thread(self.scanner.new_files, min(starts.values()))
        rows: list[ledger.QueuedFile] = []
        try:
            for f in files:
                wanting = [
                    d
                    for d in self.destinations
                    if f.day >= starts[d.name] and d.wants(f.source_id, f.name)
                ]
                if not wanting:
                    continue
                digest = await asyncio.to_thread(sha256_file, self.root / f.archive_path)
                rows += [
                    ledger.QueuedFile(
                        destination=d.name,
                        archive_path=f.archive_path,
                        source_id=f.source_id,
                        remote_name=remote_name(f.name),
                        size_bytes=f.size,
                        sha256=digest,
                        archived_at=f.archived_at,
                    )
                    for d in wanting
                ]
            async with pool.connection() as conn:
                added = await ledger.enqueue(conn, rows)
                # the cursor never moves back (greatest() in the ledger)
                last = max((f.day for f in files), default=None)
                for d in self.destinations:
                    day = max(starts[d.name], last or starts[d.name])
                    await ledger.set_cursor_day(conn, d.name, min(day, self._today()))
        except BaseException:
            self.scanner.forget(files)
            raise
        if added:
            for d in self.destinations:
                self._wake[d.name].set()
        return added

    def _today(self) -> date:
        return self.clock().astimezone(LOCAL_TZ).date()

    async def _scan_loop(self, pool: AsyncConnectionPool, stop: asyncio.Event) -> None:
        while not stop.is_set():
            try:
                added = await self.scan_once(pool)
                if added:
                    log.info("forward: %d file deliveries queued", added)
            except Exception as exc:  # the database or the archive is away: look again later
                log.warning("forward: archive scan failed: %s: %s", exc.__class__.__name__, exc)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), self.poll_s)

    # --- delivering --------------------------------------------------------------------------

    async def _deliver_loop(
        self, pool: AsyncConnectionPool, dest: Destination, stop: asyncio.Event
    ) -> None:
        wake = self._wake[dest.name]
        while not stop.is_set():
            wait = self.poll_s
            try:
                wait = await self.deliver_pass(pool, dest)
            except Exception as exc:  # the database is away: the ledger is unchanged, retry
                log.warning("forward %s: %s: %s", dest.name, exc.__class__.__name__, exc)
            if wait > 0:
                wake.clear()
                waits = [asyncio.ensure_future(stop.wait()), asyncio.ensure_future(wake.wait())]
                _, pending = await asyncio.wait(
                    waits, timeout=wait, return_when=asyncio.FIRST_COMPLETED
                )
                for p in pending:
                    p.cancel()

    async def deliver_pass(self, pool: AsyncConnectionPool, dest: Destination) -> float:
        """Try each source's head that is due; returns how long to wait before the next pass
        (0: go on at once)."""
        async with pool.connection() as conn:
            heads = await ledger.heads(conn, dest.name)
            now = self.clock()
            await self.refresh_gauges(conn, dest, now)
            due = [h for h in heads if h.next_attempt_at <= now]
            if not due:
                later = [(h.next_attempt_at - now).total_seconds() for h in heads]
                return min([self.poll_s, *later])
            delivered_any = False
            for head in due:
                if self._stop.is_set():
                    break
                outcome = await self._deliver_one(conn, dest, head)
                if outcome == "delivered":
                    delivered_any = True
                elif outcome == "transient":
                    # the receiver is probably away: probe with the next source's head later
                    # rather than wait out a timeout for each source now
                    return min(self.poll_s, dest.retry_min_s)
            return 0.0 if delivered_any else min(self.poll_s, dest.retry_min_s)

    async def _deliver_one(
        self, conn: ledger.Conn, dest: Destination, head: ledger.Pending
    ) -> Outcome:
        path = self.root / head.archive_path
        problem: str | None
        try:
            data = await asyncio.to_thread(path.read_bytes)
        except OSError as exc:
            data, problem = b"", f"archived file unreadable: {exc.strerror or exc}"
        else:
            problem = None
            if hashlib.sha256(data).hexdigest() != head.sha256:
                problem = "archived file changed since it was queued (sha256 differs)"
        now = self.clock()
        if problem is not None:
            self.metrics.forward_attempt_failures.labels(dest.name, "missing").inc()
            log.error("forward %s: %s: %s; set aside", dest.name, head.archive_path, problem)
            await ledger.mark_retry(conn, head.id, problem, now, now, give_up=True)
            return "missing"
        parcel = Parcel(
            remote_path=remote_path(dest, head.archive_path),
            source_id=head.source_id,
            archive_path=head.archive_path,
            sha256=head.sha256,
            idempotency_key=idempotency_key(dest.name, head.archive_path, head.sha256),
            data=data,
        )
        target = self.targets[dest.name]
        try:
            sent = await asyncio.to_thread(target.send, parcel)
        except (Transient, Refused) as exc:
            kind: Outcome = "refused" if isinstance(exc, Refused) else "transient"
            self.metrics.forward_attempt_failures.labels(dest.name, kind).inc()
            attempts = head.attempts + 1
            give_up = isinstance(exc, Refused) and attempts >= dest.max_refusals
            delay = retry_delay(attempts, dest.retry_min_s, dest.retry_max_s)
            now = self.clock()
            log.warning(
                "forward %s: %s attempt %d %s: %s%s",
                dest.name,
                head.archive_path,
                attempts,
                kind,
                exc,
                "; set aside as failed" if give_up else f"; next in {delay:g} s",
            )
            await ledger.mark_retry(
                conn, head.id, str(exc), now, now + timedelta(seconds=delay), give_up=give_up
            )
            return kind
        await ledger.mark_delivered(conn, head.id, self.clock())
        self.metrics.forward_delivered.labels(dest.name, str(sent.already).lower()).inc()
        log.debug(
            "forward %s: %s delivered (already: %s)", dest.name, parcel.remote_path, sent.already
        )
        return "delivered"

    async def refresh_gauges(self, conn: ledger.Conn, dest: Destination, now: datetime) -> None:
        cur = await conn.execute(
            "SELECT count(*) FILTER (WHERE state = 'queued'),"
            " count(*) FILTER (WHERE state = 'failed'),"
            " min(archived_at) FILTER (WHERE state = 'queued')"
            " FROM forward_queue WHERE destination = %s AND state <> 'delivered'",
            (dest.name,),
        )
        row = await cur.fetchone()
        assert row is not None
        queued, failed, oldest = row
        self.metrics.forward_queued.labels(dest.name).set(queued)
        self.metrics.forward_failed.labels(dest.name).set(failed)
        age = (now - oldest).total_seconds() if oldest is not None else 0.0
        self.metrics.forward_oldest_age.labels(dest.name).set(max(age, 0.0))


# ---------------------------------------------------------------------------------------------
# the command


async def serve(settings: Settings, destinations: Sequence[Destination]) -> None:
    """Run until SIGTERM/SIGINT; then finish the file in hand (its ledger row says so)."""
    from prometheus_client import start_http_server

    assert settings.database_url
    metrics = Metrics()
    start_http_server(settings.forward_port, addr=settings.forward_host)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    forwarder = Forwarder(
        destinations,
        settings.data_dir / "archive",
        settings.database_url,
        metrics,
        poll_s=settings.forward_poll_s,
    )
    log.info(
        "forward: %s from %s; /metrics on %s:%d",
        ", ".join(f"{d.name} ({d.kind})" for d in destinations),
        settings.data_dir / "archive",
        settings.forward_host,
        settings.forward_port,
    )
    await forwarder.run(stop)
    log.info("forward: stopped")


def run_forwarder(settings: Settings, destinations: Sequence[Destination]) -> None:
    """``quantrac forward``: migrate, then forward until SIGTERM/SIGINT."""
    from storage.migrate import migrate

    assert settings.database_url
    migrate(settings.database_url)
    asyncio.run(serve(settings, destinations))
