"""The Faust application: ``create_app(settings)`` declares the topics and the agents.

Agents are thin: read, call a pure function, send or write. The pure functions live in
``thresholds/`` (QA/QC, averaging, AQI, limits) and the writers in ``storage/``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Any

import faust
from prometheus_client import generate_latest

from storage import rows as to_row
from storage import writer as tables
from storage.writer import BatchWriter, Row, TableSpec
from streams import topics
from streams.db import Database
from streams.metrics import Metrics
from streams.records import AqiRecord, Average, QcReading, RawReading, Rejection, ViolationEvent
from streams.settings import Settings
from streams.validate import judge

log = logging.getLogger(__name__)


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
        web_host="127.0.0.1",
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

    @app.agent(raw_topic, name="validate_readings")
    async def validate_readings(stream: Any) -> None:
        async for reading in stream:
            qc = judge(reading)
            metrics.qc_flags.labels(qc.parameter, qc.flag).inc()
            await valid_topic.send(key=qc.source_id, value=qc)

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
