"""Two workers in one group on the real broker and PostgreSQL: the keyed topics' partitions are
dealt by the readings their sources send (streams/balance.py), not by count, and together the
workers store every reading once.

With the production partition count (8) the registry's sources hash to partitions carrying 4.8 %
to 18.6 % of the readings; Faust's count-balanced split gave one worker 53.7 %. Dealt by load the
heavier worker carries 50.2 % (the best split of these 8 loads, tests/unit/test_balance.py).
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
import pytest
from prometheus_client.parser import text_string_to_metric_families

from core.settings import Settings
from core.topics import RAW, bootstrap_servers, ensure_topics
from stations.feed import KafkaFeed
from stations.registry import load_registry
from stations.sim_registry import series_for
from stations.simulator import readings
from storage.migrate import migrate
from streams.embedded import free_port
from tests.conftest import WorkerProcess, wait_until, worker_metrics

pytestmark = pytest.mark.integration


def assigned(settings: Settings) -> tuple[float, float] | None:
    """(share, partitions) a worker reports for its readings.raw actives; None before any."""
    text = worker_metrics(settings)
    if text is None:
        return None
    values = {
        s.name: s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
        if s.name in ("quantrac_worker_readings_share", "quantrac_worker_active_partitions")
    }
    if values.get("quantrac_worker_active_partitions", 0) == 0:
        return None
    return values["quantrac_worker_readings_share"], values["quantrac_worker_active_partitions"]


@pytest.mark.parametrize("settings", [{"topic_partitions": 8}], indirect=True)
def test_two_workers_split_the_readings_by_load_and_store_each_once(
    settings: Settings, tmp_path: Path
) -> None:
    assert settings.database_url
    migrate(settings.database_url)
    ensure_topics(settings)
    second = settings.model_copy(update={"web_port": free_port()})
    workers = [
        WorkerProcess(settings, tmp_path / "w1.log"),
        WorkerProcess(second, tmp_path / "w2.log"),
    ]
    try:
        for w in workers:
            w.start()

        def logs() -> str:
            return "\n---\n".join(w.log() for w in workers)

        def split() -> list[tuple[float, float]] | None:
            got = [assigned(w.settings) for w in workers]
            if any(g is None for g in got):
                return None
            return [g for g in got if g is not None]

        # both report, and their shares are of one generation (they sum to the whole)
        wait_until(
            lambda: (s := split()) is not None and abs(sum(x for x, _ in s) - 1) < 1e-6,
            120,
            message=logs,
        )
        shares = split()
        assert shares is not None
        assert sum(n for _, n in shares) == 8
        assert max(x for x, _ in shares) < 0.505, shares  # count-balanced: 0.537
        for w in workers:
            assert "% of the registry's readings" in w.log(None)

        # an hour of every registered series, sent after both joined
        series = series_for(load_registry())
        start = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) - timedelta(hours=3)
        sent = list(readings(series, start, start + timedelta(hours=1), seed=3))

        async def send() -> None:
            async with KafkaFeed(bootstrap_servers(settings), settings.topic(RAW.name)) as feed:
                await feed.send(sent)

        asyncio.run(send())

        def stored() -> tuple[int, int]:
            with psycopg.connect(settings.database_url or "") as conn:
                row = conn.execute(
                    "SELECT count(*), count(DISTINCT (source_id, parameter, measured_at))"
                    " FROM readings"
                ).fetchone()
            assert row is not None
            return int(row[0]), int(row[1])

        wait_until(lambda: stored()[0] >= len(sent), 180, message=logs)
        assert stored() == (len(sent), len(sent)), "each reading stored once"
        assert all(w.alive() for w in workers), logs()
    finally:
        for w in workers:
            w.stop()
