"""Surface water through the real pipeline (issue 15 part 3): one local day of a station's
readings → a stored daily QCVN 08:2023 class and VN_WQI, no QCVN 08 violation, and the console
board and the station quality report show them.

Expected class (QCVN 08:2023 classification table, docs/regulations.md §4.1 [S28]): pH 7.3 → A
(6.5–8.5), COD 18 → C (≤ 20, not ≤ 15), TN 1.0 → B (≤ 1.5), TP 0.2 → B (≤ 0.3); DO 5.8 (class A
cell hidden) and TSS 30 (class B cell hidden) are not classified. Worst: C, worse than HD-NM-01's
target class B (stations/registry.yaml) → a water quality alert.
Expected VN_WQI (Decision 1460, docs/regulations.md §4.3, UNVERIFIED tables): pH 100; DO 5.8 mg/L
at 25 °C = 70.9 % saturation → 70.9; COD 18 → 70; NH4 0.2 → 100; 1 × mean(70.9, 70, 100) = 80.
"""

from __future__ import annotations

import asyncio
import csv
import io
import math
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest

from console.app import create_app
from console.auth import create_user
from console.bands import stylesheet as band_stylesheet
from core.records import Channel, RawReading
from core.settings import Settings
from core.topics import RAW, bootstrap_servers, ensure_topics
from reports.common import ReportContext
from reports.i18n import Lang
from reports.model import ReportKind
from reports.service import Format, ReportRequest, write_report
from stations.feed import KafkaFeed
from stations.registry import load_registry
from storage.migrate import migrate
from storage.writer import WATER_QUALITY_DAYS
from tests.conftest import WorkerProcess, wait_until
from thresholds.catalogue import load_catalogue
from thresholds.water_quality import vn_wqi

pytestmark = pytest.mark.integration

STATION = "HD-NM-01"
STEP = timedelta(minutes=5)
# parameter: (unit, level, amplitude of the deterministic noise)
LEVELS = {
    "pH": ("-", 7.3, 0.05),
    "DO": ("mg/L", 5.8, 0.1),
    "Temp": ("°C", 25.0, 0.2),
    "COD": ("mg/L", 18.0, 0.5),
    "TSS": ("mg/L", 30.0, 1.0),
    "NH4": ("mg/L", 0.2, 0.01),
    "EC": ("µS/cm", 350.0, 5.0),
    "Turbidity": ("NTU", 25.0, 1.0),
    "TN": ("mg/L", 1.0, 0.05),
    "TP": ("mg/L", 0.2, 0.01),
}


def _readings(t0: datetime) -> list[RawReading]:
    out = []
    for i in range(24 * 12 + 1):  # a local day plus the next day's first reading (closes it)
        t = t0 + i * STEP
        for k, (parameter, (unit, level, amp)) in enumerate(LEVELS.items()):
            out.append(
                RawReading(
                    source_id=STATION,
                    parameter=parameter,
                    value=round(level + amp * math.sin(i * 2.3 + k), 4),
                    unit=unit,
                    measured_at=t,
                    status="00",
                    received_at=datetime.now(UTC),
                    channel=Channel.SIMULATOR.value,
                    origin=f"test:{t:%Y%m%d%H%M}",
                )
            )
    return out


def _db(url: str, sql: str, *args: object) -> list[tuple[Any, ...]]:
    with psycopg.connect(url) as conn:
        return conn.execute(sql, args).fetchall()


async def _board(url: str, tmp: Path) -> tuple[list[dict[str, Any]], str]:
    create_user(url, "wq-op", "correct horse battery", "operator")
    app = create_app(Settings(database_url=url, data_dir=tmp), poll_interval_s=0.2)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app, client=("10.0.0.7", 5555)),
            base_url="http://testserver",
        ) as client,
    ):
        await client.get("/login")
        token = client.cookies.get("qt_login_csrf")
        r = await client.post(
            "/login",
            data={"username": "wq-op", "password": "correct horse battery", "csrf_token": token},
        )
        assert r.status_code == 303, r.text
        board = await client.get("/api/board")
        page = await client.get("/board?lang=en")
        assert board.status_code == 200 and page.status_code == 200
        return board.json(), page.text


def test_surface_water_day_is_classified_not_violated(
    settings: Settings, worker: WorkerProcess, tmp_path: Path
) -> None:
    url = settings.database_url
    assert url
    migrate(url)
    ensure_topics(settings)
    now = datetime.now(UTC)
    # one local day (00:00–24:00 Asia/Ho_Chi_Minh = 17:00–17:00 UTC) that ended ≥ 2 h ago
    t0 = (now - timedelta(hours=26)).replace(hour=17, minute=0, second=0, microsecond=0)
    if t0 > now - timedelta(hours=26):
        t0 -= timedelta(days=1)

    async def send() -> None:
        async with KafkaFeed(bootstrap_servers(settings), settings.topic(RAW.name)) as feed:
            await feed.send(_readings(t0))

    asyncio.run(send())
    worker.start()

    def stored() -> list[tuple[Any, ...]]:
        return _db(
            url,
            "SELECT day, water_class, target_class, alert, wqi, wqi_meets_minimum, means,"
            " classes, skipped, revision FROM water_quality_days WHERE source_id = %s",
            STATION,
        )

    # every parameter's day mean has been applied (one revision each)
    wait_until(lambda: any(r[9] >= len(LEVELS) for r in stored()), 300, message=worker.log)
    rows = stored()
    assert len(rows) == 1, rows
    day, water_class, target, alert, wqi, meets, means, classes, skipped, _ = rows[0]
    local_day = (t0 + timedelta(hours=7)).date()
    assert day == local_day
    assert set(means) == set(LEVELS)
    assert classes == {"pH": "A", "COD": "C", "TN": "B", "TP": "B"}
    assert set(skipped) == {"DO", "TSS"}
    assert (water_class, target, alert) == ("C", "B", True)
    assert wqi == vn_wqi(means).value and 78 <= wqi <= 82  # ≈ 80 (module docstring)
    assert meets is False  # groups I and IV only

    # no source violation from QCVN 08 (nor any exceedance or warning for the station)
    assert _db(url, "SELECT violation_id FROM violations WHERE rule_id LIKE 'QCVN_08%%'") == []
    assert (
        _db(
            url,
            "SELECT violation_id FROM violations WHERE source_id = %s AND kind <> 'outage'",
            STATION,
        )
        == []
    )

    # replay: writing the stored rows again (what a re-delivered batch does) changes nothing
    cols = ", ".join(f'"{c}"' for c in WATER_QUALITY_DAYS.columns)
    with psycopg.connect(url) as conn:
        cur = conn.execute(
            f"INSERT INTO water_quality_days ({cols}) SELECT {cols} FROM water_quality_days "
            + WATER_QUALITY_DAYS.on_conflict
        )
        assert cur.rowcount == 0

    # the console board
    board, page = asyncio.run(_board(url, tmp_path))
    row = next(r for r in board if r["source_id"] == STATION)
    assert (row["water_class"], row["target_class"], row["wqi"], row["water_alert"]) == (
        "C",
        "B",
        wqi,
        True,
    )
    assert "Surface water quality alerts (1)" in page
    assert f'<span class="wqi wqi-76">{wqi}</span>' in page  # 76–90 green (/bands.css)
    assert ".wqi-76 { background: #00e400; }" in band_stylesheet()

    # the station quality report
    buf = io.BytesIO()
    ctx = ReportContext(load_registry(), load_catalogue(), 0.75, "Asia/Ho_Chi_Minh", Lang.EN, now)
    req = ReportRequest(
        ReportKind.AIR_QUALITY, Format.CSV, Lang.EN, f"{local_day:%Y-%m}", (STATION,)
    )
    with psycopg.connect(url) as conn:
        write_report(conn, ctx, req, buf)
    text = buf.getvalue().decode("utf-8-sig")
    assert "Daily water class (QCVN 08:2023) and VN_WQI" in text
    rows_csv = list(csv.reader(io.StringIO(text)))
    line = next(r for r in rows_csv if r and r[0] == local_day.isoformat())
    assert line[1:5] == ["C", "B", "Yes", str(wqi)], line
