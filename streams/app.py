"""The Faust application: ``create_app(settings)`` declares the topics and the agents.

Agents are thin: read, call a pure function, send or write. The pure functions live in
``thresholds/`` (QA/QC, averaging, AQI, limits) and the writers in ``storage/``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any

import faust
from prometheus_client import generate_latest

from stations.registry import load_registry
from storage import rows as to_row
from storage import writer as tables
from storage.writer import BatchWriter, Row, TableSpec
from streams import topics
from streams.db import Database
from streams.metrics import Metrics
from streams.records import (
    AqiRecord,
    Average,
    QcFlag,
    QcReading,
    RawReading,
    Rejection,
    ViolationEvent,
)
from streams.settings import Settings
from streams.validate import Validator
from thresholds.qc import SeriesState, load_qc_rules
from thresholds.windows import SeriesWindows, WindowOut

log = logging.getLogger(__name__)


def to_average(r: QcReading, out: WindowOut) -> Average:
    return Average(
        source_id=r.source_id,
        parameter=r.parameter,
        period=out.period.value,
        window_start=out.window_start,
        window_end=out.window_end,
        value=out.stat.value,
        unit=r.unit,
        samples=out.stat.samples,
        expected=out.stat.expected,
        completeness=out.stat.completeness,
        valid=out.stat.valid,
        revision=out.revision,
        final=out.final,
    )


def create_app(settings: Settings, metrics: Metrics | None = None) -> faust.App:
    assert settings.kafka_url and settings.database_url, "the runtime resolves both URLs first"
    metrics = metrics or Metrics()
    app = faust.App(
        settings.app_id,
        broker=settings.kafka_url,
        store="memory://",  # tables recover from their changelog topics on restart
        topic_partitions=settings.topic_partitions,
        topic_replication_factor=settings.topic_replication,
        consumer_auto_offset_reset="earliest",  # a new group reads what was sent before it
        broker_session_timeout=10.0,  # Tansu holds a new group's join ~half of this
        broker_heartbeat_interval=1.0,
        broker_commit_interval=1.0,
        producer_linger_ms=20,  # batches changelog writes (4× less broker CPU on Tansu)
        web_port=settings.web_port,
        web_host=settings.web_host,
        web_in_thread=False,
    )

    def topic(spec: topics.TopicSpec, value_type: type[faust.Record]) -> Any:
        return app.topic(
            settings.topic(spec.name), value_type=value_type, partitions=settings.topic_partitions
        )

    raw_topic = topic(topics.RAW, RawReading)
    valid_topic = topic(topics.VALID, QcReading)
    rejected_topic = topic(topics.REJECTED, Rejection)
    averages_topic = topic(topics.AVERAGES, Average)
    violations_topic = topic(topics.VIOLATIONS, ViolationEvent)
    aqi_topic = topic(topics.AQI, AqiRecord)
    app.conf.quantrac_topics = {
        "raw": raw_topic,
        "valid": valid_topic,
        "rejected": rejected_topic,
        "averages": averages_topic,
        "violations": violations_topic,
        "aqi": aqi_topic,
    }

    db = Database(settings.database_url)

    def writer_for(spec: TableSpec) -> Callable[[Sequence[Row]], Any]:
        state: dict[str, BatchWriter] = {}

        async def write(rows: Sequence[Row]) -> int:
            if "w" not in state:
                state["w"] = BatchWriter(
                    await db.pool(),
                    spec,
                    retry_max_s=settings.db_retry_max_s,
                    on_write=metrics.on_db_write,
                    on_error=metrics.on_db_error,
                )
            return await state["w"].write(rows)

        return write

    write_readings = writer_for(tables.READINGS)
    write_averages = writer_for(tables.AVERAGES)
    write_aqi = writer_for(tables.AQI)
    write_events = writer_for(tables.VIOLATION_EVENTS)
    write_violations = writer_for(tables.VIOLATIONS)
    write_rejections = writer_for(tables.REJECTIONS)
    batch, within = settings.persist_batch_rows, settings.persist_batch_seconds

    registry = load_registry(settings.registry_path)
    validator = Validator(
        registry, load_qc_rules(), settings.late_horizon_hours * 3600, settings.future_tolerance_s
    )
    # Per-series state, keyed "source|parameter"; written while handling that series' event,
    # so each key's changelog lands on the partition of its source (restarts resume it).
    qc_state = app.Table("qc_state", default=None, partitions=settings.topic_partitions)
    window_state = app.Table("window_state", default=None, partitions=settings.topic_partitions)

    @app.agent(raw_topic, name="validate_readings")
    async def validate_readings(stream: Any) -> None:
        async for reading in stream:
            key = f"{reading.source_id}|{reading.parameter}"
            stored = qc_state.get(key)
            state = SeriesState.from_dict(stored) if stored else SeriesState()
            result = validator.check(reading, state, datetime.now(UTC))
            if isinstance(result, Rejection):
                metrics.rejections.labels(result.channel, result.reason).inc()
                await rejected_topic.send(key=reading.source_id, value=result)
                continue
            qc_state[key] = state.to_dict()
            metrics.qc_flags.labels(result.parameter, result.flag).inc()
            metrics.last_reading.labels(result.source_id).set(result.measured_at.timestamp())
            await valid_topic.send(key=result.source_id, value=result)

    @app.agent(valid_topic, name="average_readings")
    async def average_readings(stream: Any) -> None:
        async for r in stream:
            if r.flag != QcFlag.VALID:
                continue  # stored with its flag by persist_readings; not part of any average
            key = f"{r.source_id}|{r.parameter}"
            stored = window_state.get(key)
            windows = (
                SeriesWindows.from_dict(stored)
                if stored
                else SeriesWindows(
                    r.parameter,
                    registry.get(r.source_id).interval_for(r.parameter),
                    settings.completeness_threshold,
                    int(settings.late_horizon_hours),
                )
            )
            outs = windows.add(r.measured_at, r.value)
            window_state[key] = windows.to_dict()
            for out in outs:
                avg = to_average(r, out)
                if out.final:
                    metrics.averages_emitted.labels(avg.period, str(avg.valid).lower()).inc()
                await averages_topic.send(key=r.source_id, value=avg)
            if outs:
                metrics.latency.labels("average").observe(
                    (datetime.now(UTC) - r.received_at).total_seconds()
                )

    async def persist(
        stream: Any, *writes: tuple[Callable[..., Any], Callable[[Any], Row]]
    ) -> None:
        """Write each batch, then ack its events: offsets are committed only after the DB commit.

        ``noack_take`` leaves acking to us; Faust's ``take`` would ack in a ``finally``, so a
        shutdown in the middle of a failed write would commit offsets of unwritten rows.
        """
        async for events in stream.noack_take(batch, within=within):
            values = [e.value for e in events]
            for write, row in writes:
                await write([row(v) for v in values])
            for event in events:
                await stream.ack(event)

    @app.agent(valid_topic, name="persist_readings")
    async def persist_readings(stream: Any) -> None:
        await persist(stream, (write_readings, to_row.reading_row))

    @app.agent(averages_topic, name="persist_averages")
    async def persist_averages(stream: Any) -> None:
        await persist(stream, (write_averages, to_row.average_row))

    @app.agent(aqi_topic, name="persist_aqi")
    async def persist_aqi(stream: Any) -> None:
        await persist(stream, (write_aqi, to_row.aqi_row))

    @app.agent(violations_topic, name="persist_violations")
    async def persist_violations(stream: Any) -> None:
        await persist(
            stream, (write_events, to_row.event_row), (write_violations, to_row.violation_row)
        )

    @app.agent(rejected_topic, name="persist_rejections")
    async def persist_rejections(stream: Any) -> None:
        await persist(stream, (write_rejections, to_row.rejection_row))

    @app.page("/metrics")
    async def metrics_page(web: Any, request: Any) -> Any:
        return web.bytes(
            generate_latest(metrics.registry), content_type="text/plain; version=0.0.4"
        )

    @app.page("/healthz")
    async def healthz(web: Any, request: Any) -> Any:
        return web.json({"status": "ok"})

    @app.on_before_shutdown.connect  # type: ignore[arg-type]
    async def close_db(app: faust.App, **kwargs: Any) -> None:
        await db.close()

    return app
