"""When averages are emitted: event-time hour closing, late corrections and revisions. Pure.

``SeriesWindows`` is the averaging state of one (source, parameter): the sum and count of VALID
samples per local clock hour (duplicates never reach it: QA/QC flags them), the newest hour seen
(the series' watermark) and the revision of every window already emitted. It is small (about 100
hours × 2 numbers) so it can be written to a Faust table on every reading.

- A sample in a newer hour closes the hours before it: each closed hour emits its final 1-h
  mean, the rolling 8-h and 24-h means ending with it, NowCast (PM only) and, when it is a local
  day's last hour, the local-day mean.
- A sample for an already-closed hour (a resend after an outage, within the late horizon)
  re-emits every emitted window that contains that hour with ``revision + 1``.
- Every sample in the running hour emits the partial 1-h mean (``final=False``) for early
  warnings. A series that falls silent keeps its last hour open until it reports again; silence
  itself is the outage check's business.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, tzinfo
from typing import Any

from streams.records import Period
from thresholds.aqi import nowcast
from thresholds.averaging import (
    LOCAL_TZ,
    WindowStat,
    day_window,
    expected_samples,
    hour_window,
    rolling_mean,
)

HOUR_S = 3600
NOWCAST_PARAMETERS = frozenset({"PM10", "PM2.5"})
MAX_CLOSE_GAP_H = 96  # a longer silence does not back-fill one empty window per missing hour


@dataclass(frozen=True)
class WindowOut:
    period: Period
    window_start: datetime
    window_end: datetime
    stat: WindowStat
    revision: int
    final: bool


def _utc(epoch: int) -> datetime:
    return datetime.fromtimestamp(epoch, UTC)


@dataclass
class SeriesWindows:
    parameter: str
    interval_s: float
    threshold: float = 0.75
    horizon_h: int = 72
    hours: dict[int, list[float]] = field(default_factory=dict)  # hour epoch -> [sum, n]
    emitted: dict[str, int] = field(default_factory=dict)  # "period:start epoch" -> revision
    watermark: int | None = None  # start (epoch s) of the newest hour seen
    # Position on readings.raw (streams.records.POSITION_STRIDE) of the newest input applied.
    # After a crash the validate stage may emit a reading again; the copy carries the same
    # position and is ignored, so a sample is never counted twice. One series' inputs arrive
    # in position order.
    last_input: int = -1

    # -- state ---------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return {
            "p": self.parameter,
            "i": self.interval_s,
            "t": self.threshold,
            "z": self.horizon_h,
            "h": {str(k): v for k, v in self.hours.items()},
            "e": self.emitted,
            "w": self.watermark,
            "l": self.last_input,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> SeriesWindows:
        return cls(
            d["p"],
            d["i"],
            d["t"],
            d["z"],
            {int(k): v for k, v in d["h"].items()},
            dict(d["e"]),
            d["w"],
            d.get("l", -1),
        )

    # -- statistics ----------------------------------------------------------------------
    def hour_stat(self, hour: int) -> WindowStat:
        expected = expected_samples(HOUR_S, self.interval_s)
        total, n = self.hours.get(hour, (0.0, 0))
        n = int(n)
        value = total / n if n else None
        return WindowStat(
            value,
            n,
            expected,
            min(1.0, n / expected),
            n > 0 and n >= self.threshold * expected - 1e-9,
        )

    def _hourly(self, last: int, hours: int) -> dict[datetime, WindowStat]:
        return {
            _utc(h): self.hour_stat(h)
            for h in range(last - (hours - 1) * HOUR_S, last + HOUR_S, HOUR_S)
        }

    def _window(self, period: Period, start: int, tz: tzinfo) -> tuple[int, int, WindowStat]:
        """(start, end, stat) of the window of ``period`` identified by its start."""
        if period is Period.HOUR:
            return start, start + HOUR_S, self.hour_stat(start)
        if period in (Period.ROLLING_8H, Period.ROLLING_24H):
            n = 8 if period is Period.ROLLING_8H else 24
            last = start + (n - 1) * HOUR_S
            return (
                start,
                last + HOUR_S,
                rolling_mean(self._hourly(last, n), _utc(last), n, self.threshold),
            )
        if period is Period.DAY:
            d0, d1 = day_window(_utc(start), tz)
            n = round((d1 - d0).total_seconds() / HOUR_S)
            last = int(d1.timestamp()) - HOUR_S
            return (
                start,
                int(d1.timestamp()),
                rolling_mean(self._hourly(last, n), _utc(last), n, self.threshold),
            )
        if period is Period.NOWCAST:
            inputs = [
                s.value if s.valid else None
                for s in (self.hour_stat(start - k * HOUR_S) for k in range(12))
            ]
            value = nowcast(inputs)
            valid = value is not None
            return (
                start,
                start + HOUR_S,
                WindowStat(
                    value,
                    sum(v is not None for v in inputs),
                    12,
                    sum(v is not None for v in inputs) / 12,
                    valid,
                ),
            )
        raise ValueError(f"no window rule for period {period}")

    def _emit(self, period: Period, start: int, tz: tzinfo, final: bool = True) -> WindowOut:
        s, e, stat = self._window(period, start, tz)
        key = f"{period.value}:{s}"
        revision = self.emitted.get(key, -1) + 1 if final else 0
        if final:
            self.emitted[key] = revision
        return WindowOut(period, _utc(s), _utc(e), stat, revision, final)

    def _closing(self, hour: int, tz: tzinfo) -> list[tuple[Period, int]]:
        """The windows that end with ``hour`` (identified by period and start)."""
        out = [
            (Period.HOUR, hour),
            (Period.ROLLING_8H, hour - 7 * HOUR_S),
            (Period.ROLLING_24H, hour - 23 * HOUR_S),
        ]
        if self.parameter in NOWCAST_PARAMETERS:
            out.append((Period.NOWCAST, hour))
        d0, d1 = day_window(_utc(hour), tz)
        if int(d1.timestamp()) == hour + HOUR_S:
            out.append((Period.DAY, int(d0.timestamp())))
        return out

    def _containing(self, hour: int, tz: tzinfo) -> list[tuple[Period, int]]:
        """Every window that contains ``hour`` (for re-emission after a late sample)."""
        out = [(Period.HOUR, hour)]
        out += [(Period.ROLLING_8H, hour - k * HOUR_S) for k in range(8)]
        out += [(Period.ROLLING_24H, hour - k * HOUR_S) for k in range(24)]
        if self.parameter in NOWCAST_PARAMETERS:
            out += [(Period.NOWCAST, hour + k * HOUR_S) for k in range(12)]
        d0, _ = day_window(_utc(hour), tz)
        out.append((Period.DAY, int(d0.timestamp())))
        return out

    # -- the one entry point ---------------------------------------------------------------
    def add(self, measured_at: datetime, value: float, tz: tzinfo = LOCAL_TZ) -> list[WindowOut]:
        """Take one VALID sample; return the windows to emit, in order."""
        hour = int(hour_window(measured_at, tz)[0].timestamp())
        if self.watermark is not None and hour < self.watermark - self.horizon_h * HOUR_S:
            return []  # beyond the late horizon: stored and flagged upstream, not averaged
        acc = self.hours.setdefault(hour, [0.0, 0])
        acc[0] += value
        acc[1] += 1
        out: list[WindowOut] = []
        if self.watermark is None or hour > self.watermark:
            if self.watermark is not None:
                first = max(self.watermark, hour - MAX_CLOSE_GAP_H * HOUR_S)
                for closed in range(first, hour, HOUR_S):
                    out += [self._emit(p, s, tz) for p, s in self._closing(closed, tz)]
            self.watermark = hour
            self._prune()
        elif hour < self.watermark:
            out += [
                self._emit(p, s, tz)
                for p, s in self._containing(hour, tz)
                if f"{p.value}:{s}" in self.emitted
            ]
        if hour == self.watermark:
            out.append(self._emit(Period.HOUR, hour, tz, final=False))
        return out

    def _prune(self) -> None:
        assert self.watermark is not None
        keep_from = self.watermark - (self.horizon_h + 48) * HOUR_S
        self.hours = {h: v for h, v in self.hours.items() if h >= keep_from}
        self.emitted = {
            k: v for k, v in self.emitted.items() if int(k.split(":", 1)[1]) >= keep_from
        }


def window_start_of(ts: datetime) -> datetime:
    """The UTC start of the local hour containing ``ts`` (helper for callers and tests)."""
    return hour_window(ts, LOCAL_TZ)[0]
