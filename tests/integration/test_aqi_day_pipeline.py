"""The daily VN_AQI the worker stores equals `quantrac aqi --daily` on the stored hourly means.

Decision 1459/QĐ-TCMT §2.2.2 a: the day's values are labelled 1:00 … 0:00 — hour ends — so the
day is the local calendar day, hours starting 00:00 … 23:00 (docs/regulations.md §10 item 3).
One day of 5-minute readings of the six AQI pollutants goes through the real pipeline (broker,
worker, PostgreSQL) for the air station HD-KK-01; a reading in the next day's first hour closes
the day's last hour. The ``aqi`` table (written by ``persist_aqi``) must then hold one daily row,
for that day (window_start 00:00 local), equal to what the CLI prints for a CSV of the stored
final 1-h means — and no daily row for the day before or after, which have no data.
"""

from __future__ import annotations

import csv
import io
import math
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest

from core.records import Channel, RawReading
from core.settings import Settings
from core.topics import ensure_topics
from storage.migrate import migrate
from tests.conftest import ROOT, WorkerProcess, wait_until
from tests.integration.drain import wait_drained
from tests.integration.test_pipeline import _send
from thresholds.averaging import LOCAL_TZ

pytestmark = pytest.mark.integration

STATION = "HD-KK-01"  # ambient air, every 300 s (stations/registry.yaml)
STEP = timedelta(minutes=5)
POLLUTANTS = ("SO2", "NO2", "CO", "O3", "PM10", "PM2.5")
# level, diurnal amplitude (µg/m³): smooth enough for the Hampel spike rule, never flat
LEVELS = {
    "SO2": (20, 8),
    "NO2": (45, 20),
    "CO": (1500, 500),
    "O3": (70, 45),
    "PM10": (70, 25),
    "PM2.5": (40, 15),
}
# hours (local) with no readings: PM10 keeps exactly 18 of 24 hours, O3 22
GAPS = {"PM10": range(3, 9), "O3": range(0, 2)}


def _value(parameter: str, i: int) -> float:
    level, amp = LEVELS[parameter]
    return round(level + amp * math.sin(2 * math.pi * i / 288) + 1.5 * math.sin(i * 2.3), 2)


def _reading(parameter: str, t: datetime, value: float) -> RawReading:
    return RawReading(
        source_id=STATION,
        parameter=parameter,
        value=value,
        unit="µg/Nm3",
        measured_at=t,
        status="00",
        received_at=datetime.now(UTC),
        channel=Channel.SIMULATOR.value,
        origin=f"test:{t:%Y%m%d%H%M}",
    )


def _db(url: str, sql: str, *args: object) -> list[tuple[Any, ...]]:
    with psycopg.connect(url) as conn:
        return conn.execute(sql, args).fetchall()


def _stored_hourly_csv(url: str, path: Path) -> None:
    """The stored final 1-h means of the station as `quantrac aqi`'s input (time = hour start)."""
    rows = _db(
        url,
        "SELECT window_start, parameter, value FROM averages WHERE source_id = %s"
        " AND period = '1h' AND valid AND parameter = ANY(%s) ORDER BY window_start",
        STATION,
        list(POLLUTANTS),
    )
    hours: dict[datetime, dict[str, float]] = {}
    for start, parameter, value in rows:
        hours.setdefault(start, {})[parameter] = value
    with path.open("w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["time", *POLLUTANTS])
        for start in sorted(hours):
            cells = [hours[start].get(p) for p in POLLUTANTS]
            w.writerow(
                [start.astimezone(LOCAL_TZ).isoformat(), *("" if c is None else c for c in cells)]
            )


def test_stored_daily_aqi_equals_the_cli_on_the_stored_hourly_means(
    settings: Settings, worker: WorkerProcess, tmp_path: Path
) -> None:
    assert settings.database_url
    url = settings.database_url
    migrate(url)
    ensure_topics(settings)
    today = datetime.now(LOCAL_TZ).date()
    day = today - timedelta(days=1)  # within the 72-h late horizon, and over
    first = datetime(day.year, day.month, day.day, tzinfo=LOCAL_TZ)
    readings = [
        _reading(p, first + i * STEP, _value(p, i))
        for i in range(288)
        for p in POLLUTANTS
        if (i // 12) not in GAPS.get(p, ())
    ]
    # one reading per pollutant at 00:00 of the next day closes the day's 23:00 hour
    readings += [_reading(p, first + 288 * STEP, _value(p, 288)) for p in POLLUTANTS]
    _send(settings, readings)
    worker.start()

    def daily() -> list[tuple[Any, ...]]:
        return _db(
            url,
            "SELECT window_start, aqi, category, dominant, sub_indices FROM aqi"
            " WHERE source_id = %s AND kind = 'daily' ORDER BY window_start",
            STATION,
        )

    def hours_stored() -> int:
        return len(
            _db(url, "SELECT 1 FROM averages WHERE source_id = %s AND period = '1h'", STATION)
        )

    # every pollutant's 24 hours, gaps excepted, are final and stored, and a daily row exists
    n_hours = sum(24 - len(GAPS.get(p, ())) for p in POLLUTANTS)
    wait_until(lambda: hours_stored() >= n_hours and bool(daily()), 240, message=worker.log)
    wait_drained(settings, 120, worker.log)

    stored = daily()
    assert [r[0] for r in stored] == [first], "one daily row, at 00:00 local of the day"
    _, aqi, category, dominant, subs = stored[0]
    assert aqi is not None and dominant is not None

    csv_path = tmp_path / "hourly.csv"
    _stored_hourly_csv(url, csv_path)
    done = subprocess.run(
        [sys.executable, str(ROOT / "quantrac_cli.py"), "aqi", "--daily", str(csv_path)],
        capture_output=True,
        text=True,
        check=True,
        cwd=ROOT,
    )
    assert "Decision 1459 states none" in done.stderr  # the completeness header, on stderr
    rows = list(csv.DictReader(io.StringIO(done.stdout)))
    assert [r["date"] for r in rows] == [day.isoformat()]  # no row for the day before or after
    row = rows[0]
    assert row["hours"] == "24"
    assert row["AQI"] == str(aqi)
    assert row["category"] == category
    assert {p: row[f"AQI_{p}"] for p in POLLUTANTS} == {
        p: "" if subs.get(p) is None else str(subs[p]) for p in POLLUTANTS
    }
    assert row["PM10_24h"] != ""  # PM10 has exactly 18 of 24 hours: valid
