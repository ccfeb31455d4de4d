"""The stages' pure steps: ``step(state, items, config) -> (state, outputs)``.

A step is what a stage does with one state key's items of one input message: no broker, no
database, no clock. The runner (streams/runner.py) owns everything around it — decoding,
dead letters, the skip of re-delivered messages, emitting, metrics, commits — so each step is
unit-tested with plain values (tests/unit/test_steps.py). A step may change ``state`` in place
and return it; when it raises, the runner reloads the state and dead-letters the items.

``config`` is the stage's configuration (settings, the limit book, …), passed in at every call
and never stored in the state, so a changed setting takes effect on the next start.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from core.records import (
    AqiRecord,
    Average,
    ManualHour,
    QcFlag,
    QcReading,
    Tick,
    ViolationEvent,
    WaterQualityDay,
)
from thresholds.aqi_station import StationAqi
from thresholds.averaging import LOCAL_TZ
from thresholds.catalogue import Catalogue
from thresholds.limits import Limit
from thresholds.severity import Penalty
from thresholds.violations import OutageState, RuleState, check_outage, evaluate
from thresholds.water_quality import StationDays, WaterDay, is_worse
from thresholds.windows import SeriesWindows, WindowOut

# -- average: valid readings → window means ------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RunningHour:
    """A step's note that a series' running hour changed. The stage keeps a batch's last note
    per series and makes it one partial mean from the state the batch leaves (``running``):
    only the newest running mean feeds early warnings, and a mean per sample was a tenth of
    the worker's CPU."""

    source_id: str
    parameter: str
    unit: str


def to_average(r: QcReading | ManualHour | RunningHour, out: WindowOut) -> Average:
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


def running(note: RunningHour, state: SeriesWindows) -> Average:
    """The running hour's partial mean of the series ``note`` names, from its state."""
    return to_average(note, state.running())


def average(
    state: SeriesWindows, items: Sequence[QcReading | ManualHour], config: None = None
) -> tuple[SeriesWindows, list[Average | RunningHour]]:
    """One series' valid readings into its windows; the final windows they close or revise,
    then a ``RunningHour`` when the running hour changed (for early warnings). A manual
    decision's hours (``ManualHour``) revise the windows they touch, each once."""
    out: list[Average | RunningHour] = []
    seen = state.last_input  # one message's items: a decision's hours share its position
    changes: list[ManualHour] = []
    touched: QcReading | ManualHour | None = None
    for r in items:
        if isinstance(r, QcReading) and (r.flag != QcFlag.VALID or r.manual_id is not None):
            continue  # stored with its flag (and label) by the validate stage; never averaged
        if 0 <= r.position <= seen:
            continue  # a copy the validate stage emitted again after a crash
        state.last_input = max(state.last_input, r.position)
        if isinstance(r, ManualHour):
            changes.append(r)
            continue
        windows, moved = state.take(r.measured_at, r.value)
        out += [to_average(r, w) for w in windows]
        touched = r if moved else touched
    if changes:
        revised = state.revise([(h.hour, h.sum, h.n) for h in changes])
        out += [to_average(changes[0], w) for w in revised if w.final]
        touched = changes[0] if any(not w.final for w in revised) else touched
    if touched is not None:
        out.append(RunningHour(touched.source_id, touched.parameter, touched.unit))
    return state, out


# -- check: averages → violation events ----------------------------------------------------------


@dataclass(frozen=True)
class Judgement:
    """One average against one limit in force, with the Decree 45 schedule that bands it."""

    average: Average
    limit: Limit
    penalty: Penalty
    judged_at: datetime  # the wall clock when the check took it (for ``found_late``)


def check(
    state: RuleState | None, items: Sequence[Judgement], found_late_after: timedelta
) -> tuple[RuleState | None, list[ViolationEvent]]:
    """One rule of one source: open, update, close or correct its violations. An event judged
    more than ``found_late_after`` after its window ended (a backlog) says it was found late."""
    events: list[ViolationEvent] = []
    for j in items:
        state, out = evaluate(state, j.average, j.limit, penalty=j.penalty)
        events += [
            found_late(e, j.judged_at) if j.judged_at - e.at > found_late_after else e for e in out
        ]
    return state, events


def found_late(e: ViolationEvent, judged_at: datetime) -> ViolationEvent:
    hours = (judged_at - e.at).total_seconds() / 3600
    note = f"Found late: judged {hours:.0f} h after its window ended (a backlog)."
    message = f"{e.message} {note}" if e.message else note
    return ViolationEvent(**{**e.asdict(), "found_late": True, "message": message})


# -- VN_AQI: final 1-h means and NowCasts of an air station → hourly and daily AQI ---------------


def aqi(
    state: StationAqi, items: Sequence[Average], config: None = None
) -> tuple[StationAqi, list[AqiRecord]]:
    out: list[AqiRecord] = []
    for avg in items:
        for o in state.add(avg.parameter, avg.period, avg.window_start, avg.value, avg.valid):
            res = o.result
            out.append(
                AqiRecord(
                    source_id=avg.source_id,
                    kind=o.kind,
                    window_start=o.window_start,
                    aqi=res.aqi,
                    category=res.category.value if res.category else None,
                    dominant=res.dominant.value if res.dominant else None,
                    sub_indices=res.sub_indices,
                )
            )
    return state, out


# -- surface water: final valid day means → the day's QCVN 08:2023 class and VN_WQI --------------


@dataclass(frozen=True)
class WaterConfig:
    catalogue: Catalogue
    targets: Mapping[str, str | None]  # station → the registry's target class


def to_water_day(
    source_id: str, target: str | None, d: WaterDay, day_start: datetime
) -> WaterQualityDay:
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


def classify_water(
    state: StationDays, items: Sequence[Average], config: WaterConfig
) -> tuple[StationDays, list[WaterQualityDay]]:
    out: list[WaterQualityDay] = []
    for avg in items:
        if avg.value is None:
            continue
        day = avg.window_start.astimezone(LOCAL_TZ).date().isoformat()
        result = state.add(day, avg.parameter, avg.value, config.catalogue)
        if result is not None:
            target = config.targets.get(avg.source_id)
            out.append(to_water_day(avg.source_id, target, result, avg.window_start))
    return state, out


# -- outages: the leader's ticks → outage opened / closed ----------------------------------------


@dataclass(frozen=True)
class OutageCheck:
    """A tick, with what the outage watch compares it to."""

    tick: Tick
    last_valid: datetime | None  # the source's newest valid reading (None: never)
    allowance: timedelta


def outages(
    state: OutageState | None, items: Sequence[OutageCheck], config: None = None
) -> tuple[OutageState | None, list[ViolationEvent]]:
    events: list[ViolationEvent] = []
    for c in items:
        current = state or OutageState(source_id=c.tick.source_id, watch_since=c.tick.at)
        state, out = check_outage(current, c.last_valid, c.tick.at, c.allowance)
        events += out
    return state, events
