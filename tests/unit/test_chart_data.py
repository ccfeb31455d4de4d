"""The console's chart shaping (console/chart_data.py) and limit column, and the board's VN_AQI
category names (console/bands.py): pure functions, no database."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest

from console.bands import aqi_name
from console.chart_data import (
    Table,
    averages,
    chart_payload,
    exceeds_any,
    limit_lines,
    limit_text,
    limits_by_parameter,
    smoothed,
    source_limits,
    split_measured,
)
from console.i18n import Lang
from stations.registry import load_registry
from storage.queries import SeriesPoint

T0 = datetime(2026, 12, 5, 1, 0, tzinfo=UTC)
STEP = timedelta(minutes=5)


def pt(k: int, value: float | None, flag: str = "valid") -> SeriesPoint:
    return SeriesPoint(T0 + k * STEP, value, flag == "valid", flag)


def ts(k: int) -> float:
    return (T0 + k * STEP).timestamp()


def test_flagged_values_leave_the_line_and_become_points() -> None:
    line, flagged, flags = split_measured(
        [pt(0, 100.0), pt(1, 20.0, "calibrating"), pt(2, 400.0), pt(3, 900.0, "spike")], 300
    )
    assert (line.t, line.v) == ([ts(0), ts(1), ts(2), ts(3)], [100.0, None, 400.0, None])
    assert (flagged.t, flagged.v, flags) == (
        [ts(1), ts(3)],
        [20.0, 900.0],
        ["calibrating", "spike"],
    )


def test_a_silence_longer_than_three_intervals_breaks_the_line() -> None:
    line, _, _ = split_measured([pt(0, 1.0), pt(3, 2.0), pt(10, 3.0)], 300)
    # 0 → 3 is three intervals (kept joined); 3 → 10 is seven: a gap in the middle
    assert line.v == [1.0, 2.0, None, 3.0]
    assert line.t[2] == (ts(3) + ts(10)) / 2


def test_smoothing_runs_within_each_unbroken_run() -> None:
    values: list[float | None] = [float(x) for x in (1, 9, 1, 9, 1, 9, 1)]
    line = Table([float(i) for i in range(9)], [*values, None, 50.0])
    out = smoothed(line)
    assert out.t == line.t
    assert out.v[7] is None and out.v[8] == 50.0  # a one-value run is kept as it is
    first = [v for v in out.v[:7] if v is not None]
    assert len(first) == 7 and max(first) < 9.0  # smoothed, not the raw zigzag
    assert all(v is not None for v in out.v[:7])


def test_means_are_drawn_at_their_window_middle_and_invalid_ones_not_at_all() -> None:
    hour = [
        SeriesPoint(T0, 125.0, True, "valid"),
        SeriesPoint(T0 + timedelta(hours=1), 95.0, False, "invalid"),
    ]
    out = averages(hour, timedelta(hours=1))
    assert out.t == [T0.timestamp() + 1800, T0.timestamp() + 5400]
    assert out.v == [125.0, None]


def test_payload_carries_every_series_the_limits_and_the_extremes() -> None:
    payload = chart_payload(
        source_id="HD-NT-01",
        parameter="COD",
        unit="mg/L",
        window="24h",
        start=T0 - timedelta(hours=23),
        end=T0 + timedelta(hours=1),
        measured=[pt(0, 100.0), pt(1, 20.0, "calibrating"), pt(2, 400.0)],
        measured_interval_s=300,
        measured_label="Measured",
        means=[SeriesPoint(T0, 173.3, True, "valid")],
        means_period=timedelta(hours=1),
        means_label="1 h mean",
        limits=[{"value": 148.5, "label": "Limit"}],
        lang=Lang.EN,
    )
    assert [s["key"] for s in payload["series"]] == ["measured", "smoothed", "average", "flagged"]
    assert (payload["min"], payload["max"]) == (20.0, 400.0)  # flagged values count too
    assert payload["end"] - payload["start"] == 24 * 3600
    assert payload["limits"] == [{"value": 148.5, "label": "Limit"}]
    assert payload["timezone"] == "Asia/Ho_Chi_Minh"


def test_empty_window_has_no_extremes() -> None:
    payload = chart_payload(
        source_id="S",
        parameter="P",
        unit="",
        window="24h",
        start=T0,
        end=T0 + timedelta(hours=24),
        measured=[],
        measured_interval_s=300,
        measured_label="m",
        means=[],
        means_period=timedelta(hours=1),
        means_label="a",
        limits=[],
        lang=Lang.VI,
    )
    assert (payload["min"], payload["max"]) == (None, None)
    assert all(s["t"] == [] for s in payload["series"])


def test_limit_column_of_hd_nt_03() -> None:
    """The issue's example: QCVN 40:2011 column A, COD 75 × Kq 0.9 × Kf 1.0 = 67.5 mg/L."""
    registry = load_registry()
    limits = limits_by_parameter(source_limits(registry, "HD-NT-03", date(2026, 12, 5)))
    assert [limit_text(x, Lang.EN) for x in limits["COD"]] == ["≤ 67.5 mg/L · 1 h mean"]
    assert [limit_text(x, Lang.VI) for x in limits["COD"]] == ["≤ 67.5 mg/L · TB 1 giờ"]
    assert [limit_text(x, Lang.EN) for x in limits["pH"]] == ["6–9 · 1 h mean"]  # no unit '-'
    assert exceeds_any(limits["COD"], 70.0) and not exceeds_any(limits["COD"], 67.5)
    assert [x["value"] for x in limit_lines(limits["pH"], Lang.EN)] == [6.0, 9.0]


def test_ambient_limits_shortest_basis_first_and_yearly_never_flags_a_value() -> None:
    limits = limits_by_parameter(source_limits(load_registry(), "HD-KK-01", date(2026, 12, 5)))
    so2 = limits["SO2"]
    assert [limit_text(x, Lang.EN) for x in so2] == [
        "≤ 350 µg/Nm3 · 1 h mean",
        "≤ 125 µg/Nm3 · daily mean",
        "≤ 50 µg/Nm3 · annual mean",
    ]
    year_only = [x for x in so2 if x.period.value == "year"]
    assert not exceeds_any(year_only, 60.0)  # assessed per calendar year in reports
    assert exceeds_any(so2, 400.0)


def test_unknown_source_is_held_to_nothing() -> None:
    assert source_limits(load_registry(), "NOPE", date(2026, 12, 5)) == []


@pytest.mark.parametrize(
    ("aqi", "vi", "en"),
    [
        (0, "Tốt", "Good"),
        (50, "Tốt", "Good"),
        (51, "Trung bình", "Moderate"),
        (123, "Kém", "Poor"),
        (151, "Xấu", "Bad"),
        (300, "Rất xấu", "Very bad"),
        (301, "Nguy hại", "Hazardous"),
        (620, "Nguy hại", "Hazardous"),
        (None, "", ""),
    ],
)
def test_aqi_category_names(aqi: int | None, vi: str, en: str) -> None:
    """Decision 1459/QĐ-TCMT Table 1 names, next to the colours on the board."""
    assert (aqi_name(aqi, Lang.VI), aqi_name(aqi, Lang.EN)) == (vi, en)
