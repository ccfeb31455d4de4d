"""The pipeline end to end on the real broker and PostgreSQL: averages and violations.

Limits checked here (cited): QCVN 40:2011/BTNMT Table 1 row 5 (COD), column B, C = 150 mg/L,
with the registry's Kq = 1.1 and Kf = 0.9 for HD-NT-01: Cmax = 148.5 mg/L on the 1-hour mean.
Severity bands: Decree 45/2022 Art. 18 (exceedance ratio 1.5–2 → band "1.5-2"; that band's text
and the flow brackets from 200 m³/ngày are UNVERIFIED, docs/regulations.md §8, §8b). HD-NT-01 is a
wastewater outfall, so its violation shows the article and the flow bracket of its registry
permitted flow (18 000 m³/ngày, illustrative).
"""

from __future__ import annotations

import asyncio
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from prometheus_client.parser import text_string_to_metric_families

from core.records import Channel, DeviceStatus, RawReading
from core.settings import Settings
from core.topics import AVERAGES, RAW, STORED_HEADER, VIOLATIONS, bootstrap_servers, ensure_topics
from stations.feed import KafkaFeed
from storage.migrate import migrate
from tests.conftest import WorkerProcess, wait_until, worker_metrics

pytestmark = pytest.mark.integration

COD_LIMIT = 148.5  # QCVN 40:2011 B × Kq 1.1 × Kf 0.9 (HD-NT-01 in stations/registry.yaml)
STEP = timedelta(minutes=5)  # HD-NT-01 reports every 300 s


def _reading(source: str, t: datetime, value: float, status: str = "00") -> RawReading:
    return RawReading(
        source_id=source,
        parameter="COD",
        value=value,
        unit="mg/L",
        measured_at=t,
        status=status,
        received_at=datetime.now(UTC),
        channel=Channel.SIMULATOR.value,
        origin=f"test:{t:%Y%m%d%H%M}",
    )


def _noisy(level: float, i: int) -> float:
    """Deterministic noise of ±60 spread over the range, as an analyser's would be. It is wide
    enough that QA/QC's Hampel filter (COD: 5 σ, thresholds/data/qc_rules.yaml) does not take
    the step into the episode for a spike; the tests compute expectations from these values."""
    return round(level + 60 * math.sin(i * 2.3), 3)


def _cod_hours(t0: datetime, levels: Sequence[float]) -> list[RawReading]:
    """HD-NT-01's COD every 5 min from ``t0``, one hour per level, and the next hour's first
    reading (100 mg/L), which closes the last hour."""
    readings = [
        _reading("HD-NT-01", t0 + h * timedelta(hours=1) + k * STEP, _noisy(level, k))
        for h, level in enumerate(levels)
        for k in range(12)
    ]
    readings.append(_reading("HD-NT-01", t0 + len(levels) * timedelta(hours=1), 100))
    return readings


def _hour0(hours_ago: int) -> datetime:
    now = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    return now - timedelta(hours=hours_ago)


def _send(settings: Settings, readings: list[RawReading]) -> None:
    async def go() -> None:
        async with KafkaFeed(bootstrap_servers(settings), settings.topic(RAW.name)) as feed:
            await feed.send(readings)

    asyncio.run(go())


@dataclass
class Msg:
    value: dict[str, Any]
    timestamp_ms: int
    headers: dict[str, bytes]


def _consume(settings: Settings, topic: str, until: int, timeout: float = 60) -> list[Msg]:
    async def go() -> list[Msg]:
        consumer = AIOKafkaConsumer(
            settings.topic(topic),
            bootstrap_servers=bootstrap_servers(settings),
            auto_offset_reset="earliest",
            enable_auto_commit=False,
            group_id=None,
        )
        await consumer.start()
        out: list[Msg] = []
        try:
            deadline = asyncio.get_running_loop().time() + timeout
            while len(out) < until and asyncio.get_running_loop().time() < deadline:
                batch = await consumer.getmany(timeout_ms=500)
                for records in batch.values():
                    out += [
                        Msg(json.loads(r.value), r.timestamp, dict(r.headers or ()))
                        for r in records
                    ]
        finally:
            await consumer.stop()
        return out

    return asyncio.run(go())


def _written_rows(settings: Settings) -> dict[str, float]:
    """Per table, the rows the worker's writers submitted (quantrac_db_batch_rows_sum)."""
    text = worker_metrics(settings)
    assert text is not None, "the worker serves no /metrics"
    return {
        s.labels["table"]: s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
        if s.name == "quantrac_db_batch_rows_sum"
    }


def _db(url: str, sql: str, *args: object) -> list[tuple[Any, ...]]:
    with psycopg.connect(url) as conn:
        return conn.execute(sql, args).fetchall()


def test_exceedance_episode_opens_and_closes_one_violation(
    settings: Settings, worker: WorkerProcess
) -> None:
    assert settings.database_url
    migrate(settings.database_url)
    ensure_topics(settings)
    t0 = _hour0(10)
    levels = [100, 100, 230, 230, 100, 100, 100]  # hourly levels; 230 / 148.5 = 1.55
    _send(settings, _cod_hours(t0, levels))
    worker.start()

    def cod_events() -> list[tuple[Any, ...]]:
        return _db(
            settings.database_url or "",
            "SELECT e.event, e.severity, v.violation_id FROM violation_events e "
            "JOIN violations v USING (violation_id) "
            "WHERE v.parameter = 'COD' AND v.kind = 'exceedance' ORDER BY e.seq",
        )

    wait_until(lambda: any(e[0] == "closed" for e in cod_events()), 240, message=worker.log)
    assert "event loop: uvloop" in worker.log(None)  # the default (streams/worker.py)
    assert "heap thresholds fixed: True" in worker.log(None)  # glibc (streams/worker.py)
    events = cod_events()
    kinds = [e[0] for e in events]
    assert kinds.count("opened") == 1 and kinds.count("closed") == 1, events
    assert {e[2] for e in events} == {events[0][2]}, "one violation id for the episode"
    assert events[-1][1] == "1.5-2"  # Decree 45 band of the peak ratio 230 / 148.5 = 1.55
    row = _db(
        settings.database_url,
        "SELECT state, peak_value, started_at, ended_at FROM violations WHERE violation_id = %s",
        events[0][2],
    )[0]
    assert row[0] == "closed"
    assert 200 < row[1] < 300  # the peak hourly mean of the 230 ± noise hours
    penalty = _db(
        settings.database_url,
        "SELECT severity, penalty_article, penalty_sanction, penalty_verified, flow_bracket,"
        " flow_basis, flow_value FROM violations WHERE violation_id = %s",
        events[0][2],
    )[0]
    assert penalty == (
        "1.5-2",
        "Nghị định 45/2022/NĐ-CP Điều 18 khoản 3 (số khoản UNVERIFIED)",
        "UNVERIFIED (band text not retrieved)",
        False,
        "≥200 m³/ngày (UNVERIFIED)",
        "permitted",
        18000.0,
    )
    assert row[2] == t0 + timedelta(hours=2) and row[3] == t0 + timedelta(hours=4)

    # Latency: from the 1-h average that opened it to the `opened` event, on the broker's clock.
    avgs = _consume(settings, AVERAGES.name, 10_000, timeout=10)
    trigger = [
        m
        for m in avgs
        if m.value["parameter"] == "COD"
        and m.value["period"] == "1h"
        and m.value["window_start"].startswith(f"{t0 + timedelta(hours=2):%Y-%m-%dT%H}")
        and m.value["final"]
    ]
    events_msgs = _consume(settings, VIOLATIONS.name, 10_000, timeout=10)
    opened = [
        m for m in events_msgs if m.value["event"] == "opened" and m.value["parameter"] == "COD"
    ]
    assert trigger and len(opened) == 1
    # Final averages and violation events were stored by the stage that made them before they
    # were sent (streams/persist.py, store_early), and say so: their sinks do not write them
    # again. The database got each row once (the writer's histogram counts rows submitted;
    # the two 10-s reads above leave the sinks, which write every 0.2 s, time to have written).
    finals = [m for m in avgs if m.value["final"]]
    assert all(m.headers == {STORED_HEADER: b"1"} for m in finals + events_msgs)
    written = _written_rows(settings)
    assert written["averages"] == len(finals)
    assert written["violation_events"] == len(events_msgs)
    latency_s = (opened[0].timestamp_ms - trigger[0].timestamp_ms) / 1000
    print(f"\naverage → opened violation latency: {latency_s:.3f} s")
    assert 0 <= latency_s < 1.0


def _expected_hours(
    values: dict[datetime, tuple[float, str]], t0: datetime, hours: int
) -> dict[datetime, tuple[float | None, bool]]:
    """Hourly means of status-00 values; valid with ≥ 75 % of the 12 expected samples."""
    out: dict[datetime, tuple[float | None, bool]] = {}
    for h in range(hours):
        start = t0 + timedelta(hours=h)
        vals = [
            v
            for t, (v, s) in values.items()
            if start <= t < start + timedelta(hours=1) and s == "00"
        ]
        out[start] = (sum(vals) / len(vals) if vals else None, len(vals) >= 9)
    return out


def test_day_of_readings_with_calibration_gap_late_resend_and_kill(
    settings: Settings, worker: WorkerProcess
) -> None:
    assert settings.database_url
    migrate(settings.database_url)
    ensure_topics(settings)
    # One local day (00:00–24:00 Asia/Ho_Chi_Minh = 17:00–17:00 UTC) that ended ≥ 2 h ago.
    now = datetime.now(UTC)
    t0 = (now - timedelta(hours=26)).replace(hour=17, minute=0, second=0, microsecond=0)
    if t0 > now - timedelta(hours=26):
        t0 -= timedelta(days=1)
    values: dict[datetime, tuple[float, str]] = {}
    for i in range(24 * 12 + 1):  # plus the next day's first reading, which closes the day
        t = t0 + i * STEP
        hour = i // 12
        if hour == 10 and 2 <= i % 12 < 10:
            continue  # a 40-minute gap: hour 10 keeps 4 of 12 → invalid
        status = DeviceStatus.CALIBRATING.value if hour == 3 else "00"
        values[t] = (_noisy(100 + 2 * hour, i), status)
    late_hour = t0 + timedelta(hours=15)
    on_time = [t for t in values if not late_hour <= t < late_hour + timedelta(hours=1)]
    late = [t for t in values if t not in on_time]
    _send(settings, [_reading("HD-NT-01", t, *values[t]) for t in on_time])
    worker.start()
    wait_until(
        lambda: _db(settings.database_url or "", "SELECT count(*) FROM readings")[0][0] > 0,
        90,
        message=worker.log,
    )
    worker.kill()
    worker.start()
    _send(settings, [_reading("HD-NT-01", t, *values[t]) for t in late])  # the resend
    hours = _expected_hours(values, t0, 24)
    valid_means = [m for m, ok in hours.values() if ok and m is not None]
    day_mean = sum(valid_means) / len(valid_means)

    def stored() -> dict[tuple[str, datetime], tuple[Any, ...]]:
        rows = _db(
            settings.database_url or "",
            "SELECT period, window_start, value, valid, samples FROM averages "
            "WHERE source_id = 'HD-NT-01' AND parameter = 'COD' "
            "AND period IN ('1h', 'day')",
        )
        return {(r[0], r[1]): r[2:] for r in rows}

    def day_done() -> bool:
        day = stored().get(("day", t0))
        return day is not None and day[0] is not None and math.isclose(day[0], day_mean)

    wait_until(day_done, 240, message=worker.log)
    got = stored()
    for start, (mean, ok) in hours.items():
        value, valid, _ = got[("1h", start)]
        assert valid is ok, start
        if mean is None:
            assert value is None, start
        else:
            assert value == pytest.approx(mean), start
    assert got[("day", t0)][1] is True
    assert got[("day", t0)][2] == len(valid_means) == 22  # hours 3 (calibration), 10 (gap) out
    n_readings = _db(
        settings.database_url,
        "SELECT count(*), count(*) FILTER (WHERE flag = 'calibrating') FROM readings",
    )[0]
    assert n_readings == (len(values), 12)


def test_undecodable_raw_messages_are_dead_lettered_with_their_bytes(
    settings: Settings, worker: WorkerProcess
) -> None:
    """Anything produced to readings.raw that is not a RawBatch (or a bare RawReading) ends in
    the rejections table with its exact bytes; the readings around it are stored as usual."""
    assert settings.database_url
    migrate(settings.database_url)
    ensure_topics(settings)
    t = _hour0(2)
    good = _reading("HD-NT-01", t, 100.0)
    bad = [
        b"\xff\xfe not json",
        b'{"readings": [{"source_id": "HD-NT-01"}]}',
        json.dumps({**json.loads(good.dumps(serializer="json")), "value": "12,5"}).encode(),
        b'{"readings": [{"source_id": "HD-NT-01"}]}',  # the same bytes again: a second row
    ]

    async def go() -> None:
        producer = AIOKafkaProducer(bootstrap_servers=bootstrap_servers(settings))
        await producer.start()
        try:
            for payload in bad:
                await producer.send_and_wait(settings.topic(RAW.name), payload, key=b"HD-NT-01")
            # a reading as an older gateway published it (no batch) and one in a batch
            older = _reading("HD-NT-01", t + STEP, 101.0)
            await producer.send_and_wait(
                settings.topic(RAW.name), older.dumps(serializer="json"), key=b"HD-NT-01"
            )
        finally:
            await producer.stop()

    asyncio.run(go())
    _send(settings, [good])
    worker.start()
    url = settings.database_url

    def rejected() -> list[tuple[Any, ...]]:
        return _db(url, "SELECT reason, channel, original, origin FROM rejections ORDER BY origin")

    wait_until(lambda: len(rejected()) >= len(bad), 90, message=worker.log)
    wait_until(lambda: _db(url, "SELECT count(*) FROM readings")[0][0] >= 2, 90, message=worker.log)
    rows = rejected()
    assert sorted(bytes(r[2]) for r in rows) == sorted(bad)
    assert {r[0] for r in rows} == {"bad_json", "json_schema"}
    assert {r[1] for r in rows} == {"kafka"}
    assert len({r[3] for r in rows}) == len(bad)  # one per message, named by its offset
    assert _db(url, "SELECT count(*) FROM readings")[0][0] == 2
