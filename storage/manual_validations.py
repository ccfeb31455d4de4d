"""Operators' manual validation decisions (issue 21, table ``manual_validations``, migration 0017).

The console inserts a decision (:func:`insert`) in the same transaction as its audit entry and
its produce to ``readings.raw``; the worker applies it and sets ``applied_at``. The console lists
a source's decisions (:func:`list_for_source`); the reports list the decisions of a period with
the readings each one invalidates (:func:`in_period`, a synchronous connection like the rest of
``reports/``). A reading invalidated by hand carries the decision's id in ``readings.manual_id``;
its QC ``flag`` stays the automatic one.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

import psycopg
from psycopg import AsyncConnection
from psycopg.rows import dict_row

from core.records import ManualValidation


class Status(StrEnum):
    PENDING = "pending"  # stored and produced; the worker has not applied it yet
    APPLIED = "applied"  # the worker re-flagged the stored readings (applied_at)


@dataclass(frozen=True)
class ManualValidationRow:
    id: int
    source_id: str
    parameter: str | None  # None: every parameter of the source
    period_start: datetime  # inclusive
    period_end: datetime  # exclusive
    action: str  # core.records.ManualAction
    reason: str  # core.records.ManualReason
    note: str
    by_user: str
    at: datetime
    applied_at: datetime | None
    status: Status

    def record(self) -> ManualValidation:
        """The message the worker reads from ``readings.raw``."""
        return ManualValidation(
            id=self.id,
            source_id=self.source_id,
            parameter=self.parameter,
            start=self.period_start,
            end=self.period_end,
            action=self.action,
            reason=self.reason,
            note=self.note,
            by=self.by_user,
            at=self.at,
        )


@dataclass(frozen=True)
class PeriodDecision:
    """A decision listed in a report, with the readings of the report's period it invalidates
    now (``readings.manual_id``; 0 for a restore or an invalidation restored since)."""

    row: ManualValidationRow
    readings: int


COLUMNS = (
    "id, source_id, parameter, period_start, period_end, action, reason, note, by_user, at,"
    " applied_at"
)


def _row(r: dict[str, Any]) -> ManualValidationRow:
    status = Status.PENDING if r["applied_at"] is None else Status.APPLIED
    return ManualValidationRow(**r, status=status)


async def insert(
    conn: AsyncConnection[Any],
    *,
    source_id: str,
    parameter: str | None,
    start: datetime,
    end: datetime,
    action: str,
    reason: str,
    note: str,
    by_user: str,
    at: datetime,
) -> ManualValidationRow:
    """Store a decision (pending) and return it with its id. Run it inside the caller's
    transaction: the row must not outlive a produce that failed."""
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(
            "INSERT INTO manual_validations (source_id, parameter, period_start, period_end,"
            " action, reason, note, by_user, at) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)"
            f" RETURNING {COLUMNS}",
            (source_id, parameter, start, end, action, reason, note, by_user, at),
        )
        row = await cur.fetchone()
    assert row is not None  # INSERT … RETURNING gives its row
    return _row(row)


async def get(conn: AsyncConnection[Any], validation_id: int) -> ManualValidationRow | None:
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(
            f"SELECT {COLUMNS} FROM manual_validations WHERE id = %s", (validation_id,)
        )
        row = await cur.fetchone()
    return _row(row) if row else None


async def list_for_source(
    conn: AsyncConnection[Any], source_id: str, limit: int = 500
) -> list[ManualValidationRow]:
    """A source's decisions, newest first."""
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(
            f"SELECT {COLUMNS} FROM manual_validations WHERE source_id = %s"
            " ORDER BY at DESC, id DESC LIMIT %s",
            (source_id, limit),
        )
        return [_row(r) for r in await cur.fetchall()]


# One query for both connection kinds: the decisions whose period overlaps [start, end), with
# the readings of [start, end) each one invalidates now.
_IN_PERIOD = f"""
SELECT {", ".join(f"m.{c.strip()}" for c in COLUMNS.split(","))},
       (SELECT count(*) FROM readings r
        WHERE r.manual_id = m.id AND r.source_id = m.source_id
          AND r.measured_at >= %(start)s AND r.measured_at < %(end)s) AS readings
FROM manual_validations m
WHERE m.source_id = ANY(%(sources)s)
  AND m.period_start < %(end)s AND m.period_end > %(start)s
ORDER BY m.source_id, m.period_start, m.at, m.id
"""


def _period_args(sources: Sequence[str], start: datetime, end: datetime) -> dict[str, Any]:
    return {"sources": list(sources), "start": start, "end": end}


def _decision(r: dict[str, Any]) -> PeriodDecision:
    count = r.pop("readings")
    return PeriodDecision(_row(r), int(count))


def in_period(
    conn: psycopg.Connection[Any], source_ids: Sequence[str], start: datetime, end: datetime
) -> list[PeriodDecision]:
    """The decisions on ``source_ids`` whose period overlaps [start, end), oldest period first
    (the reports' synchronous connection)."""
    with conn.cursor(row_factory=dict_row) as cur:
        cur.execute(_IN_PERIOD, _period_args(source_ids, start, end))
        return [_decision(r) for r in cur.fetchall()]


async def in_period_async(
    conn: AsyncConnection[Any], source_ids: Sequence[str], start: datetime, end: datetime
) -> list[PeriodDecision]:
    """:func:`in_period` on an async connection (the console)."""
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(_IN_PERIOD, _period_args(source_ids, start, end))
        return [_decision(r) for r in await cur.fetchall()]
