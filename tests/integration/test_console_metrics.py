"""The console's database-backed gauges (open/unacknowledged violations, completeness)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import psycopg
import pytest
from prometheus_client import CollectorRegistry
from psycopg_pool import AsyncConnectionPool

from console.metrics_refresh import refresh_once
from core.metrics import Metrics
from stations.registry import load_registry
from storage.migrate import migrate
from storage.sources import sync_sources

pytestmark = pytest.mark.integration
TZ = ZoneInfo("Asia/Ho_Chi_Minh")


def test_open_unacknowledged_and_completeness_from_the_database(database_url: str) -> None:
    migrate(database_url)
    sync_sources(database_url, load_registry())
    # the refresh's "now", pinned to yesterday's local noon: today's expected samples are many
    # and a run across local midnight (17:00 UTC) is still about one day
    noon = (datetime.now(TZ) - timedelta(days=1)).replace(hour=12, minute=0, second=0)
    now = noon.astimezone(UTC).replace(microsecond=0)
    day_start = now.astimezone(TZ).replace(hour=0, minute=0, second=0, microsecond=0)
    with psycopg.connect(database_url) as conn:
        for vid, sev, ack in (("v1", "2-3", None), ("v2", "2-3", now), ("v3", "<1.1", None)):
            conn.execute(
                "INSERT INTO violations (violation_id, kind, source_id, parameter, rule_id,"
                " period, state, started_at, last_at, severity, last_seq, acknowledged_at)"
                " VALUES (%s, 'exceedance', 'HD-NT-01', 'COD', 'r', '1h', 'open', %s, %s, %s,"
                " 0, %s)",
                (vid, now - timedelta(hours=2), now, sev, ack),
            )
        # HD-NM-01: one valid COD reading today; its 8+ parameters promise many more.
        conn.execute(
            "INSERT INTO readings VALUES ('HD-NM-01', 'COD', %s, 10, 'mg/L', '00', 'valid', 10,"
            " 'mg/L', %s, 'sim', 'x')",
            (max(day_start.astimezone(UTC), now - timedelta(minutes=1)), now),
        )
    metrics = Metrics(CollectorRegistry())

    async def go() -> None:
        async with AsyncConnectionPool(database_url, min_size=1, max_size=1, open=False) as pool:
            await refresh_once(pool, metrics, TZ, now)

    asyncio.run(go())
    reg = metrics.registry
    open_23 = reg.get_sample_value(
        "quantrac_violations_open", {"source_id": "HD-NT-01", "severity": "2-3"}
    )
    assert open_23 == 2
    assert (
        reg.get_sample_value(
            "quantrac_violations_open", {"source_id": "HD-KK-01", "severity": "2-3"}
        )
        == 0
    )
    age = reg.get_sample_value(
        "quantrac_violations_unacknowledged_oldest_age_seconds",
        {"source_id": "HD-NT-01", "severity": "2-3"},
    )
    assert age == pytest.approx(7200, abs=120)  # v1 is unacknowledged, started 2 h ago
    comp = reg.get_sample_value(
        "quantrac_source_completeness_today_ratio", {"source_id": "HD-NM-01"}
    )
    assert comp is not None and 0 < comp <= 1
    assert (
        reg.get_sample_value("quantrac_source_completeness_today_ratio", {"source_id": "HD-NT-01"})
        == 0
    )
