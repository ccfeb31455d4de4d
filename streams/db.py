"""The worker's database access: one async pool, opened on first use, shared by the writers."""

from __future__ import annotations

import asyncio

from psycopg_pool import AsyncConnectionPool


class Database:
    def __init__(self, conninfo: str, *, max_size: int = 4) -> None:
        self._pool = AsyncConnectionPool(
            conninfo,
            min_size=1,
            max_size=max_size,
            open=False,
            timeout=5.0,  # fail fast while the DB is down; the writer retries with backoff
            check=AsyncConnectionPool.check_connection,  # drop connections the outage broke
        )
        self._opened = False
        self._lock = asyncio.Lock()

    async def pool(self) -> AsyncConnectionPool:
        if not self._opened:
            async with self._lock:
                if not self._opened:
                    await self._pool.open(wait=False)
                    self._opened = True
        return self._pool

    async def close(self) -> None:
        if self._opened:
            await self._pool.close()
            self._opened = False
