"""VN_AQI per Decision 1459/QĐ-TCMT (docs/regulations.md §7); worked examples from its §2.3."""

from __future__ import annotations

import pytest

from core.parameters import Parameter as P
from core.records import Period
from thresholds.aqi import (
    CATEGORIES,
    AqiCategory,
    DailyStats,
    category,
    combine,
    daily_aqi,
    daily_stats,
    eight_hour_means,
    hourly_aqi,
    hourly_aqi_from_history,
    nowcast,
    round_aqi,
    sub_index,
)

# QĐ 1459 §2.3 a: PM2.5 hourly means 09:00..20:00; c1 is the current hour (20:00).
EXAMPLE_PM25_09_TO_20 = [26.9, 24.7, 20.5, 23.5, 19.5, 16.5, 19.0, 16.5, 20.3, 22.4, 19.6, 20.6]
EXAMPLE_C1_FIRST = list(reversed(EXAMPLE_PM25_09_TO_20))


# --- Table 2 breakpoints: every row of every column maps to its Ii --------------------------
# (pollutant, basis) → BPi of rows 1..8, transcribed independently of thresholds.aqi
_LEVELS = [0, 50, 100, 150, 200, 300, 400, 500]
_TABLE2 = {
    (P.O3, Period.HOUR): [0, 160, 200, 300, 400, 800, 1000, 1200],
    (P.O3, Period.ROLLING_8H): [0, 100, 120, 170, 210, 400],
    (P.CO, Period.HOUR): [0, 10000, 30000, 45000, 60000, 90000, 120000, 150000],
    (P.SO2, Period.HOUR): [0, 125, 350, 550, 800, 1600, 2100, 2630],
    (P.NO2, Period.HOUR): [0, 100, 200, 700, 1200, 2350, 3100, 3850],
    (P.PM10, Period.NOWCAST): [0, 50, 150, 250, 350, 420, 500, 600],
    (P.PM10, Period.ROLLING_24H): [0, 50, 150, 250, 350, 420, 500, 600],
    (P.PM2_5, Period.NOWCAST): [0, 25, 50, 80, 150, 250, 350, 500],
    (P.PM2_5, Period.ROLLING_24H): [0, 25, 50, 80, 150, 250, 350, 500],
}
BREAKPOINT_CASES = [
    pytest.param(p, basis, bp, level, id=f"QD1459-Table2-{p}-{basis.value}-row{i + 1}")
    for (p, basis), bps in _TABLE2.items()
    for i, (bp, level) in enumerate(zip(bps, _LEVELS, strict=False))
]


@pytest.mark.parametrize(("pollutant", "basis", "bp", "level"), BREAKPOINT_CASES)
def test_breakpoint_maps_to_its_level(pollutant: P, basis: Period, bp: float, level: int) -> None:
    assert sub_index(pollutant, bp, basis) == pytest.approx(level)


@pytest.mark.parametrize(
    ("pollutant", "basis", "value", "expected"),
    [
        # midpoints of Table 2 segments: linear interpolation, formula 1
        pytest.param(P.PM2_5, Period.NOWCAST, 12.5, 25.0, id="QD1459-T2-PM2.5-row1-2-mid"),
        pytest.param(P.PM2_5, Period.ROLLING_24H, 65.0, 125.0, id="QD1459-T2-PM2.5-row3-4-mid"),
        pytest.param(P.PM10, Period.ROLLING_24H, 460.0, 350.0, id="QD1459-T2-PM10-row6-7-mid"),
        pytest.param(P.SO2, Period.HOUR, 237.5, 75.0, id="QD1459-T2-SO2-row2-3-mid"),
        pytest.param(P.CO, Period.HOUR, 75000.0, 250.0, id="QD1459-T2-CO-row5-6-mid"),
        pytest.param(P.NO2, Period.HOUR, 450.0, 125.0, id="QD1459-T2-NO2-row3-4-mid"),
        pytest.param(P.O3, Period.ROLLING_8H, 110.0, 75.0, id="QD1459-T2-O3_8h-row2-3-mid"),
        pytest.param(P.O3, Period.HOUR, 1100.0, 450.0, id="QD1459-T2-O3_1h-row7-8-mid"),
        # above row 8 ("≥"): capped at 500 (documented choice)
        pytest.param(P.PM2_5, Period.NOWCAST, 900.0, 500.0, id="cap-PM2.5-above-500"),
        pytest.param(P.CO, Period.HOUR, 1e6, 500.0, id="cap-CO-above-150000"),
        # O3 8-h above 400: not applicable (§2.2.2 b note)
        pytest.param(P.O3, Period.ROLLING_8H, 400.1, None, id="QD1459-O3_8h-above-400-none"),
        pytest.param(P.SO2, Period.HOUR, None, None, id="missing"),
    ],
)
def test_sub_index_interpolates(
    pollutant: P, basis: Period, value: float | None, expected: float | None
) -> None:
    result = sub_index(pollutant, value, basis)
    assert result == (None if expected is None else pytest.approx(expected))


@pytest.mark.parametrize(
    ("pollutant", "basis"),
    [(P.PM2_5, Period.HOUR), (P.SO2, Period.ROLLING_8H), (P.NO2, Period.NOWCAST)],
)
def test_sub_index_rejects_a_basis_the_decision_does_not_define(
    pollutant: P, basis: Period
) -> None:
    with pytest.raises(ValueError, match="allowed"):
        sub_index(pollutant, 10.0, basis)


def test_sub_index_rejects_negative_concentration() -> None:
    with pytest.raises(ValueError, match=">= 0"):
        sub_index(P.NO2, -1.0, Period.HOUR)


# --- NowCast ---------------------------------------------------------------------------------
def test_nowcast_worked_example_20_3() -> None:
    # QĐ 1459 §2.3 a: w* = 16.5/26.9 = 0.61 > 1/2 → w = w*; NowCast = 20.3 µg/m³.
    assert min(EXAMPLE_C1_FIRST) / max(EXAMPLE_C1_FIRST) == pytest.approx(0.61, abs=0.005)
    value = nowcast(EXAMPLE_C1_FIRST)
    assert value is not None
    assert round(value, 1) == 20.3


@pytest.mark.parametrize(
    ("hourly", "expected"),
    [
        pytest.param([10.0] * 12, 10.0, id="constant"),
        pytest.param([0.0] * 12, 0.0, id="all-zero"),
        # w* = 1/20 ≤ 1/2 → w = 1/2 (normalised weights, see module docstring)
        pytest.param(
            [20.0] + [1.0] * 11,
            (20 + sum(0.5**i for i in range(1, 12))) / (2 - 0.5**11),
            id="w-floor-half",
        ),
        # missing c_i → weight 0: only c1, c2 (w = 10/20 → 1/2)
        pytest.param([20.0, 10.0], (20 + 0.5 * 10) / 1.5, id="missing-weights-zero"),
        pytest.param([20.0, None, 10.0], (20 + 0.25 * 10) / 1.25, id="2-of-3-c1-c3"),
        # c1 missing: c2, c3, c4 keep weights w, w², w³ (w* = 8/50 → 1/2)
        pytest.param(
            [None, 8.0, 8.0, 50.0], (0.5 * 8 + 0.25 * 8 + 0.125 * 50) / 0.875, id="c1-missing"
        ),
        # w* = 18/20 = 0.9 > 1/2 → w = 0.9
        pytest.param([20.0, 18.0], (20 + 0.9 * 18) / 1.9, id="w-above-half"),
    ],
)
def test_nowcast_weights(hourly: list[float | None], expected: float) -> None:
    assert nowcast(hourly) == pytest.approx(expected)


@pytest.mark.parametrize(
    "hourly",
    [
        pytest.param([10.0, None, None, 10.0, 10.0], id="only-c1-of-first-3"),
        pytest.param([None, None, 10.0] + [10.0] * 9, id="only-c3-of-first-3"),
        pytest.param([], id="empty"),
    ],
)
def test_nowcast_needs_2_of_first_3(hourly: list[float | None]) -> None:
    # QĐ 1459 §2.2.1 a note: at least 2 of c1, c2, c3 → otherwise "no data"
    assert nowcast(hourly) is None


def test_nowcast_rejects_more_than_12_hours() -> None:
    with pytest.raises(ValueError, match="12"):
        nowcast([1.0] * 13)


# --- hourly AQI ------------------------------------------------------------------------------
def test_hourly_worked_example_printed_sub_indices_give_60() -> None:
    # QĐ 1459 §2.3 b: sub-indices as printed: O3 43, NO2 60, PM2.5 41 → AQIʰ = max = 60.
    result = combine({P.O3: 43, P.NO2: 60, P.PM2_5: 41})
    assert result.aqi == 60
    assert result.dominant == P.NO2
    assert result.category == AqiCategory.MODERATE


def test_hourly_worked_example_from_concentrations() -> None:
    # QĐ 1459 §2.3 b inputs: O3 136.1, NO2 118.7, NowCast PM2.5 20.3 µg/m³.
    result = hourly_aqi({P.O3: 136.1, P.NO2: 118.7, P.PM2_5: 20.3})
    assert result.sub_indices["O3"] == 43  # 42.53
    assert result.sub_indices["PM2.5"] == 41  # 40.6
    # The decision prints AQI(NO2) = 60, but (100−50)/(200−100)×(118.7−100)+50 = 59.35 → 59
    # with half-up rounding (documented choice in thresholds.aqi); so AQIʰ = 59 here, not 60.
    assert sub_index(P.NO2, 118.7, Period.HOUR) == pytest.approx(59.35)
    assert result.sub_indices["NO2"] == 59
    assert result.aqi == 59


def test_hourly_from_history_uses_nowcast_for_pm_and_c1_for_gases() -> None:
    result = hourly_aqi_from_history(
        {P.PM2_5: EXAMPLE_C1_FIRST, P.NO2: [118.7, 500.0], P.O3: [136.1]}
    )
    assert result.sub_indices["PM2.5"] == 41  # NowCast 20.27 → 40.5 → 41
    assert result.sub_indices["NO2"] == 59  # the current hour, not the earlier 500


def test_aqi_needs_pm() -> None:
    # QĐ 1459 §2.1 b: at least one of PM10 / PM2.5 must be in the formula.
    result = hourly_aqi({P.O3: 136.1, P.NO2: 118.7})
    assert result.aqi is None and result.category is None
    assert result.sub_indices["NO2"] == 59


# --- daily AQI -------------------------------------------------------------------------------
def test_daily_worked_example_110() -> None:
    # QĐ 1459 §2.3 c: O3 max 8-h 89.3, O3 max 1-h 114.6, NO2 max 1-h 130.8, PM2.5 24-h 55.7.
    stats = DailyStats(mean_24h={P.PM2_5: 55.7}, max_1h={P.O3: 114.6, P.NO2: 130.8}, o3_max_8h=89.3)
    result = daily_aqi(stats)
    assert sub_index(P.O3, 89.3, Period.ROLLING_8H) == pytest.approx(44.65)  # printed 45
    assert sub_index(P.O3, 114.6, Period.HOUR) == pytest.approx(35.8125)  # printed 36
    assert result.sub_indices["O3"] == 45  # max(AQI 8-h, AQI 1-h)
    assert result.sub_indices["NO2"] == 65  # 65.4, printed 65 (ceiling would give 66)
    assert result.sub_indices["PM2.5"] == 110  # 109.5 half up
    assert result.aqi == 110
    assert result.dominant == P.PM2_5
    assert result.category == AqiCategory.POOR


def test_daily_o3_8h_above_400_uses_1h_only() -> None:
    # QĐ 1459 §2.2.2 b: max 8-h > 400 µg/m³ → O3 from the max 1-h only.
    stats = DailyStats(mean_24h={P.PM10: 10.0}, max_1h={P.O3: 450.0}, o3_max_8h=401.0)
    assert daily_aqi(stats).sub_indices["O3"] == round_aqi(200 + 100 / 400 * 50)


def test_eight_hour_means_worked_example_max_74_4() -> None:
    # QĐ 1459 §2.2.2 a example: O3 hourly means 18:00 (previous day) … 00:00; max 8-h = 74.4,
    # 8-h at 1:00 = 18.0 (mean of 18:00 … 1:00), 24 values per day.
    before = [15.7, 14.2, 17.7, 18.9, 19.3, 15.7, 19.7]  # 18:00 … 00:00
    day = [22.6, 27.1, 29.0, 31.9, 25.3, 34.7, 35.2, 41.6, 45.7, 49.2, 55.8, 69.6,
           78.3, 91.5, 97.7, 81.2, 71.8, 43.5, 34.3, 21.5, 20.5, 19.4, 20.4, 21.3]  # fmt: skip
    means = eight_hour_means(day, before)
    assert len(means) == 24
    printed = [18.0, 19.4, 21.2, 23.0, 23.8, 25.8, 28.2, 30.9, 33.8, 36.6, 39.9, 44.7,
               51.3, 58.4, 66.2, 71.1, 74.4, 73.7, 71.0, 65.0, 57.8, 48.7, 39.1, 31.6]  # fmt: skip
    # The decision's table was computed from unrounded hourly means: 12:00 prints 44.7 where the
    # printed hourly values give 44.64, so compare to within 0.1.
    assert means == pytest.approx(printed, abs=0.1)
    stats = daily_stats({P.O3: day}, before)
    assert stats.o3_max_8h is not None and round(stats.o3_max_8h, 1) == 74.4
    assert stats.max_1h[P.O3] == 97.7


def test_daily_stats_completeness() -> None:
    pm = [30.0] * 18 + [None] * 6  # 18 of 24 = 75 %: valid
    assert daily_stats({P.PM2_5: pm}).mean_24h[P.PM2_5] == 30.0
    pm = [30.0] * 17 + [None] * 7
    assert daily_stats({P.PM2_5: pm}).mean_24h[P.PM2_5] is None
    with pytest.raises(ValueError, match="24"):
        daily_stats({P.PM2_5: [1.0] * 23})


# --- categories and rounding -----------------------------------------------------------------
@pytest.mark.parametrize(
    ("aqi", "cat", "rgb", "name_vi"),
    [
        pytest.param(0, AqiCategory.GOOD, (0, 228, 0), "Tốt", id="QD1459-Table1-row1-0"),
        pytest.param(50, AqiCategory.GOOD, (0, 228, 0), "Tốt", id="QD1459-Table1-row1-50"),
        pytest.param(51, AqiCategory.MODERATE, (255, 255, 0), "Trung bình", id="T1-row2-51"),
        pytest.param(100, AqiCategory.MODERATE, (255, 255, 0), "Trung bình", id="T1-row2-100"),
        pytest.param(101, AqiCategory.POOR, (255, 126, 0), "Kém", id="QD1459-Table1-row3"),
        pytest.param(200, AqiCategory.BAD, (255, 0, 0), "Xấu", id="QD1459-Table1-row4"),
        pytest.param(201, AqiCategory.VERY_BAD, (143, 63, 151), "Rất xấu", id="T1-row5"),
        pytest.param(301, AqiCategory.HAZARDOUS, (126, 0, 35), "Nguy hại", id="T1-row6-301"),
        pytest.param(500, AqiCategory.HAZARDOUS, (126, 0, 35), "Nguy hại", id="T1-row6-500"),
    ],
)
def test_categories_table1(
    aqi: int, cat: AqiCategory, rgb: tuple[int, int, int], name_vi: str
) -> None:
    assert category(aqi) == cat
    assert CATEGORIES[cat].rgb == rgb
    assert CATEGORIES[cat].name_vi == name_vi


def test_category_hex_colour() -> None:
    assert CATEGORIES[AqiCategory.POOR].hex == "#FF7E00"


@pytest.mark.parametrize(
    ("x", "expected"),
    [(109.5, 110), (109.49999999999999, 110), (59.35, 59), (42.5, 43), (0.49, 0), (44.65, 45)],
)
def test_round_half_up(x: float, expected: int) -> None:
    assert round_aqi(x) == expected
