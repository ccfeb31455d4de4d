"""QCVN 05:2023 bases as the standard defines them (§1.3.6–1.3.9): a day over the daily limit is
one exceedance; rolling 24-h means only warn; annual means come from a calendar year of daily
means (thresholds/annual.py)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, date, datetime, timedelta

import pytest

from core.records import Average, ViolationEvent
from thresholds.annual import MIN_DAY_FRACTION, AnnualVerdict, annual_mean, days_in, verdict
from thresholds.catalogue import Basis, RuleKind, load_catalogue
from thresholds.limits import Limit
from thresholds.violations import RuleState, applies, evaluate

SRC = "HD-KK-01"
H = timedelta(hours=1)
D = timedelta(days=1)
# 2026-11-30 00:00 local (UTC+7) = 2026-11-29 17:00 UTC
DAY0 = datetime(2026, 11, 29, 17, tzinfo=UTC)

# QCVN 05:2023 Bảng 1, PM2,5, trung bình 24 giờ: 45 µg/Nm³ from 01/01/2026.
PM25_DAY = Limit(
    rule_id="QCVN_05_2023:PM2.5:day",
    source_id=SRC,
    regulation="QCVN_05_2023",
    column=None,
    parameter="PM2.5",
    kind=RuleKind.UPPER,
    min=None,
    max=45.0,
    unit="µg/Nm3",
    period=Basis.DAY,
    legal_basis="QCVN 05:2023/BTNMT, Bảng 1, dòng PM2,5, trung bình 24 giờ (một ngày đêm)",
    verified=True,
)


def day_avg(day: int, value: float | None, *, revision: int = 0, valid: bool = True) -> Average:
    start = DAY0 + day * D
    return Average(
        source_id=SRC,
        parameter="PM2.5",
        period="day",
        window_start=start,
        window_end=start + D,
        value=value,
        unit="µg/Nm3",
        samples=24,
        expected=24,
        completeness=1.0,
        valid=valid,
        revision=revision,
        final=True,
    )


def rolling_avg(end_hour: int, value: float) -> Average:
    end = DAY0 + end_hour * H
    return Average(
        source_id=SRC,
        parameter="PM2.5",
        period="24h",
        window_start=end - 24 * H,
        window_end=end,
        value=value,
        unit="µg/Nm3",
        samples=24,
        expected=24,
        completeness=1.0,
        valid=True,
        revision=0,
        final=True,
    )


def run(averages: Sequence[Average]) -> tuple[RuleState | None, list[ViolationEvent]]:
    state: RuleState | None = None
    events: list[ViolationEvent] = []
    for a in averages:
        assert applies(PM25_DAY, a)
        state, new = evaluate(state, a, PM25_DAY)
        events += new
    return state, events


def test_catalogue_daily_limits_are_calendar_days() -> None:
    # QCVN 05:2023 §1.3.8: "trung bình 24 giờ ... (một ngày đêm)" → the local calendar day.
    reg = load_catalogue()["QCVN_05_2023"]
    bases = {reg.period_of(r) for r in reg.rules}
    assert Basis.ROLLING_24H not in bases and Basis.DAY in bases
    assert Basis.DAY.calendar and Basis.YEAR.calendar and not Basis.ROLLING_8H.calendar


def test_two_days_over_the_limit_are_two_exceedances() -> None:
    _, events = run([day_avg(0, 60.0), day_avg(1, 80.0), day_avg(2, 20.0)])
    opened = [e for e in events if e.event == "opened"]
    assert [e.started_at for e in opened] == [DAY0, DAY0 + D]
    # each day is complete in itself: opened and closed by its own mean
    assert [e.event for e in events] == ["opened", "closed", "opened", "closed"]
    assert {e.ended_at for e in events if e.event == "closed"} == {DAY0 + D, DAY0 + 2 * D}


def test_one_day_over_the_limit_is_one_exceedance_and_a_replay_adds_nothing() -> None:
    state, events = run([day_avg(0, 50.0)])
    assert [e.event for e in events] == ["opened", "closed"]
    _, again = evaluate(state, day_avg(0, 50.0), PM25_DAY)
    assert again == []


def test_a_corrected_day_is_retracted() -> None:
    state, _ = run([day_avg(0, 50.0), day_avg(1, 10.0)])
    _, events = evaluate(state, day_avg(0, 30.0, revision=1), PM25_DAY)
    assert [e.event for e in events] == ["corrected"] and "retracted" in events[0].message


def test_rolling_24h_mean_warns_once_per_day_and_never_opens() -> None:
    # rolling means ending at 10:00 and 11:00 of day 0 past 45 → one warning for day 0
    state, events = run([rolling_avg(10, 50.0), rolling_avg(11, 55.0), rolling_avg(12, 40.0)])
    assert [e.event for e in events] == ["warning"]
    assert events[0].started_at == DAY0 and "rolling 24-h mean" in events[0].message
    # the next day warns again
    _, more = evaluate(state, rolling_avg(24 + 3, 60.0), PM25_DAY)
    assert [e.started_at for e in more] == [DAY0 + D]


def test_non_final_or_invalid_rolling_means_do_not_apply() -> None:
    a = rolling_avg(10, 50.0)
    assert not applies(PM25_DAY, a.derive(final=False))
    assert not applies(PM25_DAY, a.derive(valid=False))


# ---- annual means: QCVN 05:2023 §1.3.9 ------------------------------------------------------


def rows(year: int, n: int, value: float) -> list[tuple[date, float | None, bool]]:
    first = date(year, 1, 1)
    return [(first + timedelta(days=i), value, True) for i in range(n)]


def test_annual_mean_is_the_mean_of_the_years_valid_daily_means() -> None:
    daily = [
        *rows(2025, 300, 20.0),
        (date(2025, 12, 31), 80.0, True),
        (date(2025, 12, 30), 999.0, False),
    ]
    mean = annual_mean(daily + rows(2024, 10, 500.0), 2025, today=date(2026, 1, 5))
    assert mean.valid_days == 301 and mean.days_in_year == 365
    assert mean.value == pytest.approx((300 * 20.0 + 80.0) / 301)
    assert mean.complete  # 301 ≥ 0.75 × 365


@pytest.mark.parametrize(
    ("days", "value", "today", "expected"),
    [
        pytest.param(365, 30.0, date(2026, 1, 1), AnnualVerdict.EXCEEDS, id="over-25"),
        pytest.param(365, 25.0, date(2026, 1, 1), AnnualVerdict.WITHIN, id="at-25"),
        pytest.param(273, 30.0, date(2026, 1, 1), AnnualVerdict.INCOMPLETE, id="273-of-365"),
        pytest.param(274, 30.0, date(2026, 1, 1), AnnualVerdict.EXCEEDS, id="274-of-365"),
        pytest.param(365, 30.0, date(2025, 12, 31), AnnualVerdict.PROVISIONAL, id="not-over"),
    ],
)
def test_annual_verdict_pm25(days: int, value: float, today: date, expected: AnnualVerdict) -> None:
    # QCVN 05:2023 Bảng 1, PM2,5, trung bình năm: 25 µg/Nm³; completeness: 75 % of the days
    # (project rule: 0.75 × 365 = 273.75 → 274 valid days needed).
    assert MIN_DAY_FRACTION == 0.75 and days_in(2025) == 365 and days_in(2024) == 366
    mean = annual_mean(rows(2025, days, value), 2025, today)
    assert verdict(mean, 25.0, today) is expected
