"""Manual validation of one series: the periods an operator invalidated, as data. Pure.

An operator invalidates a period of a source's data (a maintenance visit, a calibration the
datalogger did not flag, an analyser fault) or restores it (issue 21). The validate stage keeps,
per series, the periods in force (``ManualPeriods``) and turns each decision into what it
*changes*: the sub-periods that become invalid, or valid again. Only those are judged again, so
invalidating a period twice, or restoring one that was never invalidated, changes nothing, and
the averages stay the mean of exactly the valid readings outside every invalid period.

Times are epoch seconds, periods half-open ``[start, end)``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

Span = tuple[int, int]


def _minus(spans: list[list[int]], start: int, end: int) -> list[list[int]]:
    """``spans`` ([start, end, id]) less ``[start, end)``, each piece keeping its id."""
    out = []
    for a, b, vid in spans:
        if a < min(b, start):
            out.append([a, min(b, start), vid])
        if max(a, end) < b:
            out.append([max(a, end), b, vid])
    return out


@dataclass
class ManualPeriods:
    """The invalid periods of a series, sorted and disjoint: [start, end, validation id]."""

    spans: list[list[int]] = field(default_factory=list)

    def in_force(self, t: int) -> int | None:
        """The invalidation covering ``t`` (its id), or None."""
        for a, b, vid in self.spans:
            if a <= t < b:
                return vid
        return None

    def invalidate(self, start: int, end: int, vid: int) -> list[Span]:
        """Mark ``[start, end)`` invalid by ``vid``; return the parts that were valid until now
        (an overlap with an earlier invalidation stays invalid, now under ``vid``)."""
        covered = sorted(
            (max(a, start), min(b, end)) for a, b, _ in self.spans if a < end and start < b
        )
        fresh: list[Span] = []
        at = start
        for a, b in covered:
            if at < a:
                fresh.append((at, a))
            at = max(at, b)
        if at < end:
            fresh.append((at, end))
        self.spans = sorted([*_minus(self.spans, start, end), [start, end, vid]])
        return fresh

    def restore(self, start: int, end: int) -> list[tuple[int, int, int]]:
        """Mark ``[start, end)`` valid; return the parts that were invalid until now, each with
        the invalidation that covered it."""
        gone = [
            (max(a, start), min(b, end), vid) for a, b, vid in self.spans if a < end and start < b
        ]
        self.spans = _minus(self.spans, start, end)
        return gone

    def forget_before(self, t: int) -> None:
        """Drop the periods that end before ``t`` (older than the late horizon: a reading
        there is flagged late and never averaged, whatever an operator decided)."""
        if self.spans and self.spans[0][1] <= t:
            self.spans = [s for s in self.spans if s[1] > t]
