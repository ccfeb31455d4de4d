"""Annual means for QCVN 05:2023's yearly limits, from daily means. Pure.

QCVN 05:2023/BTNMT §1.3.9: "Trung bình năm là giá trị trung bình của các giá trị đo được các ngày
trong khoảng thời gian một năm" — the annual mean is the mean of the days' values over one year.
Read as: the calendar year (local time), the arithmetic mean of its VALID local-day means
(each day counts once, as the hours count once in a day).

Completeness (the project's rule; the standard states none): an annual mean is valid when at least
``MIN_DAY_FRACTION`` (75 %) of the year's days have a valid daily mean — the same 75 % the hourly
and daily means use (``thresholds/averaging.py``; cf. 40 CFR 50 App. S, docs/regulations.md §9).
A year not yet over is never assessed: its mean so far is shown as provisional.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date
from enum import StrEnum

MIN_DAY_FRACTION = 0.75


class AnnualVerdict(StrEnum):
    EXCEEDS = "exceeds"
    WITHIN = "within"
    INCOMPLETE = "incomplete"  # fewer valid days than MIN_DAY_FRACTION of the year
    PROVISIONAL = "provisional"  # the year is not over: no verdict yet


@dataclass(frozen=True)
class AnnualMean:
    year: int
    value: float | None  # mean of the valid daily means (None: no valid day)
    valid_days: int
    days_in_year: int
    complete: bool  # the year is over and valid_days >= MIN_DAY_FRACTION × days_in_year

    @property
    def completeness(self) -> float:
        return self.valid_days / self.days_in_year


def days_in(year: int) -> int:
    return (date(year + 1, 1, 1) - date(year, 1, 1)).days


def annual_mean(
    daily: Iterable[tuple[date, float | None, bool]], year: int, today: date
) -> AnnualMean:
    """The annual mean of ``year`` from ``(local day, daily mean, valid)`` rows (others ignored).

    ``today`` (local) decides whether the year is over; a day listed twice counts once (last).
    """
    values = {d: v for d, v, ok in daily if d.year == year and ok and v is not None}
    n = len(values)
    total = days_in(year)
    over = today > date(year, 12, 31)
    return AnnualMean(
        year=year,
        value=math.fsum(values.values()) / n if n else None,
        valid_days=n,
        days_in_year=total,
        complete=over and n >= MIN_DAY_FRACTION * total - 1e-9,
    )


def verdict(mean: AnnualMean, max_value: float, today: date) -> AnnualVerdict:
    """A yearly upper limit judged on a complete year only (QCVN 05:2023 Table 1 yearly column)."""
    if today <= date(mean.year, 12, 31):
        return AnnualVerdict.PROVISIONAL
    if not mean.complete or mean.value is None:
        return AnnualVerdict.INCOMPLETE
    return AnnualVerdict.EXCEEDS if mean.value > max_value else AnnualVerdict.WITHIN
