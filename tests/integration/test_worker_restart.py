"""The first vertical slice survives a SIGKILL: N readings in, exactly N rows out."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
import pytest

from core.settings import Settings
from core.topics import RAW, bootstrap_servers, ensure_topics
from stations.feed import KafkaFeed
from stations.registry import load_registry
from stations.sim_registry import series_for
from stations.simulator import Series, readings
from storage.migrate import migrate
from tests.conftest import WorkerProcess, wait_until

pytestmark = pytest.mark.integration


def _series(n_sources: int) -> list[Series]:
    """Four parameters of each of the first registered sources, every minute."""
    chosen: list[Series] = []
    per_source: dict[str, int] = {}
    for s in series_for(load_registry()):
        if s.source_id not in per_source and len(per_source) == n_sources:
            continue
        if per_source.get(s.source_id, 0) < 4:
            per_source[s.source_id] = per_source.get(s.source_id, 0) + 1
            chosen.append(replace(s, interval_s=60))
    return chosen


def _count(url: str) -> int:
    with psycopg.connect(url) as conn:
        row = conn.execute("SELECT count(*) FROM readings").fetchone()
        assert row is not None
        return int(row[0])


@pytest.fixture
def worker(settings: Settings, tmp_path: Path) -> Iterator[WorkerProcess]:
    """Batches of at most 100 messages, so the kill lands between two of them (a worker on
    a backlog merges its takes up to ``stream_batch``: the whole backlog here)."""
    w = WorkerProcess(settings.model_copy(update={"stream_batch": 100}), tmp_path / "w.log")
    yield w
    w.stop()


def test_sigkill_midway_loses_and_duplicates_nothing(
    settings: Settings, worker: WorkerProcess
) -> None:
    url = settings.database_url
    assert url
    migrate(url)
    ensure_topics(settings)
    start = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) - timedelta(hours=4)
    batch = list(readings(_series(10), start, start + timedelta(hours=3)))  # 40 series × 180
    n = len(batch)
    assert n == 40 * 180

    async def produce() -> None:
        async with KafkaFeed(bootstrap_servers(settings), settings.topic(RAW.name)) as feed:
            await feed.send(batch)

    asyncio.run(produce())
    worker.start()
    wait_until(lambda: _count(url) > 0, 90, message=worker.log)
    worker.kill()
    at_kill = _count(url)
    assert 0 < at_kill < n, f"the kill must land mid-stream (had {at_kill} of {n})"

    worker.start()
    wait_until(lambda: _count(url) >= n, 120, message=worker.log)
    # Let a replay of uncommitted offsets finish: it must add nothing.
    asyncio.run(asyncio.sleep(3))
    assert _count(url) == n
    with psycopg.connect(url) as conn:
        per_series = conn.execute(
            "SELECT count(DISTINCT (source_id, parameter)), min(c), max(c) FROM "
            "(SELECT source_id, parameter, count(*) c FROM readings GROUP BY 1, 2) s"
        ).fetchone()
    assert per_series == (40, 180, 180)
