"""The registry of monitored sources: schema, loader, look-ups and listings.

``registry.yaml`` beside this module describes every automatic station and emission monitoring
point the department receives data from. It is edited by hand, so it is validated on load and
every problem is reported as one line naming the entry, the field and the allowed values, e.g.
``sources[HD-NT-03].parameters[2].code: 'COD2' is not one of: SO2, NO2, ...``.
"""

from __future__ import annotations

import json
import typing
from datetime import date
from enum import StrEnum
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationError,
    field_validator,
    model_validator,
)

from core.errors import RegistryError, UnitError
from core.parameters import Parameter, SourceKind
from core.units import Dimension, Unit, dimension_of, parse_unit

# libyaml's loader when present (10x faster); same safe semantics.
_YAML_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

DEFAULT_PATH = Path(__file__).with_name("registry.yaml")

ID_PATTERN = r"^[A-Z0-9]+(-[A-Z0-9]+)*$"
FTP_CODE_PATTERN = r"^[A-Z0-9]{1,16}$"


class District(StrEnum):
    """Districts, towns and cities of Hải Dương province (before the 2025 reorganisation)."""

    HAI_DUONG = "TP Hải Dương"
    CHI_LINH = "Chí Linh"
    KINH_MON = "Kinh Môn"
    NAM_SACH = "Nam Sách"
    KIM_THANH = "Kim Thành"
    THANH_HA = "Thanh Hà"
    CAM_GIANG = "Cẩm Giàng"
    BINH_GIANG = "Bình Giang"
    GIA_LOC = "Gia Lộc"
    TU_KY = "Tứ Kỳ"
    NINH_GIANG = "Ninh Giang"
    THANH_MIEN = "Thanh Miện"


class RegulationId(StrEnum):
    """Limit catalogues a source can be held to (ids of the thresholds catalogue)."""

    QCVN_05_2023 = "QCVN_05_2023"  # ambient air
    QCVN_08_2023 = "QCVN_08_2023"  # surface water
    QCVN_40_2011 = "QCVN_40_2011"  # industrial wastewater
    QCVN_19_2009 = "QCVN_19_2009"  # industrial emissions (dust, inorganic)
    QCVN_40_2025 = "QCVN_40_2025"  # industrial wastewater, replaces 40:2011 (Circular 06/2025)
    QCVN_19_2024 = "QCVN_19_2024"  # industrial emissions, replaces 19:2009 (Circular 45/2024)


class _RegulationRule(typing.NamedTuple):
    kind: SourceKind
    columns: tuple[str | None, ...]
    coefficients: tuple[str, ...]


# What each regulation allows in a limit set, and which kind of source it applies to.
REGULATION_RULES: dict[RegulationId, _RegulationRule] = {
    RegulationId.QCVN_05_2023: _RegulationRule(SourceKind.AMBIENT_AIR, (None,), ()),
    RegulationId.QCVN_08_2023: _RegulationRule(SourceKind.SURFACE_WATER, ("A", "B", "C", "D"), ()),
    RegulationId.QCVN_40_2011: _RegulationRule(SourceKind.WASTEWATER, ("A", "B"), ("Kq", "Kf")),
    RegulationId.QCVN_19_2009: _RegulationRule(SourceKind.STACK, ("A", "B"), ("Kp", "Kv")),
    # Columns A/B/C by receiving water / zone; no Kq/Kf or Kp/Kv in the tables catalogued
    # (docs/regulations.md §5.2, §6.2: structure partly UNVERIFIED).
    RegulationId.QCVN_40_2025: _RegulationRule(SourceKind.WASTEWATER, ("A", "B", "C"), ()),
    RegulationId.QCVN_19_2024: _RegulationRule(SourceKind.STACK, ("A", "B", "C"), ()),
}

# Regulations replaced by a newer one; a facility marked "new" is held to the replacement only
# (Circular 06/2025/TT-BTNMT Art. 3, Circular 45/2024/TT-BTNMT Art. 3.1; thresholds/transition.py).
REPLACED_BY: dict[RegulationId, RegulationId] = {
    RegulationId.QCVN_40_2011: RegulationId.QCVN_40_2025,
    RegulationId.QCVN_19_2009: RegulationId.QCVN_19_2024,
}
# The earliest effective date of the replacements (QCVN 19:2024: 01/07/2025): a facility
# commissioned before it cannot be "new" for the transition rules.
NEW_STANDARDS_FROM = date(2025, 7, 1)


class Fuel(StrEnum):
    """What a stack's combustion burns: the reference O2 of a limit depends on it."""

    COAL = "coal"
    OIL = "oil"
    GAS = "gas"
    BIOMASS = "biomass"
    WASTE = "waste"
    NONE = "none"  # process emissions without combustion


# Regulations that classify the receiving water rather than limit a source: never a limit set.
CLASSIFICATION_ONLY = frozenset({RegulationId.QCVN_08_2023})

# Which unit dimensions make sense for each parameter (catches "COD in µg/Nm3").
_GAS = (Dimension.GAS_MASS_CONC, Dimension.MIXING_RATIO)
PARAMETER_DIMENSIONS: dict[Parameter, tuple[Dimension, ...]] = {
    **{p: _GAS for p in (Parameter.SO2, Parameter.NO2, Parameter.NO, Parameter.NOX)},
    **{p: _GAS for p in (Parameter.CO, Parameter.O3)},
    **{p: (Dimension.GAS_MASS_CONC,) for p in (Parameter.PM10, Parameter.PM2_5, Parameter.TSP)},
    Parameter.DUST: (Dimension.GAS_MASS_CONC,),
    Parameter.TEMP: (Dimension.TEMPERATURE,),
    Parameter.RH: (Dimension.PERCENT,),
    Parameter.PRESSURE: (Dimension.PRESSURE,),
    Parameter.WIND_SPEED: (Dimension.SPEED,),
    Parameter.WIND_DIR: (Dimension.ANGLE,),
    Parameter.PH: (Dimension.PH,),
    **{
        p: (Dimension.WATER_CONC,)
        for p in (
            Parameter.DO,
            Parameter.COD,
            Parameter.BOD5,
            Parameter.TSS,
            Parameter.NH4,
            Parameter.TN,
            Parameter.TP,
            Parameter.TOC,
        )
    },
    Parameter.EC: (Dimension.CONDUCTIVITY,),
    Parameter.TURBIDITY: (Dimension.TURBIDITY,),
    Parameter.COLOR: (Dimension.COLOUR,),
    **{
        p: (Dimension.VOLUME_FLOW, Dimension.NORMAL_FLOW)
        for p in (Parameter.FLOW, Parameter.FLOW_IN, Parameter.FLOW_OUT)
    },
    **{p: (Dimension.PERCENT,) for p in (Parameter.O2, Parameter.H2O, Parameter.OPACITY)},
}


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class FtpIdentity(_Model):
    """The ``PROVINCE_FACILITY_STATION`` part of a Circular 10/2021 file name."""

    province: str = Field(pattern=FTP_CODE_PATTERN)
    facility: str = Field(pattern=FTP_CODE_PATTERN)
    station: str = Field(pattern=FTP_CODE_PATTERN)

    @property
    def triple(self) -> tuple[str, str, str]:
        return (self.province, self.facility, self.station)


class Permit(_Model):
    """The facility's environmental permit (giấy phép môi trường). The limits and coefficients it
    sets live on each point's limit sets (``overrides``, ``coefficients``, ``permit_clause``),
    each citing it."""

    number: str = Field(min_length=1)
    issued: date
    issuer: str = Field(min_length=1)
    note: str = ""

    @property
    def text(self) -> str:
        return f"{self.number} ({self.issuer}, {self.issued.isoformat()})" + (
            f", {self.note}" if self.note else ""
        )


class Facility(_Model):
    """A company or zone operating one or more emission monitoring points."""

    id: str = Field(pattern=ID_PATTERN, max_length=24)
    name: str = Field(min_length=1)
    operator: str = Field(min_length=1)
    permit: Permit
    district: District
    zone: str | None = Field(None, description="industrial zone or cluster, if inside one")
    sector: str = Field(min_length=1)
    # Transition rules (thresholds/transition.py): "existing" = operating, or EIA approved /
    # permit documents submitted, before the new regulations took effect; "new" otherwise.
    status: Literal["existing", "new"]
    status_basis: str = Field(min_length=1, description="why existing or new (dates, documents)")
    commissioned: date | None = None
    fuel: Fuel | None = Field(None, description="main fuel of its stacks; each stack may differ")
    illustrative: bool = True  # names, permits and values are placeholders, not official records

    @model_validator(mode="after")
    def _status_fits_dates(self) -> Facility:
        if self.status == "new" and self.commissioned and self.commissioned < NEW_STANDARDS_FROM:
            raise ValueError(
                f"status 'new' but commissioned {self.commissioned.isoformat()}, before the new "
                f"regulations took effect ({NEW_STANDARDS_FROM.isoformat()}): it is 'existing'"
            )
        return self


class ParameterSpec(_Model):
    """One measured parameter: the registry (regulation) unit, instrument range, cadence."""

    code: Parameter
    unit: Unit
    range: tuple[float, float]
    interval_s: int | None = Field(None, ge=10, le=3600)

    @field_validator("unit", mode="before")
    @classmethod
    def _unit_alias(cls, value: Any) -> Any:
        if isinstance(value, str):
            try:
                return parse_unit(value)
            except UnitError:
                return value  # let the enum check report the allowed values
        return value

    @field_validator("range")
    @classmethod
    def _range_order(cls, value: tuple[float, float]) -> tuple[float, float]:
        if not value[0] < value[1]:
            raise ValueError(f"range min must be below max, got [{value[0]}, {value[1]}]")
        return value

    @model_validator(mode="after")
    def _unit_fits(self) -> ParameterSpec:
        allowed = PARAMETER_DIMENSIONS.get(self.code)
        if allowed is not None and dimension_of(self.unit) not in allowed:
            units = ", ".join(u.value for u in Unit if dimension_of(u) in allowed)
            raise ValueError(f"unit '{self.unit}' does not fit {self.code}; use one of: {units}")
        return self


class LimitOverride(_Model):
    """A permit limit replacing the regulation's value for one parameter."""

    max: float | None = None
    min: float | None = None
    basis: str = Field(min_length=1, description="permit reference and article")

    @model_validator(mode="after")
    def _bounds(self) -> LimitOverride:
        if self.max is None and self.min is None:
            raise ValueError("give max, min or both")
        if self.max is not None and self.min is not None and not self.min < self.max:
            raise ValueError(f"min ({self.min}) must be below max ({self.max})")
        return self


class ReferenceO2Override(_Model):
    """The permit's reference O2: C_ref = C × (21 − o2_percent) / (21 − O2 measured)."""

    o2_percent: float = Field(ge=0, lt=20.9)
    basis: str = Field(min_length=1, description="permit reference and clause")


class LimitSet(_Model):
    """A regulation column (or class) applied to a source, with coefficients and overrides."""

    regulation: RegulationId
    column: str | None = None
    coefficients: dict[Literal["Kq", "Kf", "Kp", "Kv"], float] = Field(default_factory=dict)
    overrides: dict[Parameter, LimitOverride] = Field(default_factory=dict)
    verified: bool = True  # False: every limit of this set is in doubt (say why in `note`)
    # False: only the coefficient values are in doubt, so only the limits they multiply are;
    # a parameter the regulation exempts (Cmax = C) keeps its table value's status.
    coefficients_verified: bool = True
    note: str = ""
    # The regulation's row group (sector or capacity) for this point.
    category: str | None = None
    # Wastewater: the discharge-flow band the permit names for this point (QCVN 40:2025 writes
    # BOD5/COD/TSS per band). Unset: derived from `permitted_flow_m3_per_day` by the regulation's
    # bands (thresholds/limits.py flow_class_of); both given must agree.
    flow_class: str | None = Field(None, pattern=r"^[A-Za-z0-9.-]{1,16}$")
    # The permit clause imposing this set regardless of the transition, and from when.
    permit_clause: str = ""
    valid_from: date | None = None

    @model_validator(mode="after")
    def _fits_regulation(self) -> LimitSet:
        rule = REGULATION_RULES[self.regulation]
        problems = []
        if self.valid_from is not None and not self.permit_clause:
            problems.append("'valid_from' needs 'permit_clause' (the permit that imposes it)")
        if self.flow_class is not None and rule.kind is not SourceKind.WASTEWATER:
            problems.append("'flow_class' (discharge-flow band) is for wastewater regulations")
        if self.column not in rule.columns:
            allowed = ", ".join("null" if c is None else c for c in rule.columns)
            problems.append(f"column {self.column!r} is not one of: {allowed}")
        keys = set(self.coefficients)
        if keys != set(rule.coefficients):
            need = ", ".join(rule.coefficients) or "none"
            problems.append(
                f"{self.regulation} takes coefficients: {need} (got {', '.join(sorted(keys))})"
            )
        problems += [f"coefficient {k} must be > 0" for k, v in self.coefficients.items() if v <= 0]
        if problems:
            raise ValueError("; ".join(problems))
        return self


class Source(_Model):
    """An automatic station or emission monitoring point: one Kafka key, one data feed."""

    id: str = Field(pattern=ID_PATTERN, max_length=24)
    name: str = Field(min_length=1)
    kind: SourceKind
    district: District
    lat: float = Field(ge=20.6, le=21.3, description="WGS84, Hải Dương lies at about 20.7–21.2 N")
    lon: float = Field(ge=106.0, le=106.7, description="WGS84, about 106.0–106.6 E")
    installed: date
    interval_s: int = Field(300, ge=10, le=3600, description="reporting interval")
    ftp: FtpIdentity
    facility: str | None = Field(None, description="Facility id; emission sources only")
    parameters: list[ParameterSpec] = Field(min_length=1)
    limits: list[LimitSet] = Field(default_factory=list)
    target_class: Literal["A", "B", "C", "D"] | None = Field(
        None,
        description="surface water only: the QCVN 08:2023 class the water body should reach; a "
        "worse daily class raises a water quality alert (docs/regulations.md §4.1)",
    )
    # The permitted discharge flow (environmental permit): a wastewater outfall's daily volume,
    # a stack's exhaust gas flow. Decree 45/2022 brackets fines by it (docs/regulations.md §8b).
    permitted_flow_m3_per_day: float | None = Field(None, gt=0, description="wastewater only")
    permitted_flow_m3_per_hour: float | None = Field(None, gt=0, description="stacks only")
    # Stacks: the sector and fuel the reference O2 depends on; filled from the facility when not
    # given (Registry), so every stack carries both.
    sector: str | None = None
    fuel: Fuel | None = None
    # Stacks: the reference O2 the permit writes its limits at; overrides the sector/fuel table
    # (thresholds/data/reference_o2.yaml, thresholds/reference_o2.py; issue 19).
    reference_o2: ReferenceO2Override | None = None
    note: str = ""

    _status: str | None = PrivateAttr(None)

    @property
    def transition_status(self) -> str | None:
        """The facility's "existing"/"new" (None outside a registry or for stations)."""
        return self._status

    @property
    def measures_o2(self) -> bool:
        """Whether the point reports O2 (the reference-O2 correction needs it)."""
        return self.parameter(Parameter.O2) is not None

    @model_validator(mode="after")
    def _consistent(self) -> Source:
        problems = []
        surface = self.kind is SourceKind.SURFACE_WATER
        if surface and self.target_class is None:
            problems.append("a surface-water station needs 'target_class' (A, B, C or D)")
        if not surface and self.target_class is not None:
            problems.append("'target_class' is for surface-water stations only")
        codes = [p.code for p in self.parameters]
        dupes = sorted({c.value for c in codes if codes.count(c) > 1})
        if dupes:
            problems.append(f"parameters listed twice: {', '.join(dupes)}")
        if self.kind.is_emission and self.facility is None:
            problems.append("an emission source needs 'facility' (a facilities[].id)")
        if not self.kind.is_emission and self.facility is not None:
            problems.append("'facility' is for emission sources only")
        if self.permitted_flow_m3_per_day is not None and self.kind != SourceKind.WASTEWATER:
            problems.append("'permitted_flow_m3_per_day' is for wastewater sources only")
        if self.permitted_flow_m3_per_hour is not None and self.kind != SourceKind.STACK:
            problems.append("'permitted_flow_m3_per_hour' is for stack sources only")
        if (self.sector is not None or self.fuel is not None) and self.kind != SourceKind.STACK:
            problems.append("'sector' and 'fuel' are for stack sources only")
        if self.reference_o2 is not None and self.kind != SourceKind.STACK:
            problems.append("'reference_o2' is for stack sources only")
        elif self.reference_o2 is not None and Parameter.O2 not in codes:
            problems.append("'reference_o2' needs the stack to report O2 (the correction uses it)")
        for i, limit in enumerate(self.limits):
            rule = REGULATION_RULES[limit.regulation]
            if limit.regulation in CLASSIFICATION_ONLY:
                problems.append(
                    f"limits[{i}]: {limit.regulation} classifies the water body, it is not a "
                    "limit anyone is held to; give the station's 'target_class' instead "
                    "(docs/regulations.md §4.1)"
                )
                continue
            if rule.kind != self.kind:
                problems.append(
                    f"limits[{i}]: {limit.regulation} applies to {rule.kind} sources, "
                    f"not {self.kind}"
                )
            unmeasured = sorted(p.value for p in limit.overrides if p not in codes)
            if unmeasured:
                problems.append(
                    f"limits[{i}].overrides: {', '.join(unmeasured)} not measured here "
                    f"(measured: {', '.join(c.value for c in codes)})"
                )
        if problems:
            raise ValueError("; ".join(problems))
        return self

    def parameter(self, code: Parameter | str) -> ParameterSpec | None:
        for spec in self.parameters:
            if spec.code == code:
                return spec
        return None

    def interval_for(self, code: Parameter | str) -> int:
        spec = self.parameter(code)
        if spec is None:
            measured = ", ".join(p.code.value for p in self.parameters)
            raise KeyError(f"{self.id} does not measure {code!r} (measured: {measured})")
        return spec.interval_s or self.interval_s


class Registry(_Model):
    """All sources and facilities; build with :func:`load_registry` or ``model_validate``."""

    version: int = 1
    note: str = ""
    facilities: list[Facility] = Field(default_factory=list)
    sources: list[Source]

    _by_id: dict[str, Source] = PrivateAttr(default_factory=dict)
    _by_ftp: dict[tuple[str, str, str], Source] = PrivateAttr(default_factory=dict)
    _facilities: dict[str, Facility] = PrivateAttr(default_factory=dict)

    @model_validator(mode="before")
    @classmethod
    def _stacks_inherit(cls, data: Any) -> Any:
        """A stack without its own sector/fuel takes the facility's (the O2 reference needs
        both on every stack)."""
        if not isinstance(data, dict):
            return data
        facilities = {f.get("id"): f for f in data.get("facilities") or [] if isinstance(f, dict)}
        sources = data.get("sources")
        if not isinstance(sources, list):
            return data
        out = []
        for src in sources:
            fac = facilities.get(src.get("facility")) if isinstance(src, dict) else None
            if fac is not None and src.get("kind") == SourceKind.STACK.value:
                src = dict(src)
                src.setdefault("sector", fac.get("sector"))
                if src.get("fuel") is None and fac.get("fuel") is not None:
                    src["fuel"] = fac.get("fuel")
            out.append(src)
        return {**data, "sources": out}

    @model_validator(mode="after")
    def _cross_check(self) -> Registry:
        problems: list[str] = []
        problems += _duplicates("facilities", [f.id for f in self.facilities])
        problems += _duplicates("sources", [s.id for s in self.sources])
        ftp_names = ["_".join(s.ftp.triple) for s in self.sources]
        problems += _duplicates("sources[].ftp", ftp_names)
        by_facility = {f.id: f for f in self.facilities}
        for s in self.sources:
            if s.facility is not None and s.facility not in by_facility:
                known = ", ".join(sorted(by_facility)) or "none defined"
                problems.append(f"sources[{s.id}].facility: '{s.facility}' is not one of: {known}")
            facility = by_facility.get(s.facility or "")
            if facility is not None and facility.status == "new":
                problems += [
                    f"sources[{s.id}].limits[{i}]: {ls.regulation} is replaced by "
                    f"{REPLACED_BY[ls.regulation]}; facility {facility.id} is 'new' and is held "
                    "to the replacement (give 'permit_clause' if its permit imposes the old one)"
                    for i, ls in enumerate(s.limits)
                    if ls.regulation in REPLACED_BY and not ls.permit_clause
                ]
        with_points = {s.facility for s in self.sources}
        problems += [
            f"facilities[{f.id}]: no monitoring point refers to it (sources[].facility)"
            for f in self.facilities
            if f.id not in with_points
        ]
        if problems:
            raise ValueError("\n".join(problems))
        self._by_id = {s.id: s for s in self.sources}
        self._by_ftp = {s.ftp.triple: s for s in self.sources}
        self._facilities = by_facility
        for s in self.sources:
            if s.facility is not None:
                s._status = by_facility[s.facility].status
        return self

    def get(self, source_id: str) -> Source:
        try:
            return self._by_id[source_id]
        except KeyError:
            raise KeyError(
                f"unknown source id {source_id!r} ({len(self._by_id)} sources registered)"
            ) from None

    def find(self, source_id: str) -> Source | None:
        return self._by_id.get(source_id)

    def by_ftp(self, province: str, facility: str, station: str) -> Source | None:
        return self._by_ftp.get((province.upper(), facility.upper(), station.upper()))

    def facility(self, facility_id: str) -> Facility:
        return self._facilities[facility_id]

    def points_of(self, facility_id: str) -> list[Source]:
        """A facility's monitoring points (outfalls and stacks), in registry order."""
        return [s for s in self.sources if s.facility == facility_id]

    def of_kind(self, kind: SourceKind) -> list[Source]:
        return [s for s in self.sources if s.kind == kind]


def _duplicates(what: str, ids: list[str]) -> list[str]:
    dupes = sorted({i for i in ids if ids.count(i) > 1})
    return [f"{what}: '{d}' is used more than once" for d in dupes]


# ---------------------------------------------------------------------------------------------
# loading and error formatting


def load_registry(path: Path | None = None) -> Registry:
    """Read and validate a registry file; raises RegistryError listing every problem."""
    path = path or DEFAULT_PATH
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise RegistryError([f"cannot read: {exc.__class__.__name__}: {exc}"], str(path)) from exc
    return parse_registry(text, str(path))


def parse_registry(text: str, path: str | None = None) -> Registry:
    """Validate registry YAML text (pure: no file access)."""
    try:
        data = yaml.load(text, Loader=_YAML_LOADER)
    except yaml.YAMLError as exc:
        raise RegistryError([f"not valid YAML: {exc}"], path) from exc
    if not isinstance(data, dict):
        raise RegistryError(["top level must be a mapping with 'sources:'"], path)
    try:
        return Registry.model_validate(data)
    except ValidationError as exc:
        raise RegistryError(format_validation_error(exc, data), path) from None


def format_validation_error(exc: ValidationError, data: Any) -> list[str]:
    """One line per pydantic error: ``sources[ID].field: problem (allowed values)``."""
    lines = []
    for err in exc.errors():
        where = _location(err["loc"], data)
        lines += [f"{where}: {msg}" if where else msg for msg in _messages(err)]
    return lines


def _location(loc: tuple[int | str, ...], data: Any) -> str:
    out = ""
    node = data
    for part in loc:
        label: str
        if isinstance(part, int):
            item = node[part] if isinstance(node, list) and part < len(node) else None
            ident = item.get("id") if isinstance(item, dict) else None
            label = f"[{ident}]" if isinstance(ident, str) else f"[{part}]"
            node = item
        else:
            label = f".{part}" if out else str(part)
            node = node.get(part) if isinstance(node, dict) else None
        out += label
    return out


def _messages(err: Any) -> list[str]:
    kind, ctx, value = err["type"], err.get("ctx") or {}, err.get("input")
    if kind in {"enum", "literal_error"}:
        allowed = str(ctx.get("expected", "")).replace(" or ", ", ").replace("'", "")
        return [f"{value!r} is not one of: {allowed}"]
    if kind == "extra_forbidden":
        return [f"unknown field (got {value!r}); check the spelling"]
    if kind == "missing":
        return ["required field is missing"]
    if kind == "value_error":
        text = str(ctx.get("error", err["msg"]))
        return text.split("\n")
    return [f"{err['msg']} (got {_short(value)})"]


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def check_file(path: Path) -> list[str]:
    """Problems of an edited registry file, one per line; empty when it is valid."""
    try:
        load_registry(path)
    except RegistryError as exc:
        return [f"{path}: {line}" for line in exc.lines]
    return []


# ---------------------------------------------------------------------------------------------
# listings for ``quantrac stations``


def format_table(registry: Registry) -> str:
    """A plain-text table of every source, one line each."""
    header = ("id", "kind", "district", "interval", "parameters", "facility", "name")
    rows = [header]
    for s in registry.sources:
        params = ",".join(p.code.value for p in s.parameters)
        rows.append(
            (
                s.id,
                s.kind.value,
                s.district.value,
                f"{s.interval_s}s",
                params,
                s.facility or "",
                s.name,
            )
        )
    widths = [max(len(r[i]) for r in rows) for i in range(len(header) - 1)]
    lines = [
        "  ".join([*(c.ljust(w) for c, w in zip(r[:-1], widths, strict=True)), r[-1]]).rstrip()
        for r in rows
    ]
    # issue 19: each facility once, with its status, permit and points
    lines.append("")
    for f in registry.facilities:
        points = ",".join(p.id for p in registry.points_of(f.id))
        lines.append(f"{f.id:<10} {f.status:<8} {f.permit.number:<16} {points}  {f.name}")
    counts = {k: len(registry.of_kind(k)) for k in SourceKind}
    summary = ", ".join(f"{n} {k.value}" for k, n in counts.items())
    n_sources, n_facilities = len(registry.sources), len(registry.facilities)
    lines.append(f"{n_sources} sources ({summary}); {n_facilities} facilities")
    return "\n".join(lines)


def to_json(registry: Registry) -> str:
    """The whole registry as JSON (dates ISO, enums as their values)."""
    return json.dumps(registry.model_dump(mode="json"), ensure_ascii=False, indent=2)


__all__ = [
    "DEFAULT_PATH",
    "District",
    "Facility",
    "FtpIdentity",
    "Fuel",
    "LimitOverride",
    "LimitSet",
    "ParameterSpec",
    "Permit",
    "Registry",
    "RegulationId",
    "Source",
    "check_file",
    "format_table",
    "load_registry",
    "parse_registry",
    "to_json",
]
