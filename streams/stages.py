"""The worker's stateful stages, each a declaration the runner executes (streams/runner.py).

    readings.raw ──validate──▶ readings.valid ──average──▶ averages ──────────check──▶ violations
                    (+ readings table)                  │  ├──o2──▶ averages.corrected ──┘
                                                        │  ├──aqi──▶ aqi
                                                        │  └──water──▶ water_quality
    ticks ──outages──▶ violations

Each function below says what its stage reads, how an input becomes items, the key of its
state, and which pure step it runs; nothing here sends, commits or acks.
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from collections.abc import Awaitable, Callable, Hashable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from core.errors import RejectReason
from core.metrics import Metrics
from core.parameters import SourceKind
from core.records import (
    MAX_BATCH_READINGS,
    POSITION_STRIDE,
    Average,
    ManualHour,
    ManualValidation,
    QcBatch,
    QcFlag,
    QcReading,
    Rejection,
    Tick,
    ViolationEvent,
)
from core.settings import Settings
from core.topics import CORRECTED
from stations.registry import Registry
from storage import rows as to_row
from storage.revalidation import Relabel
from streams.batch import Batch, stored_value
from streams.checks import LimitBook, outage_allowance
from streams.errors import DeadLetters, Undecodable, coordinates, write_rows
from streams.persist import Write
from streams.runner import Link, Output, Stage, typed
from streams.topology import Tables, Topics
from streams.validate import (
    Arrival,
    Mark,
    Revalidation,
    Validator,
    decode_raw,
    decode_valid,
    message_rejection,
    validate,
)
from thresholds import steps
from thresholds.aqi_station import StationAqi
from thresholds.averaging import LOCAL_TZ, hour_window
from thresholds.catalogue import load_catalogue
from thresholds.qc import SeriesState, load_qc_rules
from thresholds.reference_o2 import (
    CorrectionSettings,
    CorrectionState,
    correction_settings,
    with_reference,
)
from thresholds.reference_o2 import step as correct_step
from thresholds.steps import RunningHour
from thresholds.violations import OutageState, RuleState
from thresholds.water_quality import StationDays
from thresholds.windows import SeriesWindows


@dataclass(frozen=True)
class Wiring:
    """What the stages are built from."""

    settings: Settings
    metrics: Metrics
    registry: Registry
    validator: Validator
    limit_book: LimitBook
    tables: Tables
    dead: DeadLetters
    write_readings: Write
    # a stage's records stored before they are sent (streams/persist.py: store_early), per
    # sink: readings are judged, averaged and checked in one batch, and are in the database
    # in that order before its offsets are committed
    store_early: Callable[[str, Sequence[Any]], Awaitable[set[int]]]
    relabel: Callable[[Relabel], Awaitable[list[tuple[datetime, float]]]]  # storage/revalidation
    topics: Topics
    corrections: Mapping[str, CorrectionSettings]  # stacks judged at a reference O2
    # per stage: the last ``since`` observed and the histogram's child for the stage
    _observed: dict[str, tuple[datetime, Any]] = field(default_factory=dict, repr=False)

    @classmethod
    def build(
        cls,
        settings: Settings,
        metrics: Metrics,
        registry: Registry,
        *,
        tables: Tables,
        dead: DeadLetters,
        write_readings: Write,
        store_early: Callable[[str, Sequence[Any]], Awaitable[set[int]]],
        relabel: Callable[[Relabel], Awaitable[list[tuple[datetime, float]]]],
        topics: Topics,
    ) -> Wiring:
        """The wiring with the law's parts made from ``settings`` (QA/QC rules, limits, O2
        corrections): the worker's (streams/app.py) and the offline chain's (bench/chain.py)."""
        horizon_s = settings.late_horizon_hours * 3600
        return cls(
            settings=settings,
            metrics=metrics,
            registry=registry,
            validator=Validator(registry, load_qc_rules(), horizon_s, settings.future_tolerance_s),
            limit_book=LimitBook(registry, load_catalogue()),
            tables=tables,
            dead=dead,
            write_readings=write_readings,
            store_early=store_early,
            relabel=relabel,
            topics=topics,
            corrections=correction_settings(
                registry, horizon=timedelta(hours=settings.late_horizon_hours)
            ),
        )

    def observe(self, stage: str, since: datetime, every: bool = False) -> None:
        """Latency from ``since`` (received, or a window's end) to now, per stage reached.

        The readings of one delivery share their ``received_at`` and come one after the other:
        each delivery is observed once per stage (``every``: each call), since an observation
        per reading cost a twentieth of the worker's CPU."""
        last = self._observed.get(stage)
        if last is not None and last[0] == since and not every:
            return
        child = last[1] if last is not None else self.metrics.latency.labels(stage)
        self._observed[stage] = (since, child)
        child.observe((datetime.now(UTC) - since).total_seconds())

    def inc(self, counts: Counter[Hashable]) -> None:
        """A batch's output counts, one ``inc`` per label set."""
        counters = {
            "rejected": self.metrics.rejections,
            "average": self.metrics.averages_emitted,
            "violation": self.metrics.violation_events,
        }
        for label, n in counts.items():
            assert isinstance(label, tuple)
            kind, *labels = label
            counters[kind].labels(*labels).inc(n)


def broker_time(event: Any) -> datetime:
    """The broker's time of a message: the same when the message is delivered again."""
    m = event.message
    return datetime.fromtimestamp(m.timestamp, UTC) if m.timestamp else datetime.now(UTC)


def series_key(r: Any) -> str:
    return f"{r.source_id}|{r.parameter}"


def count(record: Any) -> tuple[str, ...] | None:
    """The metric label of an output: rejections, final averages, violation events."""
    if isinstance(record, Rejection):
        return ("rejected", record.channel, record.reason)
    if isinstance(record, Average):
        return ("average", record.period, str(record.valid).lower()) if record.final else None
    if isinstance(record, ViolationEvent):
        return ("violation", record.event, record.severity)
    return None


def same(x: Any) -> Any:
    return x


async def store_first(
    w: Wiring, sink: str, outputs: list[Output], records: Sequence[Any]
) -> list[Output]:
    """``records`` (some of ``outputs``) stored ahead of ``sink`` (``store_early``); the
    outputs, those stored marked so: they are sent with the header that spares the sink a
    second write."""
    if not records:
        return outputs
    done = await w.store_early(sink, records)
    return [dataclasses.replace(o, stored=True) if id(o.record) in done else o for o in outputs]


def validate_stage(w: Wiring) -> Stage[Arrival, SeriesState]:
    """readings.raw → flagged readings, stored in the database, then on to readings.valid; and
    operators' manual validations → the stored readings labelled, their averages revised."""

    def arrivals(event: Any) -> list[Arrival] | Rejection:
        m, now = event.message, datetime.now(UTC)
        decoded = decode_raw(event.value, broker_time(event), coordinates(event))
        if isinstance(decoded, ManualValidation):
            return marks(event, decoded, now)
        if isinstance(decoded, Rejection):
            return decoded
        return [Arrival(r, m.offset * POSITION_STRIDE + i, now) for i, r in enumerate(decoded)]

    def marks(event: Any, v: ManualValidation, now: datetime) -> list[Arrival] | Rejection:
        # one item per series the decision covers, in the registry's order of parameters
        source = w.registry.find(v.source_id)
        measured = [p.code.value for p in source.parameters] if source else []
        parameters = measured if v.parameter is None else [v.parameter]
        if source is None or not set(parameters) <= set(measured):
            what = f"source {v.source_id!r}" if source is None else f"parameter {v.parameter!r}"
            return message_rejection(
                event.value,
                broker_time(event),
                coordinates(event),
                RejectReason.UNKNOWN_SOURCE
                if source is None
                else RejectReason.PARAMETER_NOT_MEASURED,
                "readings.raw",
                f"manual validation {v.id}: {what} is not in the registry",
            )
        base = event.message.offset * POSITION_STRIDE
        return [Arrival(Mark(v, p), base + i, now) for i, p in enumerate(parameters)]

    async def store(batch: Batch, outputs: list[Output]) -> list[Output]:
        # Stored before the raw offsets can be committed: the raw topic has this one consumer,
        # so "stored, then acked" needs nothing else. A row the database refuses is
        # dead-lettered and not passed on. A manual validation is applied after the batch's
        # readings are stored: it finds every reading that came before it.
        judged = [o for o in outputs if isinstance(o.record, QcReading)]
        refused = await write_rows(w.write_readings, [to_row.reading_row(o.record) for o in judged])
        refusal = {id(o): e for o, e in zip(judged, refused, strict=True)}
        passed: list[Output] = []
        pending: dict[str, list[QcReading]] = {}  # per source, in order, not yet in a message
        flags: Counter[tuple[str, str]] = Counter()

        def send(source_id: str, hours: list[ManualHour] | None = None) -> None:
            mine = pending.pop(source_id, [])
            for i in range(0, len(mine), MAX_BATCH_READINGS):  # messages stay ≪ 1 MiB
                passed.append(
                    Output(None, None, QcBatch(source_id, mine[i : i + MAX_BATCH_READINGS]))
                )
            if hours:  # after the readings before it: the averaging keeps the raw order
                passed.append(Output(None, None, QcBatch(source_id, [], hours)))

        for o in outputs:
            if isinstance(o.record, Revalidation):
                try:
                    hours = await manual_hours(o.record)
                except Exception as exc:  # the database refused it (it retries an outage)
                    v = o.record.validation
                    reason = RejectReason.STORAGE_ERROR
                    rej = w.dead.rejection(
                        "validate_readings", o.event, reason, exc, source_id=v.source_id
                    )
                    passed.append(Output(o.event, None, rej, dead=True))
                    continue
                send(o.record.validation.source_id, hours)
                passed += [Output(o.event, None, h) for h in hours]  # in a chain, averaged
                continue
            if not isinstance(o.record, QcReading):
                passed.append(o)
                continue
            q: QcReading = o.record
            w.observe("validated", q.received_at)
            error = refusal[id(o)]
            if error is not None:
                line = q.position % POSITION_STRIDE + 1
                reason = RejectReason.STORAGE_ERROR
                rej = w.dead.rejection(
                    "validate_readings", o.event, reason, error, line=line, source_id=q.source_id
                )
                passed.append(Output(o.event, line, rej, dead=True))
                continue
            pending.setdefault(q.source_id, []).append(q)
            flags[(q.parameter, q.flag)] += 1
            passed.append(o)  # in a chain, the averaging's input (not sent: readings.valid is)
            w.observe("stored", q.received_at)
            if q.flag == QcFlag.VALID:
                note_valid(batch, o.event, q)
        for (parameter, flag), n in flags.items():
            w.metrics.qc_flags.labels(parameter, flag).inc(n)
        for source_id in list(pending):
            send(source_id)
        return passed

    async def manual_hours(r: Revalidation) -> list[ManualHour]:
        """The stored readings labelled; the hours of those whose validity changed, as sums."""
        v = r.validation
        found = await w.relabel(Relabel(v, r.parameter, r.manual_id, r.spans, r.position))
        sign = -1 if r.withdraws else 1
        hours: dict[datetime, list[float]] = {}
        for measured_at, value in found:
            acc = hours.setdefault(hour_window(measured_at, LOCAL_TZ)[0], [0.0, 0])
            acc[0] += value
            acc[1] += 1
        spec = w.registry.get(v.source_id).parameter(r.parameter)
        assert spec is not None  # checked when the decision was decoded
        unit = spec.unit.value
        return [
            ManualHour(v.source_id, r.parameter, unit, h, sign * t, sign * int(n), r.position)
            for h, (t, n) in sorted(hours.items())
        ]

    def note_valid(batch: Batch, event: Any, q: QcReading) -> None:
        # the outage watch's input: the newest valid reading per source, at most once a minute
        t = q.measured_at.timestamp()
        seen = batch.slot(w.tables.last_valid, q.source_id, event, same, same)
        if seen is not None and (seen.state is None or t >= seen.state + 60):
            batch.set(seen, event, t)
            w.metrics.last_reading.labels(q.source_id).set(t)

    return Stage(
        name="validate_readings",
        table=w.tables.qc,
        decode=arrivals,
        key=lambda a: series_key(a.reading),
        load=lambda key, d: SeriesState.from_dict(d) if d else SeriesState(),
        dump=SeriesState.to_dict,
        step=validate,
        config=w.validator,
        finish=store,
        count=count,
        on_counts=w.inc,
    )


def average_stage(w: Wiring) -> Stage[QcReading | ManualHour, SeriesWindows]:
    """readings.valid → window means on averages (final ones, and the running hour's)."""

    take = to_average(w)

    def valid_readings(event: Any) -> list[QcReading | ManualHour] | Rejection:
        decoded = decode_valid(event.value, broker_time(event), coordinates(event))
        if isinstance(decoded, Rejection):
            return decoded
        return [v for r in [*decoded.readings, *decoded.hours] for v in take(r)]

    def load(key: str, d: Any) -> SeriesWindows:
        # the configuration comes from today's settings, never from the stored state
        source_id, parameter = key.split("|", 1)
        interval = w.registry.get(source_id).interval_for(parameter)
        threshold = w.settings.completeness_threshold
        horizon = int(w.settings.late_horizon_hours)
        if d:
            return SeriesWindows.from_dict(d, interval, threshold, horizon)
        return SeriesWindows(parameter, interval, threshold, horizon)

    async def newest_running(batch: Batch, outputs: list[Output]) -> list[Output]:
        # A running hour's mean only feeds early warnings: one per series per batch, the last
        # step's note made into the mean of the state the whole batch leaves.
        last = {series_key(o.record): o for o in outputs if isinstance(o.record, RunningHour)}
        outputs = [o for o in outputs if not isinstance(o.record, RunningHour)] + [
            Output(o.event, None, steps.running(o.record, batch.state(w.tables.windows, key)))
            for key, o in last.items()
        ]
        # final means stored before they are sent, and before the violations they cause
        finals = [o.record for o in outputs if isinstance(o.record, Average) and o.record.final]
        return await store_first(w, "persist_averages", outputs, finals)

    return Stage(
        name="average_readings",
        table=w.tables.windows,
        decode=valid_readings,
        key=series_key,
        load=load,
        dump=SeriesWindows.to_dict,
        step=steps.average,
        finish=newest_running,
        count=count,
        on_counts=w.inc,
    )


def o2_stage(w: Wiring) -> Stage[Average, CorrectionState | None]:
    """averages of stacks with a reference O2 → averages.corrected: each pollutant window at
    the reference O2 of its window's O2 mean (or not judged, saying why); O2 and the other
    parameters pass through, so the check sees every window of such a stack exactly once."""

    def step(
        state: CorrectionState | None, items: Sequence[Average], config: Any
    ) -> tuple[CorrectionState, list[Average]]:
        return correct_step(state, items, config[items[0].source_id])

    def route(out: Output) -> tuple[Any, str, Any] | None:
        r = out.record
        if isinstance(r, Average):
            return w.topics.corrected, r.source_id, r
        return w.topics.route(out)

    return Stage(
        name="correct_o2",
        table=w.tables.corrections,
        decode=typed(to_o2(w)),
        key=lambda a: a.source_id,
        load=lambda key, d: CorrectionState.from_dict(d) if d else None,
        dump=lambda state: state.to_dict() if state else None,
        step=step,
        config=w.corrections,
        route=route,
        version=lambda state: state.changes if state else None,
    )


def judgements(w: Wiring, corrected: bool) -> Callable[[Any], list[steps.Judgement]]:
    """An average → each limit in force for it. A stack judged at a reference O2 is judged on
    its corrected averages (``corrected``: the input is averages.corrected), never on both."""

    def take(avg: Any) -> list[steps.Judgement]:
        if not isinstance(avg, Average):
            return []
        correction = w.corrections.get(avg.source_id)
        if correction is not None and not corrected:
            return []  # judged from averages.corrected
        book, now = w.limit_book, datetime.now(UTC)
        limits = book.for_average(avg)
        if correction is not None:
            limits = with_reference(limits, correction.reference, correction.parameters)
        return [
            steps.Judgement(avg, limit, book.penalty_for(avg.source_id, limit.parameter), now)
            for limit in limits
        ]

    return take


def to_average(w: Wiring) -> Callable[[Any], list[QcReading | ManualHour]]:
    """A flagged reading → the averaging's input: valid readings outside any manually
    invalidated period, and the hours a manual validation changed."""

    def take(r: Any) -> list[QcReading | ManualHour]:
        if isinstance(r, ManualHour):
            return [r]
        if not isinstance(r, QcReading):
            return []
        w.observe("averaged", r.received_at)
        return [r] if r.flag == QcFlag.VALID and r.manual_id is None else []

    return take


def to_o2(w: Wiring) -> Callable[[Any], list[Average]]:
    """An average → the reference-O2 correction's input: stacks with a reference only."""
    return lambda a: [a] if isinstance(a, Average) and a.source_id in w.corrections else []


def to_aqi(w: Wiring) -> Callable[[Any], list[Average]]:
    """An average → the VN_AQI's input: final means of air stations."""
    air = {s.id for s in w.registry.sources if s.kind is SourceKind.AMBIENT_AIR}
    return lambda a: [a] if isinstance(a, Average) and a.source_id in air and a.final else []


def to_water(w: Wiring) -> Callable[[Any], list[Average]]:
    """An average → the water classification's input: final valid day means of surface-water
    stations."""
    stations = {s.id for s in w.registry.of_kind(SourceKind.SURFACE_WATER)}

    def take(a: Any) -> list[Average]:
        ok = isinstance(a, Average) and a.source_id in stations
        return [a] if ok and a.period == "day" and a.final and a.valid else []

    return take


def check_stage(w: Wiring) -> Stage[steps.Judgement, RuleState | None]:
    """averages (of stacks with a reference O2: averages.corrected) → violation events: each
    average against each limit in force for it."""
    corrected_topic = w.settings.topic(CORRECTED.name)
    plain, corrected = judgements(w, corrected=False), judgements(w, corrected=True)

    def decode(event: Any) -> list[steps.Judgement] | Undecodable:
        if isinstance(event.value, Undecodable):
            return event.value
        return (corrected if event.message.topic == corrected_topic else plain)(event.value)

    async def store(batch: Batch, outputs: list[Output]) -> list[Output]:
        # stored before they are sent: an alert needs no hop through the violations topic
        events = [o.record for o in outputs if isinstance(o.record, ViolationEvent)]
        outputs = await store_first(w, "persist_violations", outputs, events)
        for e in events:
            w.observe("violation", e.at, every=True)  # from the end of its window
        return outputs

    return Stage(
        name="check_thresholds",
        table=w.tables.rules,
        decode=decode,
        key=lambda j: f"{j.average.source_id}|{j.limit.rule_id}",
        load=lambda key, d: RuleState.from_json(d) if d else None,
        dump=lambda state: state.to_json() if state else None,
        step=steps.check,
        config=timedelta(hours=w.settings.found_late_after_hours),
        finish=store,
        count=count,
        on_counts=w.inc,
        # a rule's state is a frozen model, replaced, never changed in place: most
        # judgements (running hours below the limit, replays) leave it as it was
        version=id,
    )


def aqi_stage(w: Wiring) -> Stage[Average, StationAqi]:
    """averages (final 1-h means and NowCasts of air stations) → hourly and daily VN_AQI."""
    return Stage(
        name="compute_aqi",
        table=w.tables.aqi,
        decode=typed(to_aqi(w)),
        key=lambda a: a.source_id,
        # the AQI day's completeness is thresholds/aqi.py's, shared with `quantrac aqi --daily`
        load=lambda key, d: StationAqi.from_dict(d) if d else StationAqi(),
        dump=StationAqi.to_dict,
        step=steps.aqi,
    )


def water_stage(w: Wiring) -> Stage[Average, StationDays]:
    """averages (final valid local-day means of surface-water stations) → the day's QCVN
    08:2023 class and VN_WQI, emitted again with a higher revision as the day's means arrive.
    QCVN 08 classifies the water body: no limits, no violations."""
    stations = w.registry.of_kind(SourceKind.SURFACE_WATER)
    config = steps.WaterConfig(w.limit_book.catalogue, {s.id: s.target_class for s in stations})

    return Stage(
        name="classify_water",
        table=w.tables.water,
        decode=typed(to_water(w)),
        key=lambda a: a.source_id,
        load=lambda key, d: StationDays.from_dict(d) if d else StationDays(),
        dump=StationDays.to_dict,
        step=steps.classify_water,
        config=config,
    )


def outage_stage(w: Wiring) -> Stage[steps.OutageCheck, OutageState | None]:
    """ticks (the leader's clock, per source) → outage opened / closed."""

    def checks(tick: Tick) -> list[steps.OutageCheck]:
        source = w.registry.find(tick.source_id)
        if source is None:
            return []
        seen = stored_value(w.tables.last_valid, tick.source_id)
        last = datetime.fromtimestamp(seen["s"], UTC) if seen else None
        s = w.settings
        allowance = outage_allowance(source, s.outage_min_s, s.outage_intervals)
        return [steps.OutageCheck(tick, last, allowance)]

    return Stage(
        name="watch_outages",
        table=w.tables.outages,
        decode=typed(checks),
        key=lambda c: c.tick.source_id,
        load=lambda key, d: OutageState.from_json(d) if d else None,
        dump=lambda state: state.to_json() if state else None,
        step=steps.outages,
        count=count,
        on_counts=w.inc,
        version=id,  # replaced, never changed in place; most ticks leave it as it was
    )


def chain(w: Wiring) -> tuple[Stage[Any, Any], list[Link]]:
    """The stateful stages in one pass per raw message (``QUANTRAC_FUSED_STAGES``, the default):
    validate → average → correct_o2 → check, and VN_AQI and water classification from the
    same averages. Every output still goes to its topic for the sinks and consoles (but
    readings.valid, see ``publish_valid_readings``), and no stage waits for another's topic: a
    reading's violation leaves in the batch that validated it."""
    v, avg, o2 = validate_stage(w), average_stage(w), o2_stage(w)

    def unless_valid(out: Output) -> tuple[Any, str, Any] | None:
        # readings.valid feeds the hop mode's averaging; here the averaging is fed in-process
        # and the readings table keeps every flagged reading, so the topic is optional
        if isinstance(out.record, QcBatch) and not w.settings.publish_valid_readings:
            return None
        return w.topics.route(out)

    v = dataclasses.replace(v, route=unless_valid)

    def final_only(out: Output) -> tuple[Any, str, Any] | None:
        # a running hour's mean feeds the check in-process; on the topic only the sink would
        # read it, to drop it
        running = isinstance(out.record, Average) and not out.record.final
        return None if running else w.topics.route(out)

    avg = dataclasses.replace(avg, route=final_only)
    return v, [
        Link(avg, ((v.name, to_average(w)),)),
        Link(o2, ((avg.name, to_o2(w)),)),
        Link(
            check_stage(w),
            ((avg.name, judgements(w, corrected=False)), (o2.name, judgements(w, corrected=True))),
        ),
        Link(aqi_stage(w), ((avg.name, to_aqi(w)),)),
        Link(water_stage(w), ((avg.name, to_water(w)),)),
    ]
