"""How bad an exceedance is: the ratio to the limit, and the Decree 45/2022 band where one applies.

``ratio`` is the one exceedance-ratio function of the project (reports use it too): value / max
for upper limits, min / value for lower ones, the worse side for ranges.

Decree 45/2022/NĐ-CP bands by exceedance multiple belong to the *waste* articles only
(docs/regulations.md §8, §8a, §8b): wastewater (Art. 18; hazardous parameters in the next
article) and emissions (dust, gas: their own article, flow brackets in m³/h). Ambient stations
(air, surface water) are not sources: their violations keep the ratio but get no band, no article.
The schedules are data (``data/decree_45_2022.yaml``): every band boundary carries its article,
clause, sanction text, ``verified`` flag and source tags, and what no source confirms is flagged.

The wastewater fine depends on the discharge volume: a :class:`Penalty` carries the flow the
bracket is chosen by and where that flow came from (the registry's permitted flow, or a measured
daily flow). The sanction texts are information for staff, not a fine calculator.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from functools import lru_cache
from pathlib import Path
from typing import Any, Final, Protocol

import yaml

from thresholds.catalogue import RuleKind

DEFAULT_PATH: Final = Path(__file__).parent / "data" / "decree_45_2022.yaml"


class Severity(StrEnum):
    NONE = "none"  # not exceeding, no schedule applies (ambient stations), or an outage
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


class FlowBasis(StrEnum):
    PERMITTED = "permitted"  # the registry's permitted flow of the source
    MEASURED = "measured"  # a measured (daily) flow of the source


@dataclass(frozen=True)
class FlowBracket:
    """``lower`` <= flow < ``upper`` (``upper`` = inf: open-ended), in the schedule's unit."""

    lower: float
    upper: float
    verified: bool
    point: str = ""  # the clause's point (điểm) for a fine
    fine: str = ""  # the fine of this bracket in a flow-scaled band
    note: str = ""

    def contains(self, flow: float) -> bool:
        return self.lower <= flow < self.upper

    def label(self, unit: str) -> str:
        """``20–<40 m³/ngày``; ``<5 m³/ngày`` for the first; ``≥200 m³/ngày`` for the last."""
        if self.lower <= 0:
            return f"<{_num(self.upper)} {unit}"
        if math.isinf(self.upper):
            return f"≥{_num(self.lower)} {unit}"
        return f"{_num(self.lower)}–<{_num(self.upper)} {unit}"


@dataclass(frozen=True)
class Band:
    """One band: lower <= ratio < upper (the first starts just above 1: 1 < ratio < upper)."""

    severity: Severity
    lower: float
    upper: float
    clause: str
    clause_verified: bool
    sanction: str
    flow_scaled: bool
    verified: bool
    sources: tuple[str, ...] = ()
    fines: tuple[FlowBracket, ...] = ()  # flow-scaled fines, where transcribed

    def fine_for(self, flow: float) -> FlowBracket | None:
        return next((f for f in self.fines if f.contains(flow)), None)


@dataclass(frozen=True)
class Schedule:
    """One article of the decree: its bands and, for the fines, its flow brackets."""

    id: str
    decree: str
    article: str
    article_verified: bool
    title: str
    applies_to: tuple[str, ...]
    flow_unit: str
    flow_brackets: tuple[FlowBracket, ...]
    bands: tuple[Band, ...]
    sources: tuple[str, ...] = ()

    def band_of(self, r: float) -> Band | None:
        """The band of an exceedance ratio; None when it does not exceed (r <= 1)."""
        if math.isnan(r):
            raise ValueError("ratio is NaN")
        if r <= 1.0:
            return None
        return next((b for b in self.bands if r < b.upper), self.bands[-1])

    def bracket_of(self, flow: float) -> FlowBracket | None:
        return next((b for b in self.flow_brackets if b.contains(flow)), None)

    def article_text(self, band: Band | None = None, point: str = "") -> str:
        """``Nghị định 45/2022/NĐ-CP Điều 18 khoản 2 điểm d``, saying what is not verified."""
        text = f"{self.decree} {self.article}"
        doubts = [] if self.article_verified else ["số điều"]
        if band is not None and band.clause:
            text += f" {band.clause}"
            if point:
                text += f" điểm {point}"
            if not band.clause_verified:
                doubts.append("số khoản, điểm" if point else "số khoản")
        if doubts:
            text += f" ({', '.join(doubts)} UNVERIFIED)"
        return text


@dataclass(frozen=True)
class PenaltyBook:
    """The decree's schedules and which one applies to a source kind and parameter."""

    decree: str
    schedules: Mapping[str, Schedule]
    hazardous_wastewater: frozenset[str]
    hazardous_verified: bool

    def schedule_for(self, kind: str, parameter: str) -> Schedule | None:
        """wastewater → Art. 18 (or the hazardous-parameter article); stack → the emissions
        article; ambient_air and surface_water → None (not sources: no band)."""
        if kind == "wastewater":
            key = "wastewater_hazardous" if parameter in self.hazardous_wastewater else "wastewater"
            return self.schedules[key]
        if kind == "stack":
            return self.schedules["emissions"]
        return None


@dataclass(frozen=True)
class Assessment:
    """What a violation shows of the decree: band, article and clause, sanction, flow bracket."""

    severity: Severity
    article: str = ""
    sanction: str = ""
    verified: bool | None = None  # None: no schedule applies
    flow_bracket: str = ""
    flow_basis: str = ""  # a FlowBasis value, "" when no flow is known
    flow_value: float | None = None


NO_BAND: Final = Assessment(Severity.NONE)


@dataclass(frozen=True)
class Penalty:
    """The schedule (None: ambient station) and the flow of one source, for ``evaluate``."""

    schedule: Schedule | None = None
    flow: float | None = None
    flow_basis: FlowBasis | None = None

    def assess(self, r: float | None) -> Assessment:
        """The band of ``r`` under this schedule; NO_BAND when none applies or r <= 1."""
        if self.schedule is None or r is None:
            return NO_BAND
        band = self.schedule.band_of(r)
        if band is None:
            return NO_BAND
        sanction, verified = band.sanction, band.verified and self.schedule.article_verified
        label, basis, point = "", "", ""
        if self.flow is not None:
            bracket = self.schedule.bracket_of(self.flow)
            if bracket is not None:
                label = bracket.label(self.schedule.flow_unit)
                if not bracket.verified:
                    label += " (UNVERIFIED)"
            basis = self.flow_basis.value if self.flow_basis else ""
            fine = band.fine_for(self.flow) if band.flow_scaled else None
            if fine is not None:
                sanction, point = f"{band.sanction}: {fine.fine}", fine.point
                verified = verified and fine.verified
            elif band.flow_scaled and band.fines:
                sanction = f"{band.sanction}: fine for this flow not transcribed (UNVERIFIED)"
                verified = False
        return Assessment(
            severity=band.severity,
            article=self.schedule.article_text(band, point),
            sanction=sanction,
            verified=verified,
            flow_bracket=label,
            flow_basis=basis,
            flow_value=self.flow,
        )


NO_PENALTY: Final = Penalty()


def severity(r: float, schedule: Schedule | None = None) -> Severity:
    """The band of an exceedance ratio under ``schedule``; NONE without one or when r <= 1."""
    if math.isnan(r):
        raise ValueError("ratio is NaN")
    if schedule is None:
        return Severity.NONE
    band = schedule.band_of(r)
    return Severity.NONE if band is None else band.severity


# ---- loading ------------------------------------------------------------------------------------


class PenaltyDataError(ValueError):
    """The schedule file is malformed; the message names the schedule and field."""


def load_penalties(path: Path | None = None) -> PenaltyBook:
    """Load and check ``thresholds/data/decree_45_2022.yaml`` (or ``path``)."""
    path = path or DEFAULT_PATH
    return build_penalties(yaml.safe_load(path.read_text(encoding="utf-8")))


@lru_cache(maxsize=1)
def default_penalties() -> PenaltyBook:
    return load_penalties()


def build_penalties(doc: Mapping[str, Any]) -> PenaltyBook:
    decree = str(doc["decree"])
    schedules = {
        sid: _schedule(sid, decree, raw) for sid, raw in dict(doc.get("schedules") or {}).items()
    }
    for need in ("wastewater", "wastewater_hazardous", "emissions"):
        if need not in schedules:
            raise PenaltyDataError(f"schedules.{need}: missing")
    haz = doc.get("hazardous_wastewater_parameters") or {}
    return PenaltyBook(
        decree=decree,
        schedules=schedules,
        hazardous_wastewater=frozenset(str(p) for p in haz.get("parameters") or ()),
        hazardous_verified=bool(haz.get("verified", False)),
    )


def _schedule(sid: str, decree: str, raw: Mapping[str, Any]) -> Schedule:
    where = f"schedules.{sid}"
    brackets = tuple(
        _bracket(f"{where}.flow_brackets[{i}]", b) for i, b in enumerate(raw["flow_brackets"])
    )
    bands = tuple(_band(f"{where}.bands[{i}]", b) for i, b in enumerate(raw["bands"]))
    _contiguous(f"{where}.flow_brackets", brackets, start=0.0)
    _contiguous(f"{where}.bands", bands, start=1.0)
    return Schedule(
        id=sid,
        decree=decree,
        article=str(raw["article"]),
        article_verified=bool(raw["article_verified"]),
        title=str(raw.get("title", "")),
        applies_to=tuple(str(k) for k in raw["applies_to"]),
        flow_unit=str(raw["flow_unit"]),
        flow_brackets=brackets,
        bands=bands,
        sources=tuple(str(s) for s in raw.get("sources") or ()),
    )


def _upper(value: Any) -> float:
    return math.inf if value is None else float(value)


def _bracket(where: str, raw: Mapping[str, Any]) -> FlowBracket:
    b = FlowBracket(
        lower=float(raw["lower"]),
        upper=_upper(raw.get("upper")),
        verified=bool(raw["verified"]),
        point=str(raw.get("point", "")),
        fine=str(raw.get("fine", "")),
        note=str(raw.get("note", "")),
    )
    if not b.lower < b.upper:
        raise PenaltyDataError(f"{where}: lower must be below upper")
    return b


def _band(where: str, raw: Mapping[str, Any]) -> Band:
    try:
        sev = Severity(str(raw["severity"]))
    except ValueError:
        allowed = ", ".join(s.value for s in Severity if s is not Severity.NONE)
        raise PenaltyDataError(f"{where}.severity: one of {allowed}") from None
    fines = tuple(_bracket(f"{where}.fines[{i}]", f) for i, f in enumerate(raw.get("fines") or ()))
    if raw.get("verified") and not raw.get("sources"):
        raise PenaltyDataError(f"{where}: a verified band needs its source tags")
    return Band(
        severity=sev,
        lower=float(raw["lower"]),
        upper=_upper(raw.get("upper")),
        clause=str(raw.get("clause", "")),
        clause_verified=bool(raw.get("clause_verified", False)),
        sanction=str(raw["sanction"]),
        flow_scaled=bool(raw["flow_scaled"]),
        verified=bool(raw["verified"]),
        sources=tuple(str(s) for s in raw.get("sources") or ()),
        fines=fines,
    )


class _Span(Protocol):
    @property
    def lower(self) -> float: ...
    @property
    def upper(self) -> float: ...


def _contiguous(where: str, spans: Sequence[_Span], start: float) -> None:
    if not spans:
        raise PenaltyDataError(f"{where}: empty")
    if spans[0].lower != start or not math.isinf(spans[-1].upper):
        raise PenaltyDataError(f"{where}: must run from {start:g} to open-ended (upper null)")
    for left, right in itertools.pairwise(spans):
        if left.upper != right.lower:
            raise PenaltyDataError(f"{where}: gap or overlap at {left.upper:g}")


# ---- the exceedance ratio -----------------------------------------------------------------------


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


def _num(x: float) -> str:
    return f"{x:,.0f}".replace(",", " ") if x == int(x) else f"{x:g}"
