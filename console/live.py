"""Live updates: poll the violations table, fan changes out to browsers over Server-Sent Events.

One poller per console process asks the database every ``interval_s`` for violations that are
open, were seen at the previous poll, or changed in the last ten minutes, and compares each one's
(last_seq, state, acknowledged_at) with what it saw before. Changed rows go to every subscriber
queue; a browser's ``EventSource`` receives them as ``event: violation`` messages. A slow or
gone browser only loses its own queue (bounded), never blocks the poller.

A stream outlives the request that opened it, so it asks again whether its session is still
valid at every keepalive and before each batch of events: a user disabled, logged out or expired
gets an ``event: session_ended`` and the stream closes, with no further event sent.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import asdict
from datetime import UTC, datetime, timedelta

import psycopg
from psycopg_pool import AsyncConnectionPool

from storage.queries import ViolationRow, violations_by_id

log = logging.getLogger(__name__)

QUEUE_SIZE = 256
SESSION_ENDED = b"event: session_ended\ndata: {}\n\n"

#: True while the stream's session is valid; may raise psycopg.Error (database unreachable).
SessionCheck = Callable[[], Awaitable[bool]]

Fingerprint = tuple[int, str, datetime | None]


def fingerprint(v: ViolationRow) -> Fingerprint:
    return (v.last_seq, v.state, v.acknowledged_at)


def changed(before: dict[str, Fingerprint], rows: list[ViolationRow]) -> list[ViolationRow]:
    """The rows that are new or whose fingerprint differs from the previous poll's."""
    return [v for v in rows if before.get(v.violation_id) != fingerprint(v)]


def to_json(v: ViolationRow) -> str:
    return json.dumps(asdict(v), default=lambda o: o.isoformat(), ensure_ascii=False)


def sse_message(event: str, data: str, event_id: str | None = None) -> bytes:
    lines = [f"event: {event}"]
    if event_id:
        lines.append(f"id: {event_id}")
    lines += [f"data: {line}" for line in data.splitlines() or [""]]
    return ("\n".join(lines) + "\n\n").encode()


class ViolationFeed:
    """Polls for changed violations and broadcasts them to subscriber queues."""

    def __init__(self, pool: AsyncConnectionPool, interval_s: float = 1.0) -> None:
        self.pool = pool
        self.interval_s = interval_s
        self._subscribers: set[asyncio.Queue[ViolationRow | None]] = set()
        self._seen: dict[str, Fingerprint] = {}
        self._task: asyncio.Task[None] | None = None
        self._since: datetime | None = None
        self._stopping = asyncio.Event()
        self.polls = 0

    async def start(self) -> None:
        # Prime the snapshot so the first poll does not replay every open violation.
        await self.poll(broadcast=False)
        self._task = asyncio.create_task(self._run(), name="violation-feed")

    async def stop(self) -> None:
        """Stop polling between polls (cancelling mid-query can be swallowed by the driver)."""
        self._stopping.set()
        if self._task:
            try:
                await asyncio.wait_for(self._task, timeout=5.0)
            except TimeoutError:
                log.warning("violation feed did not stop within 5 s; abandoned")
            self._task = None
        for q in list(self._subscribers):  # end every open stream so shutdown is quick
            with contextlib.suppress(asyncio.QueueFull):
                q.put_nowait(None)

    async def _run(self) -> None:
        while not self._stopping.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), timeout=self.interval_s)
                return
            try:
                await self.poll()
            except Exception:  # the database may be restarting: log, try next tick
                log.exception("violation feed poll failed; retrying in %.1fs", self.interval_s)

    async def poll(self, *, broadcast: bool = True) -> list[ViolationRow]:
        now = datetime.now(UTC)
        # Recently touched rows cover violations that opened and closed between two polls.
        since = (self._since or now) - timedelta(minutes=10)
        async with self.pool.connection() as conn:
            cur = await conn.execute(
                "SELECT violation_id FROM violations WHERE state = 'open'"
                " OR violation_id = ANY(%s) OR last_at >= %s"
                " OR acknowledged_at >= %s",
                (list(self._seen), since, since),
            )
            ids = [r[0] for r in await cur.fetchall()]
            rows = await violations_by_id(conn, ids) if ids else []
        out = changed(self._seen, rows)
        self._seen = {v.violation_id: fingerprint(v) for v in rows}
        self._since = now
        self.polls += 1
        if broadcast:
            for v in out:
                self.publish(v)
        return out

    def publish(self, v: ViolationRow) -> None:
        for q in list(self._subscribers):
            try:
                q.put_nowait(v)
            except asyncio.QueueFull:
                log.warning("SSE subscriber queue full; dropping it (the browser reconnects)")
                self._subscribers.discard(q)

    def subscribe(self) -> asyncio.Queue[ViolationRow | None]:
        q: asyncio.Queue[ViolationRow | None] = asyncio.Queue(QUEUE_SIZE)
        self._subscribers.add(q)
        return q

    def unsubscribe(self, q: asyncio.Queue[ViolationRow | None]) -> None:
        self._subscribers.discard(q)

    @property
    def subscribers(self) -> int:
        return len(self._subscribers)


async def event_stream(
    feed: ViolationFeed,
    session_valid: SessionCheck,
    *,
    keepalive_s: float,
    max_events: int | None = None,
) -> AsyncIterator[bytes]:
    """The SSE body for one browser: a hello, then one message per changed violation, for as
    long as ``session_valid()`` says yes (asked at each keepalive and before each batch)."""
    q = feed.subscribe()
    sent = 0
    try:
        yield b"retry: 2000\n\n" + sse_message("hello", json.dumps({"polls": feed.polls}))
        while max_events is None or sent < max_events:
            batch: list[ViolationRow | None] = []
            with contextlib.suppress(TimeoutError):  # a timeout is a keepalive: check all the same
                batch.append(await asyncio.wait_for(q.get(), timeout=keepalive_s))
            while not q.empty():  # what is already queued goes out under the same check
                batch.append(q.get_nowait())
            rows = [v for v in batch if v is not None]
            if len(rows) < len(batch):  # None: the console is shutting down
                return
            try:
                valid = await session_valid()
            except psycopg.Error:  # cannot tell: close (fail closed); the browser reconnects
                log.warning("SSE session check failed; closing the stream", exc_info=True)
                return
            if not valid:
                yield SESSION_ENDED
                return
            if not rows:
                yield b": keepalive\n\n"
            for v in rows:
                yield sse_message("violation", to_json(v), f"{v.violation_id}:{v.last_seq}")
                sent += 1
                if max_events is not None and sent >= max_events:
                    return
    finally:
        feed.unsubscribe(q)
