"""The Faust application: ``create_app(settings)`` wires topics, state tables, stages and sinks.

Every stateful stage is a declaration (streams/stages.py) with a pure step (thresholds/steps.py,
streams/validate.py), run by one ``Runner`` that owns decoding, dead letters, the skip of
re-delivered messages, emitting, metrics and commits (streams/runner.py). The sinks write
batches to PostgreSQL and ack after the commit (streams/persist.py).
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

import faust
from faust.sensors.prometheus import FaustMetrics, PrometheusMonitor
from prometheus_client import generate_latest

from core.metrics import FaustSensors, Metrics
from core.records import Tick
from core.settings import Settings
from core.topics import RAW
from stations.registry import Registry, load_registry
from storage import writer as tables
from storage.revalidation import Relabel
from storage.revalidation import relabel as relabel_in
from streams import stages
from streams.assignor import LoadAwareAssignor
from streams.balance import partition_loads
from streams.consumer import STALL_S, GuardedConsumer
from streams.db import Database
from streams.errors import DeadLetters
from streams.persist import SINKS, Writers, sink_agent, store_early
from streams.runner import Runner
from streams.topology import Tables, Topics

log = logging.getLogger(__name__)


class QuietMonitor(PrometheusMonitor):
    """Faust's Prometheus monitor without its per-item hooks: a message in or out, a stream
    event, a table get/set/delete and a send each called it (and prometheus_client's labels
    lookup), about a tenth of the worker's CPU on a replay. Commits, rebalances, assignment and
    the end and committed offsets (``quantrac_consumer_lag``) are kept."""

    def on_message_in(self, *args: Any, **kwargs: Any) -> None:
        return None

    def on_message_out(self, *args: Any, **kwargs: Any) -> None:
        return None

    def on_stream_event_in(self, *args: Any, **kwargs: Any) -> None:
        return None

    def on_stream_event_out(self, *args: Any, **kwargs: Any) -> None:
        return None

    def on_table_get(self, *args: Any, **kwargs: Any) -> None:
        return None

    def on_table_set(self, *args: Any, **kwargs: Any) -> None:
        return None

    def on_table_del(self, *args: Any, **kwargs: Any) -> None:
        return None

    def on_send_initiated(self, *args: Any, **kwargs: Any) -> None:
        return None

    def on_send_completed(self, *args: Any, **kwargs: Any) -> None:
        return None

    def track_tp_end_offset(self, tp: Any, offset: int) -> None:
        # Faust calls this for every message fetched, with its fetch's end offset: the gauge
        # (and its labels lookup) only when that moved
        if self.tp_end_offsets.get(tp) != offset:
            super().track_tp_end_offset(tp, offset)


async def relabel(db: Database, r: Relabel, retry_max_s: float) -> list[tuple[datetime, float]]:
    """A manual validation's database side (storage/revalidation.py) on the worker's pool."""
    return await relabel_in(await db.pool(), r, retry_max_s=retry_max_s)


def load_aware_assignor(
    settings: Settings, registry: Registry, metrics: Metrics
) -> type[LoadAwareAssignor]:
    """Partitions dealt to workers by the readings their sources send (streams/balance.py);
    each worker's part in its metrics."""

    def on_assigned(partitions: list[int], share: float) -> None:
        metrics.assigned_partitions.set(len(partitions))
        metrics.assigned_share.set(share)

    return LoadAwareAssignor.for_loads(
        partition_loads(registry, settings.topic_partitions),
        keyed_topic=settings.topic(RAW.name),
        on_assigned=on_assigned,
    )


def create_app(settings: Settings, metrics: Metrics | None = None) -> faust.App:
    assert settings.kafka_url and settings.database_url, "the runtime resolves both URLs first"
    metrics = metrics or Metrics()
    registry = load_registry(settings.registry_path)
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
        web_bind=settings.web_host,
        web_in_thread=False,
        PartitionAssignor=load_aware_assignor(settings, registry, metrics),
    )
    # Before anything creates the consumer: commits never pass an unacked message
    # (streams/consumer.py), and a head left unacked is delivered again.
    app.transport.Consumer = GuardedConsumer  # type: ignore[misc]  # this app's transport only

    topics, state = Topics.declare(app, settings), Tables.declare(app, settings)
    # Every stage's records that cannot be processed or stored: dead letter, metric, go on.
    dead = DeadLetters(topics.rejected, metrics.processing_errors)
    db = Database(settings.database_url)
    writers = Writers(db, settings, metrics)
    metrics.init_sources(
        [s.id for s in registry.sources],
        sorted({p.code.value for s in registry.sources for p in s.parameters}),
    )
    # each sink's tables, for the stages that store their records ahead of it
    early = {sink.name: [(writers(table), row) for table, row in sink.writes] for sink in SINKS}
    wiring = stages.Wiring.build(
        settings,
        metrics,
        registry,
        tables=state,
        dead=dead,
        write_readings=writers(tables.READINGS),
        store_early=lambda sink, records: store_early(early[sink], records),
        relabel=lambda r: relabel(db, r, settings.db_retry_max_s),
        topics=topics,
    )
    runner = Runner(
        {},
        dead,
        topics.route,
        batch=settings.stream_batch,
        within=settings.stream_batch_seconds,
        behind=settings.stream_batch_behind,
    )
    if settings.fused_stages:  # one pass per raw message (streams/stages.py: chain)
        head, links = stages.chain(wiring)
        app.agent(topics.raw, name="judge_readings")(runner.chain_agent(head, links))
    else:  # a hop per stage, each reading the previous one's topic
        for source, stage in (
            (topics.raw, stages.validate_stage(wiring)),
            (topics.valid, stages.average_stage(wiring)),
            (topics.averages, stages.o2_stage(wiring)),
            (topics.judged, stages.check_stage(wiring)),
            (topics.averages, stages.aqi_stage(wiring)),
            (topics.averages, stages.water_stage(wiring)),
        ):
            app.agent(source, name=stage.name)(runner.agent(stage))
    outages = stages.outage_stage(wiring)
    app.agent(topics.ticks, name=outages.name)(runner.agent(outages))
    for sink in SINKS:
        agent = sink_agent(sink, writers, dead, settings)
        app.agent(getattr(topics, sink.topic), name=sink.name)(agent)

    # Outages: the leader sends a tick per registered source to `ticks`, keyed by source, so
    # each tick reaches the worker that owns the source's partition and its tables.
    @app.timer(settings.clock_tick_s, on_leader=True)
    async def tick_sources() -> None:
        now = datetime.now(UTC)
        for source in registry.sources:
            await topics.ticks.send(key=source.id, value=Tick(source_id=source.id, at=now))

    # Faust's own sensors (commits, rebalances, offsets; with faust_event_metrics also every
    # message, event, table operation and send) go to the same registry, so /metrics shows them
    # beside ours, prefixed faust_.
    sensors = FaustSensors(metrics.registry)
    faust_metrics = FaustMetrics.create(sensors.source, "faust")
    monitor = PrometheusMonitor if settings.faust_event_metrics else QuietMonitor
    app.monitor = monitor(metrics=faust_metrics)

    @app.timer(STALL_S / 2)
    async def reseek_stalled_partitions() -> None:
        consumer = app.consumer
        if isinstance(consumer, GuardedConsumer):
            for tp in await consumer.reseek_stalled():
                metrics.consumer_reseeks.labels(tp.topic).inc()

    @app.timer(10.0)
    async def report_consumer_lag() -> None:
        monitor = app.monitor
        for tp, end in list(monitor.tp_end_offsets.items()):
            committed = monitor.tp_committed_offsets.get(tp, 0)
            metrics.consumer_lag.labels(tp.topic, str(tp.partition)).set(max(0, end - committed))

    @app.page("/metrics")
    async def metrics_page(web: Any, request: Any) -> Any:
        body = generate_latest(metrics.registry)
        return web.bytes(body, content_type="text/plain; version=0.0.4")

    @app.page("/healthz")
    async def healthz(web: Any, request: Any) -> Any:
        return web.json({"status": "ok"})

    @app.on_before_shutdown.connect  # type: ignore[arg-type]
    async def close_db(app: faust.App, **kwargs: Any) -> None:
        await db.close()

    return app
