"""Reference-O2 correction of stack limits through the real pipeline (issue 19).

C_ref = C_measured × (21 − O2_ref) / (21 − O2_measured) (thresholds/data/reference_o2.yaml
`formula`), O2_ref of a coal-fired thermal power stack 6 % (QCVN 22:2009/BTNMT §2, "O2 dư";
shipped verified: false), the stack's own O2 average of the same hour as O2_measured. Three stacks
of Phả Lại (registry: sector "nhiệt điện than", fuel coal) report the same hours:

- HD-KT-01: SO2 at 0.67 × its permit limit, diluted to O2 13.5 %: corrected (21 − 6) / (21 − 13.5)
  = 2 × measured = 1.33 × the limit → one violation, on the corrected value;
- HD-KT-02: the same SO2 at O2 = 6 % (the reference): corrected = measured → no violation;
- HD-KT-03: SO2 above the limit as measured, but the stack's O2 reads 20.96 % (ambient air):
  ≥ 20.9 %, the hours are not judged → no violation, and the report says why.

The evidence package of HD-KT-01's violation shows the measured value, the O2 and the corrected
value of every hour.
"""

from __future__ import annotations

import asyncio
import csv
import io
import json
import math
import zipfile
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
from reports.evidence import build_evidence
from reports.i18n import Lang
from reports.periods import ReportPeriod
from stations.feed import KafkaFeed
from stations.registry import load_registry
from storage.migrate import migrate
from tests.conftest import WorkerProcess, wait_until
from tests.integration.drain import wait_drained
from thresholds.catalogue import load_catalogue
from thresholds.limits import resolve_limits
from thresholds.reference_o2 import settings_of

pytestmark = pytest.mark.integration

TZ = ZoneInfo("Asia/Ho_Chi_Minh")
STEP = timedelta(minutes=1)  # the Phả Lại stacks report every 60 s
HOURS = 3
RULE = "QCVN_19_2009:B:SO2:1h"
DILUTED, AMBIENT = 13.5, 20.96  # % O2


def _reading(source: str, parameter: str, unit: str, t: datetime, value: float) -> RawReading:
    return RawReading(
        source_id=source,
        parameter=parameter,
        value=round(value, 3),
        unit=unit,
        measured_at=t,
        status="00",
        received_at=datetime.now(UTC),
        channel=Channel.SIMULATOR.value,
        origin=f"test:{source}:{t:%Y%m%d%H%M}",
    )


def _series(source: str, start: datetime, so2: float, o2: float) -> list[RawReading]:
    """SO2 and O2 every minute for HOURS hours from ``start``, plus the next hour's first
    reading (it closes the last hour). Small deterministic noise: no flatline, no spike."""
    out = []
    for i in range(HOURS * 60 + 1):
        t = start + i * STEP
        out.append(_reading(source, "SO2", "mg/Nm3", t, so2 + 10 * math.sin(i * 2.3)))
        out.append(_reading(source, "O2", "%", t, o2 + 0.02 * math.sin(i * 1.7)))
    return out


def _send(settings: Settings, readings: list[RawReading]) -> None:
    async def go() -> None:
        async with KafkaFeed(bootstrap_servers(settings), settings.topic(RAW.name)) as feed:
            await feed.send(readings)

    asyncio.run(go())


def _db(url: str, sql: str, *args: object) -> list[tuple[Any, ...]]:
    with psycopg.connect(url) as conn:
        return conn.execute(sql, args).fetchall()


def test_stack_judged_at_reference_o2(settings: Settings, tmp_path: Path) -> None:
    assert settings.database_url
    url = settings.database_url
    migrate(url)
    ensure_topics(settings)
    registry, catalogue = load_registry(), load_catalogue()
    start = (datetime.now(UTC) - timedelta(hours=HOURS + 2)).replace(
        minute=0, second=0, microsecond=0
    )
    day = start.astimezone(TZ).date()
    source = registry.get("HD-KT-01")
    limit = next(lim for lim in resolve_limits(source, catalogue, day) if lim.rule_id == RULE)
    o2set = settings_of(registry, source)
    assert limit.max is not None and o2set is not None and o2set.reference is not None
    ref = o2set.reference.o2_percent
    assert ref == 6.0  # QCVN 22:2009 coal (thresholds/data/reference_o2.yaml)
    # measured 2/3 of the limit: compliant as measured, 4/3 of it at the reference O2
    measured = round(limit.max * 2 / 3)
    factor = (21 - ref) / (21 - DILUTED)
    assert factor == 2.0
    readings = (
        _series("HD-KT-01", start, measured, DILUTED)
        + _series("HD-KT-02", start, measured, ref)
        + _series("HD-KT-03", start, limit.max * 1.2, AMBIENT)
    )
    _send(settings, readings)
    worker = WorkerProcess(settings, tmp_path / "worker.log")
    try:
        worker.start()

        def hours_stored() -> bool:
            rows = _db(
                url,
                "SELECT source_id, count(*) FROM averages WHERE parameter IN ('SO2', 'O2')"
                " AND period = '1h' AND valid GROUP BY source_id",
            )
            return {r[0]: r[1] for r in rows} == {
                s: 2 * HOURS for s in ("HD-KT-01", "HD-KT-02", "HD-KT-03")
            }

        def state() -> str:
            violations = _db(url, "SELECT violation_id, kind, value FROM violations")
            return f"violations {violations}; log: {worker.log()[-3000:]}"

        wait_until(hours_stored, 200, message=state)
        wait_drained(settings, 120, worker.log)
    finally:
        worker.stop()
    _assert_outcome(url, start, measured, limit.max, ref)


def _assert_outcome(url: str, start: datetime, measured: float, limit: float, ref: float) -> None:
    """One violation (HD-KT-01), on the corrected value; evidence and report show why."""
    registry, catalogue = load_registry(), load_catalogue()
    rows = _db(
        url,
        "SELECT source_id, violation_id, peak_value, peak_measured_value, peak_o2_measured,"
        " o2_reference, correction_basis FROM violations WHERE kind = 'exceedance'"
        " ORDER BY source_id",
    )
    by_source: dict[str, list[tuple[Any, ...]]] = {}
    for r in rows:
        by_source.setdefault(r[0], []).append(r)
    # HD-KT-02 (at the reference O2) and HD-KT-03 (O2 ≥ 20.9 %: not judged) raise nothing
    assert set(by_source) == {"HD-KT-01"}, rows
    (_, vid, peak, peak_measured, peak_o2, o2_ref, basis) = by_source["HD-KT-01"][0]
    assert len(by_source["HD-KT-01"]) == 1, rows  # one episode over the three hours
    assert o2_ref == ref and "6 %" in basis
    assert peak_measured == pytest.approx(measured, abs=2)
    assert peak_o2 == pytest.approx(DILUTED, abs=0.01)
    assert peak == pytest.approx(peak_measured * (21 - ref) / (21 - peak_o2), rel=1e-9)
    assert peak > limit > peak_measured  # over only at the reference O2

    now = datetime.now(UTC)
    ctx = ReportContext(registry, catalogue, 0.75, "Asia/Ho_Chi_Minh", Lang.EN, now)
    with psycopg.connect(url) as conn:
        buf = io.BytesIO()
        names = build_evidence(conn, ctx, vid, buf)
        first, last = start.astimezone(TZ).date(), (start + HOURS * STEP * 60).astimezone(TZ).date()
        period = ReportPeriod("test", first, last, "Asia/Ho_Chi_Minh")
        report = build_compliance(conn, ctx, "HD-KT-03", period)
    assert "o2_correction.csv" in names
    with zipfile.ZipFile(buf) as zf:
        violation = json.loads(zf.read("violation.json"))
        table = list(csv.DictReader(io.StringIO(zf.read("o2_correction.csv").decode("utf-8-sig"))))
        limit_doc = json.loads(zf.read("limit.json"))
    assert violation["peak_measured_value"] == peak_measured
    assert violation["peak_o2_measured"] == peak_o2 and violation["o2_reference"] == ref
    assert limit_doc["limit"]["o2_reference"] == ref
    assert len(table) == HOURS, table
    for row in table:
        m, o2, corrected = (
            float(row[k]) for k in ("measured_value", "o2_measured", "corrected_value")
        )
        assert m == pytest.approx(measured, abs=2) and o2 == pytest.approx(DILUTED, abs=0.01)
        assert corrected == pytest.approx(m * (21 - ref) / (21 - o2), rel=1e-9)
        assert float(row["o2_reference"]) == ref and row["not_judged"] == ""

    # the report of the ambient-O2 stack says why its hours were not judged
    section = next(s for s in report.sections if s.key == "sec.reference_o2")
    so2_hours = [r for r in section.rows if r[0] == "SO2" and r[1] == "1h"]
    assert len(so2_hours) == HOURS
    assert all(r[6] is None and "≥ 20.9 %" in r[8] for r in so2_hours), so2_hours
