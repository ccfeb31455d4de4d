"""Violation lifecycle: open → update → close, hysteresis, replays, late corrections, outages."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from core.records import Average, ViolationEvent
from thresholds.catalogue import Basis, RuleKind
from thresholds.limits import Limit
from thresholds.severity import FlowBasis, Penalty, default_penalties
from thresholds.violations import (
    EarlyWarning,
    Hysteresis,
    OutageState,
    RuleState,
    applies,
    check_outage,
    early_warning,
    evaluate,
    violation_id,
)

T0 = datetime(2026, 11, 24, 3, tzinfo=UTC)
H = timedelta(hours=1)
SRC = "HD-NT-03"


def make_limit(
    kind: RuleKind = RuleKind.UPPER,
    *,
    lo: float | None = None,
    hi: float | None = 150.0,
    parameter: str = "COD",
    period: Basis = Basis.HOUR,
) -> Limit:
    column = "B"
    return Limit(
        rule_id=f"QCVN_40_2011:{column}:{parameter}:{period.value}",
        source_id=SRC,
        regulation="QCVN_40_2011",
        column=column,
        parameter=parameter,
        kind=kind,
        min=lo,
        max=hi,
        unit="mg/L",
        period=period,
        legal_basis="QCVN 40:2011/BTNMT, Bảng 1, dòng 5 (COD), cột B",
        verified=True,
    )


COD = make_limit()
# HD-NT-03 is a wastewater outfall: Decree 45/2022 Art. 18 bands, by an (illustrative) flow
WASTEWATER = Penalty(
    default_penalties().schedule_for("wastewater", "COD"), 30.0, FlowBasis.PERMITTED
)


def avg(
    hour: int,
    value: float | None,
    *,
    revision: int = 0,
    valid: bool = True,
    final: bool = True,
    samples: int = 12,
    parameter: str = "COD",
) -> Average:
    start = T0 + hour * H
    return Average(
        source_id=SRC,
        parameter=parameter,
        period="1h",
        window_start=start,
        window_end=start + H,
        value=value,
        unit="mg/L",
        samples=samples,
        expected=12,
        completeness=samples / 12,
        valid=valid,
        revision=revision,
        final=final,
    )


def run(
    averages: Sequence[Average],
    *,
    limit: Limit = COD,
    state: RuleState | None = None,
    hysteresis: Hysteresis | None = None,
    penalty: Penalty = WASTEWATER,
) -> tuple[RuleState | None, list[ViolationEvent]]:
    events: list[ViolationEvent] = []
    for a in averages:
        state, new = evaluate(
            state, a, limit, hysteresis=hysteresis or Hysteresis(), penalty=penalty
        )
        events += new
    return state, events


def series(values: Sequence[float | None]) -> list[Average]:
    return [avg(h, v, valid=v is not None) for h, v in enumerate(values)]


def kinds(events: list[ViolationEvent]) -> list[str]:
    return [e.event for e in events]


def test_violation_id_is_readable_and_deterministic() -> None:
    assert (
        violation_id(SRC, "COD", "QCVN_40_2011:B:COD:1h", T0)
        == "HD-NT-03:COD:QCVN_40_2011:B:COD:1h:20261124T0300Z"
    )


def test_open_update_close() -> None:
    # 100 fine, 160 opens, 200 and 170 update, 140 and 120 (< 0.95 × 150) close it
    _, events = run(series([100, 160, 200, 170, 140, 120]))
    assert kinds(events) == ["opened", "updated", "updated", "closed"]
    assert [e.seq for e in events] == [0, 1, 2, 3]
    vid = "HD-NT-03:COD:QCVN_40_2011:B:COD:1h:20261124T0400Z"
    assert {e.violation_id for e in events} == {vid}
    opened, _, last_update, closed = events
    assert (opened.value, opened.limit, opened.severity) == (160, 150, "<1.1")
    assert opened.started_at == T0 + H and opened.at == T0 + 2 * H
    assert last_update.peak_value == 200 and last_update.peak_ratio == pytest.approx(4 / 3)
    assert last_update.severity == "1.1-1.5" and "duration 3 h" in last_update.message
    assert closed.ended_at == T0 + 4 * H and closed.at == T0 + 6 * H
    assert closed.severity == "1.1-1.5"  # the violation's peak band, not the closing value's
    assert closed.legal_basis == COD.legal_basis


@pytest.mark.parametrize(
    ("hysteresis", "opened"),
    [
        pytest.param(Hysteresis(), 1, id="margin-5pct-2-windows-one-violation"),
        pytest.param(Hysteresis(margin=0.0, clear_windows=1), 3, id="no-hysteresis-flaps"),
    ],
)
def test_flapping_at_the_limit(hysteresis: Hysteresis, opened: int) -> None:
    _, events = run(series([151, 149, 152, 148, 151, 149]), hysteresis=hysteresis)
    assert kinds(events).count("opened") == opened


def test_one_clear_window_among_band_values_does_not_close() -> None:
    # needs 2 consecutive clear windows; a band value (149) in between resets the count
    _, events = run(series([160, 100, 149, 100, 155]))
    assert kinds(events) == ["opened", "updated"]


def test_invalid_averages_neither_open_nor_close() -> None:
    averages = [
        avg(0, 500, valid=False, samples=3),  # exceeding but incomplete: no violation
        avg(1, 160),
        avg(2, None, valid=False, samples=0),
        avg(3, 100),
        avg(4, 90, valid=False, samples=2),  # does not count as clear, does not reset
        avg(5, 100),
    ]
    _, events = run(averages)
    assert kinds(events) == ["opened", "closed"]
    assert events[0].started_at == T0 + H and events[1].at == T0 + 6 * H


def test_partial_average_does_not_open() -> None:
    state, events = run([avg(0, 400, final=False, samples=11)])
    assert kinds(events) == ["warning"]  # the running hour only warns
    assert state is not None and state.emitted == [] and state.windows == []


def test_replay_emits_nothing_and_ids_repeat() -> None:
    averages = series([100, 160, 200, 140, 120, 170])
    state, first = run(averages)
    state_again, replayed = run(averages, state=state)
    assert replayed == [] and state_again == state
    _, fresh = run(averages)
    assert [e.dumps() for e in fresh] == [e.dumps() for e in first]


def test_lower_revision_is_ignored() -> None:
    state, _ = run([avg(0, 160, revision=2)])
    _, events = run([avg(0, 100, revision=1)], state=state)
    assert events == []


def test_state_survives_json_round_trip() -> None:
    averages = series([160, 200, 140, 120])
    state, _ = run(averages[:2])
    assert state is not None
    restored = RuleState.from_json(state.to_json())
    assert restored == state
    _, direct = run(averages[2:], state=state)
    _, after_restart = run(averages[2:], state=restored)
    assert [e.dumps() for e in after_restart] == [e.dumps() for e in direct]
    assert kinds(direct) == ["closed"]


def test_correction_retracts_a_violation_that_never_was() -> None:
    state, opened = run(series([100, 160, 145]))  # 145 is in the band: still open
    _, events = run([avg(1, 120, revision=1)], state=state)
    assert kinds(events) == ["corrected", "closed"]
    assert all(e.violation_id == opened[0].violation_id for e in events)
    assert [e.seq for e in events] == [1, 2]
    assert events[1].severity == "none" and "retracted" in events[1].message
    assert events[1].ended_at == events[1].started_at


def test_a_retracted_violation_a_later_correction_restores_goes_on_with_its_events() -> None:
    # an hour invalidated by hand, then restored (issue 21): retracted, then reinstated under the
    # same id with seq going on, so the stored violation (latest seq wins) follows both
    state, opened = run(series([100, 160, 145]))
    state, gone = run([avg(1, None, revision=1, valid=False, samples=0)], state=state)
    assert kinds(gone) == ["corrected", "closed"] and all(e.retracted for e in gone)
    assert state is not None and opened[0].violation_id in state.retracted
    state, back = run([avg(1, 160, revision=2)], state=state)
    assert kinds(back) == ["opened", "corrected"] and "reinstated" in back[1].message
    assert {e.violation_id for e in back} == {opened[0].violation_id}
    assert [e.seq for e in back] == [gone[-1].seq + 1, gone[-1].seq + 2]
    assert not any(e.retracted for e in back) and state is not None and not state.retracted
    again = RuleState.from_json(state.to_json())  # the changelog keeps it
    assert again.retracted == state.retracted


def test_correction_opens_a_violation() -> None:
    state, none = run(series([100, 100, 100]))
    assert none == []
    _, events = run([avg(1, 170, revision=1)], state=state)
    assert kinds(events) == ["opened", "corrected"]
    assert events[0].violation_id.endswith(":20261124T0400Z")
    assert "late correction" in events[1].message


def test_correction_closes_an_open_violation() -> None:
    state, _ = run(series([160, 170]), hysteresis=Hysteresis(clear_windows=1))
    _, events = run([avg(1, 100, revision=1)], state=state, hysteresis=Hysteresis(clear_windows=1))
    assert kinds(events) == ["corrected", "closed"]
    assert events[1].ended_at == T0 + H and events[1].peak_value == 160


def test_correction_of_the_first_window_moves_the_episode() -> None:
    state, first = run(series([160, 170, 180]))
    _, events = run([avg(0, 100, revision=1)], state=state)
    old_id, new_id = first[0].violation_id, violation_id(SRC, "COD", COD.rule_id, T0 + H)
    assert [(e.event, e.violation_id) for e in events] == [
        ("corrected", old_id),
        ("closed", old_id),
        ("opened", new_id),
        ("corrected", new_id),
    ]


def test_correction_changing_the_peak_is_recorded() -> None:
    state, _ = run(series([160, 170]))
    _, events = run([avg(0, 400, revision=1)], state=state)
    assert kinds(events) == ["corrected"]
    assert events[0].peak_value == 400 and events[0].severity == "2-3"


def test_late_window_arriving_out_of_order() -> None:
    state, _ = run([avg(0, 100), avg(1, 100), avg(3, 100)])
    _, events = run([avg(2, 170)], state=state)
    assert kinds(events) == ["opened", "corrected"]


def test_correction_reopens_and_merges_episodes() -> None:
    state, first = run(series([160, 100, 100, 170]))  # closed at hour 2, new one at hour 3
    assert kinds(first) == ["opened", "closed", "opened"]
    _, events = run([avg(2, 160, revision=1)], state=state)
    # hour 2 now exceeds: the first violation never closed; the second merges into it
    by_kind = [(e.event, e.violation_id == first[0].violation_id) for e in events]
    assert by_kind == [("corrected", False), ("closed", False), ("corrected", True)]
    assert "reopened" in events[-1].message


def test_horizon_bounds_the_state_and_keeps_the_open_violation() -> None:
    hyst = Hysteresis(horizon=timedelta(hours=4))
    state, events = run(series([160] + [170] * 10), hysteresis=hyst)
    assert state is not None and len(state.windows) == 4 and state.base is not None
    state, closing = run([avg(11, 10), avg(12, 10)], state=state, hysteresis=hyst)
    assert kinds(closing) == ["closed"] and closing[0].violation_id == events[0].violation_id
    assert closing[0].seq == 11
    _, too_late = run([avg(0, 10, revision=1)], state=state, hysteresis=hyst)
    assert too_late == []  # older than the horizon: frozen


def test_lower_limit_dissolved_oxygen() -> None:
    do = make_limit(RuleKind.LOWER, lo=5.0, hi=None, parameter="DO")
    averages = [avg(h, v, parameter="DO") for h, v in enumerate([6, 2.5, 4.9, 5.1, 5.5, 6])]
    _, events = run(averages, limit=do)
    assert kinds(events) == ["opened", "updated", "closed"]
    assert events[0].ratio == pytest.approx(2.0) and events[0].severity == "2-3"
    assert events[0].limit == 5.0


def test_range_limit_ph() -> None:
    ph = make_limit(RuleKind.RANGE, lo=5.5, hi=9.0, parameter="pH")
    averages = [avg(h, v, parameter="pH") for h, v in enumerate([7, 9.5, 5.0, 7, 7])]
    _, events = run(averages, limit=ph)
    assert kinds(events) == ["opened", "updated", "closed"]
    assert (events[0].limit, events[1].limit) == (9.0, 5.5)


def test_mismatched_average_is_an_error() -> None:
    with pytest.raises(ValueError, match="does not belong to rule"):
        evaluate(None, avg(0, 1, parameter="TSS"), COD)
    assert applies(COD, avg(0, 1)) and not applies(COD, avg(0, 1, parameter="TSS"))


# ---- property: the outcome does not depend on arrival order ----------------------------------

values = st.lists(st.sampled_from([50.0, 145.0, 149.0, 151.0, 160.0, 400.0]), max_size=12)


@settings(max_examples=60, deadline=None)
@given(values, st.randoms(use_true_random=False))
def test_arrival_order_does_not_change_the_outcome(vals: list[float], rnd: object) -> None:
    in_order, events = run(series(vals))
    shuffled = series(vals)
    rnd.shuffle(shuffled)  # type: ignore[attr-defined]
    any_order, _ = run(shuffled)
    if in_order is None or any_order is None:
        assert in_order is any_order
        return
    view = [(e.violation_id, e.published_view()) for e in in_order.emitted]
    assert view == [(e.violation_id, e.published_view()) for e in any_order.emitted]
    _, replayed = run(series(vals), state=in_order)
    assert replayed == []  # replaying everything changes nothing
    opened = [e.violation_id for e in events if e.event == "opened"]
    assert len(opened) == len(set(opened))  # each violation is opened once


# ---- early warning ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("partial_sum", "count", "limit", "expected"),
    [
        pytest.param(1900, 10, COD, EarlyWarning.CERTAIN, id="sum/expected-already-over"),
        pytest.param(1000, 6, COD, EarlyWarning.LIKELY, id="running-mean-over"),
        pytest.param(800, 6, COD, None, id="running-mean-under"),
        pytest.param(0, 0, COD, None, id="no-samples-yet"),
        pytest.param(1900, 12, COD, EarlyWarning.CERTAIN, id="complete"),
        pytest.param(
            24, 6, make_limit(RuleKind.LOWER, lo=5, hi=None), EarlyWarning.LIKELY, id="DO-low"
        ),
        pytest.param(
            48, 12, make_limit(RuleKind.LOWER, lo=5, hi=None), EarlyWarning.CERTAIN,
            id="DO-low-complete",
        ),
    ],
)  # fmt: skip
def test_early_warning(
    partial_sum: float, count: int, limit: Limit, expected: EarlyWarning | None
) -> None:
    assert early_warning(partial_sum, count, 12, limit) is expected


def test_early_warning_needs_expected_samples() -> None:
    with pytest.raises(ValueError, match="expected"):
        early_warning(1, 1, 0, COD)


def test_warning_events_once_per_level() -> None:
    partial = [
        avg(0, 170, final=False, samples=3),  # likely
        avg(0, 170, final=False, samples=3),  # same again: nothing
        avg(0, 175, final=False, samples=11),  # 175 × 11 / 12 > 150: certain
        avg(0, 180, final=False, samples=12),  # still certain: nothing
    ]
    state, events = run(partial)
    assert kinds(events) == ["warning", "warning"] and [e.seq for e in events] == [0, 1]
    assert "likely" in events[0].message and "certain" in events[1].message
    assert events[0].violation_id.endswith(":20261124T0300Z:warning")
    _, final = run([avg(0, 175)], state=state)
    assert kinds(final) == ["opened"]
    opened_state, _ = run([avg(0, 175)], state=state)
    _, quiet = run([avg(1, 200, final=False, samples=6)], state=opened_state)
    assert quiet == []  # a violation is already open: no warning noise


# ---- outages ---------------------------------------------------------------------------------


ALLOW = timedelta(hours=2)


def test_source_that_never_reported_is_alerted() -> None:
    state = OutageState(source_id=SRC, watch_since=T0)
    state, events = check_outage(state, None, T0 + H, ALLOW)
    assert events == []
    state, events = check_outage(state, None, T0 + 3 * H, ALLOW)
    assert kinds(events) == ["outage_opened"]
    assert events[0].violation_id == "HD-NT-03:OUTAGE:20261124T0300Z"
    again, none = check_outage(state, None, T0 + 4 * H, ALLOW)
    assert none == [] and again == state


def test_outage_opens_and_closes_with_deterministic_ids() -> None:
    state = OutageState(source_id=SRC, watch_since=T0)
    last = T0 + H
    state, opened = check_outage(state, last, T0 + 4 * H, ALLOW)
    assert kinds(opened) == ["outage_opened"] and opened[0].started_at == last
    # only calibration/error status since: last valid time unchanged, nothing new
    state, none = check_outage(state, last, T0 + 5 * H, ALLOW)
    assert none == []
    state, closed = check_outage(state, T0 + 6 * H, T0 + 6 * H + timedelta(minutes=5), ALLOW)
    assert kinds(closed) == ["outage_closed"] and closed[0].seq == 1
    assert closed[0].violation_id == opened[0].violation_id and closed[0].ended_at == T0 + 6 * H
    assert state.open_id is None
    restored = OutageState.from_json(state.to_json())
    assert restored == state


def test_resent_old_data_closes_and_reopens_the_gap() -> None:
    state = OutageState(source_id=SRC, watch_since=T0)
    state, _ = check_outage(state, T0, T0 + 3 * H, ALLOW)
    state, events = check_outage(state, T0 + H, T0 + 10 * H, ALLOW)
    assert kinds(events) == ["outage_closed", "outage_opened"]
    assert events[1].violation_id == "HD-NT-03:OUTAGE:20261124T0400Z"


# ---- Decree 45/2022 bands only where the decree puts them (docs/regulations.md §8a, §8b) --------


def test_wastewater_violation_shows_band_article_and_flow_bracket() -> None:
    # 180 / 150 = 1.2: Art. 18, 1.1–<1.5× band [S58]; 30 m³/ngày permitted → 20–<40 bracket,
    # fine VND 5–10 M [S58]
    _, events = run(series([100, 180, 100, 100]))
    assert kinds(events) == ["opened", "closed"]
    for e in events:
        assert e.severity == "1.1-1.5" and e.ratio is not None
        assert e.penalty_article.startswith("Nghị định 45/2022/NĐ-CP Điều 18 khoản 2 điểm d")
        assert e.penalty_sanction == "phạt tiền theo lượng nước thải: 5–10 triệu đồng"
        assert e.penalty_verified is True
        assert (e.flow_bracket, e.flow_basis, e.flow_value) == ("20–<40 m³/ngày", "permitted", 30)
    assert "1.20× (1.1-1.5)" in events[0].message


def test_ambient_station_violation_keeps_its_ratio_but_has_no_band() -> None:
    # QCVN 05:2023 PM2.5 24 h at an ambient air station: a station is not a source (§8a)
    pm = make_limit(hi=50.0, parameter="PM2.5")
    _, events = run(
        [avg(h, v, parameter="PM2.5") for h, v in enumerate([40, 120, 40, 40])],
        limit=pm,
        penalty=Penalty(default_penalties().schedule_for("ambient_air", "PM2.5")),
    )
    assert kinds(events) == ["opened", "closed"]
    assert events[0].ratio == pytest.approx(2.4) and events[0].peak_ratio == pytest.approx(2.4)
    for e in events:
        assert e.severity == "none"
        assert (e.penalty_article, e.penalty_sanction, e.penalty_verified) == ("", "", None)
        assert (e.flow_bracket, e.flow_basis, e.flow_value) == ("", "", None)
    assert "2.40×;" in events[0].message  # the ratio, no band


def test_without_a_penalty_no_band_is_given() -> None:
    state, events = None, []
    for a in series([100, 400]):
        state, new = evaluate(state, a, COD)
        events += new
    assert events[0].severity == "none" and events[0].penalty_article == ""


def test_retraction_drops_the_band() -> None:
    state, _ = run(series([100, 160, 145]))
    _, events = run([avg(1, 120, revision=1)], state=state)
    assert events[-1].severity == "none" and events[-1].penalty_article == ""
