"""Per-source limit resolution: columns, coefficients, dates, permit overrides, units, output."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import date
from typing import Any

import pytest

from tests.unit.limit_fakes import LimitSet, Param
from thresholds.catalogue import Basis, Catalogue, RuleKind, load_catalogue
from thresholds.limits import (
    Limit,
    LimitResolutionError,
    format_limits,
    limits_to_json,
    resolve_limits,
)


@dataclass(frozen=True)
class Source:
    id: str
    kind: str
    parameters: list[Param]
    limits: list[LimitSet]


@dataclass(frozen=True)
class Override:  # attribute-style, like the registry's pydantic LimitOverride
    max: float | None = None
    min: float | None = None
    basis: str = ""


AT = date(2026, 11, 24)
WATER = [Param("COD", "mg/L"), Param("pH", "-"), Param("TSS", "mg/L"), Param("Temp", "°C")]


@pytest.fixture(scope="module")
def catalogue() -> Catalogue:
    return load_catalogue()


def outfall(*limit_sets: LimitSet, params: list[Param] | None = None) -> Source:
    return Source("HD-NT-03", "wastewater", params or WATER, list(limit_sets))


def by_id(limits: list[Limit]) -> dict[str, Limit]:
    return {lim.rule_id: lim for lim in limits}


def qcvn40(column: str = "B", kq: float = 0.9, kf: float = 1.0, **kw: Any) -> LimitSet:
    return LimitSet("QCVN_40_2011", column, {"Kq": kq, "Kf": kf}, **kw)


def test_cod_cmax_with_coefficients_and_legal_basis(catalogue: Catalogue) -> None:
    # QCVN 40:2011 Bảng 1 dòng 5 (COD) cột B: C = 150; Cmax = C × Kq × Kf
    cod = by_id(resolve_limits(outfall(qcvn40()), catalogue, AT))["QCVN_40_2011:B:COD:1h"]
    assert (cod.kind, cod.max, cod.min, cod.unit, cod.period) == (
        RuleKind.UPPER, 135.0, None, "mg/L", Basis.HOUR,
    )  # fmt: skip
    assert "QCVN 40:2011/BTNMT, Bảng 1, dòng 5 (COD), cột B" in cod.legal_basis
    assert "Cmax = C × Kq × Kf (§2.1.1) = 150 × 0.9 × 1 = 135" in cod.legal_basis
    assert cod.coefficients_applied and cod.verified and cod.effective_to == date(2031, 12, 31)


@pytest.mark.parametrize(
    ("column", "kq", "kf", "rule", "lo", "hi"),
    [
        pytest.param("A", 1.0, 1.0, "QCVN_40_2011:A:COD:1h", None, 75, id="40:2011-T1-row5-A"),
        pytest.param("A", 0.9, 1.1, "QCVN_40_2011:A:TSS:1h", None, 49.5, id="40:2011-T1-row6-A"),
        pytest.param("B", 0.6, 0.9, "QCVN_40_2011:B:TSS:1h", None, 54, id="40:2011-T1-row6-B"),
        # §2.1.2: pH, temperature, colour, coliform: Cmax = C (Kq, Kf not applied)
        pytest.param("A", 0.6, 0.9, "QCVN_40_2011:A:pH:1h", 6, 9, id="40:2011-T1-row3-pH-A"),
        pytest.param("B", 0.6, 0.9, "QCVN_40_2011:B:pH:1h", 5.5, 9, id="40:2011-T1-row3-pH-B"),
        pytest.param("B", 0.6, 0.9, "QCVN_40_2011:B:Temp:1h", None, 40, id="40:2011-T1-row1"),
    ],
)
def test_qcvn40_columns_and_coefficients(
    catalogue: Catalogue,
    column: str,
    kq: float,
    kf: float,
    rule: str,
    lo: float | None,
    hi: float,
) -> None:
    limit = by_id(resolve_limits(outfall(qcvn40(column, kq, kf)), catalogue, AT))[rule]
    assert (limit.min, limit.max) == (lo, hi)


@pytest.mark.parametrize(
    ("parameter", "unit", "column", "value"),
    [
        pytest.param("pH", "-", "B", 9, id="40:2011-2.1.2-pH"),
        pytest.param("Temp", "°C", "B", 40, id="40:2011-2.1.2-temperature"),
        pytest.param("Color", "Pt/Co", "A", 50, id="40:2011-2.1.2-colour-A"),
        pytest.param("Color", "Pt/Co", "B", 150, id="40:2011-2.1.2-colour-B"),
        pytest.param("Coliform", "MPN/100 mL", "B", 5000, id="40:2011-2.1.2-coliform"),
        pytest.param("GrossAlpha", "Bq/L", "B", 0.1, id="40:2011-2.1.2-gross-alpha"),
        pytest.param("GrossBeta", "Bq/L", "B", 1.0, id="40:2011-2.1.2-gross-beta"),
    ],
)
def test_exempt_rule_is_c_and_cites_the_clause(
    catalogue: Catalogue, parameter: str, unit: str, column: str, value: float
) -> None:
    # QCVN 40:2011/BTNMT §2.1.2: Cmax = C (Kq, Kf not applied) for temperature, colour, pH,
    # coliform, gross α and gross β, whatever the source's Kq and Kf (0.9 × 1 here).
    src = outfall(qcvn40(column), params=[Param(parameter, unit)])
    limit = by_id(resolve_limits(src, catalogue, AT))[f"QCVN_40_2011:{column}:{parameter}:1h"]
    assert limit.max == value
    assert "Cmax = C (§2.1.2: Kq, Kf not applied)" in limit.legal_basis
    assert not limit.coefficients_applied


def test_doubted_coefficients_flag_only_the_limits_they_multiply(catalogue: Catalogue) -> None:
    src = outfall(qcvn40(coefficients_verified=False, note="Kq/Kf not checked"))
    limits = by_id(resolve_limits(src, catalogue, AT))
    assert not limits["QCVN_40_2011:B:COD:1h"].verified
    assert limits["QCVN_40_2011:B:pH:1h"].verified


AIR = [Param("PM2.5", "µg/Nm3"), Param("CO", "mg/Nm3"), Param("NO2", "ug/m3")]


@pytest.mark.parametrize(
    ("at", "value", "effective_from", "effective_to"),
    [
        pytest.param(date(2025, 12, 31), 50, date(2023, 9, 12), date(2025, 12, 31), id="before"),
        pytest.param(date(2026, 1, 1), 45, date(2026, 1, 1), None, id="from-2026-01-01"),
    ],
)
def test_pm25_daily_switches_on_2026_01_01(
    catalogue: Catalogue,
    at: date,
    value: float,
    effective_from: date,
    effective_to: date | None,
) -> None:
    # QCVN 05:2023 Bảng 1, PM2,5 24 h: 50 µg/Nm³; 45 from 01/01/2026 — one rule id for both
    station = Source("HD-KK-01", "ambient_air", AIR, [LimitSet("QCVN_05_2023")])
    pm = by_id(resolve_limits(station, catalogue, at))["QCVN_05_2023:PM2.5:day"]
    assert (pm.max, pm.effective_from, pm.effective_to) == (value, effective_from, effective_to)


def test_ambient_units_are_converted_and_yearly_limits_not_checked(catalogue: Catalogue) -> None:
    station = Source("HD-KK-01", "ambient_air", AIR, [LimitSet("QCVN_05_2023")])
    limits = by_id(resolve_limits(station, catalogue, AT))
    co = limits["QCVN_05_2023:CO:1h"]  # Bảng 1 CO 1 h: 30 000 µg/Nm³ = 30 mg/Nm³
    assert (co.max, co.unit) == (30.0, "mg/Nm3") and "(= ≤ 30 mg/Nm3)" in co.legal_basis
    no2 = limits["QCVN_05_2023:NO2:1h"]  # µg/m³ vs µg/Nm³: compared as is, with a note
    assert no2.max == 200 and "reference conditions" in no2.note
    assert not limits["QCVN_05_2023:NO2:year"].checked and limits["QCVN_05_2023:NO2:1h"].checked


def test_surface_water_class_b(catalogue: Catalogue) -> None:
    params = [Param("DO", "mg/L"), Param("NH4", "mg/L"), Param("TSS", "mg/L"), Param("pH", "-")]
    station = Source("HD-NM-01", "surface_water", params, [LimitSet("QCVN_08_2023", "B")])
    limits = by_id(resolve_limits(station, catalogue, AT))
    assert limits["QCVN_08_2023:B:DO:1h"].kind is RuleKind.LOWER  # classification table, DO B
    assert limits["QCVN_08_2023:B:DO:1h"].min == 5.0
    assert limits["QCVN_08_2023:NH4:1h"].max == 0.3  # Bảng 1: every class, no column in the id
    assert not any(lim.parameter == "TSS" for lim in limits.values())  # B cell hidden: a gap


def test_unverified_values_stay_flagged(catalogue: Catalogue) -> None:
    # QCVN 19:2009 Bảng 1 column B dust 200 (UNVERIFIED) × Kp × Kv
    stack = Source(
        "HD-KT-01", "stack", [Param("Dust", "mg/Nm3")],
        [LimitSet("QCVN_19_2009", "B", {"Kp": 0.9, "Kv": 1.2})],
    )  # fmt: skip
    (dust,) = resolve_limits(stack, catalogue, AT)
    assert dust.max == pytest.approx(216) and dust.verified is False
    assert "permit should override" in dust.note


def test_registry_flagged_limit_set_is_unverified(catalogue: Catalogue) -> None:
    src = outfall(qcvn40(verified=False, note="Kq from an old permit"))
    assert all(not lim.verified and "old permit" in lim.note
               for lim in resolve_limits(src, catalogue, AT))  # fmt: skip


@pytest.mark.parametrize("style", ["mapping", "attributes"])
def test_permit_override_wins_and_names_its_basis(catalogue: Catalogue, style: str) -> None:
    raw = {"max": 80.0, "basis": "Giấy phép môi trường 12/GP-UBND, Phụ lục 2"}
    override = raw if style == "mapping" else Override(max=80.0, basis=str(raw["basis"]))
    src = outfall(qcvn40(overrides={"TSS": override}))
    tss = by_id(resolve_limits(src, catalogue, AT))["QCVN_40_2011:B:TSS:1h"]
    assert tss.max == 80 and tss.overridden and tss.verified
    assert tss.legal_basis.startswith("Giấy phép môi trường 12/GP-UBND, Phụ lục 2")
    assert "thay cho QCVN 40:2011/BTNMT, Bảng 1, dòng 6" in tss.legal_basis


def test_override_can_change_the_averaging_basis(catalogue: Catalogue) -> None:
    src = outfall(qcvn40(overrides={"COD": {"max": 120, "basis": "GP 1", "period": "day"}}))
    limits = by_id(resolve_limits(src, catalogue, AT))
    assert "QCVN_40_2011:B:COD:1h" not in limits
    assert limits["QCVN_40_2011:B:COD:day"].max == 120


def test_new_regulation_checks_permit_values_only(catalogue: Catalogue) -> None:
    # QCVN 40:2025: numeric tables UNVERIFIED → only the permit's values become limits
    src = outfall(LimitSet("QCVN_40_2025", "A", overrides={"COD": {"max": 60, "basis": "GP 7"}}))
    (cod,) = resolve_limits(src, catalogue, AT)
    assert (cod.rule_id, cod.max, cod.legal_basis) == ("QCVN_40_2025:A:COD:1h", 60, "GP 7")


@pytest.mark.parametrize(
    ("limit_set", "params", "at", "fragments"),
    [
        pytest.param(
            LimitSet("QCVN_40_2011", "B"), WATER, AT, ["HD-NT-03", "needs Kq, Kf"],
            id="missing-coefficients",
        ),
        pytest.param(
            LimitSet("QCVN_05_2023", None, {"Kq": 1.0}), WATER, AT, ["needs none"],
            id="coefficients-where-none",
        ),
        pytest.param(
            qcvn40(kq=0), WATER, AT, ["Kq must be > 0"], id="zero-coefficient"
        ),
        pytest.param(
            qcvn40(column="C"), WATER, AT, ["column 'C'", "allowed: A, B"], id="bad-column"
        ),
        pytest.param(
            LimitSet("QCVN_05_2013"), WATER, AT, ["not in force on 2026-11-24"], id="expired"
        ),
        pytest.param(
            LimitSet("QCVN_41_2011"), WATER, AT, ["unknown regulation", "QCVN_40_2011"],
            id="unknown-regulation",
        ),
        pytest.param(
            qcvn40(overrides={"TSS": {"max": 80, "basis": ""}}), WATER, AT, ["basis", "required"],
            id="override-without-basis",
        ),
        pytest.param(
            qcvn40(overrides={"NH4": {"max": 5, "basis": "GP"}}), WATER, AT,
            ["override for 'NH4'", "does not measure"], id="override-unmeasured",
        ),
        pytest.param(
            LimitSet("QCVN_05_2023", overrides={"NO2": {"max": 150, "basis": "GP"}}),
            [Param("NO2", "µg/Nm3")], AT, ["several bases", "1h, day, year"],
            id="override-ambiguous-basis",
        ),
        pytest.param(
            qcvn40(), [Param("COD", "µg/Nm3")], AT, ["COD", "cannot express"],
            id="incompatible-unit",
        ),
    ],
)  # fmt: skip
def test_configuration_errors_name_coordinates(
    catalogue: Catalogue, limit_set: LimitSet, params: list[Param], at: date, fragments: list[str]
) -> None:
    with pytest.raises(LimitResolutionError) as excinfo:
        resolve_limits(outfall(limit_set, params=params), catalogue, at)
    for fragment in fragments:
        assert fragment in str(excinfo.value)


def test_duplicate_limit_sets_are_rejected(catalogue: Catalogue) -> None:
    with pytest.raises(LimitResolutionError, match="resolved twice"):
        resolve_limits(outfall(qcvn40(), qcvn40()), catalogue, AT)


def test_rule_ids_are_stable_and_sorted(catalogue: Catalogue) -> None:
    first = resolve_limits(outfall(qcvn40()), catalogue, AT)
    again = resolve_limits(outfall(qcvn40(kq=0.6)), catalogue, date(2027, 1, 1))
    assert (
        [lim.rule_id for lim in first]
        == [lim.rule_id for lim in again]
        == [
            "QCVN_40_2011:B:COD:1h",
            "QCVN_40_2011:B:TSS:1h",
            "QCVN_40_2011:B:Temp:1h",
            "QCVN_40_2011:B:pH:1h",
        ]
    )


def test_format_and_json(catalogue: Catalogue) -> None:
    limits = resolve_limits(outfall(qcvn40()), catalogue, AT)
    table = format_limits(limits)
    assert "QCVN_40_2011:B:COD:1h" in table and "≤ 135" in table and "5.5–9" in table
    assert "Bảng 1, dòng 5 (COD), cột B" in table
    data = json.loads(limits_to_json(limits))
    assert data[0]["rule_id"] == "QCVN_40_2011:B:COD:1h" and data[0]["max"] == 135
    assert Limit.model_validate(data[0]) == limits[0]
    assert format_limits([]) == "(no limits)"
