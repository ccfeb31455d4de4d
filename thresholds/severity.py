"""How bad an exceedance is: the ratio to the limit, banded like Decree 45/2022/NĐ-CP.

Decree 45/2022 Art. 18 grades wastewater penalties by how many times the technical regulation is
exceeded (< 1.1×, 1.1–1.5×, 1.5–2×, 2–3×, 3–5×, 5–10×, ≥ 10×). Only the first two bands are
confirmed by a source (docs/regulations.md §8, [S58]); the others are listed as the issue names them
and flagged unverified. The bands are used for every source kind as a common severity scale; the
sanction texts are information, not a fine calculator.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol

from thresholds.catalogue import RuleKind


class Severity(StrEnum):
    NONE = "none"  # not exceeding (ratio <= 1), or not an exceedance (outages)
    UNDER_1_1 = "<1.1"
    FROM_1_1 = "1.1-1.5"
    FROM_1_5 = "1.5-2"
    FROM_2 = "2-3"
    FROM_3 = "3-5"
    FROM_5 = "5-10"
    FROM_10 = ">=10"

    @property
    def rank(self) -> int:
        """0 for NONE, 1..7 for the bands, so severities compare by badness."""
        return list(Severity).index(self)


@dataclass(frozen=True)
class Band:
    severity: Severity
    lower: float  # ratio, inclusive (exclusive 1.0 for the first band: ratio must exceed 1)
    upper: float  # ratio, exclusive
    sanction: str
    verified: bool
    source: str


_NOT_RETRIEVED = "Decree 45/2022 Art. 18 (band text not retrieved)"

#: Decree 45/2022 Art. 18 exceedance bands (wastewater); [S58] (S) confirms the first two only.
BANDS: tuple[Band, ...] = (
    Band(Severity.UNDER_1_1, 1.0, 1.1, "warning", True, "Decree 45/2022 Art. 18 [S58]"),
    Band(
        Severity.FROM_1_1,
        1.1,
        1.5,
        "fine scaled by daily wastewater volume (or < 1.1× when repeated)",
        True,
        "Decree 45/2022 Art. 18 [S58]",
    ),
    Band(Severity.FROM_1_5, 1.5, 2.0, "UNVERIFIED", False, _NOT_RETRIEVED),
    Band(Severity.FROM_2, 2.0, 3.0, "UNVERIFIED", False, _NOT_RETRIEVED),
    Band(Severity.FROM_3, 3.0, 5.0, "UNVERIFIED", False, _NOT_RETRIEVED),
    Band(Severity.FROM_5, 5.0, 10.0, "UNVERIFIED", False, _NOT_RETRIEVED),
    Band(Severity.FROM_10, 10.0, math.inf, "UNVERIFIED", False, _NOT_RETRIEVED),
)


class BoundsLike(Protocol):
    """What ``ratio`` needs of a limit (``thresholds.limits.Limit`` has it)."""

    @property
    def kind(self) -> RuleKind: ...
    @property
    def min(self) -> float | None: ...
    @property
    def max(self) -> float | None: ...


def ratio(value: float, limit: BoundsLike) -> float:
    """How many times the limit the value is: > 1 means exceeding.

    Upper: value / max. Lower: min / value (half the required DO is "2×"). Range: the worse side.
    A value of 0 (or below) against a lower limit is infinitely far below it.
    """
    if limit.kind is RuleKind.UPPER:
        return _upper_ratio(value, _need(limit.max, "max", limit.kind))
    if limit.kind is RuleKind.LOWER:
        return _lower_ratio(value, _need(limit.min, "min", limit.kind))
    return max(
        _upper_ratio(value, _need(limit.max, "max", limit.kind)),
        _lower_ratio(value, _need(limit.min, "min", limit.kind)),
    )


def severity(r: float) -> Severity:
    """The Decree 45 band of an exceedance ratio; NONE when the ratio does not exceed 1."""
    if math.isnan(r):
        raise ValueError("ratio is NaN")
    if r <= 1.0:
        return Severity.NONE
    for band in BANDS:
        if r < band.upper:
            return band.severity
    return Severity.FROM_10  # unreachable: the last band is open-ended


def band(sev: Severity) -> Band | None:
    return next((b for b in BANDS if b.severity is sev), None)


def _need(bound: float | None, name: str, kind: RuleKind) -> float:
    if bound is None:
        raise ValueError(f"a {kind.value} rule needs {name}")
    return bound


def _upper_ratio(value: float, limit: float) -> float:
    if limit <= 0:
        raise ValueError(f"upper limit must be > 0, got {limit}")
    return value / limit


def _lower_ratio(value: float, limit: float) -> float:
    if value <= 0:
        return math.inf if limit > 0 else 0.0
    return limit / value
