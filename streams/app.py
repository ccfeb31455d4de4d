"""The Faust application: ``create_app(settings)`` declares the topics and the agents.

Agents are thin: read, call a pure function, send or write. The pure functions live in
``thresholds/`` (QA/QC, averaging, AQI, limits) and the writers in ``storage/``.
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
    RawReading,
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
from streams.batch import Batch, LiveStates
from streams.checks import LimitBook, outage_allowance
from streams.consumer import STALL_S, GuardedConsumer
from streams.db import Database
from streams.errors import DeadLetters, RecordSchema, write_rows
from streams.validate import Validator, decode_raw, decode_valid
from thresholds.aqi_station import StationAqi
from thresholds.averaging import LOCAL_TZ
from thresholds.catalogue import load_catalogue
from thresholds.qc import SeriesState, load_qc_rules
from thresholds.violations import OutageState, RuleState, check_outage, evaluate
from thresholds.water_quality import StationDays, WaterDay, is_worse
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


def to_water_day(source_id: str, target: str | None, d: WaterDay, day_start: datetime) -> Any:
    return WaterQualityDay(
        source_id=source_id,
        day=d.day,
        day_start=day_start,
        water_class=d.water_class,
        target_class=target,
        alert=is_worse(d.water_class, target),
        wqi=d.wqi,
        wqi_meets_minimum=d.wqi_meets_minimum,
        wqi_groups=d.wqi_groups,
        wqi_note=d.wqi_note,
        means=d.means,
        classes=d.classes,
        skipped=d.skipped,
        over_table1=d.over_table1,
        revision=d.revision,
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
    water_targets = {s.id: s.target_class for s in registry.of_kind(SourceKind.SURFACE_WATER)}
    metrics.init_sources(
        [s.id for s in registry.sources],
        sorted({p.code.value for s in registry.sources for p in s.parameters}),
    )
    step, within = settings.stream_batch, settings.stream_batch_seconds

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

    def new_windows(key: str) -> Callable[[Any], SeriesWindows]:
        source_id, parameter = key.split("|", 1)

        def load(d: Any) -> SeriesWindows:
            if d:
                return SeriesWindows.from_dict(d)
            return SeriesWindows(
                parameter,
                registry.get(source_id).interval_for(parameter),
                settings.completeness_threshold,
                int(settings.late_horizon_hours),
            )

        return load

    def load_rule(d: Any) -> RuleState | None:
        return RuleState.from_json(d) if d else None

    def dump_rule(state: RuleState | None) -> Any:
        return state.to_json() if state else None

    def load_aqi(d: Any) -> StationAqi:
        # The AQI day's completeness is thresholds/aqi.py's, shared with `quantrac aqi --daily`.
        return StationAqi.from_dict(d) if d else StationAqi()

    def same(x: Any) -> Any:
        return x

    states: LiveStates = {}  # the agents' state objects, kept between batches (streams/batch.py)

    def load_qc(d: Any) -> SeriesState:
        return SeriesState.from_dict(d) if d else SeriesState()

    stage_latency = {
        stage: metrics.latency.labels(stage)
        for stage in ("validated", "stored", "averaged", "violation")
    }

    def observe_latency(stage: str, since: datetime) -> None:
        stage_latency[stage].observe((datetime.now(UTC) - since).total_seconds())

    @app.agent(raw_topic, name="validate_readings")
    async def validate_readings(stream: Any) -> None:
        async for events in stream.noack_take(step, within=within):
            batch, now = Batch(states), datetime.now(UTC)
            judged: list[tuple[Any, int, QcReading]] = []
            delivered: list[tuple[Any, int, RawReading]] = []
            for event in events:
                m = event.message
                decoded = decode_raw(
                    event.value,
                    # the broker's time: the same when the message is delivered again
                    datetime.fromtimestamp(m.timestamp, UTC) if m.timestamp else now,
                    f"{m.topic}:{m.partition}:{m.offset}",
                )
                if isinstance(decoded, Rejection):
                    metrics.rejections.labels(decoded.channel, decoded.reason).inc()
                    batch.emit(rejected_topic, str(event.key or b"", "utf-8", "replace"), decoded)
                    continue
                delivered += [(event, i, r) for i, r in enumerate(decoded)]
            for event, index, r in delivered:
                with dead.guard("validate_readings", batch, event, line=index + 1):
                    key = f"{r.source_id}|{r.parameter}"
                    slot = batch.slot(qc_state, key, event, load_qc, SeriesState.to_dict)
                    if slot is None:
                        continue  # applied before a restart; its output was confirmed then
                    position = event.message.offset * POSITION_STRIDE + index
                    result = validator.check(r, slot.state, now, position)
                    if not isinstance(result, QcReading):  # a Rejection
                        metrics.rejections.labels(result.channel, result.reason).inc()
                        batch.emit(rejected_topic, r.source_id, result)
                        continue
                    batch.set(slot, event, slot.state)
                    judged.append((event, index, result))
                    if result.flag == QcFlag.VALID:
                        t = result.measured_at.timestamp()
                        seen = batch.slot(last_valid, r.source_id, event, same, same)
                        if seen is not None and (seen.state is None or t >= seen.state + 60):
                            batch.set(seen, event, t)  # one write per source per minute at most
                            metrics.last_reading.labels(r.source_id).set(t)
                    observe_latency("validated", r.received_at)
            # Readings are stored here, before the raw offsets can be committed: the raw topic
            # has this one consumer, so "stored, then acked" holds without depending on how
            # Faust combines the acks of several agents reading one topic. A reading the
            # database refuses is dead-lettered and not passed on.
            refused = await write_rows(write_readings, [to_row.reading_row(q) for *_, q in judged])
            stored: list[QcReading] = []
            by_source: dict[str, list[QcReading]] = {}
            for (event, index, q), error in zip(judged, refused, strict=True):
                if error is not None:
                    rej = dead.rejection(
                        "validate_readings",
                        event,
                        RejectReason.STORAGE_ERROR,
                        error,
                        line=index + 1,
                        source_id=q.source_id,
                    )
                    batch.emit(rejected_topic, q.source_id, rej)
                    continue
                stored.append(q)
                by_source.setdefault(q.source_id, []).append(q)
                observe_latency("stored", q.received_at)
            # counted per batch: a labels() lookup per reading was 4 % of the worker's CPU
            for (parameter, flag), n in Counter((q.parameter, q.flag) for q in stored).items():
                metrics.qc_flags.labels(parameter, flag).inc(n)
            for source_id, mine in by_source.items():
                for i in range(0, len(mine), MAX_BATCH_READINGS):  # messages stay ≪ 1 MiB
                    chunk = mine[i : i + MAX_BATCH_READINGS]
                    batch.emit(valid_topic, source_id, QcBatch(source_id, chunk).dumps())
            await batch.commit(stream, events)

    @app.agent(valid_topic, name="average_readings")
    async def average_readings(stream: Any) -> None:
        async for events in stream.noack_take(step, within=within):
            batch = Batch(states)
            running: dict[str, Average] = {}  # newest running-hour mean per series
            emitted: Counter[tuple[str, str]] = Counter()
            inputs: list[tuple[Any, QcReading]] = []
            for event in events:
                m = event.message
                decoded = decode_valid(
                    event.value,
                    datetime.fromtimestamp(m.timestamp, UTC) if m.timestamp else datetime.now(UTC),
                    f"{m.topic}:{m.partition}:{m.offset}",
                )
                if isinstance(decoded, Rejection):
                    metrics.rejections.labels(decoded.channel, decoded.reason).inc()
                    batch.emit(rejected_topic, str(event.key or b"", "utf-8", "replace"), decoded)
                    continue
                inputs += [(event, r) for r in decoded.readings]
            for event, r in inputs:
                if r.flag != QcFlag.VALID:
                    continue  # stored with its flag by validate_readings; never averaged
                with dead.guard("average_readings", batch, event):
                    key = f"{r.source_id}|{r.parameter}"
                    slot = batch.slot(
                        window_state, key, event, new_windows(key), SeriesWindows.to_dict
                    )
                    if slot is None:
                        continue
                    if 0 <= r.position <= slot.state.last_input:
                        continue  # a copy the validate stage emitted again after a crash
                    outs = slot.state.add(r.measured_at, r.value)
                    slot.state.last_input = max(slot.state.last_input, r.position)
                    batch.set(slot, event, slot.state)
                    for out in outs:
                        avg = to_average(r, out)
                        if not out.final:
                            running[key] = avg  # only a batch's last one matters (warnings)
                            continue
                        emitted[(avg.period, str(avg.valid).lower())] += 1
                        batch.emit(averages_topic, r.source_id, avg)
                    observe_latency("averaged", r.received_at)
            for avg in running.values():
                batch.emit(averages_topic, avg.source_id, avg)
            for (period, valid), n in emitted.items():
                metrics.averages_emitted.labels(period, valid).inc(n)
            await batch.commit(stream, events)

    @app.agent(averages_topic, name="check_thresholds")
    async def check_thresholds(stream: Any) -> None:
        async for events in stream.noack_take(step, within=within):
            batch = Batch(states)
            for event in dead.decoded("check_thresholds", batch, events):
                with dead.guard("check_thresholds", batch, event):
                    avg: Average = event.value
                    for limit in limit_book.for_average(avg):
                        key = f"{avg.source_id}|{limit.rule_id}"
                        slot = batch.slot(rule_state, key, event, load_rule, dump_rule)
                        if slot is None:
                            continue
                        penalty = limit_book.penalty_for(avg.source_id, limit.parameter)
                        new_state, out = evaluate(slot.state, avg, limit, penalty=penalty)
                        batch.set(slot, event, new_state)
                        for e in out:
                            metrics.violation_events.labels(e.event, e.severity).inc()
                            batch.emit(violations_topic, e.violation_id, e)
                        if out:
                            observe_latency("violation", avg.window_end)
            await batch.commit(stream, events)

    @app.agent(averages_topic, name="compute_aqi")
    async def compute_aqi(stream: Any) -> None:
        async for events in stream.noack_take(step, within=within):
            batch = Batch(states)
            for event in dead.decoded("compute_aqi", batch, events):
                avg = event.value
                if avg.source_id not in air_stations or not avg.final:
                    continue
                with dead.guard("compute_aqi", batch, event):
                    slot = batch.slot(aqi_state, avg.source_id, event, load_aqi, StationAqi.to_dict)
                    if slot is None:
                        continue
                    outs = slot.state.add(
                        avg.parameter, avg.period, avg.window_start, avg.value, avg.valid
                    )
                    batch.set(slot, event, slot.state)
                    for out in outs:
                        res = out.result
                        batch.emit(
                            aqi_topic,
                            avg.source_id,
                            AqiRecord(
                                source_id=avg.source_id,
                                kind=out.kind,
                                window_start=out.window_start,
                                aqi=res.aqi,
                                category=res.category.value if res.category else None,
                                dominant=res.dominant.value if res.dominant else None,
                                sub_indices=res.sub_indices,
                            ),
                        )
            await batch.commit(stream, events)

    def load_days(d: Any) -> StationDays:
        return StationDays.from_dict(d) if d else StationDays()

    # Surface water: QCVN 08:2023 classifies the water body (no limits, no violations). Each
    # final, valid local-day mean updates the station's day; the day's class and VN_WQI are
    # emitted again with a higher revision (thresholds/water_quality.py).
    @app.agent(averages_topic, name="classify_water")
    async def classify_water(stream: Any) -> None:
        async for events in stream.noack_take(step, within=within):
            batch = Batch(states)
            for event in dead.decoded("classify_water", batch, events):
                avg = event.value
                if avg.source_id not in water_targets or avg.period != "day":
                    continue
                if not (avg.final and avg.valid) or avg.value is None:
                    continue
                with dead.guard("classify_water", batch, event):
                    load, dump = load_days, StationDays.to_dict
                    slot = batch.slot(water_state, avg.source_id, event, load, dump)
                    if slot is None:
                        continue
                    day = avg.window_start.astimezone(LOCAL_TZ).date().isoformat()
                    out = slot.state.add(day, avg.parameter, avg.value, limit_book.catalogue)
                    batch.set(slot, event, slot.state)
                    if out is not None:
                        target = water_targets[avg.source_id]
                        record = to_water_day(avg.source_id, target, out, avg.window_start)
                        batch.emit(water_topic, avg.source_id, record)
            await batch.commit(stream, events)

    # Outages: the leader sends a tick per registered source to `ticks`, keyed by source, so
    # each tick reaches the worker that owns the source's partition and its tables.
    @app.timer(settings.clock_tick_s, on_leader=True)
    async def tick_sources() -> None:
        now = datetime.now(UTC)
        for source in registry.sources:
            await ticks_topic.send(key=source.id, value=Tick(source_id=source.id, at=now))

    @app.agent(ticks_topic, name="watch_outages")
    async def watch_outages(stream: Any) -> None:
        async for events in stream.noack_take(step, within=within):
            batch = Batch(states)
            for event in dead.decoded("watch_outages", batch, events):
                tick: Tick = event.value
                source = registry.find(tick.source_id)
                if source is None:
                    continue
                with dead.guard("watch_outages", batch, event):
                    slot = batch.slot(outage_state, tick.source_id, event, same, same)
                    if slot is None:
                        continue
                    current = (
                        OutageState.from_json(slot.state)
                        if slot.state
                        else OutageState(source_id=tick.source_id, watch_since=tick.at)
                    )
                    seen = last_valid.get(tick.source_id)
                    last = datetime.fromtimestamp(seen["s"], UTC) if seen else None
                    allowance = outage_allowance(
                        source, settings.outage_min_s, settings.outage_intervals
                    )
                    new_state, out = check_outage(current, last, tick.at, allowance)
                    batch.set(slot, event, new_state.to_json())
                    for e in out:
                        metrics.violation_events.labels(e.event, e.severity).inc()
                        batch.emit(violations_topic, e.violation_id, e)
            await batch.commit(stream, events)

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
