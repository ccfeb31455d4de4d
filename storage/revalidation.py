"""The database side of a manual validation (issue 21), for the worker's validate stage.

The console stores an operator's decision (table manual_validations) and produces it to
``readings.raw``; the validate stage applies it in order with the source's readings, so every
reading stored before it is in the table, and asks here, in one transaction, to label the
stored readings, to read back the valid ones it must withdraw from (or restore to) the
averages, and to mark the decision applied. Asking again after a crash gives the same answer:
the readings read back are chosen by their position on readings.raw, not by their label.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from psycopg_pool import AsyncConnectionPool

from storage.writer import is_transient

log = logging.getLogger(__name__)

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
_APPLIED = "UPDATE manual_validations SET applied_at = now() WHERE id = %s AND applied_at IS NULL"


@dataclass(frozen=True)
class Relabel:
    source_id: str
    parameter: str
    period: tuple[datetime, datetime]  # the decision's whole period: labelled
    label: int | None  # the invalidation's id, or None (restored)
    spans: Sequence[tuple[datetime, datetime]]  # the parts whose validity changed: read back
    position: int  # the decision's position on readings.raw
    validation_id: int


async def relabel(
    pool: AsyncConnectionPool, r: Relabel, *, retry_max_s: float = 30.0
) -> list[tuple[datetime, float]]:
    """Label, read back and mark applied, in one transaction; retried while the database is
    unreachable (the stage waits, as the readings' writer does). Returns (measured_at, value)
    of the readings whose validity the decision changed."""
    delay = 0.2
    while True:
        try:
            async with pool.connection() as conn, conn.transaction():
                start, end = r.period
                where = {"source": r.source_id, "parameter": r.parameter}
                await conn.execute(_LABEL, where | {"label": r.label, "start": start, "end": end})
                found: list[tuple[datetime, float]] = []
                for a, b in r.spans:
                    cur = await conn.execute(
                        _VALID_BEFORE, where | {"start": a, "end": b, "position": r.position}
                    )
                    found += await cur.fetchall()
                await conn.execute(_APPLIED, (r.validation_id,))
            return found
        except Exception as exc:
            if not is_transient(exc):
                raise
            log.warning("manual validation %d: %s; retry in %.1fs", r.validation_id, exc, delay)
            await asyncio.sleep(delay)
            delay = min(delay * 2, retry_max_s)
