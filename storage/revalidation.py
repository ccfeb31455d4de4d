"""The database side of a manual validation (issue 21), for the worker's validate stage.

The console stores an operator's decision (table manual_validations) and produces it to
``readings.raw``; the validate stage applies it in order with the source's readings, so every
reading stored before it is in the table, and asks here, in one transaction, to label the
stored readings, to read back the valid ones it must withdraw from (or restore to) the
averages, and to mark the decision applied. Asking again after a crash gives the same answer:
the readings read back are chosen by their position on readings.raw, not by their label.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from psycopg_pool import AsyncConnectionPool

from core.records import ManualValidation
from storage.writer import retrying

_LABEL = """
UPDATE readings SET manual_id = %(label)s
WHERE source_id = %(source)s AND parameter = %(parameter)s
  AND measured_at >= %(start)s AND measured_at < %(end)s
  AND manual_id IS DISTINCT FROM %(label)s
"""
# Valid by the automatic QA/QC and stored before the decision (rows from before positions were
# stored count as before).
_VALID_BEFORE = """
SELECT measured_at, value FROM readings
WHERE source_id = %(source)s AND parameter = %(parameter)s
  AND measured_at >= %(start)s AND measured_at < %(end)s
  AND flag = 'valid' AND coalesce(raw_position, -1) < %(position)s
ORDER BY measured_at
"""
# The console commits its row only after the broker acked the message, so the worker may get
# here first: the insert waits for the console's transaction, then finds the row and marks it.
# If the console gave up after the broker had the message (a timed-out ack, 503), the row is
# written from the message: a decision the worker applied is always on record.
_APPLIED = """
INSERT INTO manual_validations (id, source_id, parameter, period_start, period_end, action,
    reason, note, by_user, at, applied_at)
VALUES (%(id)s, %(source)s, %(parameter)s, %(start)s, %(end)s, %(action)s, %(reason)s,
    %(note)s, %(by)s, %(at)s, now())
ON CONFLICT (id) DO UPDATE SET applied_at = coalesce(manual_validations.applied_at, now())
"""


@dataclass(frozen=True)
class Relabel:
    validation: ManualValidation
    parameter: str  # the series' (the decision's, or each of the source's)
    label: int | None  # the invalidation's id, or None (restored)
    spans: Sequence[tuple[datetime, datetime]]  # the parts whose validity changed: read back
    position: int  # the decision's position on readings.raw


async def relabel(
    pool: AsyncConnectionPool, r: Relabel, *, retry_max_s: float = 30.0
) -> list[tuple[datetime, float]]:
    """Label, read back and mark applied, in one transaction; retried while the database is
    unreachable (the stage waits, as the readings' writer does). Returns (measured_at, value)
    of the readings whose validity the decision changed."""
    v = r.validation

    async def attempt() -> list[tuple[datetime, float]]:
        async with pool.connection() as conn, conn.transaction():
            where = {"source": v.source_id, "parameter": r.parameter}
            await conn.execute(_LABEL, where | {"label": r.label, "start": v.start, "end": v.end})
            found: list[tuple[datetime, float]] = []
            for a, b in r.spans:
                cur = await conn.execute(
                    _VALID_BEFORE, where | {"start": a, "end": b, "position": r.position}
                )
                found += await cur.fetchall()
            await conn.execute(
                _APPLIED,
                {
                    "id": v.id,
                    "source": v.source_id,
                    "parameter": v.parameter,
                    "start": v.start,
                    "end": v.end,
                    "action": v.action,
                    "reason": v.reason,
                    "note": v.note,
                    "by": v.by,
                    "at": v.at,
                },
            )
        return found

    return await retrying(attempt, f"manual validation {v.id}", retry_max_s=retry_max_s)
