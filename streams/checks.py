"""Which limits an average is checked against: resolved per source and local date, cached."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta
from functools import lru_cache
from typing import NamedTuple

from core.records import Average
from stations.registry import CLASSIFICATION_ONLY, Registry, Source
from thresholds.averaging import LOCAL_TZ
from thresholds.catalogue import Catalogue
from thresholds.limits import Limit, resolve_limits
from thresholds.severity import NO_PENALTY, FlowBasis, Penalty, PenaltyBook, default_penalties
from thresholds.violations import applies


class _Applies(NamedTuple):
    """The fields of an average ``thresholds.violations.applies`` decides on."""

    source_id: str
    parameter: str
    period: str
    final: bool
    valid: bool


@dataclass(frozen=True, eq=False)  # hashed and compared by identity: see LimitBook
class InForce:
    """The limits a source is held to on a day."""

    limits: tuple[Limit, ...]


class LimitBook:
    """The limits in force, memoised per (source, local day), and those an average meets per
    set of limits and what ``applies`` reads of it. Days with the same limits (all but the
    days a regulation or permit changes) share one ``InForce``, so the second memo grows with
    the distinct sets, not with the days: keyed by day, it filled its 16,384 entries over a
    replay's first three days, and would hold a copy of every limit for each of 70 days
    (2026-12-07)."""

    def __init__(
        self, registry: Registry, catalogue: Catalogue, penalties: PenaltyBook | None = None
    ) -> None:
        self.registry = registry
        self.catalogue = catalogue
        self.penalties = penalties or default_penalties()
        self._sets: dict[tuple[Limit, ...], InForce] = {}
        self._resolve = lru_cache(maxsize=4096)(self._resolve_uncached)
        self._applicable = lru_cache(maxsize=16_384)(self._applicable_uncached)
        self.penalty_for = lru_cache(maxsize=4096)(self._penalty_uncached)

    def _resolve_uncached(self, source_id: str, day: date) -> InForce:
        source = self.registry.find(source_id)
        # QCVN 08:2023 classifies surface water (thresholds/water_quality.py): never a violation
        limits = tuple(
            lim
            for lim in (resolve_limits(source, self.catalogue, day) if source else ())
            if lim.regulation not in CLASSIFICATION_ONLY
        )
        return self._sets.setdefault(limits, InForce(limits))

    def _penalty_uncached(self, source_id: str, parameter: str) -> Penalty:
        """The Decree 45/2022 schedule for this source kind and parameter (none for ambient
        stations) and the flow its fines are bracketed by: the registry's permitted flow (a
        measured daily flow is not wired in yet; docs/regulations.md §8b)."""
        source = self.registry.find(source_id)
        if source is None:
            return NO_PENALTY
        schedule = self.penalties.schedule_for(source.kind.value, parameter)
        if schedule is None:
            return NO_PENALTY
        flow = (
            source.permitted_flow_m3_per_day
            if source.kind.value == "wastewater"
            else source.permitted_flow_m3_per_hour
        )
        return Penalty(schedule, flow, FlowBasis.PERMITTED if flow is not None else None)

    def for_average(self, avg: Average) -> list[Limit]:
        """Limits in force on the local date the window ends in (its last instant)."""
        day = (avg.window_end - timedelta(microseconds=1)).astimezone(LOCAL_TZ).date()
        # what ``applies`` reads of an average: the same answer for every window of the day
        seen = _Applies(avg.source_id, avg.parameter, avg.period, avg.final, avg.valid)
        return list(self._applicable(self._resolve(avg.source_id, day), seen))

    @staticmethod
    def _applicable_uncached(in_force: InForce, avg: _Applies) -> tuple[Limit, ...]:
        return tuple(lim for lim in in_force.limits if applies(lim, avg))


def outage_allowance(source: Source, min_s: float, intervals: int) -> timedelta:
    """Silence tolerated before an outage alert: ``intervals`` reporting intervals, at least
    ``min_s`` seconds (the registry's cadence drives it; 5-minute sources → 15 minutes)."""
    return timedelta(seconds=max(min_s, intervals * source.interval_s))


def local_now(now: datetime) -> datetime:
    return now.astimezone(LOCAL_TZ)
