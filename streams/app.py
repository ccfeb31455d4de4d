"""The Faust application: ``create_app(settings)`` wires topics, state tables and stages.

Every stateful stage is a declaration (``Stage``: input, items, key, state, a pure step in
``thresholds/steps.py`` or ``streams/validate.py``) run by one ``Runner`` that owns decoding,
dead letters, the skip of re-delivered messages, emitting, metrics and commits
(streams/runner.py). The persist agents write batches to PostgreSQL and ack after the commit.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any

import faust
from faust.sensors.prometheus import FaustMetrics, PrometheusMonitor
from prometheus_client import generate_latest

from core import topics
from core.errors import RejectReason
from core.metrics import FaustSensors, Metrics
from core.parameters import SourceKind
from core.records import (
    MAX_BATCH_READINGS,
    POSITION_STRIDE,
    AqiRecord,
    Average,
    QcBatch,
    QcFlag,
    QcReading,
    Rejection,
    Tick,
    ViolationEvent,
    WaterQualityDay,
)
from core.settings import Settings
from stations.registry import load_registry
from storage import rows as to_row
from storage import writer as tables
from storage.writer import BatchWriter, Row, TableSpec
from streams.batch import Batch
from streams.checks import LimitBook, outage_allowance
from streams.consumer import STALL_S, GuardedConsumer
from streams.db import Database
from streams.errors import DeadLetters, RecordSchema, coordinates, write_rows
from streams.runner import Output, Runner, Stage, typed
from streams.validate import Arrival, Validator, decode_raw, decode_valid, validate
from thresholds import steps
from thresholds.aqi_station import StationAqi
from thresholds.catalogue import load_catalogue
from thresholds.qc import SeriesState, load_qc_rules
from thresholds.violations import OutageState, RuleState
from thresholds.water_quality import StationDays
from thresholds.windows import SeriesWindows

log = logging.getLogger(__name__)


def same(x: Any) -> Any:
    return x


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
        web_bind=settings.web_host,
        web_in_thread=False,
    )

    # Before anything creates the consumer: commits never pass an unacked message
    # (streams/consumer.py), and a head left unacked is delivered again.
    app.transport.Consumer = GuardedConsumer  # type: ignore[misc]  # this app's transport only

    def topic(spec: topics.TopicSpec, value_type: type[faust.Record]) -> Any:
        # RecordSchema: a value that is not the record arrives as Undecodable (streams/errors.py)
        return app.topic(
            settings.topic(spec.name),
            schema=RecordSchema(value_type),
            partitions=settings.topic_partitions,
        )

    # Bytes: validate_readings decodes them itself and dead-letters what is not a RawBatch.
    raw_topic = app.topic(
        settings.topic(topics.RAW.name),
        value_type=bytes,
        value_serializer="raw",
        partitions=settings.topic_partitions,
    )
    # Bytes: QcBatch is a plain dataclass with its own codec (core/records.py).
    valid_topic = app.topic(
        settings.topic(topics.VALID.name),
        value_type=bytes,
        value_serializer="raw",
        partitions=settings.topic_partitions,
    )
    rejected_topic = topic(topics.REJECTED, Rejection)
    averages_topic = topic(topics.AVERAGES, Average)
    violations_topic = topic(topics.VIOLATIONS, ViolationEvent)
    aqi_topic = topic(topics.AQI, AqiRecord)
    water_topic = topic(topics.WATER_QUALITY, WaterQualityDay)
    ticks_topic = topic(topics.TICKS, Tick)
    # Every stage's records that cannot be processed or stored: dead letter, metric, go on.
    dead = DeadLetters(rejected_topic, metrics.processing_errors)

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
    write_water = writer_for(tables.WATER_QUALITY_DAYS)

    registry = load_registry(settings.registry_path)
    validator = Validator(
        registry, load_qc_rules(), settings.late_horizon_hours * 3600, settings.future_tolerance_s
    )
    limit_book = LimitBook(registry, load_catalogue())
    air_stations = {s.id for s in registry.sources if s.kind is SourceKind.AMBIENT_AIR}
    water = steps.WaterConfig(
        limit_book.catalogue,
        {s.id: s.target_class for s in registry.of_kind(SourceKind.SURFACE_WATER)},
    )
    metrics.init_sources(
        [s.id for s in registry.sources],
        sorted({p.code.value for s in registry.sources for p in s.parameters}),
    )

    def table(name: str) -> Any:
        return app.Table(name, default=None, partitions=settings.topic_partitions)

    # State per key, co-partitioned with the topics keyed by source id (see streams/batch.py).
    qc_state = table("qc_state")  # "source|parameter" -> SeriesState
    window_state = table("window_state")  # "source|parameter" -> SeriesWindows
    last_valid = table("last_valid")  # source -> epoch s of the newest valid reading
    rule_state = table("rule_state")  # "source|rule id" -> RuleState
    outage_state = table("outage_state")  # source -> OutageState
    aqi_state = table("aqi_state")  # air station -> StationAqi
    water_state = table("water_state")  # surface-water station -> StationDays

    def route(out: Output) -> tuple[Any, str, Any]:
        r = out.record
        if isinstance(r, Rejection):
            key = r.source_id or (dead.key(out.event) if out.event is not None else "")
            return rejected_topic, key, r
        if isinstance(r, QcBatch):
            return valid_topic, r.source_id, r.dumps()
        if isinstance(r, ViolationEvent):
            return violations_topic, r.violation_id, r
        return outputs_by_type[type(r)], r.source_id, r

    outputs_by_type = {Average: averages_topic, AqiRecord: aqi_topic, WaterQualityDay: water_topic}
    runner = Runner(
        {}, dead, route, batch=settings.stream_batch, within=settings.stream_batch_seconds
    )
    stage_latency = {
        stage: metrics.latency.labels(stage)
        for stage in ("validated", "stored", "averaged", "violation")
    }

    def observe_latency(stage: str, since: datetime) -> None:
        stage_latency[stage].observe((datetime.now(UTC) - since).total_seconds())

    def broker_time(event: Any) -> datetime:
        # the broker's time: the same when the message is delivered again
        m = event.message
        return datetime.fromtimestamp(m.timestamp, UTC) if m.timestamp else datetime.now(UTC)

    def series_key(r: Any) -> str:
        return f"{r.source_id}|{r.parameter}"

    def count_rejection(r: Any) -> Any:
        return ("rejected", r.channel, r.reason) if isinstance(r, Rejection) else None

    def inc(counts: Counter[Any]) -> None:
        for (kind, *labels), n in counts.items():
            counters[kind].labels(*labels).inc(n)

    counters = {
        "rejected": metrics.rejections,
        "average": metrics.averages_emitted,
        "violation": metrics.violation_events,
    }

    # -- validate: raw → flagged readings, stored, then passed on -------------------------------
    def arrivals(event: Any) -> list[Arrival] | Rejection:
        m, now = event.message, datetime.now(UTC)
        decoded = decode_raw(event.value, broker_time(event), coordinates(event))
        if isinstance(decoded, Rejection):
            return decoded
        return [Arrival(r, m.offset * POSITION_STRIDE + i, now) for i, r in enumerate(decoded)]

    async def store_readings(batch: Batch, outputs: list[Output]) -> list[Output]:
        # Readings are stored here, before the raw offsets can be committed: the raw topic has
        # this one consumer, so "stored, then acked" holds without depending on how Faust
        # combines the acks of several agents reading one topic. A reading the database refuses
        # is dead-lettered and not passed on.
        judged = [o for o in outputs if isinstance(o.record, QcReading)]
        passed = [o for o in outputs if not isinstance(o.record, QcReading)]
        refused = await write_rows(write_readings, [to_row.reading_row(o.record) for o in judged])
        by_source: dict[str, list[QcReading]] = {}
        for o, error in zip(judged, refused, strict=True):
            q = o.record
            observe_latency("validated", q.received_at)
            if error is not None:
                line = q.position % POSITION_STRIDE + 1
                rej = dead.rejection(
                    "validate_readings",
                    o.event,
                    RejectReason.STORAGE_ERROR,
                    error,
                    line=line,
                    source_id=q.source_id,
                )
                passed.append(Output(o.event, line, rej, dead=True))
                continue
            by_source.setdefault(q.source_id, []).append(q)
            observe_latency("stored", q.received_at)
            if q.flag == QcFlag.VALID:
                note_valid(batch, o.event, q)
        for (parameter, flag), n in Counter(
            (q.parameter, q.flag) for mine in by_source.values() for q in mine
        ).items():
            metrics.qc_flags.labels(parameter, flag).inc(n)
        for source_id, mine in by_source.items():
            for i in range(0, len(mine), MAX_BATCH_READINGS):  # messages stay ≪ 1 MiB
                passed.append(
                    Output(None, None, QcBatch(source_id, mine[i : i + MAX_BATCH_READINGS]))
                )
        return passed

    def note_valid(batch: Batch, event: Any, q: QcReading) -> None:
        """The outage watch's input: the newest valid reading per source, at most once a minute."""
        t = q.measured_at.timestamp()
        seen = batch.slot(last_valid, q.source_id, event, same, same)
        if seen is not None and (seen.state is None or t >= seen.state + 60):
            batch.set(seen, event, t)
            metrics.last_reading.labels(q.source_id).set(t)

    validate_stage: Stage[Arrival, SeriesState] = Stage(
        name="validate_readings",
        table=qc_state,
        decode=arrivals,
        key=lambda a: series_key(a.reading),
        load=lambda key, d: SeriesState.from_dict(d) if d else SeriesState(),
        dump=SeriesState.to_dict,
        step=validate,
        config=validator,
        finish=store_readings,
        count=count_rejection,
        on_counts=inc,
    )

    # -- average: valid readings → window means ----------------------------------------------
    def valid_readings(event: Any) -> list[QcReading] | Rejection:
        decoded = decode_valid(event.value, broker_time(event), coordinates(event))
        if isinstance(decoded, Rejection):
            return decoded
        for r in decoded.readings:
            observe_latency("averaged", r.received_at)
        return [r for r in decoded.readings if r.flag == QcFlag.VALID]

    def load_windows(key: str, d: Any) -> SeriesWindows:
        source_id, parameter = key.split("|", 1)
        interval = registry.get(source_id).interval_for(parameter)
        threshold, horizon = settings.completeness_threshold, int(settings.late_horizon_hours)
        if d:
            return SeriesWindows.from_dict(d, interval, threshold, horizon)
        return SeriesWindows(parameter, interval, threshold, horizon)

    async def newest_running(batch: Batch, outputs: list[Output]) -> list[Output]:
        # a running hour's mean only feeds early warnings: a batch's last one per series is enough
        final = [o for o in outputs if not isinstance(o.record, Average) or o.record.final]
        running = {
            series_key(o.record): o
            for o in outputs
            if isinstance(o.record, Average) and not o.record.final
        }
        return final + list(running.values())

    average_stage: Stage[QcReading, SeriesWindows] = Stage(
        name="average_readings",
        table=window_state,
        decode=valid_readings,
        key=series_key,
        load=load_windows,
        dump=SeriesWindows.to_dict,
        step=steps.average,
        finish=newest_running,
        count=lambda a: (
            ("average", a.period, str(a.valid).lower())
            if isinstance(a, Average) and a.final
            else count_rejection(a)
        ),
        on_counts=inc,
    )

    # -- check: averages → violation events ---------------------------------------------------
    def judgements(avg: Average) -> list[steps.Judgement]:
        return [
            steps.Judgement(avg, limit, limit_book.penalty_for(avg.source_id, limit.parameter))
            for limit in limit_book.for_average(avg)
        ]

    async def violation_latency(batch: Batch, outputs: list[Output]) -> list[Output]:
        for event in {
            id(o.event): o.event for o in outputs if isinstance(o.record, ViolationEvent)
        }.values():
            observe_latency("violation", event.value.window_end)
        return outputs

    check_stage: Stage[steps.Judgement, RuleState | None] = Stage(
        name="check_thresholds",
        table=rule_state,
        decode=typed(judgements),
        key=lambda j: f"{j.average.source_id}|{j.limit.rule_id}",
        load=lambda key, d: RuleState.from_json(d) if d else None,
        dump=lambda state: state.to_json() if state else None,
        step=steps.check,
        finish=violation_latency,
        count=lambda e: (
            ("violation", e.event, e.severity) if isinstance(e, ViolationEvent) else None
        ),
        on_counts=inc,
    )

    # -- VN_AQI and surface-water classification: more readers of the averages ---------------
    aqi_stage: Stage[Average, StationAqi] = Stage(
        name="compute_aqi",
        table=aqi_state,
        decode=typed(lambda a: [a] if a.source_id in air_stations and a.final else []),
        key=lambda a: a.source_id,
        # the AQI day's completeness is thresholds/aqi.py's, shared with `quantrac aqi --daily`
        load=lambda key, d: StationAqi.from_dict(d) if d else StationAqi(),
        dump=StationAqi.to_dict,
        step=steps.aqi,
    )
    # QCVN 08:2023 classifies the water body (no limits, no violations): each final, valid
    # local-day mean updates the station's day, emitted again with a higher revision.
    water_stage: Stage[Average, StationDays] = Stage(
        name="classify_water",
        table=water_state,
        decode=typed(
            lambda a: (
                [a]
                if a.source_id in water.targets and a.period == "day" and a.final and a.valid
                else []
            )
        ),
        key=lambda a: a.source_id,
        load=lambda key, d: StationDays.from_dict(d) if d else StationDays(),
        dump=StationDays.to_dict,
        step=steps.classify_water,
        config=water,
    )

    # -- outages: the leader's ticks → outage opened / closed ---------------------------------
    def outage_checks(tick: Tick) -> list[steps.OutageCheck]:
        source = registry.find(tick.source_id)
        if source is None:
            return []
        seen = last_valid.get(tick.source_id)
        last = datetime.fromtimestamp(seen["s"], UTC) if seen else None
        allowance = outage_allowance(source, settings.outage_min_s, settings.outage_intervals)
        return [steps.OutageCheck(tick, last, allowance)]

    outage_stage: Stage[steps.OutageCheck, OutageState | None] = Stage(
        name="watch_outages",
        table=outage_state,
        decode=typed(outage_checks),
        key=lambda c: c.tick.source_id,
        load=lambda key, d: OutageState.from_json(d) if d else None,
        dump=lambda state: state.to_json() if state else None,
        step=steps.outages,
        count=lambda e: (
            ("violation", e.event, e.severity) if isinstance(e, ViolationEvent) else None
        ),
        on_counts=inc,
    )

    for topic_, stage in (
        (raw_topic, validate_stage),
        (valid_topic, average_stage),
        (averages_topic, check_stage),
        (averages_topic, aqi_stage),
        (averages_topic, water_stage),
        (ticks_topic, outage_stage),
    ):
        app.agent(topic_, name=stage.name)(runner.agent(stage))

    # Outages: the leader sends a tick per registered source to `ticks`, keyed by source, so
    # each tick reaches the worker that owns the source's partition and its tables.
    @app.timer(settings.clock_tick_s, on_leader=True)
    async def tick_sources() -> None:
        now = datetime.now(UTC)
        for source in registry.sources:
            await ticks_topic.send(key=source.id, value=Tick(source_id=source.id, at=now))

    async def to_dead_letter(dead_letters: Sequence[tuple[str, Rejection]]) -> None:
        pending = [await rejected_topic.send(key=k, value=r) for k, r in dead_letters]
        await asyncio.gather(*pending)  # confirmed before the events are acked

    async def store_dead_letter(dead_letters: Sequence[tuple[str, Rejection]]) -> None:
        # persist_rejections' own: back onto its topic would loop; its fields are safe to store
        await write_rejections([to_row.rejection_row(r) for _, r in dead_letters])

    async def persist(
        stream: Any,
        *writes: tuple[Callable[..., Any], Callable[[Any], Row]],
        keep: Callable[[Any], bool] = lambda _: True,
        stage: str,
        dead_letter: Callable[[Sequence[tuple[str, Rejection]]], Any] = to_dead_letter,
    ) -> None:
        """Write each batch, then ack its events: offsets are committed only after the DB commit.

        ``noack_take`` leaves acking to us; Faust's ``take`` would ack in a ``finally``, so a
        shutdown in the middle of a failed write would commit offsets of unwritten rows. A
        record the database refuses is dead-lettered (confirmed) before the ack
        (streams/errors.py).
        """
        rows, wait = settings.persist_batch_rows, settings.persist_batch_seconds
        async for events in stream.noack_take(rows, within=wait):
            await dead.persist(stage, events, writes, keep, dead_letter)
            for event in events:
                await stream.ack(event)

    @app.agent(averages_topic, name="persist_averages")
    async def persist_averages(stream: Any) -> None:
        # Running-hour averages (final=False) feed early warnings only; they are not stored.
        await persist(
            stream,
            (write_averages, to_row.average_row),
            keep=lambda a: a.final,
            stage="persist_averages",
        )

    @app.agent(aqi_topic, name="persist_aqi")
    async def persist_aqi(stream: Any) -> None:
        await persist(stream, (write_aqi, to_row.aqi_row), stage="persist_aqi")

    @app.agent(water_topic, name="persist_water_quality")
    async def persist_water_quality(stream: Any) -> None:
        await persist(
            stream, (write_water, to_row.water_quality_row), stage="persist_water_quality"
        )

    @app.agent(violations_topic, name="persist_violations")
    async def persist_violations(stream: Any) -> None:
        await persist(
            stream,
            (write_events, to_row.event_row),
            (write_violations, to_row.violation_row),
            stage="persist_violations",
        )

    @app.agent(rejected_topic, name="persist_rejections")
    async def persist_rejections(stream: Any) -> None:
        await persist(
            stream,
            (write_rejections, to_row.rejection_row),
            stage="persist_rejections",
            dead_letter=store_dead_letter,
        )

    # Faust's own sensors (messages, events, table operations, commits, rebalances, offsets)
    # go to the same registry, so /metrics shows them beside ours, prefixed faust_.
    sensors = FaustSensors(metrics.registry)
    app.monitor = PrometheusMonitor(metrics=FaustMetrics.create(sensors.source, "faust"))

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
