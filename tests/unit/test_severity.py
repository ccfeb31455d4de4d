"""Exceedance ratio and the Decree 45/2022/NĐ-CP schedules (docs/regulations.md §8, §8a, §8b).

Cited boundaries (docs/regulations.md §8, [S58] luatvietnam.vn, secondary): Art. 18 — wastewater
exceeding the technical regulation on waste < 1.1× → warning; 1.1 to < 1.5× → a fine scaled by
the daily wastewater volume: < 5 m³/ngày VND 0.3–0.5 M; 5–<10: 0.5–2 M; 10–<20: 2–5 M; 20–<40:
5–10 M; 40–<60: 10–20 M; 60–<80: 20–40 M; 80–<100: 40–50 M; 100–<200: 50–60 M. Everything else
(bands from 1.5×, brackets from 200 m³/ngày, clause numbers, the hazardous-parameter article, the
emissions article and its m³/h brackets) is UNVERIFIED and must say so.
"""

from __future__ import annotations

import copy
import itertools
import math
from dataclasses import dataclass
from typing import Any

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st

from thresholds.catalogue import RuleKind
from thresholds.severity import (
    DEFAULT_PATH,
    NO_BAND,
    NO_PENALTY,
    FlowBasis,
    Penalty,
    PenaltyDataError,
    Severity,
    build_penalties,
    default_penalties,
    ratio,
    severity,
)


@dataclass(frozen=True)
class Bounds:
    kind: RuleKind
    min: float | None = None
    max: float | None = None


COD = Bounds(RuleKind.UPPER, max=150)
DO = Bounds(RuleKind.LOWER, min=5)
PH = Bounds(RuleKind.RANGE, min=5.5, max=9)

BOOK = default_penalties()
ART18 = BOOK.schedules["wastewater"]
HAZ = BOOK.schedules["wastewater_hazardous"]
EMISSIONS = BOOK.schedules["emissions"]


@pytest.mark.parametrize(
    ("value", "limit", "expected"),
    [
        pytest.param(300, COD, 2.0, id="upper-twice"),
        pytest.param(75, COD, 0.5, id="upper-half"),
        pytest.param(2.5, DO, 2.0, id="lower-half-the-oxygen-is-2x"),
        pytest.param(10, DO, 0.5, id="lower-ok"),
        pytest.param(0, DO, math.inf, id="lower-zero"),
        pytest.param(9.9, PH, 1.1, id="range-above"),
        pytest.param(5.0, PH, 1.1, id="range-below"),
        pytest.param(7.0, PH, 5.5 / 7, id="range-inside-nearer-side"),
    ],
)
def test_ratio(value: float, limit: Bounds, expected: float) -> None:
    assert ratio(value, limit) == pytest.approx(expected)


def test_ratio_needs_the_bound() -> None:
    with pytest.raises(ValueError, match="upper rule needs max"):
        ratio(1.0, Bounds(RuleKind.UPPER))


# ---- which schedule: the source kind decides (docs/regulations.md §8a) --------------------------


@pytest.mark.parametrize(
    ("kind", "parameter", "expected"),
    [
        pytest.param("wastewater", "COD", "wastewater", id="wastewater-Art18"),
        pytest.param("wastewater", "Cd", "wastewater_hazardous", id="hazardous-next-article"),
        pytest.param("stack", "Dust", "emissions", id="stack-emissions-article"),
        pytest.param("ambient_air", "PM2.5", None, id="ambient-air-no-band"),
        pytest.param("surface_water", "COD", None, id="surface-water-no-band"),
    ],
)
def test_schedule_follows_the_source_kind(kind: str, parameter: str, expected: str | None) -> None:
    schedule = BOOK.schedule_for(kind, parameter)
    assert (schedule.id if schedule else None) == expected


def test_ambient_stations_get_no_band_whatever_the_ratio() -> None:
    # QCVN 05:2023 ambient air / QCVN 08:2023 surface water: stations, not sources (§8a)
    for kind in ("ambient_air", "surface_water"):
        penalty = Penalty(BOOK.schedule_for(kind, "PM2.5"))
        for r in (0.5, 1.05, 1.3, 2.5, 50.0):
            assert penalty.assess(r) == NO_BAND
    assert NO_BAND.severity is Severity.NONE and NO_BAND.article == "" and NO_BAND.verified is None
    assert severity(3.0) is Severity.NONE  # no schedule, no band
    assert NO_PENALTY.assess(3.0) == NO_BAND


# ---- Art. 18 band boundaries --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("r", "expected", "clause"),
    [
        pytest.param(0.5, Severity.NONE, None, id="below"),
        pytest.param(1.0, Severity.NONE, None, id="at-the-limit-is-not-exceeding"),
        # Art. 18 [S58]: "vượt quy chuẩn dưới 1,1 lần" → cảnh cáo
        pytest.param(1.0001, Severity.UNDER_1_1, "khoản 1", id="Art18-under-1.1-start"),
        pytest.param(1.0999, Severity.UNDER_1_1, "khoản 1", id="Art18-under-1.1-end"),
        # Art. 18 [S58]: "từ 1,1 lần đến dưới 1,5 lần" → phạt tiền theo lượng nước thải
        pytest.param(1.1, Severity.FROM_1_1, "khoản 2", id="Art18-1.1-1.5-start"),
        pytest.param(1.4999, Severity.FROM_1_1, "khoản 2", id="Art18-1.1-1.5-end"),
        # UNVERIFIED bands (not retrieved)
        pytest.param(1.5, Severity.FROM_1_5, "khoản 3", id="1.5-2-start-unverified"),
        pytest.param(2.0, Severity.FROM_2, "khoản 4", id="2-3-start-unverified"),
        pytest.param(3.0, Severity.FROM_3, "khoản 5", id="3-5-start-unverified"),
        pytest.param(5.0, Severity.FROM_5, "khoản 6", id="5-10-start-unverified"),
        pytest.param(9.99, Severity.FROM_5, "khoản 6", id="5-10-end-unverified"),
        pytest.param(10.0, Severity.FROM_10, "khoản 7", id=">=10-start-unverified"),
        pytest.param(math.inf, Severity.FROM_10, "khoản 7", id="infinite"),
    ],
)
def test_art18_bands(r: float, expected: Severity, clause: str | None) -> None:
    assert severity(r, ART18) is expected
    band = ART18.band_of(r)
    assert (band.clause if band else None) == clause


def test_art18_only_the_first_two_bands_are_verified_and_clauses_are_flagged() -> None:
    assert [b.verified for b in ART18.bands] == [True, True, False, False, False, False, False]
    assert all(b.sources == ("S58",) for b in ART18.bands[:2])
    assert not any(b.clause_verified for b in ART18.bands)  # [S58] gives no clause numbers
    assert ART18.bands[0].sanction == "cảnh cáo" and not ART18.bands[0].flow_scaled
    assert ART18.article == "Điều 18" and ART18.article_verified and ART18.flow_unit == "m³/ngày"
    assert "UNVERIFIED" in ART18.bands[2].sanction


@pytest.mark.parametrize(
    ("flow", "label", "point", "fine"),
    [
        # Art. 18, 1.1–<1.5× band, fines by daily wastewater volume [S58]
        pytest.param(0.5, "<5 m³/ngày", "a", "0,3–0,5 triệu đồng", id="under-5"),
        pytest.param(5, "5–<10 m³/ngày", "b", "0,5–2 triệu đồng", id="5-10"),
        pytest.param(19.9, "10–<20 m³/ngày", "c", "2–5 triệu đồng", id="10-20"),
        pytest.param(20, "20–<40 m³/ngày", "d", "5–10 triệu đồng", id="20-40"),
        pytest.param(59, "40–<60 m³/ngày", "đ", "10–20 triệu đồng", id="40-60"),
        pytest.param(60, "60–<80 m³/ngày", "e", "20–40 triệu đồng", id="60-80"),
        pytest.param(80, "80–<100 m³/ngày", "g", "40–50 triệu đồng", id="80-100"),
        pytest.param(199, "100–<200 m³/ngày", "h", "50–60 triệu đồng", id="100-200"),
    ],
)
def test_art18_flow_brackets_of_the_fined_band(
    flow: float, label: str, point: str, fine: str
) -> None:
    a = Penalty(ART18, flow, FlowBasis.PERMITTED).assess(1.3)
    assert a.severity is Severity.FROM_1_1 and a.verified is True
    assert a.flow_bracket == label and a.flow_basis == "permitted" and a.flow_value == flow
    assert a.sanction == f"phạt tiền theo lượng nước thải: {fine}"
    assert a.article == (
        f"Nghị định 45/2022/NĐ-CP Điều 18 khoản 2 điểm {point} (số khoản, điểm UNVERIFIED)"
    )


def test_art18_above_200_m3_per_day_is_flagged() -> None:
    a = Penalty(ART18, 18000, FlowBasis.PERMITTED).assess(1.3)
    assert a.flow_bracket == "≥200 m³/ngày (UNVERIFIED)"
    assert a.verified is False and "not transcribed (UNVERIFIED)" in a.sanction


def test_art18_warning_band_shows_the_bracket_but_no_fine() -> None:
    a = Penalty(ART18, 30, FlowBasis.MEASURED).assess(1.05)
    assert a.severity is Severity.UNDER_1_1 and a.sanction == "cảnh cáo" and a.verified is True
    assert a.flow_bracket == "20–<40 m³/ngày" and a.flow_basis == "measured"
    assert a.article == "Nghị định 45/2022/NĐ-CP Điều 18 khoản 1 (số khoản UNVERIFIED)"


def test_no_flow_known_means_no_bracket() -> None:
    a = Penalty(ART18).assess(1.3)
    assert a.severity is Severity.FROM_1_1 and a.flow_bracket == "" and a.flow_basis == ""


# ---- the other schedules: all UNVERIFIED --------------------------------------------------------


def test_hazardous_wastewater_article_and_list_are_unverified() -> None:
    assert HAZ.article == "Điều 19" and not HAZ.article_verified
    assert not any(b.verified for b in HAZ.bands)
    assert not BOOK.hazardous_verified and "Cd" in BOOK.hazardous_wastewater
    assert "COD" not in BOOK.hazardous_wastewater
    a = Penalty(HAZ, 30, FlowBasis.PERMITTED).assess(1.3)
    assert a.verified is False and "số điều UNVERIFIED" in a.article


def test_emissions_article_with_m3_per_hour_brackets_is_unverified() -> None:
    assert EMISSIONS.applies_to == ("stack",) and EMISSIONS.flow_unit == "m³/giờ"
    assert not EMISSIONS.article_verified
    assert not any(b.verified for b in EMISSIONS.bands)
    assert not any(b.verified for b in EMISSIONS.flow_brackets)
    a = Penalty(EMISSIONS, 12000, FlowBasis.PERMITTED).assess(2.5)
    assert a.severity is Severity.FROM_2 and a.verified is False
    assert a.flow_bracket == "10 000–<15 000 m³/giờ (UNVERIFIED)"
    assert a.article == "Nghị định 45/2022/NĐ-CP Điều 20 (số điều UNVERIFIED)"


@pytest.mark.parametrize("sid", ["wastewater", "wastewater_hazardous", "emissions"])
def test_bands_and_brackets_are_contiguous(sid: str) -> None:
    s = BOOK.schedules[sid]
    assert s.bands[0].lower == 1.0 and s.bands[-1].upper == math.inf
    assert s.flow_brackets[0].lower == 0 and s.flow_brackets[-1].upper == math.inf
    for left, right in itertools.pairwise(s.bands):
        assert left.upper == right.lower
    for lo, hi in itertools.pairwise(s.flow_brackets):
        assert lo.upper == hi.lower


# ---- the data file is checked on load -----------------------------------------------------------


def _doc() -> dict[str, Any]:
    return dict(yaml.safe_load(DEFAULT_PATH.read_text(encoding="utf-8")))


def test_a_gap_between_bands_is_rejected() -> None:
    doc = copy.deepcopy(_doc())
    doc["schedules"]["wastewater"]["bands"][1]["lower"] = 1.2
    with pytest.raises(PenaltyDataError, match=r"schedules.wastewater.bands: gap"):
        build_penalties(doc)


def test_a_verified_band_needs_its_source() -> None:
    doc = copy.deepcopy(_doc())
    doc["schedules"]["emissions"]["bands"][0]["verified"] = True
    with pytest.raises(PenaltyDataError, match=r"emissions.bands\[0\]: a verified band needs"):
        build_penalties(doc)


def test_nan_is_an_error() -> None:
    with pytest.raises(ValueError, match="NaN"):
        severity(math.nan, ART18)


@given(st.floats(0, 1e6), st.floats(0, 1e6))
def test_severity_is_monotone(a: float, b: float) -> None:
    lo, hi = sorted((a, b))
    assert severity(lo, ART18).rank <= severity(hi, ART18).rank
