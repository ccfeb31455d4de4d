"""QCVN 05:2023 daily limits through the real pipeline (broker, worker, PostgreSQL, report).

QCVN 05:2023/BTNMT Bảng 1, PM2,5, trung bình 24 giờ: 45 µg/Nm³ from 01/01/2026; §1.3.8 defines the
24-h mean as one day-and-night ("một ngày đêm"): the local calendar day 00:00–24:00 (UTC+7). A day
whose mean is over the limit is one exceedance, however many rolling 24-h windows are over it.
"""

from __future__ import annotations

import asyncio
import math
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import psycopg
import pytest

from core.records import Channel, RawReading
from core.settings import Settings
from core.topics import RAW, bootstrap_servers, ensure_topics
from reports.common import ReportContext
from reports.compliance import build_compliance
from reports.periods import ReportPeriod
from stations.feed import KafkaFeed
from storage.migrate import migrate
from tests.conftest import WorkerProcess, wait_until

pytestmark = pytest.mark.integration

TZ = ZoneInfo("Asia/Ho_Chi_Minh")
STEP = timedelta(minutes=5)  # HD-KK-01 and HD-KK-02 report every 300 s
LOW, HIGH = 30.0, 120.0  # µg/Nm³; the limit is 45


def _pm(source: str, t: datetime, level: float, i: int) -> RawReading:
    # ±25 of deterministic noise: wide enough that QA/QC's spike filter (PM2.5: 5 σ) does not
    # take the 90 µg/Nm³ step for a spike.
    return RawReading(
        source_id=source,
        parameter="PM2.5",
        value=round(level + 25 * math.sin(i * 2.3), 3),
        unit="µg/Nm3",
        measured_at=t,
        status="00",
        received_at=datetime.now(UTC),
        channel=Channel.SIMULATOR.value,
        origin=f"test:{source}:{t:%Y%m%d%H%M}",
    )


def _series(source: str, first_day: datetime, days: int, high: tuple[datetime, datetime]):
    """Readings every 5 min over ``days`` local days from ``first_day``, HIGH inside ``high``,
    plus the next day's first reading, which closes the last day (at the level before it, so
    QA/QC does not take it for a spike)."""
    n = days * 24 * 12 + 1
    out = []
    for i in range(n):
        t = first_day + i * STEP
        level_at = min(t, first_day + (n - 2) * STEP)
        level = HIGH if high[0] <= level_at < high[1] else LOW
        out.append(_pm(source, t.astimezone(UTC), level, i))
    return out


def _send(settings: Settings, readings: list[RawReading]) -> None:
    async def go() -> None:
        async with KafkaFeed(bootstrap_servers(settings), settings.topic(RAW.name)) as feed:
            await feed.send(readings)

    asyncio.run(go())


def _db(url: str, sql: str, *args: object) -> list[tuple[Any, ...]]:
    with psycopg.connect(url) as conn:
        return conn.execute(sql, args).fetchall()


def test_daily_limit_counts_calendar_days(settings: Settings, tmp_path: Path) -> None:
    # The data are up to three days old: keep them inside the late horizon.
    settings = settings.model_copy(update={"late_horizon_hours": 120.0})
    assert settings.database_url
    migrate(settings.database_url)
    ensure_topics(settings)
    today = datetime.now(TZ).replace(hour=0, minute=0, second=0, microsecond=0)
    d2, d1 = today - timedelta(days=2), today - timedelta(days=1)
    # HD-KK-01: 30 hours over the limit from 18:00 on day d2 to the end of day d1. Day d2's mean
    # is (18 × 30 + 6 × 120) / 24 = 52.5 and day d1's 120: two exceedance days.
    a = _series("HD-KK-01", d2, 2, (d2 + timedelta(hours=18), d1 + timedelta(days=1)))
    # HD-KK-02: a 20-hour episode inside day d1 (02:00–22:00): mean 105, one exceedance day.
    b = _series("HD-KK-02", d1, 1, (d1 + timedelta(hours=2), d1 + timedelta(hours=22)))
    _send(settings, a + b)
    worker = WorkerProcess(settings, tmp_path / "worker.log")
    try:
        worker.start()

        def opened() -> dict[str, list[datetime]]:
            rows = _db(
                settings.database_url or "",
                "SELECT source_id, started_at FROM violations WHERE rule_id = %s"
                " AND kind = 'exceedance' ORDER BY started_at",
                "QCVN_05_2023:PM2.5:day",
            )
            out: dict[str, list[datetime]] = {}
            for src, started in rows:
                out.setdefault(src, []).append(started)
            return out

        def days_closed() -> bool:
            """All three days averaged and their exceedances stored as closed."""
            days = _db(
                settings.database_url or "",
                "SELECT count(*) FROM averages WHERE parameter = 'PM2.5' AND period = 'day'",
            )[0][0]
            closed = _db(
                settings.database_url or "",
                "SELECT count(*) FROM violations WHERE rule_id = %s AND kind = 'exceedance'"
                " AND state = 'closed'",
                "QCVN_05_2023:PM2.5:day",
            )[0][0]
            return days >= 3 and closed >= 3

        def state() -> str:
            averages = _db(
                settings.database_url or "",
                "SELECT source_id, period, count(*), count(*) FILTER (WHERE valid)"
                " FROM averages GROUP BY 1, 2 ORDER BY 1, 2",
            )
            return f"averages {averages}; opened {opened()}; log: {worker.log()[-3000:]}"

        wait_until(days_closed, 200, message=state)
    finally:
        worker.stop()

    got = opened()
    assert got["HD-KK-01"] == [d2.astimezone(UTC), d1.astimezone(UTC)], got
    assert got["HD-KK-02"] == [d1.astimezone(UTC)], got
    # each day's exceedance is complete in itself: closed, ending with its day
    rows = _db(
        settings.database_url,
        "SELECT source_id, state, started_at, ended_at FROM violations WHERE rule_id = %s"
        " AND kind = 'exceedance'",
        "QCVN_05_2023:PM2.5:day",
    )
    assert all(r[1] == "closed" and r[3] - r[2] == timedelta(days=1) for r in rows), rows
    # rolling 24-h means warned, but opened nothing of their own
    warnings = _db(
        settings.database_url,
        "SELECT count(*) FROM violations WHERE rule_id = %s AND kind <> 'exceedance'",
        "QCVN_05_2023:PM2.5:day",
    )[0][0]
    assert warnings >= 1

    # The compliance report counts two exceedance days for HD-KK-01, one for HD-KK-02.
    period = ReportPeriod("days", d2.date(), d1.date(), "Asia/Ho_Chi_Minh")
    ctx = ReportContext.from_settings(settings, lang="en")
    with psycopg.connect(settings.database_url) as conn:
        for source, days in (("HD-KK-01", 2), ("HD-KK-02", 1)):
            report = build_compliance(conn, ctx, source, period)
            section = next(s for s in report.sections if s.key == "sec.exceedances")
            keys = [c.key for c in section.columns]
            row = next(
                dict(zip(keys, r, strict=True))
                for r in section.rows
                if r[keys.index("rule_id")] == "QCVN_05_2023:PM2.5:day"
            )
            assert row["exceeding"] == days, (source, row)
