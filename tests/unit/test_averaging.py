"""Local-time windows, completeness rules, the idempotent hour accumulator, display smoothing."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from core.records import Period
from thresholds.averaging import (
    LOCAL_TZ,
    HourAccumulator,
    WindowStat,
    day_window,
    decode_runs,
    encode_runs,
    ewma,
    expected_samples,
    hour_start_s,
    hour_window,
    mean_window,
    rolling_mean,
    savgol_smooth,
)

H = timedelta(hours=1)
# 2026-11-24 00:00 local (UTC+7) = 2026-11-23 17:00 UTC
LOCAL_MIDNIGHT_UTC = datetime(2026, 11, 23, 17, 0, tzinfo=UTC)


def utc(y: int, mo: int, d: int, h: int = 0, mi: int = 0, s: int = 0) -> datetime:
    return datetime(y, mo, d, h, mi, s, tzinfo=UTC)


@pytest.mark.parametrize(
    ("ts", "start", "end"),
    [
        pytest.param(utc(2026, 11, 23, 16, 59, 59), utc(2026, 11, 22, 17), utc(2026, 11, 23, 17),
                     id="16:59:59Z-is-previous-local-day"),
        pytest.param(utc(2026, 11, 23, 17), utc(2026, 11, 23, 17), utc(2026, 11, 24, 17),
                     id="17:00Z-is-local-midnight"),
        pytest.param(utc(2026, 11, 24, 3, 30), utc(2026, 11, 23, 17), utc(2026, 11, 24, 17),
                     id="local-10:30"),
    ],
)  # fmt: skip
def test_day_window_is_local_calendar_day(ts: datetime, start: datetime, end: datetime) -> None:
    assert day_window(ts) == (start, end)


@pytest.mark.parametrize(
    ("ts", "start"),
    [
        (utc(2026, 11, 23, 16, 59, 59), utc(2026, 11, 23, 16)),
        (utc(2026, 11, 23, 17, 0, 0), utc(2026, 11, 23, 17)),
        (datetime(2026, 11, 24, 0, 30, tzinfo=LOCAL_TZ), utc(2026, 11, 23, 17)),
    ],
)
def test_hour_window(ts: datetime, start: datetime) -> None:
    assert hour_window(ts) == (start, start + H)


def test_windows_need_aware_timestamps() -> None:
    with pytest.raises(ValueError, match="naive"):
        hour_window(datetime(2026, 11, 24, 1))


@pytest.mark.parametrize(
    ("window", "interval", "expected"),
    [(3600, 60, 60), (3600, 300, 12), (3600, 3600, 1), (3600, 7200, 1), (3600, 70, 51)],
)
def test_expected_samples(window: float, interval: float, expected: int) -> None:
    assert expected_samples(window, interval) == expected


def test_expected_samples_rejects_zero_interval() -> None:
    with pytest.raises(ValueError, match="> 0"):
        expected_samples(3600, 0)


@pytest.mark.parametrize(
    ("n", "expected", "valid", "completeness"),
    [
        pytest.param(45, 60, True, 0.75, id="45-of-60-exactly-75pct"),
        pytest.param(44, 60, False, 44 / 60, id="44-of-60-below"),
        pytest.param(0, 60, False, 0.0, id="empty"),
        pytest.param(70, 60, True, 1.0, id="over-complete-capped"),
    ],
)
def test_mean_window_threshold(n: int, expected: int, valid: bool, completeness: float) -> None:
    stat = mean_window([2.0] * n, expected, 0.75)
    assert stat.valid is valid
    assert stat.completeness == pytest.approx(completeness)
    assert stat.samples == n
    assert stat.value == (2.0 if n else None)


def _hourly(values: dict[int, float | None], base: datetime) -> dict[datetime, WindowStat]:
    out = {}
    for k, v in values.items():
        out[base + k * H] = WindowStat(v, 60, 60, 1.0, v is not None)
    return out


@pytest.mark.parametrize(
    ("present", "hours", "valid"),
    [
        pytest.param(8, 8, True, id="8h-all"),
        pytest.param(6, 8, True, id="8h-6-of-8"),
        pytest.param(5, 8, False, id="8h-5-of-8"),
        pytest.param(18, 24, True, id="24h-18-of-24"),
        pytest.param(17, 24, False, id="24h-17-of-24"),
    ],
)
def test_rolling_mean_valid_hours(present: int, hours: int, valid: bool) -> None:
    end = utc(2026, 11, 24, 10)
    hourly = _hourly({-k: float(k) for k in range(present)}, end)
    stat = rolling_mean(hourly, end, hours, 0.75)
    assert stat.valid is valid
    assert stat.samples == present and stat.expected == hours
    assert stat.value == pytest.approx(sum(range(present)) / present)


def test_rolling_mean_skips_invalid_hours() -> None:
    end = utc(2026, 11, 24, 10)
    hourly = _hourly({0: 10.0, -1: 20.0}, end)
    hourly[end - 2 * H] = WindowStat(1000.0, 10, 60, 10 / 60, False)
    assert rolling_mean(hourly, end, 8, 0.0).value == 15.0


# --- HourAccumulator -------------------------------------------------------------------------
def test_accumulator_resend_is_not_counted_twice() -> None:
    acc = HourAccumulator(interval_s=60)
    t = utc(2026, 11, 24, 3, 0)
    assert acc.add(t, 5.0) is True
    assert acc.add(t, 5.0) is False  # resent, same timestamp
    assert acc.add(t + timedelta(minutes=1), 7.0) is True
    stat = acc.hour_stat(hour_window(t)[0])
    assert (stat.samples, stat.value) == (2, 6.0)
    assert acc.add(t, 9.0) is True  # corrected value replaces
    assert acc.hour_stat(hour_window(t)[0]).value == 8.0


def test_accumulator_json_round_trip_and_windows() -> None:
    acc = HourAccumulator(interval_s=300, threshold=0.75, horizon_hours=2)
    start = LOCAL_MIDNIGHT_UTC
    for k in range(12 * 5):  # five full hours at 5-min cadence
        acc.add(start + timedelta(minutes=5 * k), float(k % 12))
    restored = HourAccumulator.from_dict(json.loads(json.dumps(acc.to_dict())))
    assert restored.hourly_stats() == acc.hourly_stats()
    results = restored.windows_touched(start + 4 * H + timedelta(minutes=1), now=start + 5 * H)
    periods = [r.period for r in results]
    assert periods[0] == Period.HOUR and periods[-1] == Period.DAY
    # 8-h windows ending with the 04:00 hour (closed) and the 05:00 hour (just begun, partial)
    eight = [r for r in results if r.period == Period.ROLLING_8H]
    assert [r.final for r in eight] == [True, False]
    assert eight[0].stat.samples == 5 and not eight[0].stat.valid  # 5 of 8 hours
    hour = results[0]
    assert hour.final and hour.stat.samples == 12 and hour.stat.valid
    day = results[-1]
    assert not day.final and day.stat.samples == 5 and not day.stat.valid


def test_accumulator_seals_and_prunes_beyond_horizon() -> None:
    acc = HourAccumulator(interval_s=3600, threshold=1.0, horizon_hours=3)
    t0 = utc(2026, 11, 24, 0)
    for k in range(40):
        acc.add(t0 + k * H, 1.0)
    hours = acc.hourly_stats()
    assert len(hours) <= 3 + 24 + 1  # bounded: horizon + one day of sealed hours
    assert acc.add(t0 + 30 * H, 2.0) is False  # sealed: refused
    assert acc.add(t0 + 38 * H, 2.0) is True  # within the horizon: corrects
    assert acc.hour_stat(t0 + 30 * H).valid


def test_nowcast_inputs_current_hour_first() -> None:
    acc = HourAccumulator(interval_s=3600, threshold=1.0)
    t0 = utc(2026, 11, 24, 0)
    for k in range(3):
        acc.add(t0 + k * H, float(k))
    inputs = acc.nowcast_inputs(t0 + 2 * H)
    assert inputs[:4] == [2.0, 1.0, 0.0, None] and len(inputs) == 12


def test_run_encoding_round_trip() -> None:
    xs = [0, 60, 120, 180, 500, 501, 900]
    assert decode_runs(encode_runs(xs)) == xs
    assert encode_runs(list(range(0, 3600, 60))) == [[0, 60, 60]]


# --- property tests --------------------------------------------------------------------------
minute_samples = st.dictionaries(
    st.integers(min_value=0, max_value=59),
    st.floats(min_value=0, max_value=1e4, allow_nan=False),
    min_size=1,
    max_size=60,
)


@settings(max_examples=60, deadline=None)
@given(samples=minute_samples, data=st.data())
def test_average_is_invariant_to_arrival_order(
    samples: dict[int, float], data: st.DataObject
) -> None:
    base = utc(2026, 11, 24, 5)
    items = list(samples.items())
    shuffled = data.draw(st.permutations(items))
    resent = data.draw(st.lists(st.sampled_from(items), max_size=10))
    a, b = HourAccumulator(60), HourAccumulator(60)
    for m, v in items:
        a.add(base + timedelta(minutes=m), v)
    for m, v in [*shuffled, *resent]:
        b.add(base + timedelta(minutes=m), v)
    assert a.hour_stat(base) == b.hour_stat(base)


@settings(max_examples=60, deadline=None)
@given(
    kept=st.integers(min_value=0, max_value=60),
    threshold=st.sampled_from([0.5, 0.75, 0.9]),
)
def test_dropping_below_threshold_marks_invalid(kept: int, threshold: float) -> None:
    base = utc(2026, 11, 24, 5)
    acc = HourAccumulator(60, threshold=threshold)
    for m in range(kept):
        acc.add(base + timedelta(minutes=m), 1.0)
    stat = acc.hour_stat(base)
    assert stat.valid is (kept >= threshold * 60)
    assert stat.samples == kept


@settings(max_examples=60, deadline=None)
@given(offsets=st.lists(st.integers(min_value=-3 * 3600, max_value=3 * 3600), max_size=40))
def test_local_day_window_holds_exactly_that_days_readings(offsets: list[int]) -> None:
    # readings scattered around 17:00 UTC = local midnight
    stamps = [LOCAL_MIDNIGHT_UTC + timedelta(seconds=s) for s in offsets]
    start, end = day_window(LOCAL_MIDNIGHT_UTC)
    inside = [t for t in stamps if start <= t < end]
    assert inside == [
        t for t in stamps if t.astimezone(LOCAL_TZ).date().isoformat() == "2026-11-24"
    ]
    for t in stamps:
        assert (day_window(t) == (start, end)) == (t in inside)


# --- smoothing -------------------------------------------------------------------------------
def test_ewma() -> None:
    assert ewma([10.0, 20.0, 20.0], 0.5) == pytest.approx([10.0, 15.0, 17.5])
    assert ewma([], 0.3) == []
    with pytest.raises(ValueError, match="alpha"):
        ewma([1.0], 0.0)


def test_savgol_keeps_a_line_and_handles_short_series() -> None:
    line = [float(2 * k + 1) for k in range(11)]
    assert savgol_smooth(line, 5, 2) == pytest.approx(line)
    assert savgol_smooth([1.0, 5.0], 7, 2) == [1.0, 5.0]
    noisy = [0.0, 10.0] * 10
    smooth = savgol_smooth(noisy, 5, 1)
    assert max(smooth[2:-2]) - min(smooth[2:-2]) < 5.0


@settings(max_examples=300)
@given(
    at=st.datetimes(datetime(1900, 1, 1), datetime(2100, 1, 1), timezones=st.just(UTC)),
    zone=st.sampled_from(["Asia/Ho_Chi_Minh", "Asia/Kolkata", "Europe/Berlin", "UTC"]),
)
def test_the_cached_hour_start_is_hour_window_s(at: datetime, zone: str) -> None:
    """The windows' cached local-hour start (by whole second) is hour_window's, microseconds,
    half-hour zones, summer time and historical offsets included."""
    tz = ZoneInfo(zone)
    assert hour_start_s(at, tz) == int(hour_window(at, tz)[0].timestamp())
