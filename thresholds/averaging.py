"""Regulatory averaging in local time, and display smoothing kept apart from it.

Windows follow the local clock (Asia/Ho_Chi_Minh, UTC+7, no DST): an hour is a local clock hour,
a day the local calendar day 00:00–24:00; boundaries are returned in UTC.

Completeness rule (the thresholds are configurable, default 75 %; TT 10/2021 states none,
docs/regulations.md §1.4 / §9):

* 1-h mean: mean of the VALID samples in the hour; valid when samples ≥ threshold × expected,
  where expected = 3600 s / the source's reporting interval.
* 8-h, 24-h and local-day means: mean of the valid hourly means in the window (each hour counts
  once, whatever its sample count, as QCVN 05:2023 and Decision 1459 define them); an invalid or
  missing hour is a missing hour; valid when valid hours ≥ threshold × hours (6 of 8, 18 of 24).

Means use ``math.fsum`` over values kept per timestamp, so they do not depend on arrival order.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from typing import Any, Final
from zoneinfo import ZoneInfo

import numpy as np
from scipy.signal import lfilter, savgol_filter

from core.records import Period

LOCAL_TZ: Final = ZoneInfo("Asia/Ho_Chi_Minh")
HOUR: Final = timedelta(hours=1)
_EPS: Final = 1e-9


def _aware(ts: datetime) -> datetime:
    if ts.tzinfo is None or ts.utcoffset() is None:
        raise ValueError(f"timestamp must be timezone-aware, got naive {ts.isoformat()}")
    return ts


def hour_window(ts_utc: datetime, tz: tzinfo = LOCAL_TZ) -> tuple[datetime, datetime]:
    """[start, end) in UTC of the local clock hour containing ``ts_utc``."""
    local = _aware(ts_utc).astimezone(tz)
    start = local.replace(minute=0, second=0, microsecond=0).astimezone(UTC)
    return start, start + HOUR


def hour_start_s(ts_utc: datetime, tz: tzinfo = LOCAL_TZ) -> int:
    """The epoch second the local clock hour containing ``ts_utc`` starts at: ``hour_window``'s
    start, for the windows' per-reading use. Stations report on the same instants, so the
    answer for a whole second is cached rather than worked out with two time-zone
    conversions for every reading of every series."""
    return _hour_start_s(math.floor(_aware(ts_utc).timestamp()), tz)


@functools.lru_cache(maxsize=8192)
def _hour_start_s(epoch_s: int, tz: tzinfo) -> int:
    return int(hour_window(datetime.fromtimestamp(epoch_s, UTC), tz)[0].timestamp())


def day_window(ts_utc: datetime, tz: tzinfo = LOCAL_TZ) -> tuple[datetime, datetime]:
    """[start, end) in UTC of the local calendar day containing ``ts_utc``."""
    local_day = _aware(ts_utc).astimezone(tz).date()
    return _midnight(local_day, tz), _midnight(local_day + timedelta(days=1), tz)


def _midnight(d: date, tz: tzinfo) -> datetime:
    return datetime.combine(d, time(0), tzinfo=tz).astimezone(UTC)


def samples_in(seconds: float, interval_s: float) -> int:
    """The one rule for completeness: a source reporting every ``interval_s`` seconds promises
    ⌊seconds / interval_s⌋ samples in ``seconds`` (0 for none elapsed). The windows, the
    reports and the console's completeness today all count with it."""
    if interval_s <= 0:
        raise ValueError(f"interval {interval_s}s must be > 0")
    return max(0, math.floor(seconds / interval_s + _EPS))


def expected_samples(window_seconds: float, interval_s: float) -> int:
    """Samples promised in an averaging window: :func:`samples_in`, at least one."""
    if window_seconds <= 0:
        raise ValueError(f"window {window_seconds}s must be > 0")
    return max(1, samples_in(window_seconds, interval_s))


@dataclass(frozen=True)
class WindowStat:
    """A window's mean with its sample count and completeness (completeness capped at 1)."""

    value: float | None
    samples: int
    expected: int
    completeness: float
    valid: bool

    def to_dict(self) -> dict[str, Any]:
        return {
            "value": self.value,
            "samples": self.samples,
            "expected": self.expected,
            "completeness": self.completeness,
            "valid": self.valid,
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> WindowStat:
        return cls(d["value"], d["samples"], d["expected"], d["completeness"], d["valid"])


def _stat(values: Sequence[float], expected: int, threshold: float) -> WindowStat:
    if expected <= 0:
        raise ValueError(f"expected samples must be > 0, got {expected}")
    n = len(values)
    value = math.fsum(values) / n if n else None
    completeness = min(1.0, n / expected)
    valid = n > 0 and n >= threshold * expected - _EPS
    return WindowStat(value, n, expected, completeness, valid)


def mean_window(samples: Sequence[float], expected: int, threshold: float) -> WindowStat:
    """Mean of the valid samples of one window; invalid below ``threshold`` × ``expected``."""
    return _stat(list(samples), expected, threshold)


def rolling_mean(
    hourly_means: Mapping[datetime, WindowStat], end_hour: datetime, hours: int, threshold: float
) -> WindowStat:
    """Mean of the valid hourly means of the ``hours`` hours ending with the hour ``end_hour``.

    Keys and ``end_hour`` are hour starts (UTC). Missing or invalid hours are missing hours;
    ``samples`` counts valid hours and ``expected`` is ``hours``.
    """
    stats = (hourly_means.get(end_hour - k * HOUR) for k in range(hours))
    return mean_of_hours(stats, hours, threshold)


def mean_of_hours(hourly: Iterable[WindowStat | None], hours: int, threshold: float) -> WindowStat:
    """The rule of every multi-hour mean: the mean of the valid hourly means among
    ``hourly`` (None: an hour without data), valid when they are ``threshold`` of ``hours``."""
    values = [s.value for s in hourly if s is not None and s.valid and s.value is not None]
    return _stat(values, hours, threshold)


@dataclass(frozen=True)
class WindowResult:
    """One window a sample touched, ready to become an ``Average`` record."""

    period: Period
    window_start: datetime  # UTC, inclusive
    window_end: datetime  # UTC, exclusive
    stat: WindowStat
    final: bool  # the window has ended (by ``now``)


def encode_runs(sorted_ints: Sequence[int]) -> list[list[int]]:
    """Run-length encode a sorted int list as [start, step, count] runs (compact JSON)."""
    runs: list[list[int]] = []
    for x in sorted_ints:
        extend_runs(runs, x)
    return runs


def extend_runs(runs: list[list[int]], x: int) -> None:
    """Add ``x``, no smaller than every value in ``runs``, as encode_runs does (in place)."""
    if runs:
        start, step, count = runs[-1]
        if count == 1 and x > start:
            runs[-1] = [start, x - start, 2]
            return
        if count > 1 and x == start + step * count:
            runs[-1][2] += 1
            return
    runs.append([x, 0, 1])


def decode_runs(runs: Iterable[Sequence[int]]) -> list[int]:
    return [start + step * i for start, step, count in runs for i in range(count)]


class HourAccumulator:
    """Per (source, parameter) state: the VALID samples of recent local hours.

    Samples are keyed by their whole-second timestamp, so a resent reading replaces, never
    doubles, its earlier copy, and arrival order does not matter. Hours older than
    ``horizon_hours`` behind the newest sample are sealed to (mean, count) — late samples for
    them are refused — and hours older than horizon + 24 h are dropped, which bounds memory
    while keeping what the 24-h and day windows of any still-open hour need.
    """

    def __init__(
        self,
        interval_s: float,
        threshold: float = 0.75,
        horizon_hours: int = 72,
        tz: tzinfo = LOCAL_TZ,
    ) -> None:
        self.interval_s = interval_s
        self.threshold = threshold
        self.horizon_hours = horizon_hours
        self.tz = tz
        self.expected_per_hour = expected_samples(3600, interval_s)
        # hour start (epoch s, UTC) -> {second offset in hour: value}
        self._open: dict[int, dict[int, float]] = {}
        # hour start (epoch s) -> (mean, count) of sealed hours
        self._sealed: dict[int, tuple[float, int]] = {}
        self._newest_hour: int | None = None

    # -- samples ---------------------------------------------------------------------------
    def add(self, measured_at: datetime, value: float) -> bool:
        """Record one VALID sample; False if it changed nothing (same value resent, or sealed)."""
        start, _ = hour_window(measured_at, self.tz)
        hour = int(start.timestamp())
        if hour in self._sealed or (
            self._newest_hour is not None and hour < self._newest_hour - self._horizon_s
        ):
            return False
        offset = int(_aware(measured_at).timestamp()) - hour
        bucket = self._open.setdefault(hour, {})
        if bucket.get(offset) == value:
            return False
        bucket[offset] = float(value)
        if self._newest_hour is None or hour > self._newest_hour:
            self._newest_hour = hour
            self._prune()
        return True

    @property
    def _horizon_s(self) -> int:
        return self.horizon_hours * 3600

    def _prune(self) -> None:
        assert self._newest_hour is not None
        seal_before = self._newest_hour - self._horizon_s
        drop_before = seal_before - 24 * 3600
        for hour in [h for h in self._open if h < seal_before]:
            values = self._open.pop(hour)
            stat = _stat(list(values.values()), self.expected_per_hour, self.threshold)
            if stat.value is not None:
                self._sealed[hour] = (stat.value, stat.samples)
        for hour in [h for h in self._sealed if h < drop_before]:
            del self._sealed[hour]

    # -- windows ---------------------------------------------------------------------------
    def hour_stat(self, hour_start: datetime) -> WindowStat:
        """1-h mean of the local hour starting at ``hour_start``."""
        hour = int(_aware(hour_start).timestamp())
        if hour in self._sealed:
            mean, n = self._sealed[hour]
            return _stat_from(mean, n, self.expected_per_hour, self.threshold)
        values = self._open.get(hour, {})
        return _stat([values[k] for k in sorted(values)], self.expected_per_hour, self.threshold)

    def hourly_stats(self) -> dict[datetime, WindowStat]:
        """Every hour held, keyed by its UTC start."""
        hours = sorted({*self._open, *self._sealed})
        return {(t := datetime.fromtimestamp(h, UTC)): self.hour_stat(t) for h in hours}

    def day_stat(self, day_start: datetime) -> WindowStat:
        """Local-day mean from the day's valid hourly means (24 expected)."""
        start, end = day_window(day_start, self.tz)
        hours = round((end - start) / HOUR)
        return rolling_mean(self.hourly_stats(), end - HOUR, hours, self.threshold)

    def nowcast_inputs(self, hour_start: datetime) -> list[float | None]:
        """c1..c12 for Decision 1459 NowCast: valid hourly means, current hour first."""
        out: list[float | None] = []
        for k in range(12):
            stat = self.hour_stat(hour_start - k * HOUR)
            out.append(stat.value if stat.valid else None)
        return out

    def windows_touched(self, measured_at: datetime, now: datetime) -> list[WindowResult]:
        """Windows whose value a sample at ``measured_at`` affects and that have begun by ``now``.

        The sample's hour (Period.HOUR), every rolling 8-h / 24-h window containing that hour
        whose last hour has started, and its local day. NowCast is left to the caller
        (``thresholds.aqi.nowcast(self.nowcast_inputs(hour))``) since it applies to PM only.
        """
        hour_start, hour_end = hour_window(measured_at, self.tz)
        hourly = self.hourly_stats()
        out = [
            WindowResult(
                Period.HOUR, hour_start, hour_end, self.hour_stat(hour_start), hour_end <= now
            )
        ]
        for period, hours in ((Period.ROLLING_8H, 8), (Period.ROLLING_24H, 24)):
            for k in range(hours):
                last = hour_start + k * HOUR
                if last > now:
                    break
                stat = rolling_mean(hourly, last, hours, self.threshold)
                start, end = last - (hours - 1) * HOUR, last + HOUR
                out.append(WindowResult(period, start, end, stat, end <= now))
        d_start, d_end = day_window(measured_at, self.tz)
        out.append(WindowResult(Period.DAY, d_start, d_end, self.day_stat(d_start), d_end <= now))
        return out

    # -- serialisation (Faust table values are plain JSON) ----------------------------------
    def to_dict(self) -> dict[str, Any]:
        return {
            "interval_s": self.interval_s,
            "threshold": self.threshold,
            "horizon_hours": self.horizon_hours,
            "tz": str(self.tz),
            "newest_hour": self._newest_hour,
            "open": {
                str(h): [encode_runs(sorted(v)), [v[k] for k in sorted(v)]]
                for h, v in self._open.items()
            },
            "sealed": {str(h): list(mv) for h, mv in self._sealed.items()},
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> HourAccumulator:
        acc = cls(d["interval_s"], d["threshold"], d["horizon_hours"], ZoneInfo(d["tz"]))
        acc._newest_hour = d["newest_hour"]
        acc._open = {
            int(h): dict(zip(decode_runs(runs), values, strict=True))
            for h, (runs, values) in d["open"].items()
        }
        acc._sealed = {int(h): (float(m), int(n)) for h, (m, n) in d["sealed"].items()}
        return acc


def _stat_from(mean: float, n: int, expected: int, threshold: float) -> WindowStat:
    return WindowStat(mean, n, expected, min(1.0, n / expected), n >= threshold * expected - _EPS)


# -- display smoothing (never used for compliance) -------------------------------------------
def ewma(values: Sequence[float], alpha: float) -> list[float]:
    """Exponentially weighted moving average, y₀ = x₀, yₙ = α·xₙ + (1−α)·yₙ₋₁."""
    if not 0 < alpha <= 1:
        raise ValueError(f"alpha must be in (0, 1], got {alpha}")
    if not values:
        return []
    x = np.asarray(values, dtype=float)
    y, _ = lfilter([alpha], [1.0, alpha - 1.0], x, zi=[(1.0 - alpha) * x[0]])
    return [float(v) for v in y]


def savgol_smooth(values: Sequence[float], window: int, order: int) -> list[float]:
    """Savitzky–Golay smoothing; the window shrinks (odd, > order) for short series."""
    if order < 0 or window < 1:
        raise ValueError(f"window {window} must be >= 1 and order {order} >= 0")
    n = len(values)
    w = min(window, n if n % 2 else n - 1)
    if w % 2 == 0:
        w -= 1
    if w <= order:
        return [float(v) for v in values]
    return [float(v) for v in savgol_filter(np.asarray(values, dtype=float), w, order)]
