"""Surface water: the day's QCVN 08:2023 class and VN_WQI (Decision 1460/QĐ-TCMT). Pure.

QCVN 08:2023/BTNMT classifies a water body; it does not limit a polluter. A surface-water
station's daily means therefore give the water a *class* (A best … D worst) and an index, and a
class worse than the station's target class (registry ``target_class``) is a department water
quality alert — never a source violation (docs/regulations.md §4.1, §4.3).

Class of a day (the rule implemented here):
- every measured parameter of the classification table (``columns`` rules of
  ``thresholds/catalogue/qcvn_08_2023.yaml``) gets the best class whose cell its daily mean meets;
  the cells are nested (a value meeting A meets B and C), so failing a known cell also fails every
  better class, and a mean that meets none of A, B, C is class D ("worse than C");
- a parameter whose class depends on a cell the source hides (a gap, e.g. TSS class B, DO class A)
  is *not classified*: it is listed in ``skipped`` with the classes it could be;
- the day's class is the worst class over the classified parameters. Why the worst: the standard
  states each class as the set of limits the water must meet together, so water that meets class B
  for pH but only class C for COD is not class B water. With no classified parameter there is no
  class (None).
- Table 1 (health-related limits, every class) does not change the class; a daily mean above one
  is listed in ``over_table1``.

VN_WQI of a day: the sub-indices the measured parameters allow (tables in
``thresholds/data/vn_wqi_1460.yaml``, all ``verified: false``), grouped I–V, combined with the final
formula; groups without data count as a factor of 1, and ``meets_minimum`` says whether the
decision's minimum (3 of 5 groups, 3 parameters of group IV) is met.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import yaml

from thresholds.catalogue import Catalogue, RuleKind

CLASSES = ("A", "B", "C", "D")
QCVN_08 = "QCVN_08_2023"
WQI_PATH = Path(__file__).with_name("data") / "vn_wqi_1460.yaml"

# Registry parameter code → the code the VN_WQI tables use (the registry's NH4 is NH4+ as N, the
# unit the QCVN tables are written in; TN, TP, TSS, turbidity, EC are not VN_WQI parameters).
WQI_CODES = {"pH": "pH", "DO": "DO", "BOD5": "BOD5", "COD": "COD", "TOC": "TOC", "NH4": "NH4"}
TEMPERATURE = "Temp"


def worse(a: str, b: str) -> str:
    return a if CLASSES.index(a) >= CLASSES.index(b) else b


def is_worse(water_class: str | None, target: str | None) -> bool:
    """True when ``water_class`` is a worse class than ``target`` (the alert condition)."""
    if water_class is None or target is None:
        return False
    return CLASSES.index(water_class) > CLASSES.index(target)


# --- QCVN 08:2023 class ---------------------------------------------------------------------


@dataclass(frozen=True)
class ClassResult:
    water_class: str | None  # worst class over the classified parameters
    classes: dict[str, str]  # parameter → its class
    skipped: dict[str, str]  # parameter → why it is not classified
    over_table1: list[str] = field(default_factory=list)  # above a Table 1 health limit


def _meets(kind: RuleKind, lo: float | None, hi: float | None, value: float) -> bool:
    if kind in (RuleKind.UPPER, RuleKind.RANGE) and hi is not None and value > hi:
        return False
    return not (kind in (RuleKind.LOWER, RuleKind.RANGE) and lo is not None and value < lo)


def parameter_class(
    kind: RuleKind, cells: Mapping[str, tuple[float | None, float | None] | None], value: float
) -> tuple[str, str]:
    """(best, worst) class ``value`` can be in; equal when the known cells decide it.

    ``cells`` maps A, B, C to (min, max), or to None when the cell is a gap.
    """
    met: list[bool | None] = []
    for column in CLASSES[:3]:
        cell = cells.get(column)
        met.append(None if cell is None else _meets(kind, cell[0], cell[1], value))
    # nested cells: failing a known cell fails every better class too
    last_fail = max((i for i, m in enumerate(met) if m is False), default=-1)
    resolved: list[bool | None] = [False if i <= last_fail else m for i, m in enumerate(met)]
    best: int | None = None
    for i, m in enumerate(resolved):
        if m is True:
            return (CLASSES[best if best is not None else i], CLASSES[i])
        if m is None and best is None:
            best = i
    return (CLASSES[best if best is not None else 3], "D")


def classify(means: Mapping[str, float], catalogue: Catalogue) -> ClassResult:
    """The day's class from daily means keyed by parameter code (registry units = table units)."""
    reg = catalogue[QCVN_08]
    classes: dict[str, str] = {}
    skipped: dict[str, str] = {}
    over: list[str] = []
    for rule in reg.rules:
        value = means.get(rule.parameter)
        if value is None:
            continue
        if rule.limit is not None:  # Table 1: every class
            if not _meets(rule.kind, rule.limit.min, rule.limit.max, value):
                over.append(rule.parameter)
            continue
        cols = rule.columns or {}
        cells = {
            c: (None if (cell := cols.get(c)) is None or cell.is_gap else (cell.min, cell.max))
            for c in CLASSES[:3]
        }
        best, worst = parameter_class(rule.kind, cells, value)
        if best == worst:
            classes[rule.parameter] = best
        else:
            gaps = ", ".join(c for c in CLASSES[:3] if cells[c] is None)
            skipped[rule.parameter] = f"{best}–{worst}: cell {gaps} not verified ({rule.table})"
    water_class: str | None = None
    for c in classes.values():
        water_class = c if water_class is None else worse(water_class, c)
    return ClassResult(water_class, classes, skipped, sorted(over))


# --- VN_WQI -----------------------------------------------------------------------------------


@cache
def wqi_tables(path: Path = WQI_PATH) -> dict[str, Any]:
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    assert isinstance(data, dict) and data.get("id") == "VN_WQI_1460", path
    return data


def _line(x0: float, x1: float, q0: float, q1: float, x: float) -> float:
    """Formulas 1 and 2 of the decision: the straight line through (x0, q0) and (x1, q1)."""
    return q0 + (q1 - q0) * (x - x0) / (x1 - x0)


def _piecewise(bps: list[float], qs: list[float], x: float) -> float:
    for i in range(len(bps) - 1):
        if bps[i] <= x <= bps[i + 1]:
            return _line(bps[i], bps[i + 1], qs[i], qs[i + 1], x)
    raise ValueError(f"{x} outside {bps[0]}..{bps[-1]}")


def do_saturation(temp_c: float) -> float:
    """DO at saturation (mg/L) for water at ``temp_c`` (the decision's cubic in T)."""
    a, b, c, d = wqi_tables()["do_saturation"]["coefficients"]
    return float(a + b * temp_c + c * temp_c**2 + d * temp_c**3)


def sub_index(parameter: str, value: float, temp_c: float | None = None) -> float | None:
    """WQI_SI of one parameter (its table code), None when it cannot be computed."""
    t = wqi_tables()
    if parameter == "pH":
        spec = t["ph"]
        bps, qs = spec["breakpoints"], spec["q"]
        if value < bps[0] or value > bps[-1]:
            return float(spec["outside"])
        return _piecewise(bps, qs, value)
    if parameter == "DO":
        if temp_c is None:
            return None  # DO % saturation needs the water temperature
        spec = t["do_saturation"]
        pct = value / do_saturation(temp_c) * 100
        bps, qs = spec["breakpoints"], spec["q"]
        if pct < bps[0] or pct > bps[-1]:
            return float(spec["outside"])
        return _piecewise(bps, qs, pct)
    if parameter in t["threshold"]:
        return 100.0 if value <= t["threshold"][parameter]["limit"] else 10.0
    spec = t["upper"].get(parameter)
    if spec is None:
        return None
    bps, qs = spec["breakpoints"], spec["q"]
    if value < bps[0] or (value == bps[0] and "below_first" not in spec):
        return float(spec.get("below_first", 100))
    if value > bps[-1]:
        return float(spec.get("above_last", 10))
    return _piecewise(bps, qs, value)


@dataclass(frozen=True)
class WqiResult:
    value: int | None
    groups: dict[str, float]  # group (I..V) → its WQI
    sub_indices: dict[str, float]  # table code → WQI_SI
    meets_minimum: bool  # 3 of 5 groups, 3 parameters of group IV (Decision 1460)
    note: str = ""


def vn_wqi(means: Mapping[str, float]) -> WqiResult:
    """VN_WQI from daily means keyed by registry code (DO needs ``Temp`` for % saturation)."""
    t = wqi_tables()
    temp = means.get(TEMPERATURE)
    subs: dict[str, float] = {}
    for code, value in means.items():
        name = WQI_CODES.get(code, code)
        if name == "pH" or name == "DO" or name in t["threshold"] or name in t["upper"]:
            si = sub_index(name, value, temp)
            if si is not None:
                subs[name] = si
    by_group: dict[str, list[float]] = {}
    for group, spec in t["groups"].items():
        vals = [subs[p] for p in spec["parameters"] if p in subs]
        if vals:
            by_group[group] = vals
    groups: dict[str, float] = {}
    for group, vals in by_group.items():
        how = t["groups"][group]["aggregate"]
        if how == "geometric_mean":
            groups[group] = math.prod(vals) ** (1 / len(vals))
        else:
            groups[group] = sum(vals) / len(vals)
    n_iv = len(by_group.get("IV", []))
    minimum = t["minimum"]
    meets = len(groups) >= minimum["groups"] and n_iv >= minimum["group_iv_parameters"]
    if "IV" not in groups:
        return WqiResult(None, groups, subs, False, "no group IV parameter: no VN_WQI")
    factor = 1.0
    for group in ("I", "II", "III"):
        factor *= groups.get(group, 100.0) / 100
    core = math.sqrt(groups["IV"] * groups["V"]) if "V" in groups else groups["IV"]
    value = math.floor(factor * core + 0.5)
    note = (
        ""
        if meets
        else (
            f"groups {', '.join(sorted(groups))} only ({n_iv} of group IV): below the decision's "
            f"minimum of {minimum['groups']} groups and {minimum['group_iv_parameters']} group IV "
            "parameters — for information, not for publication"
        )
    )
    return WqiResult(value, groups, subs, meets, note)


@dataclass(frozen=True)
class WqiCategory:
    low: int
    high: int
    name_vi: str
    name_en: str
    colour_en: str
    hex: str


def wqi_category(value: int | None) -> WqiCategory | None:
    """The band of Table 1 (six bands, 91–100 blue … below 10 brown)."""
    if value is None:
        return None
    for c in wqi_tables()["categories"]:
        if c["low"] <= value <= c["high"]:
            r, g, b = c["rgb"]
            return WqiCategory(
                c["low"],
                c["high"],
                c["name_vi"],
                c["name_en"],
                c["colour_en"],
                f"#{r:02x}{g:02x}{b:02x}",
            )
    return None


# --- one station's days (the worker's table state) -------------------------------------------


@dataclass(frozen=True)
class WaterDay:
    day: str  # local date, ISO
    water_class: str | None
    wqi: int | None
    means: dict[str, float]
    classes: dict[str, str]
    skipped: dict[str, str]
    over_table1: list[str]
    wqi_groups: dict[str, float]
    wqi_meets_minimum: bool
    wqi_note: str
    revision: int


@dataclass
class StationDays:
    """Daily means per local day of one surface-water station; the newest ``keep`` days."""

    days: dict[str, dict[str, float]] = field(default_factory=dict)
    revisions: dict[str, int] = field(default_factory=dict)
    keep: int = 10

    def to_dict(self) -> dict[str, Any]:
        return {"d": {k: dict(v) for k, v in self.days.items()}, "r": dict(self.revisions)}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> StationDays:
        return cls({k: dict(v) for k, v in d["d"].items()}, dict(d["r"]))

    def add(self, day: str, parameter: str, value: float, catalogue: Catalogue) -> WaterDay | None:
        """Record one parameter's daily mean; the day re-evaluated, or None for a day too old."""
        if day not in self.days and len(self.days) >= self.keep and day < min(self.days):
            return None
        means = self.days.setdefault(day, {})
        means[parameter] = value
        self.revisions[day] = self.revisions.get(day, 0) + 1
        for old in sorted(self.days)[: max(0, len(self.days) - self.keep)]:
            del self.days[old]
            self.revisions.pop(old, None)
        return evaluate(day, means, catalogue, self.revisions[day])


def evaluate(day: str, means: Mapping[str, float], catalogue: Catalogue, revision: int) -> WaterDay:
    cls = classify(means, catalogue)
    wqi = vn_wqi(means)
    return WaterDay(
        day=day,
        water_class=cls.water_class,
        wqi=wqi.value,
        means=dict(sorted(means.items())),
        classes=cls.classes,
        skipped=cls.skipped,
        over_table1=cls.over_table1,
        wqi_groups={k: round(v, 2) for k, v in wqi.groups.items()},
        wqi_meets_minimum=wqi.meets_minimum,
        wqi_note=wqi.note,
        revision=revision,
    )
