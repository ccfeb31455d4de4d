"""The delivery ledger (table ``forward_queue``, migration 0011): what each destination is owed.

A row is added once per (destination, archived file) — the unique key makes a rescan after a
restart add nothing — and leaves the queue only when the receiver has the file ('delivered') or
has refused it ``max_refusals`` times ('failed', queued again by :func:`requeue_failed`). The
forwarder takes, per destination, only the oldest queued row of each source, so a source's files
arrive in the order they were archived.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from psycopg import AsyncConnection
from psycopg.rows import class_row

Conn = AsyncConnection[Any]


@dataclass(frozen=True)
class QueuedFile:
    """A row to add: one archived file for one destination."""

    destination: str
    archive_path: str
    source_id: str
    remote_name: str
    size_bytes: int
    sha256: str
    archived_at: datetime


@dataclass(frozen=True)
class Pending:
    """The head of one source's queue for one destination."""

    id: int
    destination: str
    archive_path: str
    source_id: str
    sha256: str
    attempts: int
    next_attempt_at: datetime


@dataclass(frozen=True)
class DestinationState:
    """What the console and the metrics show per destination."""

    destination: str
    queued: int
    failed: int
    oldest_queued_at: datetime | None  # archived_at of the oldest queued file
    delivered_24h: int
    last_delivered_at: datetime | None
    last_error: str | None
    last_error_at: datetime | None
    last_error_path: str | None
    scanned_day: date | None


@dataclass(frozen=True)
class Problem:
    """A queued file that has failed at least once, or one set aside as failed."""

    destination: str
    archive_path: str
    state: str
    attempts: int
    last_error: str | None
    last_attempt_at: datetime | None
    next_attempt_at: datetime


async def enqueue(conn: Conn, rows: Sequence[QueuedFile]) -> int:
    """Add rows in the given order (their ids are the delivery order); existing ones are kept."""
    if not rows:
        return 0
    added = 0
    async with conn.transaction(), conn.cursor() as cur:
        for r in rows:
            await cur.execute(
                "INSERT INTO forward_queue (destination, archive_path, source_id, remote_name,"
                " size_bytes, sha256, archived_at) VALUES (%s, %s, %s, %s, %s, %s, %s)"
                " ON CONFLICT (destination, archive_path) DO NOTHING",
                (
                    r.destination,
                    r.archive_path,
                    r.source_id,
                    r.remote_name,
                    r.size_bytes,
                    r.sha256,
                    r.archived_at,
                ),
            )
            added += cur.rowcount
    return added


async def heads(conn: Conn, destination: str) -> list[Pending]:
    """The oldest queued file of each source (ready or not), oldest first."""
    async with conn.cursor(row_factory=class_row(Pending)) as cur:
        await cur.execute(
            "SELECT * FROM (SELECT DISTINCT ON (source_id) id, destination, archive_path,"
            " source_id, sha256, attempts, next_attempt_at FROM forward_queue"
            " WHERE destination = %s AND state = 'queued' ORDER BY source_id, id) h ORDER BY id",
            (destination,),
        )
        return await cur.fetchall()


async def mark_delivered(conn: Conn, row_id: int, now: datetime) -> None:
    await conn.execute(
        "UPDATE forward_queue SET state = 'delivered', delivered_at = %s, last_attempt_at = %s,"
        " attempts = attempts + 1 WHERE id = %s",
        (now, now, row_id),
    )


async def mark_retry(
    conn: Conn, row_id: int, error: str, now: datetime, next_at: datetime, *, give_up: bool
) -> None:
    await conn.execute(
        "UPDATE forward_queue SET attempts = attempts + 1, last_error = %s, last_attempt_at = %s,"
        " next_attempt_at = %s, state = CASE WHEN %s THEN 'failed' ELSE state END WHERE id = %s",
        (error[:1000], now, next_at, give_up, row_id),
    )


async def requeue_failed(conn: Conn, destination: str, now: datetime) -> int:
    cur = await conn.execute(
        "UPDATE forward_queue SET state = 'queued', attempts = 0, next_attempt_at = %s"
        " WHERE destination = %s AND state = 'failed'",
        (now, destination),
    )
    return cur.rowcount


async def cursor_day(conn: Conn, destination: str) -> date | None:
    cur = await conn.execute(
        "SELECT scanned_day FROM forward_cursor WHERE destination = %s", (destination,)
    )
    row = await cur.fetchone()
    return None if row is None else row[0]


async def set_cursor_day(conn: Conn, destination: str, day: date) -> None:
    await conn.execute(
        "INSERT INTO forward_cursor (destination, scanned_day) VALUES (%s, %s)"
        " ON CONFLICT (destination) DO UPDATE SET scanned_day ="
        " greatest(forward_cursor.scanned_day, excluded.scanned_day)",
        (destination, day),
    )


async def states(conn: Conn, now: datetime) -> list[DestinationState]:
    """Every destination the ledger knows (queued rows or a scan cursor)."""
    cur = await conn.execute(
        """
        WITH names AS (
            SELECT destination FROM forward_cursor
            UNION SELECT DISTINCT destination FROM forward_queue WHERE state <> 'delivered'
        )
        SELECT n.destination,
            (SELECT count(*) FROM forward_queue q
              WHERE q.destination = n.destination AND q.state = 'queued'),
            (SELECT count(*) FROM forward_queue q
              WHERE q.destination = n.destination AND q.state = 'failed'),
            (SELECT min(archived_at) FROM forward_queue q
              WHERE q.destination = n.destination AND q.state = 'queued'),
            (SELECT count(*) FROM forward_queue q WHERE q.destination = n.destination
              AND q.state = 'delivered' AND q.delivered_at > %s - interval '24 hours'),
            (SELECT max(delivered_at) FROM forward_queue q
              WHERE q.destination = n.destination AND q.state = 'delivered'),
            e.last_error, e.last_attempt_at, e.archive_path,
            c.scanned_day
        FROM names n
        LEFT JOIN forward_cursor c ON c.destination = n.destination
        LEFT JOIN LATERAL (
            SELECT last_error, last_attempt_at, archive_path FROM forward_queue q
            WHERE q.destination = n.destination AND q.state <> 'delivered'
              AND q.last_error IS NOT NULL
            ORDER BY q.last_attempt_at DESC LIMIT 1
        ) e ON true
        ORDER BY n.destination
        """,
        (now,),
    )
    return [DestinationState(*row) for row in await cur.fetchall()]


async def problems(conn: Conn, limit: int = 100) -> list[Problem]:
    """Files set aside as failed, and queued ones that have failed at least once."""
    async with conn.cursor(row_factory=class_row(Problem)) as cur:
        await cur.execute(
            "SELECT destination, archive_path, state, attempts, last_error, last_attempt_at,"
            " next_attempt_at FROM forward_queue WHERE state <> 'delivered'"
            " AND last_error IS NOT NULL ORDER BY destination, id LIMIT %s",
            (limit,),
        )
        return await cur.fetchall()
