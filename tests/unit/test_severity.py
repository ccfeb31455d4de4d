"""Exceedance ratio and the Decree 45/2022 severity bands (docs/regulations.md §8)."""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass

import pytest
from hypothesis import given
from hypothesis import strategies as st

from thresholds.catalogue import RuleKind
from thresholds.severity import BANDS, Severity, band, ratio, severity


@dataclass(frozen=True)
class Bounds:
    kind: RuleKind
    min: float | None = None
    max: float | None = None


COD = Bounds(RuleKind.UPPER, max=150)
DO = Bounds(RuleKind.LOWER, min=5)
PH = Bounds(RuleKind.RANGE, min=5.5, max=9)


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


# Decree 45/2022 Art. 18 bands: < 1.1, 1.1–1.5, 1.5–2, 2–3, 3–5, 5–10, ≥ 10
@pytest.mark.parametrize(
    ("r", "expected"),
    [
        pytest.param(0.5, Severity.NONE, id="below"),
        pytest.param(1.0, Severity.NONE, id="at-the-limit-is-not-exceeding"),
        pytest.param(1.0001, Severity.UNDER_1_1, id="Art18-band1-start"),
        pytest.param(1.0999, Severity.UNDER_1_1, id="Art18-band1-end"),
        pytest.param(1.1, Severity.FROM_1_1, id="Art18-band2-start"),
        pytest.param(1.4999, Severity.FROM_1_1, id="Art18-band2-end"),
        pytest.param(1.5, Severity.FROM_1_5, id="band3-start"),
        pytest.param(2.0, Severity.FROM_2, id="band4-start"),
        pytest.param(3.0, Severity.FROM_3, id="band5-start"),
        pytest.param(5.0, Severity.FROM_5, id="band6-start"),
        pytest.param(9.99, Severity.FROM_5, id="band6-end"),
        pytest.param(10.0, Severity.FROM_10, id="band7-start"),
        pytest.param(math.inf, Severity.FROM_10, id="infinite"),
    ],
)
def test_severity_bands(r: float, expected: Severity) -> None:
    assert severity(r) is expected


def test_nan_is_an_error() -> None:
    with pytest.raises(ValueError, match="NaN"):
        severity(math.nan)


def test_bands_are_contiguous_and_only_two_are_verified() -> None:
    assert BANDS[0].lower == 1.0 and BANDS[-1].upper == math.inf
    for left, right in itertools.pairwise(BANDS):
        assert left.upper == right.lower
    assert [b.verified for b in BANDS] == [True, True, False, False, False, False, False]
    assert band(Severity.FROM_1_1) is BANDS[1] and band(Severity.NONE) is None


@given(st.floats(0, 1e6), st.floats(0, 1e6))
def test_severity_is_monotone(a: float, b: float) -> None:
    lo, hi = sorted((a, b))
    assert severity(lo).rank <= severity(hi).rank
