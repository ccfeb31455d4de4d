"""The VN_AQI day (Decision 1459/QĐ-TCMT §2.2.2) and the agreement of the CLI with the worker.

QĐ 1459 §2.2.2 a: the PM 24-h mean is the mean of "the hourly values from 01:00 to 00:00 of the
next day". Those labels are hour ENDS (the decision's O3 example computes the 8-h mean "at 1:00"
from the values labelled 18:00 … 1:00), so the day is the hours STARTING 00:00 … 23:00 local:
the local calendar day (docs/regulations.md §10 item 3).
"""

from __future__ import annotations

import csv
import io
import random
from datetime import UTC, date, datetime, timedelta

import pytest

from core.parameters import Parameter as P
from core.records import Period
from thresholds.aqi import (
    AQI_POLLUTANTS,
    DAY_MIN_HOURS,
    AqiResult,
    daily_aqi_by_day,
    day_aqi,
    day_hour_starts,
    local_day,
)
from thresholds.aqi_csv import run_aqi_csv
from thresholds.aqi_station import AqiOut, StationAqi
from thresholds.averaging import LOCAL_TZ

HOUR = timedelta(hours=1)
DAY = date(2026, 11, 24)


def local(day: date, hour: int) -> datetime:
    return datetime(day.year, day.month, day.day, hour, tzinfo=LOCAL_TZ)


# --- the day boundary --------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("hour_start", "day"),
    [
        # QĐ 1459 §2.2.2 a: the value labelled 1:00 (hour end) is the hour starting 00:00
        pytest.param(local(DAY, 0), DAY, id="00:00-local-opens-its-day"),
        pytest.param(local(DAY, 23), DAY, id="23:00-local-closes-its-day"),  # labelled 0:00
        pytest.param(local(DAY + timedelta(1), 0), DAY + timedelta(1), id="next-00:00-is-next-day"),
        pytest.param(datetime(2026, 11, 23, 17, tzinfo=UTC), DAY, id="17:00Z-is-00:00-local"),
        pytest.param(datetime(2026, 11, 23, 16, tzinfo=UTC), date(2026, 11, 23), id="16:00Z"),
    ],
)
def test_an_hour_belongs_to_the_local_calendar_day_of_its_start(
    hour_start: datetime, day: date
) -> None:
    assert local_day(hour_start) == day


def test_the_day_has_the_24_hours_starting_0000_to_2300_local() -> None:
    starts = day_hour_starts(DAY)
    assert len(starts) == 24
    assert starts[0] == local(DAY, 0) and starts[0].tzinfo is UTC
    assert starts[-1] == local(DAY, 23)


def test_local_day_refuses_a_naive_hour() -> None:
    with pytest.raises(ValueError, match="aware"):
        local_day(datetime(2026, 11, 24, 0))


def test_the_pm_24h_mean_takes_the_hours_starting_0000_to_2300() -> None:
    # QĐ 1459 §2.2.2 a. The neighbours (23:00 the day before, 00:00 the day after) are far off:
    # either one in the mean would move it.
    hourly = {local(DAY, h): {P.PM2_5: 10.0} for h in range(24)}
    hourly[local(DAY, 0) - HOUR] = {P.PM2_5: 900.0}
    hourly[local(DAY, 23) + HOUR] = {P.PM2_5: 900.0}
    d = day_aqi(hourly, DAY)
    assert d.stats.mean_24h[P.PM2_5] == 10.0
    assert d.hours == 24 and d.first_hour == local(DAY, 0)


def test_the_o3_8h_means_of_the_first_hours_use_the_previous_day() -> None:
    # QĐ 1459 §2.2.2 a worked example: hours labelled 18:00 … 00:00 of the previous day (starts
    # 17:00 … 23:00) enter the 8-h mean labelled 1:00; the max 8-h mean is 74.4, the max 1-h 97.7.
    before = [15.7, 14.2, 17.7, 18.9, 19.3, 15.7, 19.7]
    day = [22.6, 27.1, 29.0, 31.9, 25.3, 34.7, 35.2, 41.6, 45.7, 49.2, 55.8, 69.6,
           78.3, 91.5, 97.7, 81.2, 71.8, 43.5, 34.3, 21.5, 20.5, 19.4, 20.4, 21.3]  # fmt: skip
    hourly = {local(DAY, 0) - (7 - k) * HOUR: {P.O3: v} for k, v in enumerate(before)}
    hourly |= {local(DAY, h): {P.O3: v, P.PM10: 30.0} for h, v in enumerate(day)}
    d = day_aqi(hourly, DAY)
    assert d.stats.o3_max_8h is not None and round(d.stats.o3_max_8h, 1) == 74.4
    assert d.stats.max_1h[P.O3] == 97.7
    # The 7 hours of the previous day are that day's data: it is listed, incomplete, no AQI.
    days = daily_aqi_by_day(hourly)
    assert [x.day for x in days] == [DAY - timedelta(1), DAY]
    assert days[0].hours == 7 and days[0].result.aqi is None


def test_no_day_for_hours_without_data_and_incomplete_days_are_not_extrapolated() -> None:
    hourly: dict[datetime, dict[P, float | None]] = {
        local(DAY, h): {P.PM2_5: 40.0} for h in range(DAY_MIN_HOURS - 1)
    }
    hourly[local(DAY + timedelta(1), 0)] = {P.PM2_5: None, P.NO2: None}  # a row, no data
    hourly[local(DAY + timedelta(2), 5)] = {}
    (d,) = daily_aqi_by_day(hourly)
    assert d.day == DAY and d.hours == DAY_MIN_HOURS - 1
    assert d.stats.mean_24h[P.PM2_5] is None and d.result.aqi is None
    hourly[local(DAY, DAY_MIN_HOURS - 1)] = {P.PM2_5: 40.0}
    (d,) = daily_aqi_by_day(hourly)
    assert d.stats.mean_24h[P.PM2_5] == 40.0 and d.result.aqi is not None


# --- the CLI and the worker agree --------------------------------------------------------------
def _series(seed: int) -> dict[datetime, dict[P, float | None]]:
    """Three local days of hourly means with gaps, then a day with no data, then a short day
    and an empty 00:00 hour of the next day (its row exists, its values are missing)."""
    rng = random.Random(seed)
    hourly: dict[datetime, dict[P, float | None]] = {}
    days = [DAY + timedelta(k) for k in range(3)]
    for d in days:
        for h in range(24):
            means: dict[P, float | None] = {}
            for p in AQI_POLLUTANTS:
                scale = 3000.0 if p is P.CO else 120.0
                gap = rng.random() < (0.5 if (d == days[1] and p is P.PM10) else 0.08)
                means[p] = None if gap else round(rng.uniform(2, scale), 1)
            hourly[local(d, h)] = means
    short = DAY + timedelta(4)  # DAY + 3 has no data at all
    for h in range(10):
        hourly[local(short, h)] = {p: round(rng.uniform(5, 80), 1) for p in AQI_POLLUTANTS}
    hourly[local(short + timedelta(1), 0)] = dict.fromkeys(AQI_POLLUTANTS)
    return hourly


def _feed_worker(hourly: dict[datetime, dict[P, float | None]]) -> dict[datetime, AqiResult]:
    """Feed StationAqi as compute_aqi does: final 1-h means in event-time order, each parameter
    on its own (a parameter's hour can arrive after another parameter's next hour)."""
    state = StationAqi()
    stored: dict[datetime, AqiResult] = {}  # the aqi table: upsert on (kind, window_start)

    def add(p: P, start: datetime, v: float | None) -> None:
        outs: list[AqiOut] = state.add(p.value, Period.HOUR.value, start, v, v is not None)
        for out in outs:
            if out.kind == "daily":
                stored[out.window_start] = out.result
        # a round trip through the changelog's JSON, as between batches after a restore
        state.__dict__.update(StationAqi.from_dict(state.to_dict()).__dict__)

    starts = sorted(hourly)
    for i, start in enumerate(starts):
        for p in AQI_POLLUTANTS:
            if p is P.O3 and i > 0:  # O3's hour closes one hour later than the others'
                add(p, starts[i - 1], hourly[starts[i - 1]].get(p))
            elif p is not P.O3:
                add(p, start, hourly[start].get(p))
    add(P.O3, starts[-1], hourly[starts[-1]].get(P.O3))
    return stored


def _cli_daily(hourly: dict[datetime, dict[P, float | None]]) -> list[dict[str, str]]:
    lines = ["time," + ",".join(p.value for p in AQI_POLLUTANTS)]
    for start in sorted(hourly):
        cells = [
            "" if hourly[start].get(p) is None else str(hourly[start][p]) for p in AQI_POLLUTANTS
        ]
        lines.append(f"{start.astimezone(LOCAL_TZ):%Y-%m-%dT%H:%M}," + ",".join(cells))
    out = io.StringIO()
    run_aqi_csv(io.StringIO("\n".join(lines) + "\n"), out, daily=True)
    return list(csv.DictReader(io.StringIO(out.getvalue())))


def _cells(result: AqiResult) -> dict[str, str]:
    subs = {f"AQI_{p}": "" if v is None else str(v) for p, v in result.sub_indices.items()}
    return {"AQI": "" if result.aqi is None else str(result.aqi), **subs}


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_cli_daily_and_the_worker_store_the_same_daily_aqi(seed: int) -> None:
    hourly = _series(seed)
    worker = _feed_worker(hourly)
    cli = _cli_daily(hourly)
    # the same days: the three full days and the short one; none for the day without data or
    # for the last day (one hour, no values)
    assert [r["date"] for r in cli] == [
        str(DAY),
        str(DAY + timedelta(1)),
        str(DAY + timedelta(2)),
        str(DAY + timedelta(4)),
    ]
    assert sorted(worker) == [local(date.fromisoformat(r["date"]), 0) for r in cli]
    for row in cli:
        result = worker[local(date.fromisoformat(row["date"]), 0)]
        assert {k: row[k] for k in _cells(result)} == _cells(result), row["date"]
    assert any(r["AQI"] for r in cli) and cli[-1]["AQI"] == ""  # the short day: no AQI


def test_a_late_value_recomputes_a_closed_day_as_the_cli_would() -> None:
    hourly = {h: v for h, v in _series(7).items() if h < local(DAY + timedelta(3), 0)}
    hourly[local(DAY + timedelta(3), 0)] = {P.PM2_5: 20.0}
    state = StationAqi()
    for start in sorted(hourly):
        for p in AQI_POLLUTANTS:
            v = hourly[start].get(p)
            state.add(p.value, Period.HOUR.value, start, v, v is not None)
    late_hour = local(DAY + timedelta(2), 10)
    hourly[late_hour][P.PM2_5] = 480.0
    outs = state.add(P.PM2_5.value, Period.HOUR.value, late_hour, 480.0, True)
    daily = [o for o in outs if o.kind == "daily"]
    assert [o.window_start for o in daily] == [local(DAY + timedelta(2), 0)]
    (row,) = [r for r in _cli_daily(hourly) if r["date"] == str(DAY + timedelta(2))]
    assert _cells(daily[0].result) == {k: row[k] for k in _cells(daily[0].result)}
    # A value for a day no longer fully retained (KEEP_HOURS) does not recompute it: the
    # partial day would overwrite the stored, correct row.
    state.add("PM2.5", Period.HOUR.value, local(DAY + timedelta(5), 0), 20.0, True)
    outs = state.add("PM2.5", Period.HOUR.value, local(DAY + timedelta(2), 11), 5.0, True)
    assert [o.kind for o in outs] == ["hourly"]


def test_the_worker_emits_a_day_when_it_closes_and_not_before() -> None:
    state = StationAqi()
    for h in range(23):
        outs = state.add("PM2.5", Period.HOUR.value, local(DAY, h), 30.0, True)
        assert all(o.kind == "hourly" for o in outs)
    outs = state.add("PM2.5", Period.HOUR.value, local(DAY, 23), 30.0, True)
    assert [(o.kind, o.window_start) for o in outs if o.kind == "daily"] == [
        ("daily", local(DAY, 0))
    ]
    # the next day's 00:00 hour does not emit the closed day again, nor its own day
    outs = state.add("PM2.5", Period.HOUR.value, local(DAY + timedelta(1), 0), 30.0, True)
    assert [o.kind for o in outs] == ["hourly"]


def test_a_day_without_its_last_hour_is_emitted_when_the_next_day_starts() -> None:
    state = StationAqi()
    for h in range(20):
        state.add("PM2.5", Period.HOUR.value, local(DAY, h), 30.0, True)
    # a silent evening, then the next day's first hour (invalid) closes the day
    outs = state.add("PM2.5", Period.HOUR.value, local(DAY + timedelta(1), 0), None, False)
    daily = [o for o in outs if o.kind == "daily"]
    assert [o.window_start for o in daily] == [local(DAY, 0)]
    assert daily[0].result.aqi is not None  # 20 of 24 hours


def test_state_written_before_the_calendar_day_still_loads() -> None:
    old = {"h": {"PM2.5": {str(int(local(DAY, 3).timestamp())): 12.0}}, "n": {}, "t": 0.75}
    state = StationAqi.from_dict(old)
    assert state.newest == int(local(DAY, 3).timestamp())
