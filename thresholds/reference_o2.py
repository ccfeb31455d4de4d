"""Reference-oxygen correction of stack concentrations (issue 19; docs/regulations.md §6.4).

Stack limits are concentrations at a reference O2 content; gas diluted with excess air would look
compliant as measured. Per averaging window:

    C_ref = C_measured × (21 − O2_ref) / (21 − O2_measured)

with O2_measured the stack's own O2 average over the same window. A window is *not judged* (its
corrected average is invalid, ``value`` None, ``not_judged`` says why) when the O2 average of the
window is missing, invalid (incomplete) or at/above 20.9 % (ambient air: the factor is undefined
at 21 % and meaningless near it).

The reference comes from the permit (registry ``reference_o2``) or the sector/fuel table
``thresholds/data/reference_o2.yaml`` (:func:`reference_for`); a stack without one is compared as
measured.

The stage (:func:`step`) is pure: ``step(state, items, settings) -> (state, outputs)`` for one
source's ``Average`` records in arrival order. Pollutant averages wait (bounded) for the O2
average of their window; every input yields exactly one output eventually (pass-through for
parameters that are not corrected, corrected or not-judged for the others), so the threshold check
downstream sees every window once per revision. A revised O2 window re-emits its pollutants with a
higher revision (output revision = pollutant revision + O2 revision: both only grow).
"""

from __future__ import annotations

import unicodedata
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from functools import cache
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from core.records import ISO, Average
from thresholds.limits import Limit

DEFAULT_PATH = Path(__file__).parent / "data" / "reference_o2.yaml"
O2 = "O2"
AMBIENT_O2 = 21.0


class ReferenceO2Error(ValueError):
    """A reference-O2 data file or permit value that cannot be used (names file and field)."""


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Formula(_Model):
    text: str
    max_o2_measured: float = Field(gt=0, le=AMBIENT_O2)
    verified: bool
    note: str = ""
    sources: list[str] = Field(default_factory=list)


class StandardConditions(_Model):
    regulation: str
    temperature_c: float | None
    pressure_kpa: float | None
    dry_basis: bool | None
    clause: str
    verified: bool
    note: str = ""
    sources: list[str] = Field(default_factory=list)

    def text(self) -> str:
        t = "?" if self.temperature_c is None else f"{self.temperature_c:g} °C"
        p = "?" if self.pressure_kpa is None else f"{self.pressure_kpa:g} kPa"
        d = {None: "dry/wet basis not stated", True: "dry", False: "wet"}[self.dry_basis]
        flag = "" if self.verified else " (UNVERIFIED)"
        return f"{self.regulation} {self.clause}: Nm³ = {t}, {p}, {d}{flag}"


class TableEntry(_Model):
    id: str
    regulation: str
    clause: str
    sectors: list[str] = Field(min_length=1)
    fuels: list[str] = Field(default_factory=list)
    o2_percent: float = Field(ge=0, lt=20.9)
    verified: bool
    note: str = ""
    sources: list[str] = Field(default_factory=list)

    @model_validator(mode="after")
    def _noted(self) -> TableEntry:
        if not self.verified and not self.note:
            raise ValueError("verified: false needs a note saying what is unverified")
        return self


class ReferenceTable(_Model):
    version: int
    formula: Formula
    corrected_parameters: list[str] = Field(min_length=1)
    standard_conditions: list[StandardConditions] = Field(default_factory=list)
    references: list[TableEntry] = Field(default_factory=list)

    def conditions_for(self, regulation: str) -> StandardConditions | None:
        return next((c for c in self.standard_conditions if c.regulation == regulation), None)


@dataclass(frozen=True)
class ReferenceO2:
    """The reference O2 a stack's limits are written at, and where that comes from."""

    o2_percent: float
    basis: str  # "GPMT 12/GPMT-BTNMT, Phụ lục II (minh họa)" or "QCVN 22:2009/BTNMT §2 …"
    verified: bool
    origin: str  # "permit" | the table entry id
    note: str = ""

    def text(self) -> str:
        flag = "" if self.verified else " (UNVERIFIED)"
        return f"O2 tham chiếu {self.o2_percent:g} % ({self.basis}){flag}"


def load_reference_table(path: Path | None = None) -> ReferenceTable:
    """Load and check ``thresholds/data/reference_o2.yaml`` (or ``path``)."""
    path = path or DEFAULT_PATH
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise ReferenceO2Error(f"{path.name}: not valid YAML: {exc}") from exc
    try:
        return ReferenceTable.model_validate(raw)
    except ValidationError as exc:
        lines = [
            f"{path.name}: {'.'.join(str(p) for p in err['loc'])}: {err['msg']}"
            for err in exc.errors()
        ]
        raise ReferenceO2Error("\n".join(lines)) from None


def _norm(text: str | None) -> str:
    return unicodedata.normalize("NFC", (text or "").strip().casefold())


def reference_for(
    source: Any,
    table: ReferenceTable,
    facility_sector: str | None = None,
    facility_fuel: str | None = None,
) -> ReferenceO2 | None:
    """The reference O2 of a stack: the permit's (``source.reference_o2``), else the table entry
    for its sector (``source.sector`` or ``facility_sector``) and fuel (``source.fuel`` or
    ``facility_fuel``), else None (compared as measured). Any object with those attributes
    works (registry Source)."""
    permit = getattr(source, "reference_o2", None)
    if permit is not None:
        pct = float(_attr(permit, "o2_percent"))
        if not 0 <= pct < table.formula.max_o2_measured:
            raise ReferenceO2Error(
                f"source {getattr(source, 'id', '?')}: reference_o2.o2_percent {pct:g} must be in "
                f"[0, {table.formula.max_o2_measured:g})"
            )
        return ReferenceO2(pct, str(_attr(permit, "basis")), True, "permit", "permit value")
    sector = _norm(getattr(source, "sector", None) or facility_sector)
    fuel_attr = getattr(source, "fuel", None) or facility_fuel
    fuel = _norm(str(getattr(fuel_attr, "value", fuel_attr or "")))
    if not sector:
        return None
    for entry in table.references:
        if sector not in {_norm(s) for s in entry.sectors}:
            continue
        if entry.fuels and fuel not in {_norm(f) for f in entry.fuels}:
            continue
        basis = f"{entry.regulation}, {entry.clause}"
        return ReferenceO2(entry.o2_percent, basis, entry.verified, entry.id, entry.note)
    return None


def _attr(obj: Any, name: str) -> Any:
    return obj.get(name) if isinstance(obj, Mapping) else getattr(obj, name)


# ---- the formula ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Correction:
    """One window's correction: ``corrected`` None when not judged (``reason`` says why)."""

    measured: float | None
    o2_measured: float | None
    o2_reference: float
    corrected: float | None
    reason: str = ""

    @property
    def judged(self) -> bool:
        return self.corrected is not None


def correct(
    measured: float | None,
    o2_measured: float | None,
    o2_reference: float,
    *,
    max_o2: float = 20.9,
) -> Correction:
    """``C_ref = C × (21 − O2_ref) / (21 − O2)``, guarded: no O2, O2 outside [0, ``max_o2``),
    no measured value → not judged, with the reason."""
    if not 0 <= o2_reference < max_o2:
        raise ValueError(f"reference O2 {o2_reference:g} % must be in [0, {max_o2:g})")
    if measured is None:
        return Correction(None, o2_measured, o2_reference, None, "no valid measured value")
    if o2_measured is None:
        return Correction(
            measured, None, o2_reference, None, "not judged: no valid O2 average for this window"
        )
    if o2_measured >= max_o2:
        return Correction(
            measured,
            o2_measured,
            o2_reference,
            None,
            f"not judged: O2 {o2_measured:g} % ≥ {max_o2:g} % (ambient air: the correction "
            f"(21 − {o2_reference:g}) / (21 − O2) is undefined)",
        )
    if o2_measured < 0:
        return Correction(
            measured, o2_measured, o2_reference, None, f"not judged: O2 {o2_measured:g} % < 0"
        )
    factor = (AMBIENT_O2 - o2_reference) / (AMBIENT_O2 - o2_measured)
    return Correction(measured, o2_measured, o2_reference, float(f"{measured * factor:.12g}"))


# ---- the stage --------------------------------------------------------------------------------


@dataclass(frozen=True)
class CorrectionSettings:
    """What the stage needs for one source. ``reference`` None: everything passes through."""

    reference: ReferenceO2 | None
    parameters: frozenset[str]  # corrected parameter codes
    max_o2: float = 20.9
    # A pollutant window waits this long (by window end, from the newest window end seen) for its
    # O2 average, then goes out as not judged. Match the late-data horizon.
    horizon: timedelta = timedelta(hours=72)
    max_windows: int = 2000  # bound on windows kept per source (pending and done)


def settings_for(
    source: Any,
    table: ReferenceTable,
    facility_sector: str | None = None,
    horizon: timedelta = timedelta(hours=72),
    facility_fuel: str | None = None,
) -> CorrectionSettings | None:
    """The stage's settings for a registry source; None when the stage does not apply (not a
    stack, no O2 measured, or no reference O2 named): its averages go straight to the check."""
    kind = getattr(getattr(source, "kind", None), "value", getattr(source, "kind", None))
    if kind != "stack":
        return None
    codes = {str(getattr(p.code, "value", p.code)) for p in getattr(source, "parameters", [])}
    if O2 not in codes:
        return None
    reference = reference_for(source, table, facility_sector, facility_fuel)
    if reference is None:
        return None
    return CorrectionSettings(
        reference=reference,
        parameters=frozenset(table.corrected_parameters) & codes,
        max_o2=table.formula.max_o2_measured,
        horizon=horizon,
    )


_AVG_FIELDS = (
    "source_id",
    "parameter",
    "period",
    "window_start",
    "window_end",
    "value",
    "unit",
    "samples",
    "expected",
    "completeness",
    "valid",
    "revision",
    "final",
)


def _avg_from_dict(d: Mapping[str, Any]) -> Average:
    """An Average as states before the compact ``Held`` stored it (a changelog written then)."""
    return Average(
        **{
            **{f: d[f] for f in _AVG_FIELDS},
            "window_start": ISO(d["window_start"]),
            "window_end": ISO(d["window_end"]),
        }
    )


def window_key(a: Average) -> str:
    return f"{a.period}|{a.window_start.isoformat()}|{a.window_end.isoformat()}"


@dataclass(frozen=True, slots=True)
class Held:
    """A final pollutant average the state holds for its window's O2: what the Average carries
    besides its source (the state's), parameter (its key in the window's map) and window (the
    window key). A stack holds about a thousand of these (72 h × 3 periods × its pollutants):
    as Average records with their dumped copies they were a third of the worker's state."""

    value: float | None
    unit: str
    samples: int
    expected: int
    completeness: float
    valid: bool
    revision: int

    @classmethod
    def of(cls, a: Average) -> Held:
        return cls(a.value, a.unit, a.samples, a.expected, a.completeness, a.valid, a.revision)

    def average(self, source_id: str, parameter: str, key: str) -> Average:
        period, start, end = key.split("|")
        return Average(
            source_id=source_id,
            parameter=parameter,
            period=period,
            window_start=ISO(start),
            window_end=ISO(end),
            value=self.value,
            unit=self.unit,
            samples=self.samples,
            expected=self.expected,
            completeness=self.completeness,
            valid=self.valid,
            revision=self.revision,
            final=True,  # only final averages are held
        )

    def to_json(self) -> list[Any]:
        return [self.value, self.unit, self.samples, self.expected, self.completeness, self.valid,
                self.revision]  # fmt: skip

    @classmethod
    def from_json(cls, d: Any) -> Held:
        if isinstance(d, dict):  # an Average as older states stored it
            return cls.of(_avg_from_dict(d))
        return cls(*d)


@dataclass(slots=True)
class O2Window:
    value: float | None
    valid: bool
    revision: int
    completeness: float


@dataclass
class CorrectionState:
    """Per source: the final O2 average of each recent window, the pollutant averages waiting
    for theirs (``pending``) and those already corrected (``done``, re-emitted if the window's O2
    is revised). JSON-able through ``to_dict`` / ``from_dict``."""

    source_id: str
    o2: dict[str, O2Window] = field(default_factory=dict)
    running_o2: dict[str, O2Window] = field(default_factory=dict)  # non-final (running hour)
    pending: dict[str, dict[str, Held]] = field(default_factory=dict)  # key -> parameter -> avg
    done: dict[str, dict[str, Held]] = field(default_factory=dict)
    ends: dict[str, str] = field(default_factory=dict)  # key -> window end (ISO), for eviction
    # counts the changes a restart must see (not the running O2, renewed every batch): the
    # worker logs the state only when it moved (``Stage.version``); not stored
    changes: int = field(default=0, compare=False)

    def to_dict(self) -> dict[str, Any]:
        def o2(m: dict[str, O2Window]) -> dict[str, Any]:
            return {
                k: {"value": w.value, "valid": w.valid, "revision": w.revision,
                    "completeness": w.completeness}
                for k, w in m.items()
            }  # fmt: skip

        def held(m: dict[str, dict[str, Held]]) -> dict[str, Any]:
            return {k: {p: h.to_json() for p, h in v.items()} for k, v in m.items()}

        return {
            "source_id": self.source_id,
            "o2": o2(self.o2),
            "running_o2": o2(self.running_o2),
            "pending": held(self.pending),
            "done": held(self.done),
            "ends": dict(self.ends),
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> CorrectionState:
        def o2(m: Mapping[str, Any]) -> dict[str, O2Window]:
            return {k: O2Window(**w) for k, w in m.items()}

        def held(m: Mapping[str, Any]) -> dict[str, dict[str, Held]]:
            return {k: {p: Held.from_json(a) for p, a in v.items()} for k, v in m.items()}

        return cls(
            source_id=d["source_id"],
            o2=o2(d.get("o2", {})),
            running_o2=o2(d.get("running_o2", {})),
            pending=held(d.get("pending", {})),
            done=held(d.get("done", {})),
            ends=dict(d.get("ends", {})),
        )

    def averages(self, key: str, held: Mapping[str, Held]) -> list[Average]:
        """The Averages ``held`` (parameter -> Held) for window ``key``."""
        return [h.average(self.source_id, p, key) for p, h in held.items()]


def corrected_average(avg: Average, o2: O2Window | None, correction: CorrectionSettings) -> Average:
    """``avg`` with ``value`` at the reference O2 (or None and ``not_judged``), carrying the
    measured value, the window's O2 and the reference. Revision = avg's + the O2 window's."""
    ref = correction.reference
    assert ref is not None
    o2_value = o2.value if o2 is not None and o2.valid else None
    c = correct(
        avg.value if avg.valid else None, o2_value, ref.o2_percent, max_o2=correction.max_o2
    )
    reason = c.reason
    if o2 is not None and not o2.valid:
        reason = (
            f"not judged: the O2 average of this window is invalid (completeness "
            f"{o2.completeness:.0%})"
        )
    if avg.value is not None and not avg.valid:
        reason = ""  # an incomplete pollutant window: invalid already, nothing to add
    fields = {f: getattr(avg, f) for f in _AVG_FIELDS}
    fields |= {
        "value": c.corrected,
        "valid": avg.valid and c.judged,
        "revision": avg.revision + (o2.revision if o2 is not None else 0),
    }
    return Average(
        **fields,
        measured_value=avg.value,
        o2_measured=o2.value if o2 is not None else None,
        o2_reference=ref.o2_percent,
        correction_basis=ref.text(),
        not_judged=reason,
    )


def step(
    state: CorrectionState | None,
    items: Sequence[Average],
    correction: CorrectionSettings,
) -> tuple[CorrectionState, list[Average]]:
    """Fold one source's averages (arrival order) into the state; return the averages the
    threshold check should see. Inputs of other sources are an error (the runner keys by
    source)."""
    if not items:
        return state or CorrectionState(source_id=""), []
    source_id = items[0].source_id
    if state is None or not state.source_id:
        state = CorrectionState(source_id=source_id)
    out: list[Average] = []
    for avg in items:
        if avg.source_id != state.source_id:
            raise ValueError(
                f"correction state of {state.source_id} given an average of {avg.source_id}"
            )
        if correction.reference is None:
            out.append(avg)
        elif avg.parameter == O2:
            out.append(avg)
            out += _take_o2(state, avg, correction)
        elif avg.parameter in correction.parameters:
            out += _take_pollutant(state, avg, correction)
        else:
            out.append(avg)
    out += _evict(state, correction)
    return state, out


def _o2_window(avg: Average) -> O2Window:
    return O2Window(avg.value, avg.valid and avg.value is not None, avg.revision, avg.completeness)


def _take_o2(state: CorrectionState, avg: Average, correction: CorrectionSettings) -> list[Average]:
    key = window_key(avg)
    if not avg.final:
        state.running_o2[key] = _o2_window(avg)
        # keep only the newest running hour: older ones are closed (final) by now
        for k in [k for k in state.running_o2 if k != key]:
            del state.running_o2[k]
        return []
    before = state.o2.get(key)
    if before is not None and avg.revision <= before.revision:
        return []  # replay
    state.changes += 1
    window = _o2_window(avg)
    state.o2[key] = window
    state.running_o2.pop(key, None)
    state.ends[key] = avg.window_end.isoformat()
    waiting = state.pending.pop(key, {})
    redo = state.done.get(key, {}) if before is not None else {}
    again = state.averages(key, waiting) + state.averages(key, redo)
    out = [corrected_average(a, window, correction) for a in again]
    if waiting:
        state.done.setdefault(key, {}).update(waiting)
    return out


def _take_pollutant(
    state: CorrectionState, avg: Average, correction: CorrectionSettings
) -> list[Average]:
    key = window_key(avg)
    if not avg.final:  # running hour: early warnings only, paired with the running O2 if any
        o2 = state.o2.get(key) or state.running_o2.get(key)
        return [corrected_average(avg, o2, correction)]
    for bucket in (state.done, state.pending):
        seen = bucket.get(key, {}).get(avg.parameter)
        if seen is not None and avg.revision <= seen.revision:
            return []  # replay
    state.changes += 1
    state.ends[key] = avg.window_end.isoformat()
    o2 = state.o2.get(key)
    if o2 is None:
        state.pending.setdefault(key, {})[avg.parameter] = Held.of(avg)
        return []
    state.pending.get(key, {}).pop(avg.parameter, None)
    state.done.setdefault(key, {})[avg.parameter] = Held.of(avg)
    return [corrected_average(avg, o2, correction)]


def _evict(state: CorrectionState, correction: CorrectionSettings) -> list[Average]:
    """Forget windows past the horizon (and the oldest beyond ``max_windows``); a pollutant still
    waiting goes out as not judged: no valid O2 average arrived for its window."""
    if not state.ends:
        return []
    newest = max(ISO(e) for e in state.ends.values())
    cut = newest - correction.horizon
    by_end = sorted(state.ends.items(), key=lambda kv: kv[1])
    excess = max(0, len(by_end) - correction.max_windows)
    drop = [k for i, (k, end) in enumerate(by_end) if i < excess or ISO(end) <= cut]
    out: list[Average] = []
    state.changes += bool(drop)
    for key in drop:
        for avg in state.averages(key, state.pending.pop(key, {})):
            out.append(corrected_average(avg, None, correction))
        state.o2.pop(key, None)
        state.done.pop(key, None)
        state.ends.pop(key, None)
    return out


def correct_series(
    pollutant: Iterable[Any], o2: Iterable[Any], reference: ReferenceO2, max_o2: float = 20.9
) -> list[tuple[Any, Correction]]:
    """Reports' side of the same rule: each stored pollutant average (any object with period,
    window_start, window_end, value, valid) with the correction by the O2 average of the same
    window. Invalid O2 windows count as missing."""
    o2_by = {
        (a.period, a.window_start, a.window_end): a.value
        for a in o2
        if a.valid and a.value is not None
    }
    out = []
    for a in pollutant:
        o2v = o2_by.get((a.period, a.window_start, a.window_end))
        value = a.value if a.valid else None
        out.append((a, correct(value, o2v, reference.o2_percent, max_o2=max_o2)))
    return out


def with_reference(
    limits: Iterable[Limit], reference: ReferenceO2 | None, parameters: Collection[str]
) -> list[Limit]:
    """The limits with the reference O2 they are compared at (``Limit.o2_reference``) for the
    corrected parameters; the others unchanged. For display (``quantrac limits``) and reports."""
    if reference is None:
        return list(limits)
    return [
        lim.model_copy(update={"o2_reference": reference.o2_percent, "o2_basis": reference.text()})
        if lim.parameter in parameters
        else lim
        for lim in limits
    ]


def correction_settings(
    registry: Any, table: ReferenceTable | None = None, horizon: timedelta = timedelta(hours=72)
) -> dict[str, CorrectionSettings]:
    """Per source id, the stage's settings, for every stack it applies to (``settings_for``);
    a source not in the map skips the stage. ``registry``: a ``stations.registry.Registry``."""
    table = table or load_reference_table()
    out: dict[str, CorrectionSettings] = {}
    for source in registry.sources:
        facility = registry.facility(source.facility) if source.facility else None
        got = settings_for(
            source,
            table,
            getattr(facility, "sector", None),
            horizon,
            getattr(facility, "fuel", None),
        )
        if got is not None:
            out[source.id] = got
    return out


@cache
def default_table() -> ReferenceTable:
    """The shipped table, loaded once (reports and the CLI ask for it per source)."""
    return load_reference_table()


def settings_of(
    registry: Any, source: Any, table: ReferenceTable | None = None
) -> CorrectionSettings | None:
    """``settings_for`` one registry source, its facility's sector and fuel as the fallback."""
    facility = registry.facility(source.facility) if getattr(source, "facility", None) else None
    return settings_for(
        source,
        table or default_table(),
        getattr(facility, "sector", None),
        facility_fuel=getattr(facility, "fuel", None),
    )
