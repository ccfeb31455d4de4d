"""No input can stall a partition: hostile records through the real gateway, broker, worker and
PostgreSQL are dead-lettered with their coordinates, and what follows them is processed.

Before streams/errors.py and storage/text.py, a file name with a NUL (``a%00b.txt`` over HTTP)
gave a rejection PostgreSQL refused; persist_rejections raised, its batch was delivered again and
failed again, forever. A record on a typed topic that was not its record crashed the agents that
read it (Faust throws a decode error into the stream).
"""

from __future__ import annotations

import asyncio
import json
import re
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import psycopg
import pytest
from aiokafka import AIOKafkaProducer
from kafka import TopicPartition

from core import topics
from core.records import Channel, RawReading
from core.settings import Settings
from core.topics import bootstrap_servers, ensure_topics
from stations.circular10 import format_file
from stations.registry import load_registry
from storage.migrate import migrate
from tests.conftest import WorkerProcess, wait_until, worker_metrics
from tests.integration.drain import committed_offsets, wait_drained
from tests.integration.gateway_support import running_gateway

pytestmark = pytest.mark.integration

REGISTRY = load_registry()
AIR = REGISTRY.get("HD-KK-01")


def _db(url: str | None, sql: str, *args: object) -> list[tuple[Any, ...]]:
    assert url
    with psycopg.connect(url) as conn:
        return conn.execute(sql, args).fetchall()


def _metric(settings: Settings, name: str, **labels: str) -> float:
    """One sample of the worker's /metrics (0 when absent or the worker is not serving yet)."""
    text = worker_metrics(settings)
    if text is None:
        return 0.0
    want = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
    for line in text.splitlines():
        if line.startswith(f"{name}{{") and line.split("}")[0] == f"{name}{{{want}":
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def _no_crash_loop(log: str) -> None:
    """Nothing raised in an agent, so nothing was delivered again."""
    for sign in ("Traceback", "crashed", "DataError", "CharacterNotInRepertoire"):
        assert sign not in log, f"{sign!r} in the worker log:\n{log[-6000:]}"


def test_nul_in_an_http_file_name_then_good_data_are_stored(
    settings: Settings, worker: WorkerProcess
) -> None:
    migrate(settings.database_url or "")
    ensure_topics(settings)
    now = datetime.now(UTC).replace(second=0, microsecond=0)
    at = now - timedelta(minutes=5)
    readings = [
        RawReading(
            source_id=AIR.id,
            parameter=spec.code.value,
            value=12.5 + i,
            unit=str(spec.unit),
            measured_at=at,
            status="00",
            received_at=now,
            channel=Channel.HTTP.value,
            origin="x",
        )
        for i, spec in enumerate(AIR.parameters[:4])
    ]
    name, body = format_file(readings, REGISTRY, stamp=at)
    with (
        running_gateway(settings, REGISTRY, clock=lambda: datetime.now(UTC)) as gw,
        httpx.Client(base_url=gw.http_url, auth=(AIR.id, gw.password(AIR.id)), timeout=15) as http,
    ):
        hostile = http.post("/ingest/file/a%00b.txt", content=body)
        good = http.post(f"/ingest/file/{name}", content=body)
    assert 400 <= hostile.status_code < 500, hostile.text
    assert good.status_code == 202 and good.json()["accepted"] == len(readings), good.text

    worker.start()
    url = settings.database_url

    def stored() -> bool:
        rows = _db(url, "SELECT count(*) FROM readings WHERE source_id = %s", AIR.id)
        rejected = _db(url, "SELECT count(*) FROM rejections WHERE origin LIKE 'a%%b.txt'")
        return rows[0][0] == len(readings) and rejected[0][0] >= 1

    wait_until(stored, 120, message=worker.log)
    wait_drained(settings, 60, worker.log)
    (origin, reason, original), *_ = _db(
        url, "SELECT origin, reason, original FROM rejections WHERE origin LIKE 'a%%b.txt'"
    )
    assert origin == "a\\x00b.txt"  # the NUL, escaped visibly
    assert reason == "path_traversal"
    assert bytes(original) == body  # the evidence: exactly the bytes received
    origins = _db(url, "SELECT DISTINCT origin FROM readings WHERE source_id = %s", AIR.id)
    assert origins == [(name,)]
    _no_crash_loop(worker.log(None))


# --- a poison record on each typed topic, then a good one on the same partition ----------------

T0 = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) - timedelta(hours=3)


def _iso(t: datetime) -> str:
    return t.isoformat()


def _average(source: str, parameter: str, unit: str, hour: int, value: Any, **kw: Any) -> dict:
    start = T0 + timedelta(hours=hour)
    return {
        "source_id": source,
        "parameter": parameter,
        "period": "1h",
        "window_start": _iso(start),
        "window_end": _iso(start + timedelta(hours=1)),
        "value": value,
        "unit": unit,
        "samples": 12,
        "expected": 12,
        "completeness": 1.0,
        "valid": True,
        "revision": 0,
        "final": True,
        **kw,
    }


def _event(violation_id: str, seq: Any, **kw: Any) -> dict:
    return {
        "violation_id": violation_id,
        "event": "opened",
        "seq": seq,
        "source_id": "HD-NT-01",
        "parameter": "COD",
        "rule_id": "poison-test",
        "period": "1h",
        "started_at": _iso(T0),
        "at": _iso(T0 + timedelta(hours=1)),
        "value": 200.0,
        "limit": 148.5,
        "ratio": 1.35,
        "severity": "1.1-1.5",
        "legal_basis": "QCVN 40:2011/BTNMT",
        **kw,
    }


def _aqi(hour: int, aqi: Any) -> dict:
    return {
        "source_id": AIR.id,
        "kind": "hourly",
        "window_start": _iso(T0 + timedelta(hours=hour)),
        "aqi": aqi,
        "category": "good",
        "dominant": "PM2.5",
        "sub_indices": {"PM2.5": 40},
    }


def _water(day: str) -> dict:
    return {
        "source_id": "HD-NM-01",
        "day": day,
        "day_start": _iso(T0),
        "water_class": "B",
        "target_class": "B",
        "alert": False,
        "wqi": 80,
        "wqi_meets_minimum": True,
        "wqi_groups": {},
        "wqi_note": "",
        "means": {"DO": 6.2},
        "classes": {"DO": "A"},
        "skipped": {},
        "over_table1": [],
        "revision": 0,
    }


GOOD_DAY = (T0 + timedelta(hours=7)).date().isoformat()

# topic -> [(key, value, the dead letter's reason or None for the good record)]; each poison
# comes before a good record on the same partition.
CASES: dict[str, list[tuple[str, Any, str | None]]] = {
    topics.AVERAGES.name: [
        # JSON, but not an Average: every agent reading averages dead-letters it
        (
            "HD-NT-01",
            _average("HD-NT-01", "COD", "mg/L", 0, 5.0, window_end="later"),
            "json_schema",
        ),
        # an Average whose value the AQI refuses (processing) and whose revision PostgreSQL
        # refuses (integer out of range: storage)
        ("HD-NT-01", _average(AIR.id, "PM2.5", "µg/m3", 0, -5.0, revision=2**40), "storage_error"),
        ("HD-NT-01", _average("HD-NT-01", "COD", "mg/L", 1, 42.0), None),
        ("HD-NT-01", _average(AIR.id, "PM2.5", "µg/m3", 1, 30.0), None),
    ],
    topics.VIOLATIONS.name: [
        ("v-poison", _event("v-poison", "zero"), "json_schema"),
        ("v-poison", _event("v-poison-big", 2**40), "storage_error"),
        ("v-poison", _event("v-good\x00", 0, message="NUL\x00 in the text"), None),
    ],
    topics.AQI.name: [
        (AIR.id, _aqi(0, 5_000_000_000), "storage_error"),
        (AIR.id, {"source_id": AIR.id, "kind": "hourly"}, "json_schema"),
        (AIR.id, _aqi(1, 42), None),
    ],
    topics.WATER_QUALITY.name: [
        ("HD-NM-01", _water("not a day"), "processing_error"),
        ("HD-NM-01", _water(GOOD_DAY), None),
    ],
    topics.TICKS.name: [
        ("HD-KK-01", {"source_id": "HD-KK-01", "at": "2026-11-24T03:00:00"}, "json_schema"),
        ("HD-KK-01", {"source_id": "HD-KK-01", "at": _iso(datetime.now(UTC))}, None),
    ],
}


def _produce(settings: Settings) -> dict[str, list[int]]:
    """Every case straight to partition 0 of its topic; the offsets, in order."""

    async def go() -> dict[str, list[int]]:
        producer = AIOKafkaProducer(bootstrap_servers=bootstrap_servers(settings))
        await producer.start()
        out: dict[str, list[int]] = {}
        try:
            for name, cases in CASES.items():
                for key, value, _ in cases:
                    meta = await producer.send_and_wait(
                        settings.topic(name),
                        json.dumps(value).encode(),
                        key=key.encode(),
                        partition=0,
                    )
                    out.setdefault(name, []).append(meta.offset)
        finally:
            await producer.stop()
        return out

    return asyncio.run(go())


@pytest.mark.parametrize("settings", [{"fused_stages": False}], indirect=True)
def test_a_poison_record_on_each_typed_topic_is_dead_lettered_and_the_stream_goes_on(
    settings: Settings, worker: WorkerProcess
) -> None:
    """Each stage its own hop: every typed topic has a stage reading it. (Fused, the default,
    the averages topic is read by its sink alone: the sink's dead letters are checked here too.)"""
    migrate(settings.database_url or "")
    ensure_topics(settings)
    offsets = _produce(settings)
    worker.start()
    url = settings.database_url

    def good_ones_stored() -> bool:
        return all(
            _db(url, sql)[0][0] >= 1
            for sql in (
                "SELECT count(*) FROM averages WHERE parameter = 'COD' AND value = 42",
                "SELECT count(*) FROM averages WHERE parameter = 'PM2.5' AND value = 30",
                "SELECT count(*) FROM aqi WHERE aqi = 42",
                "SELECT count(*) FROM violations WHERE violation_id = 'v-good\\x00'",
                f"SELECT count(*) FROM water_quality_days WHERE day = '{GOOD_DAY}'",
            )
        )

    wait_until(good_ones_stored, 120, message=worker.log)
    wait_drained(settings, 60, worker.log)
    # the topics drain does not list: their committed offsets passed the good record
    bootstrap = bootstrap_servers(settings)

    def passed(name: str) -> bool:
        tp = TopicPartition(settings.topic(name), 0)
        return committed_offsets(bootstrap, settings.app_id).get(tp, 0) > offsets[name][-1]

    wait_until(lambda: passed(topics.WATER_QUALITY.name) and passed(topics.TICKS.name), 60)

    # every poison is in the dead letter, with its coordinates and exact bytes
    for name, cases in CASES.items():
        for (_, value, reason), offset in zip(cases, offsets[name], strict=True):
            origin = f"{settings.topic(name)}:0:{offset}"
            sql = "SELECT reason, message, original FROM rejections WHERE origin = %s"
            rows = _db(url, sql, origin)
            if reason is None:
                assert rows == [], (origin, rows)
                continue
            assert reason in {r[0] for r in rows}, (origin, rows)
            assert all(bytes(r[2]) == json.dumps(value).encode() for r in rows)

    def count(stage: str, error: str) -> float:
        return _metric(settings, "quantrac_processing_errors_total", stage=stage, error=error)

    expected = [
        ("check_thresholds", "json_schema"),
        ("compute_aqi", "json_schema"),
        ("classify_water", "json_schema"),
        ("persist_averages", "json_schema"),
        ("compute_aqi", "processing_error"),
        ("persist_averages", "storage_error"),
        ("persist_violations", "json_schema"),
        ("persist_violations", "storage_error"),
        ("persist_aqi", "storage_error"),
        ("persist_aqi", "json_schema"),
        ("persist_water_quality", "processing_error"),
        ("watch_outages", "json_schema"),
    ]
    wait_until(lambda: all(count(*e) >= 1 for e in expected), 30, message=worker.log)
    # the refused AQI value never entered the station's state: the next hour was computed
    aqi_stage = _db(
        url, "SELECT message FROM rejections WHERE message LIKE 'compute_aqi: ValueError%%'"
    )
    assert aqi_stage, "compute_aqi's dead letter"
    stored = _db(
        url,
        "SELECT event, payload->>'message' FROM violation_events WHERE violation_id = %s",
        "v-good\\x00",
    )
    assert stored == [("opened", "NUL\\x00 in the text")]
    log = worker.log(None)
    _no_crash_loop(log)
    assert re.search(r"dead-lettered \S+:0:\d+", log), (
        "a dead letter is logged with its coordinates"
    )
