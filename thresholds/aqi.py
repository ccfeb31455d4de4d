"""VN_AQI exactly per Decision 1459/QĐ-TCMT (12/11/2019), docs/regulations.md §7.

Pure functions: breakpoint interpolation (formulas 1 and 2), NowCast for PM10/PM2.5, hourly AQI
(NowCast for PM, 1-h means for gases, O3 on the O3-1h breakpoints) and daily AQI (24-h mean for PM,
max 1-h for SO2/NO2/CO, O3 = max(AQI(max 1-h), AQI(max 8-h)) unless max 8-h > 400 µg/m³).

Choices the decision leaves open, written down here:

* **Rounding.** The decision says AQIʰ and AQIᵈ are "rounded to integer". We round half up
  (109.5 → 110) and round the sub-indices the same way (rounding is monotonic, so
  ``round(max) == max(round)``). This reproduces every worked example except one: the hourly
  example prints AQI(NO2) = 60 for 118.7 µg/m³, which recomputes to 59.35 → 59 (ceiling would
  give 60 but then breaks the daily example, NO2 130.8 → 65.4 printed 65). No single rule fits
  both, so we take plain half-up rounding and treat the printed 60 as an error of the text; the
  test suite pins both facts. Floats are rounded to 9 decimals before the half-up step so that
  109.49999999999999 (binary noise of 109.5) still rounds to 110.
* **NowCast with w = 1/2.** The decision writes Σ(1/2)^i·cᵢ without dividing by the weight sum.
  We always use the normalised form Σ w^(i−1)·cᵢ / Σ w^(i−1); for w = 1/2 with 12 values the two
  differ by a factor 1 − 2⁻¹² (0.02 %), and only the normalised form is meaningful once missing
  hours get weight 0 (the decision's own rule). The NowCast itself is not rounded.
* **Above the top breakpoint** (e.g. PM2.5 ≥ 500, Table 2 row 8 "≥"), the sub-index is capped
  at 500. The O3-8h column ends at 400 µg/m³ (I = 300); above it the 8-h basis is not
  applicable (``sub_index`` returns None) and the daily O3 uses the 1-h value only, as the
  decision requires.
* **PM is mandatory.** "At least one of PM10/PM2.5 must be in the formula": without a PM
  sub-index the AQI is None (no data), while the other sub-indices are still reported.
* **Negative concentrations** are rejected with ``ValueError`` (QA/QC must remove them first).
* **The day** is the local calendar day, hours starting 00:00 … 23:00 (Asia/Ho_Chi_Minh): the
  decision's "01:00 to 00:00 of the next day" labels hours by their end (``day_aqi`` below).
  The O3 8-h means ending with the day's first 7 hours use hours of the previous day, as the
  decision's worked example does. ``day_aqi`` is the one place both ``quantrac aqi --daily``
  and the worker compute a day.
* **Completeness** is not in the decision; the project's rule (18 of 24 hourly means per daily
  statistic, 6 of 8 per O3 8-h mean) is ``DAY_MIN_HOURS`` / ``O3_8H_MIN_HOURS``. A day with
  less is reported with no statistic rather than extrapolated.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, tzinfo
from decimal import ROUND_HALF_UP, Decimal
from enum import StrEnum
from typing import Final

from core.parameters import Parameter
from core.records import Period
from thresholds.averaging import HOUR, LOCAL_TZ

AQI_POLLUTANTS: Final = (
    Parameter.SO2,
    Parameter.NO2,
    Parameter.CO,
    Parameter.O3,
    Parameter.PM10,
    Parameter.PM2_5,
)
PM: Final = (Parameter.PM10, Parameter.PM2_5)
GASES_MAX_1H: Final = (Parameter.SO2, Parameter.NO2, Parameter.CO)
AQI_CAP: Final = 500
O3_8H_LIMIT: Final = 400.0  # µg/m³: above it the daily O3 uses the max 1-h only (§2.2.2 b)
NOWCAST_HOURS: Final = 12

# Completeness of the daily statistics: THE PROJECT'S RULE, NOT THE DECISION'S. Decision 1459
# requires QA/QC'd input but states no completeness (docs/regulations.md §7). Set here and only
# here; ``quantrac aqi --daily`` prints COMPLETENESS_RULE and the report method section states it.
DAY_HOURS: Final = 24
DAY_MIN_HOURS: Final = 18  # of the day's 24 hourly means, for each daily statistic (75 %)
O3_8H_MIN_HOURS: Final = 6  # of the 8 hourly means, for one O3 8-h mean (75 %)
COMPLETENESS_RULE: Final = (
    f"completeness (quantrac's rule; Decision 1459 states none): a daily statistic needs "
    f"{DAY_MIN_HOURS} of the day's {DAY_HOURS} hourly means, an O3 8-h mean {O3_8H_MIN_HOURS} of 8"
)

# QĐ 1459/QĐ-TCMT, Table 2 (Bảng 2: Các giá trị BPi), unit µg/m³ (CO too).
# Row i = 1..8; Ii is the AQI at BPi. Row 8 reads "≥": values above are capped at 500.
AQI_LEVELS: Final[tuple[int, ...]] = (0, 50, 100, 150, 200, 300, 400, 500)
BREAKPOINTS: Final[Mapping[str, tuple[float, ...]]] = {
    "O3_1h": (0, 160, 200, 300, 400, 800, 1000, 1200),
    "O3_8h": (0, 100, 120, 170, 210, 400),  # rows 7–8 are "–" in the table
    "CO": (0, 10_000, 30_000, 45_000, 60_000, 90_000, 120_000, 150_000),
    "SO2": (0, 125, 350, 550, 800, 1600, 2100, 2630),
    "NO2": (0, 100, 200, 700, 1200, 2350, 3100, 3850),
    "PM10": (0, 50, 150, 250, 350, 420, 500, 600),
    "PM2.5": (0, 25, 50, 80, 150, 250, 350, 500),
}

# Which averaging basis each pollutant's sub-index may be computed on (§2.2.1, §2.2.2).
_COLUMNS: Final[Mapping[tuple[Parameter, Period], str]] = {
    (Parameter.O3, Period.HOUR): "O3_1h",
    (Parameter.O3, Period.ROLLING_8H): "O3_8h",
    (Parameter.CO, Period.HOUR): "CO",
    (Parameter.SO2, Period.HOUR): "SO2",
    (Parameter.NO2, Period.HOUR): "NO2",
    (Parameter.PM10, Period.NOWCAST): "PM10",
    (Parameter.PM10, Period.ROLLING_24H): "PM10",
    (Parameter.PM2_5, Period.NOWCAST): "PM2.5",
    (Parameter.PM2_5, Period.ROLLING_24H): "PM2.5",
}


class AqiCategory(StrEnum):
    """QĐ 1459/QĐ-TCMT Table 1 categories."""

    GOOD = "good"
    MODERATE = "moderate"
    POOR = "poor"
    BAD = "bad"
    VERY_BAD = "very_bad"
    HAZARDOUS = "hazardous"


@dataclass(frozen=True)
class CategoryInfo:
    low: int
    high: int
    name_vi: str
    name_en: str
    colour_vi: str
    colour_en: str
    rgb: tuple[int, int, int]

    @property
    def hex(self) -> str:
        return "#{:02X}{:02X}{:02X}".format(*self.rgb)


# QĐ 1459/QĐ-TCMT, Table 1 (Bảng 1): AQI range, category, colour, RGB code.
CATEGORIES: Final[Mapping[AqiCategory, CategoryInfo]] = {
    AqiCategory.GOOD: CategoryInfo(0, 50, "Tốt", "Good", "Xanh", "green", (0, 228, 0)),
    AqiCategory.MODERATE: CategoryInfo(
        51, 100, "Trung bình", "Moderate", "Vàng", "yellow", (255, 255, 0)
    ),
    AqiCategory.POOR: CategoryInfo(101, 150, "Kém", "Poor", "Da cam", "orange", (255, 126, 0)),
    AqiCategory.BAD: CategoryInfo(151, 200, "Xấu", "Bad", "Đỏ", "red", (255, 0, 0)),
    AqiCategory.VERY_BAD: CategoryInfo(
        201, 300, "Rất xấu", "Very bad", "Tím", "purple", (143, 63, 151)
    ),
    AqiCategory.HAZARDOUS: CategoryInfo(
        301, 500, "Nguy hại", "Hazardous", "Nâu", "maroon", (126, 0, 35)
    ),
}


def round_aqi(x: float) -> int:
    """Round half up to an integer (see module docstring)."""
    return int(Decimal(f"{x:.9f}").quantize(Decimal(1), rounding=ROUND_HALF_UP))


def category(aqi: int) -> AqiCategory:
    """Table 1 category of an integer AQI (0–500)."""
    if aqi < 0:
        raise ValueError(f"AQI must be >= 0, got {aqi}")
    for cat, info in CATEGORIES.items():
        if aqi <= info.high:
            return cat
    return AqiCategory.HAZARDOUS  # unreachable with the 500 cap; kept for safety


def _check_concentration(name: str, value: float) -> None:
    if value != value or value < 0:  # NaN or negative
        raise ValueError(f"{name}: concentration must be a number >= 0, got {value}")


def interpolate(breakpoints: Sequence[float], value: float) -> float:
    """Formula 1/2: linear interpolation between Table 2 rows; capped at 500 above the top."""
    top = len(breakpoints) - 1
    if value >= breakpoints[top]:
        return float(AQI_LEVELS[top])  # 500 for every column but O3-8h (see module docstring)
    for i in range(top):
        lo, hi = breakpoints[i], breakpoints[i + 1]
        if value <= hi:
            i_lo, i_hi = AQI_LEVELS[i], AQI_LEVELS[i + 1]
            return (i_hi - i_lo) / (hi - lo) * (value - lo) + i_lo
    raise AssertionError("unreachable")


def sub_index(pollutant: Parameter | str, value: float | None, basis: Period) -> float | None:
    """AQIx of one pollutant (unrounded), or None when ``value`` is missing / not applicable.

    ``basis``: Period.HOUR for SO2/NO2/CO/O3 (1-h mean), Period.ROLLING_8H for O3 (8-h mean),
    Period.NOWCAST (hourly AQI) or Period.ROLLING_24H (daily AQI) for PM10/PM2.5.
    An O3 8-h mean above 400 µg/m³ has no sub-index (None), per §2.2.2 b.
    """
    p = Parameter(pollutant)
    column = _COLUMNS.get((p, basis))
    if column is None:
        allowed = sorted(b.value for (q, b) in _COLUMNS if q == p)
        raise ValueError(f"{p}: no VN_AQI breakpoints for basis {basis.value!r}; allowed {allowed}")
    if value is None:
        return None
    _check_concentration(str(p), value)
    if column == "O3_8h" and value > O3_8H_LIMIT:
        return None
    return interpolate(BREAKPOINTS[column], value)


def nowcast(hourly: Sequence[float | None]) -> float | None:
    """NowCast of up to 12 hourly means, ``hourly[0]`` = c1 = the current hour.

    w* = Cmin/Cmax over the available values, w = max(w*, 1/2); missing cᵢ get weight 0;
    None ("no data") unless at least 2 of c1, c2, c3 exist.
    """
    if len(hourly) > NOWCAST_HOURS:
        raise ValueError(f"NowCast takes at most {NOWCAST_HOURS} hourly means, got {len(hourly)}")
    values = list(hourly) + [None] * (NOWCAST_HOURS - len(hourly))
    if sum(c is not None for c in values[:3]) < 2:
        return None
    present = [c for c in values if c is not None]
    for c in present:
        _check_concentration("NowCast input", c)
    c_max = max(present)
    if c_max == 0:
        return 0.0
    w = max(min(present) / c_max, 0.5)
    num = sum(w**i * c for i, c in enumerate(values) if c is not None)
    den = sum(w**i for i, c in enumerate(values) if c is not None)
    return num / den


@dataclass(frozen=True)
class AqiResult:
    """An hourly or daily VN_AQI: the integer AQI, its category and the rounded sub-indices."""

    aqi: int | None
    category: AqiCategory | None
    dominant: Parameter | None  # pollutant with the highest sub-index
    sub_indices: dict[str, int | None] = field(default_factory=dict)


def combine(sub_indices: Mapping[Parameter, float | None]) -> AqiResult:
    """AQI = max(AQIx), rounded; None unless PM10 or PM2.5 has a sub-index (§2.1 b)."""
    present = {Parameter(p): v for p, v in sub_indices.items() if v is not None}
    rounded: dict[str, int | None] = {
        str(p): (round_aqi(present[p]) if p in present else None) for p in AQI_POLLUTANTS
    }
    if not any(p in present for p in PM):
        return AqiResult(None, None, None, rounded)
    dominant = max(present, key=lambda p: (present[p], -AQI_POLLUTANTS.index(p)))
    aqi = min(round_aqi(present[dominant]), AQI_CAP)
    return AqiResult(aqi, category(aqi), dominant, rounded)


def hourly_aqi(inputs: Mapping[Parameter, float | None]) -> AqiResult:
    """Hourly AQI (§2.2.1): gases → their 1-h mean, PM10/PM2.5 → their NowCast."""
    subs: dict[Parameter, float | None] = {}
    for p in AQI_POLLUTANTS:
        basis = Period.NOWCAST if p in PM else Period.HOUR
        subs[p] = sub_index(p, inputs.get(p), basis)
    return combine(subs)


def hourly_aqi_from_history(history: Mapping[Parameter, Sequence[float | None]]) -> AqiResult:
    """Hourly AQI from the last ≤12 hourly means per pollutant, current hour first."""
    inputs: dict[Parameter, float | None] = {}
    for p, series in history.items():
        if p in PM:
            inputs[p] = nowcast(series)
        else:
            inputs[p] = series[0] if series else None
    return hourly_aqi(inputs)


@dataclass(frozen=True)
class DailyStats:
    """The day's statistics Decision 1459 §2.2.2 a feeds into the daily sub-indices."""

    mean_24h: Mapping[Parameter, float | None]  # PM10, PM2.5
    max_1h: Mapping[Parameter, float | None]  # SO2, NO2, CO, O3
    o3_max_8h: float | None


def daily_aqi(stats: DailyStats) -> AqiResult:
    """Daily AQI (§2.2.2 b): PM 24-h mean, gases max 1-h, O3 max(AQI 1-h, AQI 8-h)."""
    subs: dict[Parameter, float | None] = {}
    for p in PM:
        subs[p] = sub_index(p, stats.mean_24h.get(p), Period.ROLLING_24H)
    for p in GASES_MAX_1H:
        subs[p] = sub_index(p, stats.max_1h.get(p), Period.HOUR)
    o3_1h = sub_index(Parameter.O3, stats.max_1h.get(Parameter.O3), Period.HOUR)
    o3_8h = sub_index(Parameter.O3, stats.o3_max_8h, Period.ROLLING_8H)  # None above 400
    candidates = [v for v in (o3_1h, o3_8h) if v is not None]
    subs[Parameter.O3] = max(candidates) if candidates else None
    return combine(subs)


def _count(values: Sequence[float | None]) -> int:
    return sum(v is not None for v in values)


def _mean_if(values: Sequence[float | None], min_hours: int) -> float | None:
    present = [v for v in values if v is not None]
    if not present or len(present) < min_hours:
        return None
    return sum(present) / len(present)


def eight_hour_means(
    day_hours: Sequence[float | None], before: Sequence[float | None] = ()
) -> list[float | None]:
    """The day's 24 O3 8-h means: each the mean of 8 consecutive hourly means ending at that hour.

    ``day_hours`` are the 24 hourly means of the VN_AQI day in order; ``before`` the (up to 7)
    hours preceding it, oldest first — the decision's own example computes the 8-h mean labelled
    1:00 from the hours labelled 18:00 … 1:00, i.e. with 7 hours of the previous day. A mean
    needs ``O3_8H_MIN_HOURS`` of its 8 hours (the project's rule, see ``COMPLETENESS_RULE``).
    """
    pre = [None] * (7 - min(len(before), 7)) + list(before)[-7:]
    series = pre + list(day_hours)
    return [_mean_if(series[i : i + 8], O3_8H_MIN_HOURS) for i in range(len(day_hours))]


def daily_stats(
    day_hours: Mapping[Parameter, Sequence[float | None]],
    o3_before: Sequence[float | None] = (),
) -> DailyStats:
    """DailyStats from the 24 hourly means of one VN_AQI day (hours starting 00:00 … 23:00 local).

    Every statistic needs ``DAY_MIN_HOURS`` of the day's 24 hourly means of its pollutant (the
    project's rule, see ``COMPLETENESS_RULE``) — else it is None.
    """
    for p, hours in day_hours.items():
        if len(hours) != DAY_HOURS:
            raise ValueError(f"{p}: a VN_AQI day has 24 hourly means, got {len(hours)}")
    missing = [None] * DAY_HOURS
    mean_24h = {p: _mean_if(day_hours.get(p, missing), DAY_MIN_HOURS) for p in PM}
    max_1h: dict[Parameter, float | None] = {}
    for p in (*GASES_MAX_1H, Parameter.O3):
        hours = day_hours.get(p, missing)
        enough = _count(hours) >= DAY_MIN_HOURS
        max_1h[p] = max(v for v in hours if v is not None) if enough else None
    o3_8h: float | None = None
    o3 = day_hours.get(Parameter.O3, missing)
    if _count(o3) >= DAY_MIN_HOURS:
        means = [m for m in eight_hour_means(o3, o3_before) if m is not None]
        o3_8h = max(means) if means else None
    return DailyStats(mean_24h, max_1h, o3_8h)


# --- the VN_AQI day ------------------------------------------------------------------------
# Decision 1459 §2.2.2 a: the PM 24-h mean is "the mean of the hourly values from 01:00 to 00:00
# of the next day". Its hourly values are labelled by the hour's END (its worked O3 example
# lists 18:00 … 00:00 … 1:00 and computes the 8-h mean "at 1:00" from 8 of them), so the day is
# the 24 hours ENDING 01:00 … 24:00, i.e. STARTING 00:00 … 23:00: the local calendar day
# (docs/regulations.md §10 item 3). quantrac keys every hourly mean by its start.

HourlyMeans = Mapping[datetime, Mapping[Parameter, float | None]]


@dataclass(frozen=True)
class DayAqi:
    """The daily VN_AQI of one local calendar day."""

    day: date
    first_hour: datetime  # UTC start of the day's first hour (00:00 local)
    hours: int  # hours of the day with a mean of at least one AQI pollutant
    stats: DailyStats
    result: AqiResult


def local_day(hour_start: datetime, tz: tzinfo = LOCAL_TZ) -> date:
    """The VN_AQI day of an hour given by its (timezone-aware) start: its local calendar date."""
    if hour_start.tzinfo is None:
        raise ValueError(f"hour start must be timezone-aware, got {hour_start}")
    return hour_start.astimezone(tz).date()


def day_hour_starts(day: date, tz: tzinfo = LOCAL_TZ) -> list[datetime]:
    """UTC starts of the day's 24 hours, 00:00 … 23:00 local."""
    first = datetime.combine(day, time(0), tzinfo=tz).astimezone(UTC)
    starts = [first + k * HOUR for k in range(DAY_HOURS)]
    if local_day(starts[-1] + HOUR, tz) == day:  # a 25-hour day (daylight saving)
        raise ValueError(f"{day} in {tz} is not a 24-hour day")
    return starts


def _has_data(means: Mapping[Parameter, float | None] | None) -> bool:
    if not means:
        return False
    return any(v is not None for p, v in means.items() if p in AQI_POLLUTANTS)


def day_aqi(hourly: HourlyMeans, day: date, tz: tzinfo = LOCAL_TZ) -> DayAqi:
    """Daily VN_AQI of one local calendar day from hourly means keyed by their aware hour start.

    Decision 1459 §2.2.2: PM10/PM2.5 the mean of the day's 24 hourly means; SO2, NO2, CO the
    day's max 1-h mean; O3 max(AQI(max 1-h), AQI(max 8-h)) over the day's 24 8-h means (each
    ending with one of the day's hours, so those ending 00:00 … 06:00 reach back into the
    previous day), 1-h only if the max 8-h mean exceeds 400 µg/m³. The CLI (``quantrac aqi
    --daily``) and the worker (``aqi_station.StationAqi``) both compute the day here.
    """
    starts = day_hour_starts(day, tz)

    def series(p: Parameter, hours: Sequence[datetime]) -> list[float | None]:
        return [(hourly.get(h) or {}).get(p) for h in hours]

    day_hours = {p: series(p, starts) for p in AQI_POLLUTANTS}
    before = series(Parameter.O3, [starts[0] - k * HOUR for k in range(7, 0, -1)])
    stats = daily_stats(day_hours, before)
    n_hours = sum(_has_data(hourly.get(h)) for h in starts)
    return DayAqi(day, starts[0], n_hours, stats, daily_aqi(stats))


def daily_aqi_by_day(hourly: HourlyMeans, tz: tzinfo = LOCAL_TZ) -> list[DayAqi]:
    """The daily VN_AQI of every local calendar day that has data, in date order.

    A day "has data" when at least one of its hours has a mean of an AQI pollutant; a day with
    fewer than ``DAY_MIN_HOURS`` is still listed (its ``hours`` says how many) but its
    statistics, and so its AQI, are None: nothing is extrapolated.
    """
    days = sorted({local_day(h, tz) for h, means in hourly.items() if _has_data(means)})
    return [day_aqi(hourly, d, tz) for d in days]
