"""Manual validation end to end (issue 21): the console, the real broker, worker and PostgreSQL.

HD-NT-01's COD is judged against QCVN 40:2011/BTNMT Bảng 1 row 5, column B, on the 1-hour mean:
Cmax = C × Kq × Kf = 150 × 1.1 × 0.9 = 148.5 mg/L (§2.1.1; Kq/Kf of the registry). One hour at
230 mg/L opens a violation. An operator then invalidates that hour (an analyser fault) on the
console: the worker labels its readings, withdraws them from the averages (the hour's mean
becomes empty, not valid), and the violation is retracted by a correction event, never
rewritten in place; the compliance report no longer counts it. Restoring the hour brings the
violation back.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import psycopg
import pytest
from aiokafka import AIOKafkaProducer

from console.app import create_app
from console.auth import create_user
from core.records import ManualValidation
from core.settings import Settings
from core.topics import RAW, bootstrap_servers, ensure_topics
from reports.common import ReportContext
from reports.compliance import build_compliance
from reports.periods import ReportPeriod
from storage.migrate import migrate
from tests.conftest import WorkerProcess, wait_until
from tests.integration.test_console_api import PASSWORD, login, new_client, running
from tests.integration.test_pipeline import _cod_hours, _db, _hour0, _reading, _send

pytestmark = pytest.mark.integration

RULE = "QCVN_40_2011:B:COD:1h"  # Bảng 1 row 5, column B: 148.5 mg/L with Kq 1.1, Kf 0.9


def _decide(settings: Settings, action: str, start: datetime, end: datetime) -> int:
    """An operator's decision through the console: stored, audited, produced to readings.raw."""

    async def go() -> int:
        app = create_app(settings, poll_interval_s=0.2)
        async with running(app), new_client(app) as c:
            csrf = await login(c, "operator")
            r = await c.post(
                "/api/sources/HD-NT-01/validations",
                json={
                    "parameter": "COD",
                    "start": start.isoformat(),
                    "end": end.isoformat(),
                    "action": action,
                    "reason": "analyser_fault",
                    "note": "COD analyser drift found at the site visit",
                },
                headers={"X-CSRF-Token": csrf},
            )
            assert r.status_code == 202, r.text
            return int(r.json()["id"])

    return asyncio.run(go())


def _violation(url: str) -> tuple[Any, ...] | None:
    rows = _db(
        url,
        "SELECT violation_id, state, retracted, last_seq FROM violations"
        " WHERE rule_id = %s AND kind = 'exceedance'",
        RULE,
    )
    assert len(rows) <= 1, rows
    return rows[0] if rows else None


def _report(settings: Settings, day: datetime) -> tuple[str, int]:
    """The compliance report's verdict (and its count of violations) and its count of
    exceeding 1-h means of COD."""
    local = day.astimezone(ZoneInfo("Asia/Ho_Chi_Minh")).date()
    period = ReportPeriod("days", local, local, "Asia/Ho_Chi_Minh")
    ctx = ReportContext.from_settings(settings, lang="en")
    with psycopg.connect(settings.database_url or "") as conn:
        report = build_compliance(conn, ctx, "HD-NT-01", period)
    rows = next(s for s in report.sections if s.key == "sec.summary").rows
    summary = {str(r[0]): r[1] for r in rows}
    verdict = f"{summary['Status']}: {summary['Violations']}"
    section = next(s for s in report.sections if s.key == "sec.exceedances")
    keys = [c.key for c in section.columns]
    row = next(
        dict(zip(keys, r, strict=True)) for r in section.rows if r[keys.index("rule_id")] == RULE
    )
    return verdict, int(row["exceeding"])


# fused stages (the default) and a hop per stage (the decision's hours travel on readings.valid)
@pytest.mark.parametrize("settings", [{}, {"fused_stages": False}], indirect=True)
def test_invalidating_the_hour_of_a_violation_retracts_it_and_restoring_brings_it_back(
    settings: Settings, tmp_path: Path
) -> None:
    url = settings.database_url or ""
    migrate(url)
    ensure_topics(settings)
    create_user(url, "operator", PASSWORD, "operator")
    t0 = _hour0(6)
    bad = t0 + 2 * timedelta(hours=1)
    # 230 / 148.5 = 1.55: one exceeding hour
    _send(settings, _cod_hours(t0, [100, 100, 230, 100, 100]))
    worker = WorkerProcess(settings, tmp_path / "worker.log")

    def hour_mean() -> tuple[Any, ...]:
        rows = _db(
            url,
            "SELECT value, samples, valid, revision FROM averages WHERE source_id = 'HD-NT-01'"
            " AND parameter = 'COD' AND period = '1h' AND window_start = %s",
            bad,
        )
        return rows[0] if rows else ()

    def state() -> str:
        return f"violation {_violation(url)}; mean {hour_mean()}; log {worker.log()[-3000:]}"

    try:
        worker.start()
        wait_until(lambda: (_violation(url) or ("", ""))[1] == "closed", 120, message=state)
        violation_id, _, retracted, _ = _violation(url) or ()
        assert not retracted and hour_mean()[2] is True
        assert _report(settings, bad) == ("Violated: 1", 1)

        # invalidated: the hour's readings are labelled, its mean is empty, the violation gone
        vid = _decide(settings, "invalidate", bad, bad + timedelta(hours=1))
        wait_until(lambda: (_violation(url) or ())[2] is True, 120, message=state)
        assert hour_mean()[:3] == (None, 0, False) and hour_mean()[3] >= 1
        labelled = _db(
            url,
            "SELECT count(*) FILTER (WHERE manual_id = %s), count(*) FILTER (WHERE manual_id IS"
            " NOT NULL) FROM readings WHERE source_id = 'HD-NT-01' AND parameter = 'COD'",
            vid,
        )[0]
        assert labelled == (12, 12)  # that hour's readings, and only those
        applied = _db(url, "SELECT applied_at FROM manual_validations WHERE id = %s", vid)
        assert applied[0][0] is not None
        events = _db(
            url,
            "SELECT event, payload->>'message' FROM violation_events WHERE violation_id = %s"
            " ORDER BY seq",
            violation_id,
        )
        assert [e for e, _ in events] == ["opened", "closed", "corrected"], events
        assert events[-1][1].startswith("retracted")  # a correction event, not a rewrite
        assert _report(settings, bad) == ("Complied: 0", 0)

        # a reading of that hour sent after the decision is labelled on arrival, not averaged
        resent = bad + timedelta(minutes=2, seconds=30)
        _send(settings, [_reading("HD-NT-01", resent, 100.0)])
        wait_until(
            lambda: (
                _db(url, "SELECT manual_id, flag FROM readings WHERE measured_at = %s", resent)
                == [(vid, "valid")]
            ),
            60,
            message=state,
        )
        assert hour_mean()[:3] == (None, 0, False)

        # restored: the same violation is back, its history going on
        _decide(settings, "restore", bad, bad + timedelta(hours=1))
        wait_until(lambda: (_violation(url) or ())[2] is False, 120, message=state)
        wait_until(lambda: (_violation(url) or ("", ""))[1] == "closed", 60, message=state)
        assert hour_mean()[1:3] == (13, True)  # the resent reading counts now
        assert (
            _db(
                url,
                "SELECT count(*) FROM readings WHERE source_id = 'HD-NT-01'"
                " AND manual_id IS NOT NULL",
            )[0][0]
            == 0
        )
        assert _report(settings, bad) == ("Violated: 1", 1)
        kinds = [
            e
            for (e,) in _db(
                url,
                "SELECT event FROM violation_events WHERE violation_id = %s ORDER BY seq",
                violation_id,
            )
        ]
        assert kinds[:3] == ["opened", "closed", "corrected"] and kinds[3] == "opened", kinds
    finally:
        worker.stop()


def test_a_decision_the_console_did_not_store_is_recorded_when_applied(
    settings: Settings, tmp_path: Path
) -> None:
    """The console answers 503 and rolls back if the broker's ack times out, yet the broker may
    have the message: the worker applies it and writes its row, so it is on record."""
    url = settings.database_url or ""
    migrate(url)
    ensure_topics(settings)
    start = _hour0(3)
    v = ManualValidation(
        424242, "HD-NT-01", None, start, start + timedelta(hours=1), "invalidate",
        "maintenance", "probe cleaned", "operator", datetime.now(UTC),
    )  # fmt: skip

    async def produce() -> None:
        producer = AIOKafkaProducer(bootstrap_servers=bootstrap_servers(settings))
        await producer.start()
        try:
            await producer.send_and_wait(settings.topic(RAW.name), v.dumps(), key=b"HD-NT-01")
        finally:
            await producer.stop()

    asyncio.run(produce())
    worker = WorkerProcess(settings, tmp_path / "worker.log")

    def row() -> list[tuple[Any, ...]]:
        return _db(
            url,
            "SELECT source_id, parameter, action, note, by_user, applied_at IS NOT NULL"
            " FROM manual_validations WHERE id = 424242",
        )

    try:
        worker.start()
        wait_until(lambda: bool(row()), 90, message=lambda: worker.log()[-3000:])
    finally:
        worker.stop()
    assert row() == [("HD-NT-01", None, "invalidate", "probe cleaned", "operator", True)]
