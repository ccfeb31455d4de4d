"""QA/QC flags: precedence, Hampel spikes, flatlines, duplicates, late data, rules file."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from core.parameters import Parameter, SourceKind
from core.records import DeviceStatus, QcFlag
from thresholds.averaging import decode_runs, encode_runs
from thresholds.qc import (
    FlatlineRule,
    QcRules,
    QcRulesError,
    SeriesState,
    SpikeRule,
    build_rule_book,
    classify,
    hampel_is_spike,
    is_flatline,
    judge,
    load_qc_rules,
)
from thresholds.stamps import Stamps

NOW = datetime(2026, 11, 24, 5, 0, tzinfo=UTC)
HORIZON = 72 * 3600.0
RULES = QcRules(
    spike=SpikeRule(window=10, n_sigmas=4.0, min_sigma=0.5, min_history=5),
    flatline=FlatlineRule(count=5, tolerance=0.0),
    physical_min=0.0,
)
NOISY = [10.0, 11.0, 9.5, 10.5, 10.2, 9.8, 10.1, 10.4, 9.9, 10.3]


def state_with(recent: list[float], seen: set[int] | None = None) -> SeriesState:
    newest = int(NOW.timestamp()) - 60
    return SeriesState(
        recent=list(recent), newest=newest, seen=Stamps(encode_runs(sorted(seen or ())))
    )


def run(value: float, state: SeriesState, **kw: object) -> QcFlag:
    args: dict = {
        "status": DeviceStatus.MEASURING,
        "spec_range": (0.0, 1000.0),
        "measured_at": NOW,
        "now": NOW,
        "late_horizon_s": HORIZON,
    }
    args.update(kw)
    return classify(
        value,
        args["status"],
        args["spec_range"],
        state,
        RULES,
        measured_at=args["measured_at"],
        now=args["now"],
        late_horizon_s=args["late_horizon_s"],
    )


SEEN_NOW = {int(NOW.timestamp())}
OLD = NOW - timedelta(hours=73)


@pytest.mark.parametrize(
    ("value", "recent", "seen", "kw", "flag"),
    [
        pytest.param(10.0, NOISY, None, {}, QcFlag.VALID, id="valid"),
        # TT 10/2021 status field: 01 calibrating, 02 error — beats everything else
        pytest.param(-5.0, NOISY, SEEN_NOW, {"status": "01"}, QcFlag.CALIBRATING, id="01>all"),
        pytest.param(-5.0, NOISY, SEEN_NOW, {"status": "02"}, QcFlag.DEVICE_ERROR, id="02>all"),
        pytest.param(-1.0, NOISY, SEEN_NOW, {}, QcFlag.OUT_OF_RANGE, id="range>duplicate"),
        pytest.param(2000.0, NOISY, None, {}, QcFlag.OUT_OF_RANGE, id="above-instrument-range"),
        pytest.param(float("nan"), NOISY, None, {}, QcFlag.OUT_OF_RANGE, id="nan"),
        pytest.param(
            10.0, NOISY, None, {"measured_at": NOW + timedelta(hours=1)}, QcFlag.OUT_OF_RANGE,
            id="future-stamped",
        ),
        pytest.param(
            10.0, NOISY, {int(OLD.timestamp())}, {"measured_at": OLD}, QcFlag.DUPLICATE,
            id="duplicate>late",
        ),
        pytest.param(500.0, NOISY, None, {"measured_at": OLD}, QcFlag.LATE, id="late>spike"),
        pytest.param(500.0, NOISY, None, {}, QcFlag.SPIKE, id="spike"),
        pytest.param(500.0, [500.0] * 4, None, {}, QcFlag.FLATLINE, id="flatline"),
        pytest.param(
            10.0, NOISY, None, {"measured_at": NOW - timedelta(hours=5)}, QcFlag.VALID,
            id="late-within-horizon-is-judged-normally",
        ),
    ],
)  # fmt: skip
def test_precedence(
    value: float, recent: list[float], seen: set[int] | None, kw: dict, flag: QcFlag
) -> None:
    assert run(value, state_with(recent, seen), **kw) == flag


def test_unknown_status_is_an_error() -> None:
    with pytest.raises(ValueError):
        run(10.0, state_with(NOISY), status="03")


@pytest.mark.parametrize(
    ("window", "value", "k", "min_sigma", "spike"),
    [
        pytest.param(NOISY, 10.6, 4.0, 0.0, False, id="within-noise"),
        pytest.param(NOISY, 14.0, 4.0, 0.0, True, id="far-outside"),
        # MAD of NOISY = 0.25 → σ = 0.37; 4σ ≈ 1.48 from the median 10.15
        pytest.param(NOISY, 11.6, 4.0, 0.0, False, id="just-inside-4sigma"),
        pytest.param(NOISY, 11.7, 4.0, 0.0, True, id="just-outside-4sigma"),
        pytest.param([5.0] * 10, 6.0, 4.0, 0.0, False, id="flat-history-not-judged"),
        pytest.param([5.0] * 10, 50.0, 4.0, 1.0, True, id="flat-history-with-sigma-floor"),
        pytest.param(NOISY, 14.0, 4.0, 5.0, False, id="sigma-floor-protects"),
        pytest.param([], 14.0, 4.0, 0.0, False, id="empty"),
    ],
)
def test_hampel(window: list[float], value: float, k: float, min_sigma: float, spike: bool) -> None:
    assert hampel_is_spike(window, value, k, min_sigma) is spike


@pytest.mark.parametrize(
    ("window", "value", "rule", "flat"),
    [
        pytest.param([3.0] * 4, 3.0, FlatlineRule(count=5), True, id="5-identical"),
        pytest.param([3.0] * 3, 3.0, FlatlineRule(count=5), False, id="only-4"),
        pytest.param([3.0, 3.1, 3.0, 3.0], 3.0, FlatlineRule(count=5), False, id="varies"),
        pytest.param(
            [3.0, 3.1, 3.0, 3.0], 3.0, FlatlineRule(count=5, tolerance=0.1), True, id="tolerance"
        ),
        pytest.param(
            [0.0] * 9, 0.0, FlatlineRule(count=5, ignore_at_or_below=0.0), False, id="zero-ok"
        ),
        pytest.param([3.0] * 9, 3.0, FlatlineRule(enabled=False, count=5), False, id="disabled"),
    ],
)
def test_flatline(window: list[float], value: float, rule: FlatlineRule, flat: bool) -> None:
    assert is_flatline(window, value, rule) is flat


def test_judge_sequence_flags_resend_as_duplicate_and_round_trips() -> None:
    state = SeriesState()
    flags = []
    for k in range(8):
        t = NOW - timedelta(minutes=10 - k)
        flags.append(
            judge(10.0 + (k % 3) * 0.5, "00", None, state, RULES, measured_at=t, now=NOW,
                  late_horizon_s=HORIZON)
        )  # fmt: skip
    assert flags == [QcFlag.VALID] * 8
    restored = SeriesState.from_dict(json.loads(json.dumps(state.to_dict())))
    assert restored == state
    again = judge(10.0, "00", None, restored, RULES, measured_at=NOW - timedelta(minutes=10),
                  now=NOW, late_horizon_s=HORIZON)  # fmt: skip
    assert again == QcFlag.DUPLICATE
    assert len(restored.recent) == 8  # the duplicate did not enter the history


def test_state_is_bounded() -> None:
    state = SeriesState()
    for k in range(500):
        t = NOW - timedelta(minutes=500 - k)
        judge(float(k % 7), "00", None, state, RULES, measured_at=t, now=NOW, late_horizon_s=3600)
    assert len(state.recent) == RULES.history_len
    # the horizon (60 timestamps at this cadence) and at most one event-time hour more: the set
    # is pruned once per hour of event time, not per reading
    assert len(state.seen) <= 2 * 60 + 1
    assert len(state.to_dict()["seen"]) == 1  # one run at a 1-minute cadence


@settings(max_examples=500)
@given(
    steps=st.lists(
        st.tuples(
            st.one_of(st.just(60), st.integers(-600, 600)),  # mostly a 1-minute cadence
            st.sampled_from([QcFlag.VALID, QcFlag.CALIBRATING]),
        ),
        max_size=150,
    ),
    dumps=st.sets(st.integers(0, 150)),
)
@example(steps=[(60, QcFlag.VALID)] * 130, dumps=set())  # two hours: pruned twice
@example(steps=[(60, QcFlag.VALID)] * 3 + [(-90, QcFlag.VALID)], dumps=set())  # inside a run
def test_the_stored_runs_are_the_timestamps_seen(
    steps: list[tuple[int, QcFlag]], dumps: set[int]
) -> None:
    """Whatever the order (a step back in time is an out-of-order reading), to_dict writes
    sorted runs of exactly the timestamps judged within the horizon, and a state loaded from
    them judges the same: each one seen is a duplicate."""
    state, t = SeriesState(), int(NOW.timestamp())
    model: set[int] = set()  # what a set of ints pruned the same way would hold
    for i, (dt, flag) in enumerate(steps):
        t += dt
        newest = state.newest
        model.add(t)
        if newest is None or (t > newest and t // 3600 != newest // 3600):
            model = {s for s in model if s >= t - 1800}
        state.observe(1.0, datetime.fromtimestamp(t, UTC), flag, RULES, 1800)  # prunes hourly
        if i in dumps:
            state = SeriesState.from_dict(state.to_dict()) if i % 2 else state
    assert decode_runs(state.to_dict()["seen"]) == sorted(model)
    assert all(s in state.seen for s in model) and len(state.seen) == len(model)


def test_level_shift_stops_being_a_spike() -> None:
    state = SeriesState()
    flags = []
    for k in range(40):
        value = 10.0 + (k % 2) * 0.4 if k < 20 else 50.0 + (k % 2) * 0.4
        t = NOW - timedelta(minutes=40 - k)
        flags.append(judge(value, "00", None, state, RULES, measured_at=t, now=NOW,
                           late_horizon_s=HORIZON))  # fmt: skip
    assert flags[20] == QcFlag.SPIKE
    assert flags[-1] == QcFlag.VALID


# --- rules file ------------------------------------------------------------------------------
def test_shipped_rules_load_and_are_flagged_unverified() -> None:
    book = load_qc_rules()
    # TT 10/2021 screening rules UNVERIFIED (docs/regulations.md §1.4)
    assert book.verified is False
    pm = book.rules_for(SourceKind.AMBIENT_AIR, Parameter.PM2_5)
    assert pm.physical_min == 0 and pm.flatline.ignore_at_or_below == 0
    assert book.rules_for("wastewater", "FlowOut").flatline.enabled is False
    assert book.rules_for("ambient_air", "NO").physical_min == 0  # "NO" quoted in YAML
    assert book.rules_for("surface_water", "pH").physical_max == 14


@pytest.mark.parametrize(
    ("doc", "message"),
    [
        pytest.param({"kinds": {"air": {}}}, "allowed", id="unknown-kind"),
        pytest.param({"parameters": {"PM25": {}}}, "PM2.5", id="unknown-parameter"),
        pytest.param({"defaults": {"spike": {"window": 1}}}, "window", id="window-too-small"),
        pytest.param({"defaults": {"spikes": {}}}, "spikes", id="unknown-key"),
        pytest.param({"rules": {}}, "allowed", id="unknown-top-level"),
    ],
)
def test_bad_rules_are_rejected_with_allowed_values(doc: dict, message: str) -> None:
    with pytest.raises(QcRulesError, match=message):
        build_rule_book(doc)


def test_load_reports_the_file(tmp_path: Path) -> None:
    path = tmp_path / "rules.yaml"
    path.write_text("kinds:\n  nowhere: {}\n", encoding="utf-8")
    with pytest.raises(QcRulesError, match=r"rules\.yaml"):
        load_qc_rules(path)


@given(
    st.lists(st.floats(-1e6, 1e6, allow_nan=False), min_size=1, max_size=30),
    st.floats(-1e6, 1e6, allow_nan=False),
    st.floats(0.5, 10),
    st.floats(0, 100),
)
def test_fast_hampel_agrees_with_the_scipy_reference(
    window: list[float], value: float, k: float, min_sigma: float
) -> None:
    from thresholds.qc import hampel_is_spike_scipy

    fast = hampel_is_spike(window, value, k, min_sigma)
    assert fast == hampel_is_spike_scipy(window, value, k, min_sigma)


def test_late_is_event_time_behind_the_series_not_the_wall_clock() -> None:
    """A datalogger's backlog after a five-day outage arrives in order, ahead of its series'
    newest reading: it is judged, not flagged late (issue 18). Late means more than the horizon
    behind the newest reading of the series, the windows' meaning too."""
    five_days = timedelta(days=5)
    before_outage = SeriesState(recent=list(NOISY), newest=int((NOW - 2 * five_days).timestamp()))
    backlog = NOW - five_days
    assert run(10.0, before_outage, measured_at=backlog) == QcFlag.VALID
    assert run(10.0, SeriesState(recent=list(NOISY)), measured_at=backlog) == QcFlag.VALID
    # behind the newest reading by more than the horizon: late, whatever the wall clock says
    caught_up = SeriesState(recent=list(NOISY), newest=int(backlog.timestamp()))
    assert run(10.0, caught_up, measured_at=backlog - timedelta(hours=73)) == QcFlag.LATE
    assert run(10.0, caught_up, measured_at=backlog - timedelta(hours=71)) == QcFlag.VALID
