"""When averages are emitted: event-time hour closing, late corrections and revisions. Pure.

``SeriesWindows`` is the averaging state of one (source, parameter): the sum and count of VALID
samples per local clock hour (duplicates never reach it: QA/QC flags them), the newest hour seen
(the series' watermark), the ranges of hours already closed (every window that ends in a closed
hour has been emitted) and the revision of each window emitted more than once. It is written to
a Faust table once per batch, so it stays small: about 96 hours × 2 numbers and a few ranges
(≈ 3 KB; a mapping of every emitted window was 13 KB).

- A sample in a newer hour closes the hours before it: each closed hour emits its final 1-h
  mean, the rolling 8-h and 24-h means ending with it, NowCast (PM only) and, when it is a local
  day's last hour, the local-day mean.
- A sample for an already-closed hour (a resend after an outage, within the late horizon)
  re-emits every emitted window that contains that hour with ``revision + 1``.
- A manual validation (``revise``) withdraws or restores the sums of whole hours and re-emits
  each emitted window it touches once, with ``revision + 1`` (docs/architecture.md).
- A sample in the running hour changes its partial 1-h mean (``final=False``), for early
  warnings: ``add`` returns it after every such sample; the worker asks for it once per batch
  and series (``take`` and ``running``; thresholds/steps.py, ``RunningHour``). A series that
  falls silent keeps its last hour open until it reports again; silence itself is the outage
  check's business.
"""

from __future__ import annotations

import functools
from array import array
from collections.abc import Iterable, Iterator, MutableMapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, tzinfo
from typing import Any

from core.records import Period
from thresholds.aqi import nowcast
from thresholds.averaging import (
    LOCAL_TZ,
    WindowStat,
    day_window,
    expected_samples,
    hour_start_s,
    hour_window,
    mean_of_hours,
)

HOUR_S = 3600
NOWCAST_PARAMETERS = frozenset({"PM10", "PM2.5"})
# hours from a window's start to its last hour (the local day's varies with the day)
LAST_HOUR_H = {Period.HOUR: 0, Period.NOWCAST: 0, Period.ROLLING_8H: 7, Period.ROLLING_24H: 23}
# Hours kept behind the late horizon: a sample up to the horizon late re-emits the windows that
# hold it, which start at most 23 h before it (the rolling 24 h, the local day; 8 h and NowCast
# need less).
KEEP_BEHIND_H = 24
MAX_CLOSE_GAP_H = 96  # a longer silence does not back-fill one empty window per missing hour
MAX_SPAN_H = 24 * 366  # hours an HourSums spans at most (the windows keep far fewer)


@dataclass(frozen=True)
class WindowOut:
    period: Period
    window_start: datetime
    window_end: datetime
    stat: WindowStat
    revision: int
    final: bool


class HourSums(MutableMapping[int, tuple[float, int]]):
    """The sum and count of VALID samples per hour (its start, epoch s): two C arrays over the
    consecutive hours from the first one held; an hour without samples is absent. As a dict of
    ``[sum, n]`` lists an hour cost about 130 bytes, a quarter of the worker's state at the
    72-h horizon (6 MiB of 26 on an 83-h replay, 2026-12-07); here it costs 16."""

    __slots__ = ("_counts", "_first", "_sums")

    def __init__(self, items: Iterable[tuple[int, tuple[float, int]]] = ()) -> None:
        self._first = 0  # the start of the hour at index 0
        self._sums = array("d")
        self._counts = array("q")
        for hour, (total, n) in items:
            self[hour] = (total, n)

    def stat(self, hour: int) -> tuple[float, int]:
        """(sum, count) of the hour, (0.0, 0) when it holds no sample."""
        i = (hour - self._first) // HOUR_S
        if 0 <= i < len(self._counts):
            return self._sums[i], self._counts[i]
        return 0.0, 0

    def add(self, hour: int, total: float, n: int) -> None:
        """Add ``n`` samples summing to ``total`` (negative: withdrawn); an hour left without
        samples holds 0.0, not a float residue."""
        i = self._slot(hour)
        count = self._counts[i] + n
        self._counts[i] = count
        self._sums[i] = self._sums[i] + total if count > 0 else 0.0

    def flat(self) -> tuple[list[int], list[float]]:
        """The hours held, in order, and their [sum, n, sum, n, ...]: the stored form, in one
        pass over the arrays."""
        hours: list[int] = []
        values: list[float] = []
        first = self._first
        for i, (total, n) in enumerate(zip(self._sums, self._counts, strict=True)):
            if n:
                hours.append(first + i * HOUR_S)
                values += (total, n)
        return hours, values

    def forget_before(self, hour: int) -> None:
        drop = (hour - self._first) // HOUR_S
        if drop >= len(self._counts):
            self._sums, self._counts = array("d"), array("q")
        elif drop > 0:
            del self._sums[:drop], self._counts[:drop]
            self._first += drop * HOUR_S

    def _slot(self, hour: int) -> int:
        """The index of ``hour``, the arrays grown to hold it."""
        if self._counts and (hour - self._first) // HOUR_S >= MAX_SPAN_H:
            # a clock far ahead: the hours it leaves behind would be pruned once it is added
            self.forget_before(hour - (MAX_SPAN_H - 1) * HOUR_S)
        if not self._counts:
            self._first = hour
        i = (hour - self._first) // HOUR_S
        if i < 0:
            self._sums[:0] = array("d", bytes(-8 * i))  # zeros
            self._counts[:0] = array("q", bytes(-8 * i))
            self._first, i = hour, 0
        elif i >= len(self._counts):
            grow = i + 1 - len(self._counts)
            self._sums.extend(array("d", bytes(8 * grow)))
            self._counts.extend(array("q", bytes(8 * grow)))
        return i

    # the mapping: what tests, dumps and logs read
    def __getitem__(self, hour: int) -> tuple[float, int]:
        total, n = self.stat(hour)
        if not n:
            raise KeyError(hour)
        return total, n

    def __setitem__(self, hour: int, value: tuple[float, int]) -> None:
        i = self._slot(hour)
        self._sums[i], self._counts[i] = float(value[0]), int(value[1])

    def __delitem__(self, hour: int) -> None:
        self[hour]  # KeyError when absent
        self[hour] = (0.0, 0)

    def __iter__(self) -> Iterator[int]:
        first = self._first
        return (first + i * HOUR_S for i, n in enumerate(self._counts) if n)

    def __len__(self) -> int:
        return sum(1 for n in self._counts if n)

    def __repr__(self) -> str:
        return f"HourSums({dict(self.items())})"


def _hours(d: dict[str, Any]) -> HourSums:
    """The hours of a stored state: two flat lists, or (written before 2026-12-06) a mapping."""
    if "hk" in d:
        v = d["hv"]
        return HourSums(
            (k, (v[i], v[i + 1])) for i, k in zip(range(0, len(v), 2), d["hk"], strict=True)
        )
    return HourSums((int(k), (v[0], v[1])) for k, v in d["h"].items())


@functools.lru_cache(maxsize=4096)
def _utc(epoch: int) -> datetime:
    """Window bounds, always whole hours: one shared (immutable) object per instant, not one per
    series and window, so the rules that keep a window's record for the late horizon hold no
    copies of its bounds."""
    return datetime.fromtimestamp(epoch, UTC)


@dataclass
class SeriesWindows:
    parameter: str
    interval_s: float
    threshold: float = 0.75
    horizon_h: int = 72
    hours: HourSums = field(default_factory=HourSums)
    # [from, to) hour epochs of the closed hours: usually one range, more after a long silence
    closed: list[list[int]] = field(default_factory=list)
    revisions: dict[tuple[str, int], int] = field(default_factory=dict)  # (period, start) -> ≥ 1
    watermark: int | None = None  # start (epoch s) of the newest hour seen
    # Position on readings.raw (core.records.POSITION_STRIDE) of the newest input applied.
    # After a crash the validate stage may emit a reading again; the copy carries the same
    # position and is ignored, so a sample is never counted twice. One series' inputs arrive
    # in position order.
    last_input: int = -1

    # -- state ---------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        hours, sums = self.hours.flat()
        return {
            # data only: the interval, completeness threshold and late horizon are configuration,
            # given again at every load (from_dict), so a changed setting reaches every series
            "p": self.parameter,
            # the hours as two flat lists, [hour, ...] and [sum, n, sum, n, ...], encoded in C (a
            # mapping of "hour" -> [sum, n] cost a twentieth of a long replay's CPU)
            "hk": hours,
            "hv": sums,
            "c": [[a, b] for a, b in self.closed],
            "r": {f"{p}:{s}": r for (p, s), r in self.revisions.items()},
            "w": self.watermark,
            "l": self.last_input,
        }

    @classmethod
    def from_dict(
        cls, d: dict[str, Any], interval_s: float, threshold: float = 0.75, horizon_h: int = 72
    ) -> SeriesWindows:
        """The state ``to_dict`` wrote, under today's configuration (values an earlier version
        stored with the state, "i", "t" and "z", are ignored)."""
        revisions = {_window_key(k): int(r) for k, r in d.get("r", {}).items()}
        if "c" in d:
            closed = [list(r) for r in d["c"]]
        else:  # written before 2026-12: every emitted window → revision; 1-h windows → closed
            emitted = {_window_key(k): int(r) for k, r in d["e"].items()}
            revisions = {k: r for k, r in emitted.items() if r > 0}
            closed = []
            for hour in sorted(s for p, s in emitted if p == Period.HOUR.value):
                if closed and closed[-1][1] == hour:
                    closed[-1][1] = hour + HOUR_S
                else:
                    closed.append([hour, hour + HOUR_S])
        return cls(
            d["p"],
            interval_s,
            threshold,
            horizon_h,
            _hours(d),
            closed,
            revisions,
            d["w"],
            d.get("l", -1),
        )

    # -- statistics ----------------------------------------------------------------------
    def __post_init__(self) -> None:
        self._expected = expected_samples(HOUR_S, self.interval_s)  # per hour, for hour_stat

    def hour_stat(self, hour: int) -> WindowStat:
        expected = self._expected
        total, n = self.hours.stat(hour)
        value = total / n if n else None
        return WindowStat(
            value,
            n,
            expected,
            min(1.0, n / expected),
            n > 0 and n >= self.threshold * expected - 1e-9,
        )

    def _hourly(self, last: int, hours: int) -> list[WindowStat]:
        """The stats of the ``hours`` hours ending with the hour starting at ``last``."""
        return [
            self.hour_stat(h) for h in range(last - (hours - 1) * HOUR_S, last + HOUR_S, HOUR_S)
        ]

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
                mean_of_hours(self._hourly(last, n), n, self.threshold),
            )
        if period is Period.DAY:
            d0, d1 = day_window(_utc(start), tz)
            n = round((d1 - d0).total_seconds() / HOUR_S)
            last = int(d1.timestamp()) - HOUR_S
            return (
                start,
                int(d1.timestamp()),
                mean_of_hours(self._hourly(last, n), n, self.threshold),
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
        revision = 0
        if final and self._emitted(period, s, tz):
            revision = self.revisions.get((period.value, s), 0) + 1
            self.revisions[(period.value, s)] = revision
        return WindowOut(period, _utc(s), _utc(e), stat, revision, final)

    def _emitted(self, period: Period, start: int, tz: tzinfo) -> bool:
        """Whether the final window of ``period`` starting at ``start`` was emitted: every
        window that ends with a closed hour was, when that hour closed (NowCast for PM only)."""
        if period is Period.NOWCAST and self.parameter not in NOWCAST_PARAMETERS:
            return False
        if period is Period.DAY:
            last = int(day_window(_utc(start), tz)[1].timestamp()) - HOUR_S
        else:
            last = start + (LAST_HOUR_H[period] * HOUR_S)
        return any(a <= last < b for a, b in self.closed)

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

    # -- the entry points ------------------------------------------------------------------
    def add(self, measured_at: datetime, value: float, tz: tzinfo = LOCAL_TZ) -> list[WindowOut]:
        """Take one VALID sample; return the windows to emit, in order, the running hour's
        partial mean last when the sample is in it."""
        out, running = self.take(measured_at, value, tz)
        return [*out, self.running(tz)] if running else out

    def take(
        self, measured_at: datetime, value: float, tz: tzinfo = LOCAL_TZ
    ) -> tuple[list[WindowOut], bool]:
        """Take one VALID sample: the final windows it closes or revises, and whether it
        changed the running hour. The worker builds the running mean once per batch (``running``)
        rather than once per sample: only the newest feeds early warnings."""
        hour = hour_start_s(measured_at, tz)
        if self._beyond_horizon(hour):
            return [], False  # beyond the late horizon: stored and flagged upstream, not averaged
        self.hours.add(hour, value, 1)
        if self.watermark is None or hour > self.watermark:
            return self._advance(hour, tz), True
        if hour < self.watermark:
            return [
                self._emit(p, s, tz)
                for p, s in self._containing(hour, tz)
                if self._emitted(p, s, tz)
            ], False
        return [], True

    def running(self, tz: tzinfo = LOCAL_TZ) -> WindowOut:
        """The running (newest) hour's partial mean, ``final = False``."""
        assert self.watermark is not None, "no sample yet"
        return self._emit(Period.HOUR, self.watermark, tz, final=False)

    def revise(
        self, changes: Sequence[tuple[datetime, float, int]], tz: tzinfo = LOCAL_TZ
    ) -> list[WindowOut]:
        """Take a manual decision's changes, (hour start, Δsum, Δcount) per hour (withdrawn
        readings count negative); re-emit each emitted window they touch once, not once per
        hour, so a day's invalidation revises a rolling mean once."""
        touched: set[int] = set()
        ahead: list[tuple[int, float, int]] = []
        for at, dsum, dn in changes:
            hour = hour_start_s(at, tz)
            if self._beyond_horizon(hour):
                continue  # as for a late sample: its windows are final
            if self.watermark is None or hour > self.watermark:
                ahead.append((hour, dsum, dn))  # restored readings the windows never saw
                continue
            self.hours.add(hour, dsum, dn)
            touched.add(hour)
        windows = {w for h in sorted(touched) for w in self._containing(h, tz)}
        out = [self._emit(p, s, tz) for p, s in sorted(windows) if self._emitted(p, s, tz)]
        for hour, dsum, dn in sorted(ahead):
            self.hours.add(hour, dsum, dn)
            if self.watermark is None or hour > self.watermark:
                out += self._advance(hour, tz)
        if self.watermark in touched or ahead:
            out.append(self.running(tz))
        return out

    def _beyond_horizon(self, hour: int) -> bool:
        return self.watermark is not None and hour < self.watermark - self.horizon_h * HOUR_S

    def _advance(self, hour: int, tz: tzinfo) -> list[WindowOut]:
        """A sample in a newer hour: close the hours before it, move the watermark to it."""
        out: list[WindowOut] = []
        if self.watermark is not None:
            first = max(self.watermark, hour - MAX_CLOSE_GAP_H * HOUR_S)
            for closed in range(first, hour, HOUR_S):
                out += [self._emit(p, s, tz) for p, s in self._closing(closed, tz)]
            if self.closed and self.closed[-1][1] == first:
                self.closed[-1][1] = hour
            else:
                self.closed.append([first, hour])
        self.watermark = hour
        self._prune()
        return out

    def _prune(self) -> None:
        assert self.watermark is not None
        keep_from = self.watermark - (self.horizon_h + KEEP_BEHIND_H) * HOUR_S
        self.hours.forget_before(keep_from)
        self.closed = [[max(a, keep_from), b] for a, b in self.closed if b > keep_from]
        self.revisions = {k: v for k, v in self.revisions.items() if k[1] >= keep_from}


def _window_key(key: str) -> tuple[str, int]:
    period, start = key.split(":", 1)
    return period, int(start)


def window_start_of(ts: datetime) -> datetime:
    """The UTC start of the local hour containing ``ts`` (helper for callers and tests)."""
    return hour_window(ts, LOCAL_TZ)[0]
