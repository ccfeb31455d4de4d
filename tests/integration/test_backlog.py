"""A station's backlog after an outage is judged, not just stored (issue 18).

Dataloggers keep weeks of data and send it again once the line is back. Five days of a station's
readings arrive at once, the oldest 5 days old by the wall clock, with the production late
horizon (72 h). Late is event time behind the series' newest reading (thresholds/qc.py), so the
backlog, arriving in order, gets the averages and violations it would have had on time: every
day's mean, and the daily exceedance of QCVN 05:2023 Bảng 1 (PM2,5, 24 h: 45 µg/Nm³, §1.3.8
calendar day), marked as found late.
"""

from __future__ import annotations

import statistics
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from core.settings import Settings
from core.topics import ensure_topics
from storage.migrate import migrate
from tests.conftest import WorkerProcess, wait_until
from tests.integration.test_daily_exceedance import HIGH, TZ, _db, _send, _series

pytestmark = pytest.mark.integration

RULE = "QCVN_05_2023:PM2.5:day"


def test_a_five_day_backlog_gets_its_averages_and_violations(
    settings: Settings, tmp_path: Path
) -> None:
    assert settings.late_horizon_hours == 72.0  # the production default
    assert settings.database_url
    migrate(settings.database_url)
    ensure_topics(settings)
    today = datetime.now(TZ).replace(hour=0, minute=0, second=0, microsecond=0)
    first = today - timedelta(days=5)
    high_day = today - timedelta(days=4)
    readings = _series("HD-KK-01", first, 5, (high_day, high_day + timedelta(days=1)))
    _send(settings, readings)
    worker = WorkerProcess(settings, tmp_path / "worker.log")

    def days() -> dict[datetime, tuple[float, bool]]:
        rows = _db(
            settings.database_url or "",
            "SELECT window_start, value, valid FROM averages WHERE source_id = 'HD-KK-01'"
            " AND parameter = 'PM2.5' AND period = 'day' ORDER BY window_start",
        )
        return {start: (value, valid) for start, value, valid in rows}

    def violations() -> list[tuple[datetime, str, bool]]:
        return [
            (r[0], r[1], r[2])
            for r in _db(
                settings.database_url or "",
                "SELECT started_at, state, found_late FROM violations"
                " WHERE rule_id = %s AND kind = 'exceedance'",
                RULE,
            )
        ]

    try:
        worker.start()
        wait_until(
            lambda: len(days()) >= 5 and any(v[1] == "closed" for v in violations()),
            240,
            message=lambda: f"days {days()}; violations {violations()}; {worker.log()[-3000:]}",
        )
    finally:
        worker.stop()

    # every day averaged, valid, the mean of its hourly means of the readings QA/QC passed:
    # what the windows give for data on time (the hour's mean of its valid readings)
    valid = _db(
        settings.database_url,
        "SELECT measured_at, value FROM readings WHERE source_id = 'HD-KK-01'"
        " AND parameter = 'PM2.5' AND flag = 'valid'",
    )
    assert len(valid) > 0.95 * len(readings)  # the backlog is judged, not flagged late
    expected = {}
    for d in range(5):
        start = first + timedelta(days=d)
        hours = [start + timedelta(hours=h) for h in range(24)]
        means = [
            statistics.fmean(v for t, v in valid if h <= t < h + timedelta(hours=1)) for h in hours
        ]
        expected[start.astimezone(UTC)] = statistics.fmean(means)
    got = days()
    assert sorted(got) == sorted(expected), got
    for start, mean in expected.items():
        value, is_valid = got[start]
        assert is_valid and value == pytest.approx(mean, rel=1e-9), (start, value, mean)
    assert got[high_day.astimezone(UTC)][0] > HIGH - 10  # the exceeding day
    # one exceedance, for the high day, closed by the next day, and it says it was found late
    assert violations() == [(high_day.astimezone(UTC), "closed", True)]
    late = _db(
        settings.database_url,
        "SELECT count(*) FROM readings WHERE source_id = 'HD-KK-01' AND flag = 'late'",
    )[0][0]
    assert late == 0
