"""The regulation catalogue: QCVN limit tables as versioned data files, validated on load.

Each ``thresholds/catalogue/<id>.yaml`` holds one regulation *version* (QCVN 05:2013 and
QCVN 05:2023 are two files). A file names its issuing act, dates, sources (``[S21]`` tags of
``docs/regulations.md``), column scheme, coefficient formula and the rules; every rule cites its
table and row. Values the reference marks UNVERIFIED ship with ``verified: false`` and a note,
never as silent law; cells the sources hide are written with no value (no ``max``/``min``) so the
gap shows. Rows may depend on a row group (``categories``: sector, capacity) and on the point's
discharge-flow band (``flow_classes``, QCVN 40:2025 per its drafts); the most specific row wins.

Validation errors name the file, the entry (``rules[4] (COD)``) and the field, and list the allowed
values, so a typo in a data file is fixed in one look.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import date
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import yaml
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError, model_validator

from core.parameters import Parameter, SourceKind
from core.records import Period

CATALOGUE_DIR = Path(__file__).with_name("catalogue")


class CatalogueError(ValueError):
    """A catalogue file that cannot be used; the message names file, entry and field."""


class RuleKind(StrEnum):
    UPPER = "upper"  # value must not exceed max
    LOWER = "lower"  # value must not fall below min (dissolved oxygen)
    RANGE = "range"  # min <= value <= max (pH)


class Basis(StrEnum):
    """Averaging basis a limit is written against. Equal strings to ``core.records.Period``.

    QCVN 05:2023 §1.3.6–1.3.9 define the ambient bases: 1 h; 8 h ("the mean of the values measured
    over 8 hours": any 8 consecutive hours, so the rolling 8-h mean ending at each hour); 24 h
    "(một ngày đêm)", one day-and-night: the local calendar day (``day``); year: "the mean of the
    days' values over one year", a calendar year of daily means (``year``, assessed in the yearly
    station report, ``thresholds/annual.py``). ``24h`` is the rolling 24-h mean, kept for early
    warning and display; no catalogue rule is written against it.
    """

    HOUR = "1h"
    ROLLING_8H = "8h"
    ROLLING_24H = "24h"
    DAY = "day"
    YEAR = "year"  # assessed on calendar years in reports; no yearly Average is streamed

    @property
    def period(self) -> Period | None:
        """The streaming Period this basis is checked on, None if not checked in real time."""
        return None if self is Basis.YEAR else Period(self.value)

    @property
    def calendar(self) -> bool:
        """A calendar period: each exceeding window (a day, a year) is one exceedance."""
        return self in (Basis.DAY, Basis.YEAR)


class ExtraParameter(StrEnum):
    """Codes the regulations limit but automatic stations do not measure (lab parameters).

    They are catalogued so the tables are complete and typos are caught; only parameters a source
    measures (its registry entry) become limits.
    """

    PB = "Pb"
    AS = "As"
    CD = "Cd"
    HG = "Hg"
    CR6 = "Cr6"
    CR3 = "Cr3"
    CR_TOTAL = "CrTotal"
    CU = "Cu"
    ZN = "Zn"
    NI = "Ni"
    MN = "Mn"
    FE = "Fe"
    SB = "Sb"
    NITRITE = "NO2-N"
    CHLORIDE = "Cl-"
    FLUORIDE = "F-"
    CYANIDE = "CN-"
    SULFIDE = "S2-"
    RESIDUAL_CL = "ResidualCl"
    SURFACTANTS = "Surfactants"
    PHENOL = "Phenol"
    OIL_GREASE = "OilGrease"
    MINERAL_OIL = "MineralOil"
    PCBS = "PCBs"
    BENZENE = "Benzene"
    TOLUENE = "Toluene"
    XYLENE = "Xylene"
    STYRENE = "Styrene"
    FORMALDEHYDE = "Formaldehyde"
    CHLOROFORM = "Chloroform"
    NH3 = "NH3"
    H2S = "H2S"
    HCL = "HCl"
    HF = "HF"
    CL2 = "Cl2"
    THC = "THC"
    COLIFORM = "Coliform"
    HEAT_COLIFORM = "ThermoColiform"
    GROSS_ALPHA = "GrossAlpha"
    GROSS_BETA = "GrossBeta"


#: Every parameter code a catalogue rule may name.
KNOWN_PARAMETERS: frozenset[str] = frozenset(
    [p.value for p in Parameter] + [p.value for p in ExtraParameter]
)


def _check_parameter(code: str) -> str:
    if code not in KNOWN_PARAMETERS:
        allowed = ", ".join(sorted(KNOWN_PARAMETERS))
        raise ValueError(f"unknown parameter {code!r}; allowed: {allowed}")
    return code


ParameterCode = Annotated[str, AfterValidator(_check_parameter)]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Cell(_Model):
    """One limit value (a table cell). Absent max/min with verified false = a documented gap."""

    max: float | None = None
    min: float | None = None
    verified: bool = True
    note: str = ""

    @property
    def is_gap(self) -> bool:
        return self.max is None and self.min is None

    @model_validator(mode="after")
    def _consistent(self) -> Cell:
        if self.is_gap and (self.verified or not self.note):
            raise ValueError("a cell without max/min is a gap: needs verified: false and a note")
        if self.max is not None and self.max <= 0:
            raise ValueError(f"max must be > 0, got {self.max}")
        if self.min is not None and self.min < 0:
            raise ValueError(f"min must be >= 0, got {self.min}")
        if self.max is not None and self.min is not None and self.min >= self.max:
            raise ValueError(f"min {self.min} must be below max {self.max}")
        if not self.verified and not self.note:
            raise ValueError("verified: false needs a note saying what is unverified")
        return self


class Rule(_Model):
    """One row × averaging basis of a table: ``limit`` (every column) or per-column ``columns``."""

    parameter: ParameterCode
    label: str = Field(description="the row's name as the regulation writes it")
    kind: RuleKind
    unit: str
    period: Basis | None = None  # None: the regulation's default_period
    table: str
    row: str
    limit: Cell | None = None
    columns: dict[str, Cell] | None = None
    effective_from: date | None = None  # None: the regulation's
    effective_to: date | None = None  # inclusive last day; None: the regulation's
    # None: a general row; else the regulation's row group (sector or capacity,
    # ``Regulation.categories``) it applies to; it replaces the general row for a source whose
    # limit set names that category.
    category: str | None = None
    # None: every discharge-flow class; else the band (``Regulation.flow_classes``) the row is
    # written for. It replaces the row without a band for a point whose flow falls in it.
    flow_class: str | None = None
    verified: bool = True
    note: str = ""
    sources: list[str] = Field(default_factory=list)

    @model_validator(mode="after")
    def _shape(self) -> Rule:
        if (self.limit is None) == (self.columns is None):
            raise ValueError("give exactly one of `limit` (all columns) or `columns`")
        for where, cell in self.cells():
            if cell.is_gap:
                continue
            need_max = self.kind in (RuleKind.UPPER, RuleKind.RANGE)
            need_min = self.kind in (RuleKind.LOWER, RuleKind.RANGE)
            if need_max != (cell.max is not None) or need_min != (cell.min is not None):
                want = {"upper": "max only", "lower": "min only", "range": "min and max"}
                raise ValueError(f"{where}: kind {self.kind.value} needs {want[self.kind.value]}")
        if not self.verified and not self.note:
            raise ValueError("verified: false needs a note saying what is unverified")
        if self.effective_from and self.effective_to and self.effective_from > self.effective_to:
            raise ValueError("effective_from is after effective_to")
        return self

    def cells(self) -> list[tuple[str, Cell]]:
        if self.limit is not None:
            return [("limit", self.limit)]
        return [(f"columns.{k}", c) for k, c in (self.columns or {}).items()]

    def cell(self, column: str | None) -> Cell | None:
        """The cell that applies to ``column``; None when the table has no value for it."""
        if self.limit is not None:
            return self.limit
        if column is None or self.columns is None:
            return None
        return self.columns.get(column)


class CoefficientScheme(_Model):
    """``Cmax = C × K1 × K2``; the coefficient values come from each source's registry entry.

    Which parameters the coefficients apply to is the regulation's data, in one place: every
    upper limit is multiplied except the parameters in ``exempt`` (Cmax = C), which the clause
    ``exempt_clause`` lists (QCVN 40:2011 §2.1.2: temperature, colour, pH, coliform, gross α,
    gross β). Lower and range limits are never multiplied: the formula scales a maximum.
    """

    formula: str
    clause: str = Field("", description="where the formula is written, e.g. '§2.1.1'")
    names: list[str] = Field(min_length=1)
    exempt: list[ParameterCode] = Field(default_factory=list)
    exempt_clause: str = ""
    exempt_verified: bool = True
    exempt_note: str = ""
    exempt_sources: list[str] = Field(default_factory=list)
    verified: bool = True
    note: str = ""

    @model_validator(mode="after")
    def _exemptions_cited(self) -> CoefficientScheme:
        if self.exempt and not self.exempt_clause:
            raise ValueError("`exempt` needs `exempt_clause` (the clause that lists them)")
        if not self.exempt_verified and not self.exempt_note:
            raise ValueError("exempt_verified: false needs exempt_note saying what is unverified")
        return self

    def applies_to(self, parameter: str, kind: RuleKind) -> bool:
        """Whether ``Cmax = C × K…`` applies to this parameter's limit (else Cmax = C)."""
        return kind is RuleKind.UPPER and parameter not in {str(p) for p in self.exempt}

    def not_applied_text(self, parameter: str) -> str:
        """Why Cmax = C, citing the clause: "§2.1.2: Kq, Kf not applied"."""
        names = ", ".join(self.names)
        if parameter in {str(p) for p in self.exempt}:
            return f"{self.exempt_clause}: {names} not applied"
        return f"{names} scale maximum values only: not applied"


class FlowClass(_Model):
    """A discharge-flow band of a regulation's tables: ``above < F ≤ up_to`` (m³/day).

    QCVN 40:2025 (per its drafts) writes some rows per band of the point's discharge flow; the
    band a point falls in is derived from its permitted flow (``thresholds/limits.py``).
    """

    label: str = Field(description="the band as the text writes it, e.g. 'F ≤ 5.000 m³/ngày'")
    above: float | None = Field(None, ge=0, description="exclusive lower bound; None: from 0")
    up_to: float | None = Field(None, gt=0, description="inclusive upper bound; None: no end")
    verified: bool = True
    note: str = ""
    sources: list[str] = Field(default_factory=list)

    @model_validator(mode="after")
    def _bounds(self) -> FlowClass:
        if self.above is not None and self.up_to is not None and self.above >= self.up_to:
            raise ValueError(f"above {self.above:g} must be below up_to {self.up_to:g}")
        if not self.verified and not self.note:
            raise ValueError("verified: false needs a note saying what is unverified")
        return self

    def contains(self, flow: float) -> bool:
        return (self.above is None or flow > self.above) and (
            self.up_to is None or flow <= self.up_to
        )


class Regulation(_Model):
    id: str
    code: str = Field(description="official designation, e.g. 'QCVN 40:2011/BTNMT'")
    title: str
    issuing_act: str
    effective_from: date | None  # None only when the reference does not give it (see notes)
    effective_to: date | None = None  # inclusive last day of general application
    transition_until: date | None = None  # last day existing facilities may keep applying it
    # On the regulation that replaces others: the clause of its issuing act that lets existing
    # facilities keep the old one until the old one's ``transition_until`` (see transition.py)
    transition_clause: str = ""
    # Row groups of its tables (sector, capacity): id -> meaning.
    categories: dict[str, str] = Field(default_factory=dict)
    # Discharge-flow bands of its tables (id -> band), contiguous from 0 to no end, and what the
    # flow F is (``flow_basis``: whose flow, which unit); empty when no row depends on the flow.
    flow_classes: dict[str, FlowClass] = Field(default_factory=dict)
    flow_basis: str = ""
    replaces: list[str] = Field(default_factory=list)
    replaced_by: str | None = None
    applies_to: list[SourceKind]
    columns: list[str] = Field(default_factory=list)
    column_meaning: dict[str, str] = Field(default_factory=dict)
    default_period: Basis
    period_note: str = ""
    coefficients: CoefficientScheme | None = None
    verified: bool = True
    sources: dict[str, str] = Field(min_length=1, description="tag -> reliability and what")
    notes: list[str] = Field(default_factory=list)
    rules: list[Rule] = Field(default_factory=list)

    @model_validator(mode="after")
    def _cross_checks(self) -> Regulation:
        for i, rule in enumerate(self.rules):
            where = f"rules[{i}] ({rule.parameter})"
            for col in rule.columns or {}:
                if col not in self.columns:
                    raise ValueError(
                        f"{where}: column {col!r} not in the regulation's columns "
                        f"(allowed: {', '.join(self.columns) or 'none'})"
                    )
            for tag in rule.sources:
                if tag not in self.sources:
                    raise ValueError(f"{where}: source tag {tag!r} not listed in `sources`")
            if rule.category is not None and rule.category not in self.categories:
                raise ValueError(
                    f"{where}: category {rule.category!r} not in the regulation's categories "
                    f"(allowed: {', '.join(self.categories) or 'none'})"
                )
            if rule.flow_class is not None and rule.flow_class not in self.flow_classes:
                raise ValueError(
                    f"{where}: flow_class {rule.flow_class!r} not in the regulation's "
                    f"flow_classes (allowed: {', '.join(self.flow_classes) or 'none'})"
                )
        self._check_flow_classes()
        for tag in self.coefficients.exempt_sources if self.coefficients else []:
            if tag not in self.sources:
                raise ValueError(f"coefficients.exempt_sources: tag {tag!r} not in `sources`")
        seen: dict[tuple[str, str, str, str, str], list[tuple[date, date]]] = {}
        for i, rule in enumerate(self.rules):
            lo, hi = self.rule_dates(rule)
            for col, cell in rule.cells():
                key = (
                    rule.parameter,
                    self.period_of(rule).value,
                    col,
                    rule.category or "",
                    rule.flow_class or "",
                )
                for other_lo, other_hi in seen.get(key, []):
                    if lo <= other_hi and other_lo <= hi and not cell.is_gap:
                        raise ValueError(
                            f"rules[{i}] ({rule.parameter}): {col} {key[1]} overlaps an earlier "
                            "rule for the same parameter, basis and column in time"
                        )
                seen.setdefault(key, []).append((lo, hi))
        return self

    def _check_flow_classes(self) -> None:
        """Bands must tile (0, ∞) without gap or overlap, so every flow has exactly one."""
        if not self.flow_classes:
            if self.flow_basis:
                raise ValueError("flow_basis given without flow_classes")
            return
        if not self.flow_basis:
            raise ValueError("flow_classes need flow_basis (whose flow F is, and its unit)")
        for name, band in self.flow_classes.items():
            for tag in band.sources:
                if tag not in self.sources:
                    raise ValueError(f"flow_classes.{name}: source tag {tag!r} not in `sources`")
        bands = sorted(self.flow_classes.items(), key=lambda kv: kv[1].above or 0.0)
        edge: float | None = 0.0
        for name, band in bands:
            if (band.above or 0.0) != edge:
                start = f"{edge:g}" if edge is not None else "no end"
                raise ValueError(
                    f"flow_classes.{name}: starts above {band.above or 0:g}, but the previous "
                    f"band ends at {start} (bands must be contiguous, without overlap)"
                )
            edge = band.up_to
        if edge is not None:
            raise ValueError(f"flow_classes: the last band ends at {edge:g}; it needs no up_to")

    def flow_class_of(self, flow: float) -> str:
        """The band a discharge flow (in ``flow_basis`` units) falls in."""
        if not self.flow_classes:
            raise ValueError(f"{self.code} defines no discharge-flow classes")
        return next(name for name, band in self.flow_classes.items() if band.contains(flow))

    def period_of(self, rule: Rule) -> Basis:
        return rule.period or self.default_period

    def rule_dates(self, rule: Rule) -> tuple[date, date]:
        """Inclusive validity of a rule (open ends become date.min / date.max)."""
        lo = rule.effective_from or self.effective_from or date.min
        hi = rule.effective_to or self.last_day or date.max
        return lo, hi

    @property
    def last_day(self) -> date | None:
        """Last day any source may still be held to this regulation (transition included)."""
        ends = [d for d in (self.effective_to, self.transition_until) if d is not None]
        return max(ends) if ends else None

    def in_force(self, at: date) -> bool:
        if self.effective_from is not None and at < self.effective_from:
            return False
        return self.last_day is None or at <= self.last_day


@dataclass(frozen=True)
class Catalogue:
    regulations: Mapping[str, Regulation]

    def __getitem__(self, regulation_id: str) -> Regulation:
        try:
            return self.regulations[regulation_id]
        except KeyError:
            allowed = ", ".join(sorted(self.regulations))
            raise KeyError(f"unknown regulation {regulation_id!r}; allowed: {allowed}") from None

    def __contains__(self, regulation_id: object) -> bool:
        return regulation_id in self.regulations

    def __iter__(self) -> Iterator[Regulation]:
        return iter(self.regulations.values())


def required_coefficients(catalogue: Catalogue, regulation_id: str) -> tuple[str, ...]:
    """Coefficient names a source under this regulation must give (for registry validation)."""
    scheme = catalogue[regulation_id].coefficients
    return tuple(scheme.names) if scheme else ()


def _entry_name(raw: Any, loc: tuple[int | str, ...]) -> str:
    """``rules[4] (COD)`` for a location inside the rules list, else the dotted location."""
    parts: list[str] = []
    node = raw
    for i, step in enumerate(loc):
        if isinstance(step, int):
            parts[-1] = f"{parts[-1]}[{step}]" if parts else f"[{step}]"
            node = node[step] if isinstance(node, list) and step < len(node) else None
            if i == 1 and isinstance(node, dict) and "parameter" in node:
                parts[-1] += f" ({node['parameter']})"
        else:
            parts.append(str(step))
            node = node.get(step) if isinstance(node, dict) else None
    return ".".join(parts) or "(file)"


def load_regulation(path: Path) -> Regulation:
    """Load and validate one file; errors name the file, entry and field."""
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise CatalogueError(f"{path.name}: not valid YAML: {exc}") from exc
    if not isinstance(raw, dict):
        raise CatalogueError(f"{path.name}: expected a mapping at the top level")
    try:
        regulation = Regulation.model_validate(raw)
    except ValidationError as exc:
        lines = [
            f"{path.name}: {_entry_name(raw, tuple(err['loc']))}: {err['msg']}"
            for err in exc.errors()
        ]
        raise CatalogueError("\n".join(lines)) from None
    if regulation.id.lower() != path.stem:
        raise CatalogueError(
            f"{path.name}: id: {regulation.id!r} does not match the file name "
            f"(expected {path.stem.upper()!r})"
        )
    return regulation


def load_catalogue(directory: Path | None = None) -> Catalogue:
    """Load every ``*.yaml`` regulation under ``directory`` (default: the shipped catalogue)."""
    directory = directory or CATALOGUE_DIR
    regulations: dict[str, Regulation] = {}
    for path in sorted(directory.glob("*.yaml")):
        regulation = load_regulation(path)
        regulations[regulation.id] = regulation
    if not regulations:
        raise CatalogueError(f"{directory}: no regulation files (*.yaml)")
    for regulation in regulations.values():
        if regulation.replaced_by and regulation.replaced_by not in regulations:
            raise CatalogueError(
                f"{regulation.id.lower()}.yaml: replaced_by: {regulation.replaced_by!r} is not in "
                f"the catalogue (allowed: {', '.join(sorted(regulations))})"
            )
    return Catalogue(regulations)
