"""Discharge-flow classes (issue 19): QCVN 40:2025/BTNMT writes BOD5, COD and TSS per band of the
outfall's discharge flow (the shape of its drafts: the 2021 draft's "≤ 5000 m³ per day" band
[S46], docs/regulations.md §5.2a). The bands' bounds and every value of the final text are
UNVERIFIED, so the shipped rows are gaps; the mechanism is tested on a catalogue with values.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import pytest
import yaml

from core.errors import RegistryError
from stations.registry import DEFAULT_PATH, load_registry, parse_registry
from tests.unit.limit_fakes import HEADER, LimitSet, Param
from thresholds.catalogue import Catalogue, CatalogueError, load_catalogue
from thresholds.limits import (
    LimitResolutionError,
    catalogue_gaps,
    flow_class_lines,
    flow_class_of,
    resolve_limits,
)

AT = date(2099, 6, 1)


@dataclass(frozen=True)
class Outfall:
    id: str
    parameters: list[Param]
    limits: list[LimitSet]
    permitted_flow_m3_per_day: float | None = None


WATER = [Param("COD", "mg/L"), Param("pH", "-"), Param("TSS", "mg/L")]

BANDS = """\
flow_basis: "permitted discharge flow, m³/day"
flow_classes:
  F1: {label: "F ≤ 2.000 m³/ngày", up_to: 2000}
  F2: {label: "2.000 < F ≤ 20.000 m³/ngày", above: 2000, up_to: 20000}
  F3: {label: "F > 20.000 m³/ngày", above: 20000, verified: false, note: "band from a draft"}
"""

# COD per band (columns A/B), pH for every flow, TSS: a general row and a band-F3 row.
RULES = """\
rules:
  - {parameter: COD, label: COD, kind: upper, unit: mg/L, table: T1, row: '5', flow_class: F1,
     columns: {A: {max: 75}, B: {max: 150}}}
  - {parameter: COD, label: COD, kind: upper, unit: mg/L, table: T1, row: '5', flow_class: F2,
     columns: {A: {max: 60}, B: {max: 120}}}
  - {parameter: COD, label: COD, kind: upper, unit: mg/L, table: T1, row: '5', flow_class: F3,
     columns: {A: {max: 50}, B: {max: 100}}}
  - {parameter: pH, label: pH, kind: range, unit: '-', table: T1, row: '3',
     columns: {A: {min: 6, max: 9}, B: {min: 5.5, max: 9}}}
  - {parameter: TSS, label: TSS, kind: upper, unit: mg/L, table: T1, row: '6',
     columns: {A: {max: 50}, B: {max: 100}}}
  - {parameter: TSS, label: TSS, kind: upper, unit: mg/L, table: T1, row: '6', flow_class: F3,
     columns: {A: {max: 40}, B: {max: 80}}}
"""


def write(tmp_path: Path, text: str) -> Path:
    (tmp_path / "qcvn_99_2099.yaml").write_text(HEADER + text, encoding="utf-8")
    return tmp_path


@pytest.fixture()
def banded(tmp_path: Path) -> Catalogue:
    return load_catalogue(write(tmp_path, BANDS + RULES))


def outfall(flow: float | None, column: str = "B", stated: str | None = None) -> Outfall:
    limits = [LimitSet("QCVN_99_2099", column, flow_class=stated)]
    return Outfall("HD-NT-99", WATER, limits, flow)


def by_param(source: Outfall, catalogue: Catalogue) -> dict[str, Any]:
    return {lim.parameter: lim for lim in resolve_limits(source, catalogue, AT)}


# ---- the shipped QCVN 40:2025 catalogue ------------------------------------------------------


def test_qcvn_40_2025_bands_are_the_drafts_and_unverified() -> None:
    # 2021 draft [S46]: BOD/COD/TSS by total discharge volume, "≤ 5000 m³ per day" and above
    reg = load_catalogue()["QCVN_40_2025"]
    assert list(reg.flow_classes) == ["F1", "F2"]
    assert (reg.flow_classes["F1"].above, reg.flow_classes["F1"].up_to) == (None, 5000)
    assert (reg.flow_classes["F2"].above, reg.flow_classes["F2"].up_to) == (5000, None)
    assert not any(band.verified for band in reg.flow_classes.values())
    assert (reg.flow_class_of(5000), reg.flow_class_of(5000.5)) == ("F1", "F2")
    banded = {(r.parameter, r.flow_class) for r in reg.rules if r.flow_class}
    assert banded == {(p, f) for p in ("BOD5", "COD", "TSS") for f in ("F1", "F2")}
    # no row for every flow left beside the bands, and no value invented in any band
    assert not [r for r in reg.rules if r.parameter in {"BOD5", "COD", "TSS"} and not r.flow_class]
    assert all(cell.is_gap for r in reg.rules for _, cell in r.cells())


def test_shipped_outfalls_show_their_band_derived_from_the_permitted_flow() -> None:
    registry, catalogue = load_registry(), load_catalogue()
    big = registry.get("HD-NT-01")  # permitted 18 000 m³/day, existing: QCVN 40:2025 from 2032
    (line,) = flow_class_lines(big, catalogue, date(2032, 1, 1))
    assert line.startswith("QCVN 40:2025/BTNMT: lưu lượng F2 (F > 5.000 m³/ngày đêm")
    assert "permitted flow 18000 m³/ngày đêm; band UNVERIFIED" in line
    assert flow_class_lines(big, catalogue, date(2031, 12, 31)) == []  # QCVN 40:2011: no bands
    gaps = catalogue_gaps(big, catalogue, date(2032, 1, 1))
    cod = [g for g in gaps if g.startswith("QCVN_40_2025:B:COD:1h: no value catalogued")]
    assert len(cod) == 1 and "lưu lượng F2" in cod[0]
    small = registry.get("HD-NT-03")  # 4 800 m³/day
    (line,) = flow_class_lines(small, catalogue, date(2032, 1, 1))
    assert "lưu lượng F1 (F ≤ 5.000 m³/ngày đêm" in line


# ---- resolution picks the point's band -------------------------------------------------------


@pytest.mark.parametrize(
    ("flow", "cod"),
    [
        pytest.param(500, 150, id="F1"),
        pytest.param(2000, 150, id="F1-upper-bound-inclusive"),
        pytest.param(2000.1, 120, id="F2"),
        pytest.param(20000, 120, id="F2-upper-bound-inclusive"),
        pytest.param(25000, 100, id="F3"),
    ],
)
def test_band_row_from_permitted_flow(banded: Catalogue, flow: float, cod: float) -> None:
    limits = by_param(outfall(flow), banded)
    assert limits["COD"].max == cod
    assert limits["COD"].rule_id == "QCVN_99_2099:B:COD:1h"  # one band per point: same id
    assert (limits["pH"].min, limits["pH"].max) == (5.5, 9)  # a row for every flow


def test_band_row_replaces_the_row_for_every_flow(banded: Catalogue) -> None:
    assert by_param(outfall(1000), banded)["TSS"].max == 100  # general row
    tss = by_param(outfall(30000), banded)["TSS"]
    assert tss.max == 80 and "lưu lượng F > 20.000 m³/ngày" in tss.legal_basis


def test_unverified_band_makes_its_limits_unverified(banded: Catalogue) -> None:
    f2, f3 = by_param(outfall(5000), banded), by_param(outfall(30000), banded)
    assert f2["COD"].verified and not f3["COD"].verified
    assert "flow band F3 UNVERIFIED" in f3["COD"].note


def test_stated_band_agrees_or_is_an_error(banded: Catalogue) -> None:
    assert by_param(outfall(None, stated="F2"), banded)["COD"].max == 120
    assert by_param(outfall(3000, stated="F2"), banded)["COD"].max == 120
    choice = flow_class_of(outfall(None, stated="F2"), outfall(None, stated="F2").limits[0], banded)
    assert choice.flow_class == "F2" and "stated by the permit" in choice.text
    with pytest.raises(LimitResolutionError, match=r"HD-NT-99.*'F1' contradicts.*3000.*'F2'"):
        resolve_limits(outfall(3000, stated="F1"), banded, AT)
    with pytest.raises(LimitResolutionError, match=r"'F9' not valid; allowed: F1, F2, F3"):
        resolve_limits(outfall(3000, stated="F9"), banded, AT)


def test_band_given_to_a_regulation_without_bands_is_an_error(tmp_path: Path) -> None:
    catalogue = load_catalogue(write(tmp_path, "rules: []\n"))
    with pytest.raises(LimitResolutionError, match="defines no flow classes"):
        resolve_limits(outfall(100, stated="F1"), catalogue, AT)


def test_unknown_flow_checks_no_banded_row_and_says_why(banded: Catalogue) -> None:
    source = outfall(None)
    limits = by_param(source, banded)
    assert "COD" not in limits and limits["TSS"].max == 100  # TSS falls back to its general row
    gaps = catalogue_gaps(source, banded, AT)
    assert gaps == [
        "QCVN_99_2099:B:COD:1h: depends on the discharge-flow class (F1, F2, F3), lưu lượng xả "
        "thải unknown (no permitted_flow_m3_per_day, no flow_class) — not checked"
    ]


# ---- the loader validates the bands --------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param(
            BANDS.replace("above: 2000, up_to", "above: 2500, up_to") + "rules: []\n",
            ["flow_classes.F2", "starts above 2500", "ends at 2000", "contiguous"],
            id="gap-between-bands",
        ),
        pytest.param(
            BANDS.replace("above: 2000, up_to", "above: 1500, up_to") + "rules: []\n",
            ["flow_classes.F2", "starts above 1500", "ends at 2000"],
            id="overlapping-bands",
        ),
        pytest.param(
            BANDS.replace("above: 20000,", "above: 20000, up_to: 90000,") + "rules: []\n",
            ["the last band ends at 90000"],
            id="last-band-bounded",
        ),
        pytest.param(
            BANDS.replace('flow_basis: "permitted discharge flow, m³/day"\n', "") + "rules: []\n",
            ["flow_classes need flow_basis"],
            id="bands-without-basis",
        ),
        pytest.param(
            BANDS.replace(', verified: false, note: "band from a draft"', ", verified: false")
            + "rules: []\n",
            ["flow_classes.F3", "verified: false needs a note"],
            id="unverified-band-needs-note",
        ),
        pytest.param(
            BANDS + "rules:\n  - {parameter: COD, label: x, kind: upper, unit: mg/L, table: T,"
            " row: '1', flow_class: F4, limit: {max: 1}}\n",
            ["rules[0] (COD)", "flow_class 'F4'", "allowed: F1, F2, F3"],
            id="rule-band-not-defined",
        ),
        pytest.param(
            BANDS + "rules:\n"
            "  - {parameter: COD, label: x, kind: upper, unit: mg/L, table: T, row: '1',"
            " flow_class: F1, limit: {max: 1}}\n"
            "  - {parameter: COD, label: x, kind: upper, unit: mg/L, table: T, row: '1',"
            " flow_class: F1, limit: {max: 2}}\n",
            ["rules[1] (COD)", "overlaps"],
            id="two-rows-for-one-band",
        ),
    ],
)
def test_band_validation_names_the_problem(tmp_path: Path, text: str, expected: list[str]) -> None:
    with pytest.raises(CatalogueError) as info:
        load_catalogue(write(tmp_path, text))
    for fragment in expected:
        assert fragment in str(info.value)


# ---- the registry carries a stated band ----------------------------------------------------


def _raw() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load(DEFAULT_PATH.read_text(encoding="utf-8"))
    return copy.deepcopy(data)


def _limit_sets(data: dict[str, Any], source_id: str) -> list[dict[str, Any]]:
    (src,) = [s for s in data["sources"] if s["id"] == source_id]
    sets: list[dict[str, Any]] = src["limits"]
    return sets


def test_registry_accepts_a_stated_band_for_wastewater() -> None:
    data = _raw()
    _limit_sets(data, "HD-NT-01")[1]["flow_class"] = "F2"  # the QCVN_40_2025 set
    registry = parse_registry(yaml.safe_dump(data, allow_unicode=True))
    point = registry.get("HD-NT-01")
    assert point.limits[1].flow_class == "F2"
    (line,) = flow_class_lines(point, load_catalogue(), date(2032, 1, 1))
    assert "lưu lượng F2" in line and "stated by the permit" in line


def test_registry_rejects_a_band_on_a_stack_regulation() -> None:
    data = _raw()
    stack = next(s for s in data["sources"] if s["kind"] == "stack" and s.get("limits"))
    stack["limits"][0]["flow_class"] = "F1"
    with pytest.raises(RegistryError) as info:
        parse_registry(yaml.safe_dump(data, allow_unicode=True))
    problem = "'flow_class' (discharge-flow band) is for wastewater"
    assert any(problem in line for line in info.value.lines)


def test_every_shipped_outfall_under_qcvn_40_2025_has_a_band() -> None:
    # Every point that may be held to QCVN 40:2025 must fall in one of its bands (permitted flow
    # or a stated band), else its BOD5/COD/TSS rows could never apply.
    registry, catalogue = load_registry(), load_catalogue()
    checked = 0
    for source in registry.sources:
        for limit_set in source.limits:
            if limit_set.regulation == "QCVN_40_2025":
                choice = flow_class_of(source, limit_set, catalogue)
                assert choice.flow_class in {"F1", "F2"}, source.id
                checked += 1
    assert checked >= 20
