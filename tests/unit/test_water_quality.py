"""Surface water: QCVN 08:2023 daily class and VN_WQI (Decision 1460/QĐ-TCMT).

Class cells: QCVN 08:2023 classification table as transcribed in docs/regulations.md §4.1 [S28].
VN_WQI tables: docs/regulations.md §4.3 (thresholds/data/vn_wqi_1460.yaml; [S65], [S66],
all UNVERIFIED against the decision's own text).
"""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest

from core.parameters import SourceKind
from core.records import Average
from stations.registry import LimitSet, RegulationId, load_registry
from streams.checks import LimitBook
from thresholds.catalogue import Catalogue, load_catalogue
from thresholds.limits import resolve_limits
from thresholds.water_quality import (
    StationDays,
    classify,
    do_saturation,
    is_worse,
    sub_index,
    vn_wqi,
    wqi_category,
)


@pytest.fixture(scope="module")
def catalogue() -> Catalogue:
    return load_catalogue()


# --- class (docs/regulations.md §4.1, classification table [S28]) ----------------------------


@pytest.mark.parametrize(
    ("parameter", "value", "expected"),
    [
        pytest.param("pH", 7.3, "A", id="pH-A-6.5..8.5"),
        pytest.param("pH", 6.2, "B", id="pH-B-6.0..8.5"),
        pytest.param("pH", 5.8, "D", id="pH-D-below-6.0"),
        pytest.param("pH", 8.7, "D", id="pH-D-above-8.5"),
        pytest.param("COD", 10, "A", id="COD-A-le10"),
        pytest.param("COD", 12, "B", id="COD-B-le15"),
        pytest.param("COD", 20, "C", id="COD-C-le20"),
        pytest.param("COD", 21, "D", id="COD-D-worse-than-C"),
        pytest.param("TP", 0.2, "B", id="TP-B-le0.3"),
        pytest.param("TN", 1.8, "C", id="TN-C-le2.0"),
        pytest.param("DO", 4.5, "C", id="DO-C-ge4-fails-B5"),
        pytest.param("DO", 3.0, "D", id="DO-D-below-C4"),
        pytest.param("TSS", 20, "A", id="TSS-A-le25"),
    ],
)
def test_parameter_class(catalogue: Catalogue, parameter: str, value: float, expected: str) -> None:
    result = classify({parameter: value}, catalogue)
    assert result.classes == {parameter: expected}
    assert result.water_class == expected


@pytest.mark.parametrize(
    ("parameter", "value", "why"),
    [
        # TSS class B cell hidden in [S28]: 30 mg/L could be B, C or D
        pytest.param("TSS", 30, "B–D", id="TSS-B-hidden"),
        # DO class A cell hidden in [S28]: 5.8 mg/L meets B (≥ 5.0), A unknown
        pytest.param("DO", 5.8, "A–B", id="DO-A-hidden"),
    ],
)
def test_hidden_cells_skip_the_parameter(
    catalogue: Catalogue, parameter: str, value: float, why: str
) -> None:
    result = classify({parameter: value}, catalogue)
    assert result.classes == {}
    assert result.skipped[parameter].startswith(why)
    assert result.water_class is None


def test_day_class_is_the_worst_classified_parameter(catalogue: Catalogue) -> None:
    # pH 7.3 → A, COD 12 → B (≤ 15), TN 1.8 → C (≤ 2.0); TSS 30 and DO 5.8 not classified
    means = {"pH": 7.3, "COD": 12, "TN": 1.8, "TSS": 30, "DO": 5.8, "Temp": 25, "EC": 300}
    result = classify(means, catalogue)
    assert result.classes == {"pH": "A", "COD": "B", "TN": "C"}
    assert set(result.skipped) == {"TSS", "DO"}
    assert result.water_class == "C"


def test_table1_health_limit_is_listed_not_classified(catalogue: Catalogue) -> None:
    # QCVN 08:2023 Bảng 1: NH4+ (as N) 0.3 mg/L whatever the class (docs/regulations.md §4.1)
    result = classify({"NH4": 0.5, "pH": 7.0}, catalogue)
    assert result.over_table1 == ["NH4"]
    assert result.water_class == "A"


def test_worse_than_target() -> None:
    assert is_worse("C", "B") and not is_worse("B", "B") and not is_worse("A", "B")
    assert not is_worse(None, "B")


# --- VN_WQI (docs/regulations.md §4.3) ----------------------------------------------------


def test_do_saturation_cubic() -> None:
    # DO_sat = 14.652 − 0.41022·T + 0.0079910·T² − 0.000077774·T³ [S65], [S66]
    assert do_saturation(0) == pytest.approx(14.652)
    # 14.652 − 10.2555 + 4.994375 − 1.21521875
    assert do_saturation(25) == pytest.approx(8.17565625)


@pytest.mark.parametrize(
    ("parameter", "value", "expected"),
    [
        pytest.param("pH", 7.0, 100, id="pH-100-in-6..8.5"),
        pytest.param("pH", 8.75, 75, id="pH-line-8.5:100-9:50"),
        pytest.param("pH", 5.75, 75, id="pH-line-5.5:50-6:100"),
        pytest.param("pH", 9.5, 10, id="pH-outside-10"),
        pytest.param("COD", 10, 100, id="COD-le10-100"),
        pytest.param("COD", 12.5, 87.5, id="COD-line-10:100-15:75"),
        pytest.param("COD", 200, 10, id="COD-above-150-10"),
        pytest.param("BOD5", 5, 87.5, id="BOD5-line-4:100-6:75"),
        pytest.param("NH4", 0.2, 100, id="NH4-below-0.3-100"),
        pytest.param("NH4", 0.3, 75, id="NH4-0.3-75"),
        pytest.param("NH4", 0.45, 62.5, id="NH4-line-0.3:75-0.6:50"),
        pytest.param("PO4-P", 0.15, 87.5, id="PO4-line-0.1:100-0.2:75"),
        pytest.param("NO2-N", 0.06, 10, id="NO2-threshold-0.05"),
        pytest.param("Coliform", 3750, 87.5, id="coliform-line-2500:100-5000:75"),
    ],
)
def test_sub_index(parameter: str, value: float, expected: float) -> None:
    assert sub_index(parameter, value) == pytest.approx(expected)


def test_do_sub_index_uses_saturation() -> None:
    sat = do_saturation(25)
    assert sub_index("DO", sat, 25) == pytest.approx(100)  # 100 % in [88, 112]
    assert sub_index("DO", sat * 0.815, 25) == pytest.approx(87.5)  # line 75 %:75 – 88 %:100
    assert sub_index("DO", sat * 0.1, 25) == 10  # below 20 %
    assert sub_index("DO", 6.0, None) is None  # no temperature, no DO%


def test_wqi_without_group_v_is_ph_factor_times_group_iv_mean() -> None:
    # groups I and IV only: VN_WQI = WQI_I/100 × mean(WQI_IV) [S65 formula 2, S66]
    sat = do_saturation(25)
    means = {"pH": 8.75, "DO": sat, "Temp": 25, "COD": 12.5, "NH4": 0.45, "TSS": 40, "TN": 1}
    result = vn_wqi(means)
    assert result.sub_indices == pytest.approx({"pH": 75, "DO": 100, "COD": 87.5, "NH4": 62.5})
    assert result.groups["IV"] == pytest.approx((100 + 87.5 + 62.5) / 3)
    assert result.value == 63  # 0.75 × 83.33 = 62.5, rounded half up
    assert not result.meets_minimum  # 2 groups < 3 (Decision 1460 minimum, UNVERIFIED)
    assert "I, IV" in result.note


def test_wqi_with_group_v_takes_the_geometric_mean_of_iv_and_v() -> None:
    means = {"pH": 7.0, "COD": 12.5, "BOD5": 5, "PO4-P": 0.15, "Coliform": 3750, "As": 0.005}
    result = vn_wqi(means)
    assert result.groups == pytest.approx({"I": 100, "III": 100, "IV": 87.5, "V": 87.5})
    assert result.value == 88 and result.meets_minimum


def test_no_group_iv_no_wqi() -> None:
    assert vn_wqi({"pH": 7.0}).value is None


@pytest.mark.parametrize(
    ("value", "name", "hex_"),
    [
        (95, "Excellent", "#3333ff"),  # 91–100 blue 51;51;255 [S64]
        (80, "Good", "#00e400"),
        (60, "Medium", "#ffff00"),
        (30, "Poor", "#ff7e00"),
        (10, "Bad", "#ff0000"),
        (9, "Very heavily polluted", "#7e0023"),
    ],
)
def test_categories(value: int, name: str, hex_: str) -> None:
    cat = wqi_category(value)
    assert cat is not None and cat.name_en == name and cat.hex == hex_


# --- a station's days ------------------------------------------------------------------------


def test_station_days_revision_and_round_trip(catalogue: Catalogue) -> None:
    days = StationDays(keep=2)
    first = days.add("2026-10-01", "pH", 7.3, catalogue)
    assert first is not None and first.water_class == "A" and first.revision == 1
    second = days.add("2026-10-01", "COD", 18, catalogue)
    assert second is not None and second.water_class == "C" and second.revision == 2
    days.add("2026-10-02", "pH", 7.0, catalogue)
    days.add("2026-10-03", "pH", 7.0, catalogue)
    assert sorted(days.days) == ["2026-10-02", "2026-10-03"]  # the oldest is dropped
    assert days.add("2026-09-01", "pH", 7.0, catalogue) is None  # too old
    again = StationDays.from_dict(days.to_dict())
    assert again.days == days.days and again.revisions == days.revisions


def test_no_source_limit_comes_from_qcvn_08(catalogue: Catalogue) -> None:
    """QCVN 08:2023 is a classification: a surface-water average meets no limit (issue 15)."""
    registry = load_registry()
    book = LimitBook(registry, catalogue)
    for source in registry.of_kind(SourceKind.SURFACE_WATER):
        for period in ("1h", "day"):
            avg = Average(
                source_id=source.id,
                parameter="COD",
                period=period,
                window_start=datetime(2026, 10, 1, tzinfo=UTC),
                window_end=datetime(2026, 10, 2, tzinfo=UTC),
                value=99.0,
                unit="mg/L",
                samples=288,
                expected=288,
                completeness=1.0,
                valid=True,
            )
            assert book.for_average(avg) == []
    # a station carrying a QCVN 08 limit set despite the registry's validator (built around it)
    forced = registry.get("HD-NM-01").model_copy(
        update={
            "limits": [LimitSet.model_construct(regulation=RegulationId.QCVN_08_2023, column="B")]
        }
    )
    assert resolve_limits(forced, catalogue, date(2026, 10, 1))  # the table itself resolves
    registry._by_id["HD-NM-01"] = forced
    book = LimitBook(registry, catalogue)
    assert book._resolve_uncached("HD-NM-01", date(2026, 10, 1)).limits == ()
