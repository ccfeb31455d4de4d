"""The whole-second timestamps a series has had within the late horizon, as runs. Pure.

QA/QC flags a second copy of a timestamp as a duplicate, so it remembers every timestamp of
the horizon: 4,320 for a 1-minute series over 72 h. As a set of ints that was ~250 KB per
series and most of the worker's memory growth on a long replay; a station's regular cadence
is a few [start, step, count] runs (thresholds/averaging.py's encoding, the one the state is
stored in). Timestamps that arrive in order extend the runs; one older than the newest (a
resend, a late file) goes to a small side set until it falls out of the horizon.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Iterable, Sequence

from thresholds.averaging import decode_runs, encode_runs, extend_runs


class Stamps:
    """A set of ints (``in``, ``add``, ``len``), kept as sorted runs plus out-of-order extras."""

    __slots__ = ("_extra", "_runs", "_starts")

    def __init__(self, runs: Iterable[Sequence[int]] = ()) -> None:
        self._runs: list[list[int]] = [list(r) for r in runs]
        self._starts: list[int] = [r[0] for r in self._runs]  # for the bisect
        self._extra: set[int] = set()

    def __contains__(self, t: int) -> bool:
        i = bisect_right(self._starts, t) - 1
        if i >= 0:
            start, step, _ = run = self._runs[i]
            if t == start or (step and t <= _last(run) and (t - start) % step == 0):
                return True
        return t in self._extra

    def __len__(self) -> int:
        return sum(r[2] for r in self._runs) + len(self._extra)

    def __bool__(self) -> bool:
        return bool(self._runs or self._extra)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Stamps):
            return NotImplemented
        return decode_runs(self.runs()) == decode_runs(other.runs())

    __hash__ = None  # type: ignore[assignment]  # mutable

    def __repr__(self) -> str:
        return f"Stamps({self.runs()!r})"

    def newest(self) -> int | None:
        """The largest timestamp in the runs (None: no runs)."""
        return _last(self._runs[-1]) if self._runs else None

    def add(self, t: int) -> None:
        """Add ``t`` (not yet in the set)."""
        newest = self.newest()
        if newest is not None and t < newest:
            self._extra.add(t)
            return
        before = len(self._runs)
        extend_runs(self._runs, t)
        if len(self._runs) > before:
            self._starts.append(t)

    def forget_before(self, cutoff: int) -> None:
        """Drop every timestamp older than ``cutoff``."""
        runs = self._runs
        drop = 0
        while drop < len(runs) and _last(runs[drop]) < cutoff:
            drop += 1
        if drop:
            del runs[:drop]
            del self._starts[:drop]
        if runs and runs[0][0] < cutoff:  # trim the first run to its first kept timestamp
            start, step, count = runs[0]
            skip = -(-(cutoff - start) // step)  # step > 0: its last is ≥ cutoff > start
            runs[0] = [start + skip * step, step if count - skip > 1 else 0, count - skip]
            self._starts[0] = runs[0][0]
        if self._extra:
            self._extra = {t for t in self._extra if t >= cutoff}

    def runs(self) -> list[list[int]]:
        """The timestamps as sorted runs (a copy), as ``encode_runs(sorted(...))`` gives them."""
        if not self._extra:
            return [list(r) for r in self._runs]
        return encode_runs(sorted({*decode_runs(self._runs), *self._extra}))


def _last(run: Sequence[int]) -> int:
    """The largest timestamp of a [start, step, count] run."""
    start, step, count = run
    return start + step * (count - 1)
