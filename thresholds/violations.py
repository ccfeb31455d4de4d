"""The violation lifecycle as a pure state machine: one ``RuleState`` per (source, parameter, rule).

``evaluate(state, average, limit, hysteresis=...)`` returns the next state and the
``ViolationEvent`` records to publish. The state is JSON-serialisable (``to_json`` / ``from_json``)
so an agent can keep it in a Faust table: a restarted worker neither re-fires nor forgets.

How an episode lives (per rule):
- **opened** by the first valid average that exceeds the limit; its id is deterministic:
  ``source:parameter:rule_id:YYYYMMDDTHHMMZ`` (window start of that average, UTC);
- **updated** by each later exceeding average (value, peak value/ratio, duration in the message);
- **closed** once ``clear_windows`` consecutive valid averages are back past the limit by the
  hysteresis margin (< (1 − margin) × max, > (1 + margin) × min). Averages between the limit and
  that margin neither extend nor close it and reset the count, so a value hovering at the limit
  gives one violation, not a flurry;
- invalid (incomplete) or partial averages neither open nor close; an average already seen (same
  window, same or lower revision) changes nothing, so a replay emits nothing;
- a **late correction** (same window, higher revision, or a window arriving out of order within
  ``hysteresis.horizon``) re-derives the episodes from the retained windows and publishes the
  difference: ``corrected`` for every violation whose content changed (then ``closed`` if the
  correction ends it, or a retraction: ``corrected`` + ``closed`` for a violation that never
  was), ``opened`` + ``corrected`` for one the correction creates.

Because episodes are always *derived* (a fold over the retained windows, starting from a frozen
``base``), in-order data and corrections follow the same rules, and the result does not depend on
the order in which windows arrived.

**Calendar bases** (``day``: QCVN 05:2023 §1.3.8 "trung bình 24 giờ (một ngày đêm)", assessed per
local calendar day) count each exceeding window as one exceedance: two days over the limit are two
violations, each opened and closed by its own day, whatever the hours in between. A final
**rolling** 24-h mean past a daily limit gives an early warning for the day it ends in (once per
day); rolling means never open a violation of a daily limit.

Severity of an event = the Decree 45/2022 band of the violation's peak ratio so far, under the
schedule the caller's ``Penalty`` names (``severity.py``): wastewater and stacks only; without one
(ambient stations) the event keeps its ratio and has no band, no article.
Non-final (running hour) averages feed the **early warning** instead. Data **outages** are a
separate small state machine (``check_outage``).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Protocol

from pydantic import BaseModel, ConfigDict
from pydantic.dataclasses import dataclass as pydantic_dataclass

from core.records import ViolationEvent
from thresholds.averaging import day_window
from thresholds.catalogue import Basis, RuleKind
from thresholds.limits import Limit
from thresholds.severity import NO_BAND, NO_PENALTY, Assessment, Penalty, Severity, ratio


class EventKind(StrEnum):
    OPENED = "opened"
    UPDATED = "updated"
    CLOSED = "closed"
    CORRECTED = "corrected"
    WARNING = "warning"
    OUTAGE_OPENED = "outage_opened"
    OUTAGE_CLOSED = "outage_closed"


class EarlyWarning(StrEnum):
    LIKELY = "likely"  # the running mean is already past the limit
    CERTAIN = "certain"  # even if every remaining sample were 0, the hourly mean exceeds


class WindowClass(StrEnum):
    EXCEED = "exceed"  # past the limit
    BAND = "band"  # within the limit but inside the hysteresis margin
    CLEAR = "clear"  # back past the limit by the margin
    INVALID = "invalid"  # incomplete or no value: ignored


@dataclass(frozen=True)
class Hysteresis:
    """Tuning of the lifecycle (per rule or global; the agent decides).

    ``margin``: fraction of the limit a value must be back by to count as clear (0.05: below
    0.95 × max). ``clear_windows``: consecutive clear valid averages needed to close.
    ``horizon``: how far back (window end, from the newest window) a late correction may still
    re-evaluate; older windows are folded into a frozen base. Match it to the late-data horizon.
    """

    margin: float = 0.05
    clear_windows: int = 2
    horizon: timedelta = timedelta(hours=72)
    # True for calendar bases (a local day, a year): each exceeding window is one exceedance,
    # opened and closed by itself, never merged with the next day into one episode.
    per_window: bool = False

    def __post_init__(self) -> None:
        if not 0 <= self.margin < 1:
            raise ValueError(f"margin must be in [0, 1), got {self.margin}")
        if self.clear_windows < 1:
            raise ValueError(f"clear_windows must be >= 1, got {self.clear_windows}")
        if self.horizon <= timedelta(0):
            raise ValueError("horizon must be positive")


class Applicable(Protocol):
    """What ``applies`` reads of an average."""

    @property
    def source_id(self) -> str: ...
    @property
    def parameter(self) -> str: ...
    @property
    def period(self) -> str: ...
    @property
    def valid(self) -> bool: ...
    @property
    def final(self) -> bool: ...


class AverageLike(Applicable, Protocol):
    """What ``evaluate`` reads of an average (``core.records.Average`` has it)."""

    @property
    def window_start(self) -> datetime: ...
    @property
    def window_end(self) -> datetime: ...
    @property
    def value(self) -> float | None: ...
    @property
    def samples(self) -> int: ...
    @property
    def expected(self) -> int: ...
    @property
    def revision(self) -> int: ...


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


@pydantic_dataclass(frozen=True, slots=True, config=ConfigDict(extra="forbid"))
class WindowRecord:
    """One average as last seen (highest revision), classified against the limit then in force.

    A slotted dataclass, not a model: a rule keeps one per window of its correction horizon (a
    1-h rule 72 of them), and as pydantic models they were most of the worker's state in memory
    (21 MiB for 281 rules at 83 h, against 4 MiB as JSON). Pydantic's dataclass validates it as
    the model did (a float given as an int is held as a float, so what a rule publishes does
    not depend on whether its state was restored), and serialises it within ``RuleState``."""

    start: datetime
    end: datetime
    revision: int
    value: float | None
    cls: WindowClass
    ratio: float | None = None
    bound: float | None = None  # the limit value the ratio refers to
    # stacks with a reference O2 (thresholds/reference_o2.py): ``value`` is corrected; these are
    # what it was corrected from
    measured: float | None = None
    o2: float | None = None
    o2_reference: float | None = None


class Episode(_Model):
    """A violation as derived from the windows (and, in ``emitted``, as last published)."""

    violation_id: str
    started_at: datetime  # window start of the first exceeding average
    last_exceed_end: datetime  # window end of the latest exceeding average
    peak_value: float
    peak_ratio: float
    peak_bound: float | None
    peak_measured: float | None = None  # reference-O2 correction: the peak window's measured
    peak_o2: float | None = None  # value and O2 (None when not corrected)
    closed_at: datetime | None = None  # window end of the average that closed it
    clear_run: int = 0  # consecutive clear windows so far (not published)
    seq: int = 0  # last seq published for this violation (only meaningful in ``emitted``)

    def published_view(self) -> tuple[datetime, float, float, datetime | None]:
        return (self.last_exceed_end, self.peak_value, self.peak_ratio, self.closed_at)


class RuleState(_Model):
    source_id: str
    parameter: str
    rule_id: str
    base: Episode | None = None  # the episode open before the first retained window
    frozen_before: datetime | None = None  # windows starting earlier were folded into base
    windows: list[WindowRecord] = []
    emitted: list[Episode] = []  # violations published and still re-evaluable
    warned: dict[str, EarlyWarning] = {}  # window start (ISO) -> warning level published
    # violations retracted by a late correction -> (the seq of their last event, their start):
    # one a later correction brings back (a manual invalidation restored) goes on from there
    retracted: dict[str, tuple[int, datetime]] = {}

    @classmethod
    def new(cls, source_id: str, parameter: str, rule_id: str) -> RuleState:
        return cls(source_id=source_id, parameter=parameter, rule_id=rule_id)

    @property
    def open_violation(self) -> Episode | None:
        return next((e for e in self.emitted if e.closed_at is None), None)

    def to_json(self) -> str:
        return self.model_dump_json()

    @classmethod
    def from_json(cls, data: str | bytes) -> RuleState:
        return cls.model_validate_json(data)


def violation_id(source_id: str, parameter: str, rule_id: str, started_at: datetime) -> str:
    """Deterministic and readable: ``HD-NT-03:COD:QCVN_40_2011:B:COD:1h:20261124T0300Z``."""
    return f"{source_id}:{parameter}:{rule_id}:{_utc(started_at):%Y%m%dT%H%MZ}"


def applies(limit: Limit, average: Applicable) -> bool:
    """Whether ``evaluate`` should be called with this average for this limit: its own basis,
    or a final rolling 24-h mean for a daily limit (early warning only)."""
    return (
        limit.checked
        and average.source_id == limit.source_id
        and average.parameter == limit.parameter
        and (average.period == limit.period.value or _rolling_warns(limit, average))
    )


def _rolling_warns(limit: Limit, average: Applicable) -> bool:
    return (
        limit.period is Basis.DAY
        and average.period == Basis.ROLLING_24H.value
        and average.final
        and average.valid
    )


def evaluate(
    state: RuleState | None,
    average: AverageLike,
    limit: Limit,
    *,
    hysteresis: Hysteresis | None = None,
    penalty: Penalty = NO_PENALTY,
) -> tuple[RuleState, list[ViolationEvent]]:
    """Fold one average into the rule's state; return the new state and the events to publish.

    ``penalty``: the source's Decree 45/2022 schedule and flow (``LimitBook.penalty_for``); the
    default, no schedule, is right for ambient stations.
    """
    hyst = hysteresis or Hysteresis()
    if limit.period.calendar:
        hyst = replace(hyst, per_window=True)
    own_basis = average.period == limit.period.value
    if average.parameter != limit.parameter or not (own_basis or _rolling_warns(limit, average)):
        raise ValueError(
            f"average {average.source_id}/{average.parameter}/{average.period} does not belong "
            f"to rule {limit.rule_id} ({limit.parameter}, {limit.period.value})"
        )
    if state is None:
        state = RuleState.new(average.source_id, average.parameter, limit.rule_id)
    elif (state.source_id, state.parameter, state.rule_id) != (
        average.source_id,
        average.parameter,
        limit.rule_id,
    ):
        raise ValueError(
            f"state of {state.source_id}/{state.parameter}/{state.rule_id} given an average of "
            f"{average.source_id}/{average.parameter} for rule {limit.rule_id}"
        )
    if not own_basis:
        return _warn_rolling(state, average, limit, penalty)
    if not average.final:
        return _warn(state, average, limit, penalty)

    start = _utc(average.window_start)
    if state.frozen_before is not None and start < state.frozen_before:
        return state, []  # beyond the correction horizon: its episode is frozen
    windows = list(state.windows)
    index = next((i for i, w in enumerate(windows) if w.start == start), None)
    if index is not None and average.revision <= windows[index].revision:
        return state, []  # replay (or an older revision): nothing new
    record = _classify(average, limit, hyst)
    if index is not None:
        windows[index] = record
        correction = True
    else:
        correction = bool(windows) and start < windows[-1].start
        windows.append(record)
        windows.sort(key=lambda w: w.start)

    derived = _derive(state, windows, hyst)
    events, emitted, retracted = _diff(state, derived, record, limit, correction, penalty)
    state = state.model_copy(
        update={"windows": windows, "emitted": emitted, "retracted": retracted}
    )
    return _prune(state, hyst), events


def early_warning(
    partial_sum: float, partial_count: int, expected: int, limit: Limit
) -> EarlyWarning | None:
    """Whether the running hour's mean will (CERTAIN) or probably will (LIKELY) break the limit.

    CERTAIN for an upper bound when ``partial_sum / expected`` already exceeds it: even if every
    remaining sample were 0 the mean stays above (concentrations are non-negative). For a lower
    bound nothing bounds the remaining samples from above, so only LIKELY (running mean below),
    or CERTAIN once every expected sample is in.
    """
    if expected <= 0:
        raise ValueError(f"expected samples must be > 0, got {expected}")
    if partial_count <= 0:
        return None
    mean = partial_sum / partial_count
    complete = partial_count >= expected
    floor_mean = partial_sum / max(expected, partial_count)
    if limit.max is not None and limit.kind in (RuleKind.UPPER, RuleKind.RANGE):
        if floor_mean > limit.max:
            return EarlyWarning.CERTAIN
        if mean > limit.max:
            return EarlyWarning.LIKELY
    if (
        limit.min is not None
        and limit.kind in (RuleKind.LOWER, RuleKind.RANGE)
        and mean < limit.min
    ):
        return EarlyWarning.CERTAIN if complete else EarlyWarning.LIKELY
    return None


# ---- outages ----------------------------------------------------------------------------------


class OutageState(_Model):
    """Per source: is an outage open, since when. ``watch_since`` covers never-reporting sources."""

    source_id: str
    watch_since: datetime
    open_id: str | None = None
    open_since: datetime | None = None

    def to_json(self) -> str:
        return self.model_dump_json()

    @classmethod
    def from_json(cls, data: str | bytes) -> OutageState:
        return cls.model_validate_json(data)


OUTAGE_RULE = "OUTAGE"


def outage_id(source_id: str, since: datetime) -> str:
    return f"{source_id}:{OUTAGE_RULE}:{_utc(since):%Y%m%dT%H%MZ}"


def check_outage(
    state: OutageState,
    last_valid_at: datetime | None,
    now: datetime,
    allowance: timedelta,
) -> tuple[OutageState, list[ViolationEvent]]:
    """Open an outage when nothing valid arrived for longer than ``allowance``; close it on data.

    ``last_valid_at``: time of the newest valid reading (None: never), so a source sending only
    calibration/error status counts as silent. Deterministic ids: ``source:OUTAGE:<gap start>``.
    Calling it again with the same inputs emits nothing.
    """
    events: list[ViolationEvent] = []
    now = _utc(now)
    last = None if last_valid_at is None else _utc(last_valid_at)
    if state.open_id is not None and state.open_since is not None:
        if last is None or last <= state.open_since:
            return state, []
        events.append(
            _outage_event(
                state, EventKind.OUTAGE_CLOSED, 1, now, ended_at=last, allowance=allowance
            )
        )
        state = state.model_copy(update={"open_id": None, "open_since": None})
    gap_start = last or _utc(state.watch_since)
    if now - gap_start > allowance:
        state = state.model_copy(
            update={"open_id": outage_id(state.source_id, gap_start), "open_since": gap_start}
        )
        events.append(_outage_event(state, EventKind.OUTAGE_OPENED, 0, now, None, allowance))
    return state, events


# ---- internals ----------------------------------------------------------------------------------


def _utc(t: datetime) -> datetime:
    return t.replace(tzinfo=UTC) if t.tzinfo is None else t.astimezone(UTC)


def _classify(average: AverageLike, limit: Limit, hyst: Hysteresis) -> WindowRecord:
    start, end = _utc(average.window_start), _utc(average.window_end)
    value = average.value
    o2_fields = _o2_fields(average)
    if not average.valid or value is None:
        return WindowRecord(
            start=start,
            end=end,
            revision=average.revision,
            value=value,
            cls=WindowClass.INVALID,
            **o2_fields,
        )
    r = ratio(value, limit)
    clear = True
    if limit.max is not None and limit.kind is not RuleKind.LOWER:
        clear &= value < limit.max * (1 - hyst.margin)
    if limit.min is not None and limit.kind is not RuleKind.UPPER:
        clear &= value > limit.min * (1 + hyst.margin)
    if limit.exceeded_by(value):
        cls = WindowClass.EXCEED
    else:
        cls = WindowClass.CLEAR if clear else WindowClass.BAND
    bound: float | None
    if limit.kind is RuleKind.RANGE:
        assert limit.max is not None and limit.min is not None
        mid = (limit.max + limit.min) / 2
        bound = limit.max if value >= mid else limit.min
    else:
        bound = limit.max if limit.kind is RuleKind.UPPER else limit.min
    return WindowRecord(
        start=start,
        end=end,
        revision=average.revision,
        value=value,
        cls=cls,
        ratio=r,
        bound=bound,
        **o2_fields,
    )


def _o2_fields(average: AverageLike) -> dict[str, float | None]:
    """The reference-O2 correction an average carries (``core.records.Average``), if any."""
    return {
        "measured": getattr(average, "measured_value", None),
        "o2": getattr(average, "o2_measured", None),
        "o2_reference": getattr(average, "o2_reference", None),
    }


def _fold(
    state: RuleState, open_ep: Episode | None, windows: Iterable[WindowRecord], hyst: Hysteresis
) -> tuple[list[Episode], Episode | None]:
    """Episodes touched by ``windows`` (starting with ``open_ep``) and the one left open."""
    episodes: list[Episode] = [open_ep] if open_ep else []
    current = open_ep
    for w in windows:
        if w.cls is WindowClass.INVALID:
            continue
        if w.cls is WindowClass.EXCEED and (current is None or hyst.per_window):
            new = _episode(state, w)
            if hyst.per_window:  # a calendar window is over: its exceedance is complete
                episodes.append(new.model_copy(update={"closed_at": w.end}))
                continue
            current = new
            episodes.append(current)
            continue
        if w.cls is WindowClass.EXCEED:
            assert current is not None and w.ratio is not None
            update: dict[str, object] = {"last_exceed_end": w.end, "clear_run": 0}
            if w.ratio > current.peak_ratio:
                update |= {
                    "peak_value": w.value,
                    "peak_ratio": w.ratio,
                    "peak_bound": w.bound,
                    "peak_measured": w.measured,
                    "peak_o2": w.o2,
                }
            current = current.model_copy(update=update)
        elif current is not None:
            run = current.clear_run + 1 if w.cls is WindowClass.CLEAR else 0
            if run >= hyst.clear_windows:
                current = current.model_copy(update={"clear_run": run, "closed_at": w.end})
                episodes[-1] = current
                current = None
                continue
            current = current.model_copy(update={"clear_run": run})
        else:
            continue
        episodes[-1] = current
    return episodes, current


def _episode(state: RuleState, w: WindowRecord) -> Episode:
    """A violation opened by the exceeding window ``w``."""
    assert w.value is not None and w.ratio is not None
    return Episode(
        violation_id=violation_id(state.source_id, state.parameter, state.rule_id, w.start),
        started_at=w.start,
        last_exceed_end=w.end,
        peak_value=w.value,
        peak_ratio=w.ratio,
        peak_bound=w.bound,
        peak_measured=w.measured,
        peak_o2=w.o2,
    )


def _derive(state: RuleState, windows: list[WindowRecord], hyst: Hysteresis) -> list[Episode]:
    return _fold(state, state.base, windows, hyst)[0]


def _diff(
    state: RuleState,
    derived: list[Episode],
    trigger: WindowRecord,
    limit: Limit,
    correction: bool,
    penalty: Penalty = NO_PENALTY,
) -> tuple[list[ViolationEvent], list[Episode], dict[str, tuple[int, datetime]]]:
    """Events that turn the published episodes (``state.emitted``) into ``derived``; the
    retracted violations after them."""
    old = {e.violation_id: e for e in state.emitted}
    retracted = dict(state.retracted)
    new_ids = {d.violation_id for d in derived}
    events: list[ViolationEvent] = []
    emitted: list[Episode] = []
    why = (
        f"late correction of window {trigger.start:%Y-%m-%d %H:%M}Z "
        f"(revision {trigger.revision}, value {_fmt(trigger.value)})"
    )

    def emit(ep: Episode, kind: EventKind, seq: int, message: str, retracted: bool = False) -> None:
        events.append(_event(state, ep, kind, seq, trigger, limit, message, retracted, penalty))

    for gone in (e for e in state.emitted if e.violation_id not in new_ids):
        seq = gone.seq + 1
        emit(gone, EventKind.CORRECTED, seq, f"retracted: {why}", retracted=True)
        if gone.closed_at is None:
            seq += 1
            emit(gone, EventKind.CLOSED, seq, f"retracted: {why}", retracted=True)
        # not re-evaluated any more, unless derived again
        retracted[gone.violation_id] = (seq, gone.started_at)

    for ep in derived:
        before = old.get(ep.violation_id)
        if before is None:
            # a violation retracted before and derived again goes on with its own events
            back = retracted.pop(ep.violation_id, None)
            seq = 0 if back is None else back[0] + 1
            emit(ep, EventKind.OPENED, seq, _describe(ep, trigger, limit, penalty))
            if correction:
                seq += 1
                emit(
                    ep,
                    EventKind.CORRECTED,
                    seq,
                    f"{'opened' if back is None else 'reinstated'} by {why}",
                )
            if ep.closed_at is not None:
                seq += 1
                emit(ep, EventKind.CLOSED, seq, _describe(ep, trigger, limit, penalty))
        elif before.published_view() == ep.published_view():
            seq = before.seq
        elif correction:
            seq = before.seq + 1
            note = "reopened by" if before.closed_at and ep.closed_at is None else "changed by"
            emit(ep, EventKind.CORRECTED, seq, f"{note} {why}")
            if before.closed_at is None and ep.closed_at is not None:
                seq += 1
                emit(ep, EventKind.CLOSED, seq, _describe(ep, trigger, limit, penalty))
        else:
            seq = before.seq
            if ep.last_exceed_end != before.last_exceed_end:
                seq += 1
                emit(ep, EventKind.UPDATED, seq, _describe(ep, trigger, limit, penalty))
            if before.closed_at is None and ep.closed_at is not None:
                seq += 1
                emit(ep, EventKind.CLOSED, seq, _describe(ep, trigger, limit, penalty))
        emitted.append(ep.model_copy(update={"seq": seq}))
    return events, emitted, retracted


def _prune(state: RuleState, hyst: Hysteresis) -> RuleState:
    """Fold windows older than the horizon into ``base``; forget episodes that cannot change."""
    if not state.windows:
        return state
    newest_end = max(w.end for w in state.windows)
    cut = newest_end - hyst.horizon
    old = [w for w in state.windows if w.end <= cut]
    if not old:
        return state
    keep = [w for w in state.windows if w.end > cut]
    _, base = _fold(state, state.base, old, hyst)
    frozen_before = keep[0].start if keep else old[-1].end
    pruned = state.model_copy(
        update={"base": base, "windows": keep, "frozen_before": frozen_before}
    )
    alive = {e.violation_id for e in _derive(pruned, keep, hyst)}
    emitted = [e for e in state.emitted if e.violation_id in alive]
    cutoff = frozen_before.isoformat()
    warned = {k: v for k, v in state.warned.items() if k >= cutoff}
    retracted = {k: v for k, v in state.retracted.items() if v[1] >= frozen_before}
    return pruned.model_copy(update={"emitted": emitted, "warned": warned, "retracted": retracted})


def _warn(
    state: RuleState, average: AverageLike, limit: Limit, penalty: Penalty = NO_PENALTY
) -> tuple[RuleState, list[ViolationEvent]]:
    """Early warning from a running (non-final) hourly average; once per window and level."""
    if limit.period is not Basis.HOUR or average.value is None or state.open_violation is not None:
        return state, []
    level = early_warning(average.value * average.samples, average.samples, average.expected, limit)
    key = _utc(average.window_start).isoformat()
    before = state.warned.get(key)
    if level is None or before == level or before is EarlyWarning.CERTAIN:
        return state, []
    value = average.value
    message = (
        f"early warning ({level.value}): running hourly mean {_fmt(value)} "
        f"{limit.unit} after {average.samples}/{average.expected} samples, limit "
        f"{limit.bound_text()} {limit.unit}"
    )
    start = _utc(average.window_start)
    seq = 0 if before is None else 1
    event = _warning_event(state, limit, start, average, value, seq, message, penalty)
    return state.model_copy(update={"warned": {**state.warned, key: level}}), [event]


def _warn_rolling(
    state: RuleState, average: AverageLike, limit: Limit, penalty: Penalty = NO_PENALTY
) -> tuple[RuleState, list[ViolationEvent]]:
    """Early warning for a daily limit from a final rolling 24-h mean past it: the local day the
    rolling window ends in may exceed. Once per day; the day's own mean decides the violation."""
    value = average.value
    if value is None:
        return state, []
    day_start = day_window(_utc(average.window_end) - timedelta(microseconds=1))[0]
    key = day_start.isoformat()
    if not limit.exceeded_by(value) or key in state.warned:
        return state, []
    message = (
        f"early warning ({EarlyWarning.LIKELY.value}): rolling 24-h mean {_fmt(value)} "
        f"{limit.unit} ({_utc(average.window_start):%Y-%m-%d %H:%M}Z – "
        f"{_utc(average.window_end):%Y-%m-%d %H:%M}Z) past the daily limit "
        f"{limit.bound_text()} {limit.unit}; the day's own mean decides"
    )
    event = _warning_event(state, limit, day_start, average, value, 0, message, penalty)
    warned = {**state.warned, key: EarlyWarning.LIKELY}
    return state.model_copy(update={"warned": warned}), [event]


def _warning_event(
    state: RuleState,
    limit: Limit,
    started_at: datetime,
    average: AverageLike,
    value: float,
    seq: int,
    message: str,
    penalty: Penalty,
) -> ViolationEvent:
    """An early warning (its own record, ``<violation id>:warning``) for the window at
    ``started_at``, with the Decree 45/2022 band of its ratio (none without a schedule)."""
    r = ratio(value, limit)
    event = ViolationEvent(
        violation_id=f"{violation_id(state.source_id, state.parameter, state.rule_id, started_at)}"
        ":warning",
        event=EventKind.WARNING.value,
        seq=seq,
        source_id=state.source_id,
        parameter=state.parameter,
        rule_id=state.rule_id,
        period=limit.period.value,
        started_at=started_at,
        at=_utc(average.window_end),
        value=value,
        limit=limit.max if limit.kind is not RuleKind.LOWER else limit.min,
        ratio=r,
        severity=Severity.NONE.value,
        legal_basis=limit.legal_basis,
        message=message,
    )
    fields = _o2_fields(average)
    if fields["o2_reference"] is not None:
        event.measured_value = fields["measured"]
        event.o2_measured = fields["o2"]
        event.o2_reference = fields["o2_reference"]
        event.correction_basis = getattr(average, "correction_basis", "")
    return _with_penalty(event, penalty.assess(r))


def _event(
    state: RuleState,
    ep: Episode,
    kind: EventKind,
    seq: int,
    trigger: WindowRecord,
    limit: Limit,
    message: str,
    retracted: bool,
    penalty: Penalty = NO_PENALTY,
) -> ViolationEvent:
    closed = kind is EventKind.CLOSED
    event = ViolationEvent(
        violation_id=ep.violation_id,
        event=kind.value,
        seq=seq,
        source_id=state.source_id,
        parameter=state.parameter,
        rule_id=state.rule_id,
        period=limit.period.value,
        started_at=ep.started_at,
        at=trigger.end,
        value=trigger.value,
        limit=trigger.bound,
        ratio=trigger.ratio,
        severity=Severity.NONE.value,
        peak_value=ep.peak_value,
        peak_ratio=ep.peak_ratio,
        ended_at=(ep.started_at if retracted else ep.last_exceed_end) if closed else None,
        legal_basis=limit.legal_basis,
        message=message,
        retracted=retracted,
    )
    if trigger.o2_reference is not None:
        event.measured_value = trigger.measured
        event.o2_measured = trigger.o2
        event.o2_reference = trigger.o2_reference
        event.peak_measured_value = ep.peak_measured
        event.peak_o2_measured = ep.peak_o2
        event.correction_basis = getattr(limit, "o2_basis", "") or _o2_text(trigger.o2_reference)
    return _with_penalty(event, NO_BAND if retracted else penalty.assess(ep.peak_ratio))


def _with_penalty(event: ViolationEvent, a: Assessment) -> ViolationEvent:
    """The event with the Decree 45/2022 band, article, sanction and flow bracket of ``a``."""
    event.severity = a.severity.value
    event.penalty_article = a.article
    event.penalty_sanction = a.sanction
    event.penalty_verified = a.verified
    event.flow_bracket = a.flow_bracket
    event.flow_basis = a.flow_basis
    event.flow_value = a.flow_value
    return event


def _describe(
    ep: Episode, trigger: WindowRecord, limit: Limit, penalty: Penalty = NO_PENALTY
) -> str:
    hours = (ep.last_exceed_end - ep.started_at) / timedelta(hours=1)
    band = penalty.assess(ep.peak_ratio).severity
    shown = "" if band is Severity.NONE else f" ({band.value})"
    corrected = ""
    if trigger.o2_reference is not None:
        corrected = (
            f" at {_o2_text(trigger.o2_reference)} (measured {_fmt(trigger.measured)} "
            f"{limit.unit} at O2 {_fmt(trigger.o2)} %)"
        )
    return (
        f"{limit.parameter} {_fmt(trigger.value)} {limit.unit}{corrected} "
        f"(limit {limit.bound_text()}); "
        f"peak {_fmt(ep.peak_value)} = {ep.peak_ratio:.2f}×{shown}; "
        f"duration {hours:g} h"
    )


def _o2_text(o2_reference: float | None) -> str:
    return f"O2 tham chiếu {_fmt(o2_reference)} %"


def _fmt(x: float | None) -> str:
    return "—" if x is None else f"{x:g}"


def _outage_event(
    state: OutageState,
    kind: EventKind,
    seq: int,
    now: datetime,
    ended_at: datetime | None,
    allowance: timedelta,
) -> ViolationEvent:
    assert state.open_id is not None and state.open_since is not None
    silent = (ended_at or now) - state.open_since
    return ViolationEvent(
        violation_id=state.open_id,
        event=kind.value,
        seq=seq,
        source_id=state.source_id,
        parameter="*",
        rule_id=OUTAGE_RULE,
        period="",
        started_at=state.open_since,
        at=now,
        value=None,
        limit=None,
        ratio=None,
        severity=Severity.NONE.value,
        ended_at=ended_at,
        message=(
            f"no valid data for {silent / timedelta(hours=1):.2f} h "
            f"(allowance {allowance / timedelta(hours=1):g} h)"
        ),
    )
