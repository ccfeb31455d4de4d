"""The console's view of the database for Prometheus: open and unacknowledged violations,
today's data completeness and the newest reading per source, refreshed every ``every_s``.

The worker sets what it sees in its own partitions; these come from the database, so they are
right across workers and restarts (the recording rules take the max per source).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

from psycopg_pool import AsyncConnectionPool

from core.metrics import Metrics
from thresholds.severity import Severity

log = logging.getLogger(__name__)

_OPEN = """
SELECT source_id, severity, count(*),
       coalesce(max(extract(epoch FROM %(now)s - started_at))
                FILTER (WHERE acknowledged_at IS NULL), 0)
FROM violations WHERE state = 'open' AND kind IN ('exceedance', 'outage')
GROUP BY 1, 2
"""

# Valid readings today (local day) against what each parameter's cadence promised so far.
_COMPLETENESS = """
WITH day AS (
    SELECT date_trunc('day', %(now)s AT TIME ZONE %(tz)s) AT TIME ZONE %(tz)s AS start
), expected AS (
    SELECT s.id AS source_id,
           sum(floor(extract(epoch FROM %(now)s - day.start)
                     / coalesce((p ->> 'interval_s')::int, s.interval_s))) AS n
    FROM sources s, day, jsonb_array_elements(s.spec -> 'parameters') p
    GROUP BY 1
), got AS (
    SELECT source_id, count(*) AS n, extract(epoch FROM max(measured_at)) AS last
    FROM readings, day WHERE measured_at >= day.start AND flag = 'valid'
    GROUP BY 1
)
SELECT e.source_id, CASE WHEN e.n > 0 THEN least(1.0, coalesce(g.n, 0) / e.n) ELSE 0 END,
       g.last
FROM expected e LEFT JOIN got g USING (source_id)
"""


async def refresh_once(
    pool: AsyncConnectionPool[Any], metrics: Metrics, tz: ZoneInfo, now: datetime | None = None
) -> None:
    """One refresh as of ``now`` (default: this moment): both queries and "today" read that
    one instant, so a refresh across local midnight is about one day (tests pin it)."""
    at = {"now": now or datetime.now(UTC), "tz": str(tz)}
    async with pool.connection() as conn:
        sources = [r[0] for r in await (await conn.execute("SELECT id FROM sources")).fetchall()]
        open_rows = await (await conn.execute(_OPEN, at)).fetchall()
        comp_rows = await (await conn.execute(_COMPLETENESS, at)).fetchall()
    counts = {(r[0], r[1]): int(r[2]) for r in open_rows}
    ages = {(r[0], r[1]): float(r[3]) for r in open_rows}
    bands = [s.value for s in Severity]
    metrics.set_violation_state(sources, counts, ages, bands)
    metrics.set_completeness({r[0]: float(r[1]) for r in comp_rows})
    metrics.set_last_readings({r[0]: float(r[2]) for r in comp_rows if r[2] is not None})


async def refresh_forever(
    pool: AsyncConnectionPool[Any], metrics: Metrics, tz: ZoneInfo, every_s: float = 15.0
) -> None:
    while True:
        try:
            await refresh_once(pool, metrics, tz)
        except Exception as exc:
            log.warning("metrics refresh failed: %s (at %s)", exc, datetime.now())
        await asyncio.sleep(every_s)


@contextlib.asynccontextmanager
async def refreshing(
    pool: AsyncConnectionPool[Any], metrics: Metrics, tz: ZoneInfo, every_s: float = 15.0
) -> AsyncIterator[None]:
    task = asyncio.create_task(refresh_forever(pool, metrics, tz, every_s))
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
