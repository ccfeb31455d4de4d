"""thresholds/windows.py: when averages are emitted, and the state's changelog encoding."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from core.records import Period
from thresholds.windows import KEEP_BEHIND_H, MAX_SPAN_H, HourSums, SeriesWindows

T0 = datetime(2026, 3, 1, 17, tzinfo=UTC)  # 00:00 local (UTC+7): a local day starts
STEP = timedelta(minutes=5)


Emitted = list[tuple[str, datetime, int]]  # (period, window start, revision) of final windows


def _fed(n: int, late: Sequence[int] = ()) -> tuple[SeriesWindows, Emitted]:
    """A PM2.5 series fed ``n`` 5-minute samples from T0, then the samples ``late`` again."""
    w = SeriesWindows("PM2.5", 300.0)
    out: Emitted = []
    for i in [*range(n), *late]:
        for o in w.add(T0 + i * STEP, 10.0 + i % 7):
            if o.final:
                out.append((o.period.value, o.window_start, o.revision))
    return w, out


def _same(a: SeriesWindows, b: SeriesWindows) -> bool:
    fields = ("hours", "closed", "revisions", "watermark", "last_input")
    return all(getattr(a, f) == getattr(b, f) for f in fields)


def test_an_hour_closes_with_its_rolling_day_and_nowcast_windows() -> None:
    _, out = _fed(24 * 12 + 1)  # a local day and the first reading of the next
    hours = [o for o in out if o[0] == Period.HOUR.value]
    assert len(hours) == 24 and hours[0][1] == T0
    assert (Period.DAY.value, T0, 0) in out
    assert sum(o[0] == Period.NOWCAST.value for o in out) == 24


def test_a_late_sample_re_emits_every_window_that_contains_it_with_the_next_revision() -> None:
    _, out = _fed(24 * 12 + 1, late=[5 * 12 + 3])  # hour 5 again, after the day closed
    again = [o for o in out if o[2] == 1]
    assert (Period.HOUR.value, T0 + timedelta(hours=5), 1) in again
    assert (Period.DAY.value, T0, 1) in again
    assert all(o[2] <= 1 for o in out)


@settings(max_examples=40, deadline=None)
@given(n=st.integers(0, 200 * 12), late=st.lists(st.integers(0, 200 * 12), max_size=5))
def test_state_survives_a_json_round_trip(n: int, late: list[int]) -> None:
    w, _ = _fed(n, late)
    w.last_input = n * 1024
    again = SeriesWindows.from_dict(json.loads(json.dumps(w.to_dict())), 300.0)
    assert _same(again, w)
    # and behaves the same afterwards
    t = T0 + (n + 13) * STEP
    assert again.add(t, 1.0) == w.add(t, 1.0)


def test_a_full_horizon_encodes_compactly() -> None:
    w, out = _fed(130 * 12, late=[125 * 12])  # hour 125 again with hours to 129 closed:
    # its 1-h window and the closed 8-h, 24-h and NowCast windows that hold it (4 each)
    assert len(out) > 500 and len(w.closed) == 1 and len(w.revisions) == 13
    assert len(json.dumps(w.to_dict())) < 6_000


def test_state_written_before_2026_12_with_every_emitted_window_still_loads() -> None:
    late = 20 * 12 + 1
    w, out = _fed(30 * 12, late=[late])
    # the earlier encoding: (period, start) → revision of every window emitted
    emitted: dict[str, int] = {}
    for period, start, revision in out:
        emitted[f"{period}:{int(start.timestamp())}"] = revision
    earlier = {
        "p": w.parameter,
        "i": w.interval_s,
        "t": w.threshold,
        "z": w.horizon_h,
        "h": {str(k): v for k, v in w.hours.items()},
        "e": emitted,
        "w": w.watermark,
    }
    assert _same(SeriesWindows.from_dict(json.loads(json.dumps(earlier)), 300.0), w)


def test_the_state_is_bounded_by_the_late_horizon() -> None:
    """Hours (and revisions) older than the late horizon + 24 h are forgotten: a series' state
    stops growing after that, however long it runs."""
    late = [i * 12 for i in range(150, 300, 7)]  # some hours resent, spread over the run
    w, _ = _fed(300 * 12, late=late)
    assert w.watermark is not None
    keep_from = w.watermark - (w.horizon_h + KEEP_BEHIND_H) * 3600
    assert len(w.hours) <= w.horizon_h + KEEP_BEHIND_H + 1
    assert min(w.hours) >= keep_from and all(s >= keep_from for _, s in w.revisions)
    assert w.closed == [[keep_from, w.watermark]]


def test_state_with_its_hours_as_a_mapping_still_loads() -> None:
    """Hours were stored as {"hour": [sum, n]} until 2026-12-06, then as two flat lists."""
    w, _ = _fed(30 * 12, late=[20 * 12 + 1])
    stored = json.loads(json.dumps(w.to_dict()))
    assert stored["hk"] == list(w.hours) and len(stored["hv"]) == 2 * len(w.hours)
    earlier = {k: v for k, v in stored.items() if k not in ("hk", "hv")}
    earlier["h"] = {str(k): v for k, v in w.hours.items()}
    assert _same(SeriesWindows.from_dict(json.loads(json.dumps(earlier)), 300.0), w)


def test_configuration_comes_from_the_load_not_the_state() -> None:
    """The completeness threshold and the late horizon are settings: a state written under one
    value and loaded under another follows the new one (issue 18: a changed setting reaches
    existing series on restart)."""
    w, _ = _fed(3 * 12 + 1, late=[])  # hours 0-2 closed, 12 readings each
    stored = json.loads(json.dumps(w.to_dict()))
    assert not {"i", "t", "z"} & set(stored)
    strict = SeriesWindows.from_dict(stored, 300.0, threshold=1.0, horizon_h=5)
    lax = SeriesWindows.from_dict(stored, 300.0, threshold=0.5, horizon_h=200)
    assert (strict.threshold, strict.horizon_h) == (1.0, 5)
    assert (lax.threshold, lax.horizon_h) == (0.5, 200)
    hour = min(w.hours)
    for state in (strict, lax):
        state.hours[hour] = (9.0, 9)  # 9 of 12 samples: valid at 0.5, not at 1.0
    assert not strict.hour_stat(hour).valid and lax.hour_stat(hour).valid


@settings(max_examples=30, deadline=None)
@given(hours=st.integers(100, 160), back=st.integers(0, 72 * 12), value=st.floats(0, 500))
def test_what_is_pruned_is_never_needed_by_a_late_sample(
    hours: int, back: int, value: float
) -> None:
    """A sample up to the late horizon (72 h) behind re-emits the same windows, with the same
    means, as a state that forgot nothing."""
    pruned, whole = SeriesWindows("PM2.5", 300.0), SeriesWindows("PM2.5", 300.0, horizon_h=10_000)
    for i in range(hours * 12):
        t, v = T0 + i * STEP, 10.0 + i % 7
        pruned.add(t, v)
        whole.add(t, v)
    assert pruned.watermark is not None
    late = datetime.fromtimestamp(pruned.watermark, UTC) - 72 * timedelta(hours=1) + back * STEP
    assert pruned.add(late, value) == whole.add(late, value)


def test_hour_sums_hold_what_a_dict_of_sums_would() -> None:
    """thresholds/windows.py ``HourSums``: hours added out of order, before the first one held
    and after a gap; one withdrawn to nothing is absent and holds no float residue."""
    h = 1_764_547_200  # a whole hour
    sums = HourSums()
    sums.add(h + 5 * 3600, 10.0, 2)
    sums.add(h, 1.5, 1)  # before the first hour held
    sums.add(h + 5 * 3600, 0.1, 1)
    sums.add(h + 9 * 3600, 4.0, 1)  # after a gap
    assert dict(sums) == {h: (1.5, 1), h + 5 * 3600: (10.1, 3), h + 9 * 3600: (4.0, 1)}
    sums.add(h + 5 * 3600, -10.1, -3)
    assert h + 5 * 3600 not in sums and sums.stat(h + 5 * 3600) == (0.0, 0)
    assert sums.stat(h - 3600) == sums.stat(h + 99 * 3600) == (0.0, 0)
    sums.forget_before(h + 3600)
    assert list(sums) == [h + 9 * 3600] and len(sums) == 1
    assert sums.flat() == ([h + 9 * 3600], [4.0, 1])
    assert HourSums(sums.items()) == sums == {h + 9 * 3600: (4.0, 1)}


def test_a_clock_far_ahead_does_not_grow_the_hours_with_it() -> None:
    """A sample years ahead (a datalogger's clock reset to 2099) moves the series there: the
    hours it leaves behind are dropped as it is added, not zero-filled up to it."""
    h = 1_764_547_200
    sums = HourSums({h: (1.0, 1)}.items())
    sums.add(h + 70 * 365 * 24 * 3600, 2.0, 1)
    assert len(sums._counts) <= MAX_SPAN_H and list(sums) == [h + 70 * 365 * 24 * 3600]
