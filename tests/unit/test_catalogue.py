"""The shipped regulation catalogue: values per table and row, flags, dates, and load validation.

Each case names the regulation, table and row it checks (docs/regulations.md §3–6 has the sources).
"""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest

from tests.unit.limit_fakes import HEADER
from thresholds.catalogue import (
    Basis,
    Catalogue,
    CatalogueError,
    Cell,
    CoefficientScheme,
    RuleKind,
    load_catalogue,
    required_coefficients,
)


@pytest.fixture(scope="module")
def catalogue() -> Catalogue:
    return load_catalogue()


def cell_at(
    catalogue: Catalogue, reg_id: str, parameter: str, period: str, column: str | None, at: date
) -> Cell | None:
    reg = catalogue[reg_id]
    for rule in reg.rules:
        lo, hi = reg.rule_dates(rule)
        if rule.parameter == parameter and reg.period_of(rule) == period and lo <= at <= hi:
            return rule.cell(column)
    return None


D = date(2024, 6, 1)

# (regulation, parameter, basis, column, date, field, value) — id cites table and row.
VALUES = [
    # QCVN 05:2023/BTNMT Bảng 1 (µg/Nm³) [S21]
    pytest.param("QCVN_05_2023", "SO2", "1h", None, D, "max", 350, id="05:2023-T1-SO2-1h"),
    pytest.param("QCVN_05_2023", "SO2", "day", None, D, "max", 125, id="05:2023-T1-SO2-24h"),
    pytest.param("QCVN_05_2023", "SO2", "year", None, D, "max", 50, id="05:2023-T1-SO2-year"),
    pytest.param("QCVN_05_2023", "CO", "1h", None, D, "max", 30000, id="05:2023-T1-CO-1h"),
    pytest.param("QCVN_05_2023", "CO", "8h", None, D, "max", 10000, id="05:2023-T1-CO-8h"),
    pytest.param("QCVN_05_2023", "NO2", "1h", None, D, "max", 200, id="05:2023-T1-NO2-1h"),
    pytest.param("QCVN_05_2023", "NO2", "day", None, D, "max", 100, id="05:2023-T1-NO2-24h"),
    pytest.param("QCVN_05_2023", "NO2", "year", None, D, "max", 40, id="05:2023-T1-NO2-year"),
    pytest.param("QCVN_05_2023", "O3", "1h", None, D, "max", 200, id="05:2023-T1-O3-1h"),
    pytest.param("QCVN_05_2023", "O3", "8h", None, D, "max", 120, id="05:2023-T1-O3-8h"),
    pytest.param("QCVN_05_2023", "TSP", "1h", None, D, "max", 300, id="05:2023-T1-TSP-1h"),
    pytest.param("QCVN_05_2023", "TSP", "day", None, D, "max", 200, id="05:2023-T1-TSP-24h"),
    pytest.param("QCVN_05_2023", "TSP", "year", None, D, "max", 100, id="05:2023-T1-TSP-year"),
    pytest.param("QCVN_05_2023", "PM10", "day", None, D, "max", 100, id="05:2023-T1-PM10-24h"),
    pytest.param("QCVN_05_2023", "PM10", "year", None, D, "max", 50, id="05:2023-T1-PM10-year"),
    pytest.param(
        "QCVN_05_2023", "PM2.5", "day", None, date(2025, 12, 31), "max", 50,
        id="05:2023-T1-PM2.5-24h-until-2025-12-31",
    ),
    pytest.param(
        "QCVN_05_2023", "PM2.5", "day", None, date(2026, 1, 1), "max", 45,
        id="05:2023-T1-PM2.5-24h-from-2026-01-01",
    ),
    pytest.param("QCVN_05_2023", "PM2.5", "year", None, D, "max", 25, id="05:2023-T1-PM2.5-year"),
    # QCVN 05:2023/BTNMT Bảng 2 (toxic parameters) [S21]
    pytest.param("QCVN_05_2023", "Pb", "day", None, D, "max", 1.5, id="05:2023-T2-Pb-24h"),
    pytest.param("QCVN_05_2023", "H2S", "1h", None, D, "max", 42, id="05:2023-T2-H2S-1h"),
    pytest.param("QCVN_05_2023", "HF", "day", None, D, "max", 5, id="05:2023-T2-HF-24h"),
    pytest.param("QCVN_05_2023", "THC", "day", None, D, "max", 1500, id="05:2023-T2-THC-24h"),
    # QCVN 05:2013/BTNMT Bảng 1 [S23][S24] — the 2013 → 2023 changes
    pytest.param(
        "QCVN_05_2013", "PM10", "day", None, date(2020, 1, 1), "max", 150, id="05:2013-T1-PM10-24h"
    ),
    pytest.param(
        "QCVN_05_2013", "Pb", "year", None, date(2020, 1, 1), "max", 0.5, id="05:2013-T1-Pb-year"
    ),
    # QCVN 08:2023/BTNMT Bảng 1 (health limits, every class) [S27]
    pytest.param("QCVN_08_2023", "NH4", "1h", "A", D, "max", 0.3, id="08:2023-T1-NH4-classA"),
    pytest.param("QCVN_08_2023", "NH4", "1h", "D", D, "max", 0.3, id="08:2023-T1-NH4-classD"),
    pytest.param("QCVN_08_2023", "NO2-N", "1h", "B", D, "max", 0.05, id="08:2023-T1-nitrite"),
    pytest.param("QCVN_08_2023", "Hg", "1h", "B", D, "max", 0.001, id="08:2023-T1-Hg"),
    # QCVN 08:2023/BTNMT classification table (Bảng 2?, identity UNVERIFIED) [S28]
    pytest.param("QCVN_08_2023", "pH", "1h", "A", D, "min", 6.5, id="08:2023-T2-pH-A-min"),
    pytest.param("QCVN_08_2023", "pH", "1h", "B", D, "max", 8.5, id="08:2023-T2-pH-B-max"),
    pytest.param("QCVN_08_2023", "BOD5", "1h", "C", D, "max", 10, id="08:2023-T2-BOD5-C"),
    pytest.param("QCVN_08_2023", "COD", "1h", "B", D, "max", 15, id="08:2023-T2-COD-B"),
    pytest.param("QCVN_08_2023", "TSS", "1h", "A", D, "max", 25, id="08:2023-T2-TSS-A"),
    pytest.param("QCVN_08_2023", "DO", "1h", "B", D, "min", 5.0, id="08:2023-T2-DO-B"),
    pytest.param("QCVN_08_2023", "DO", "1h", "C", D, "min", 4.0, id="08:2023-T2-DO-C"),
    pytest.param("QCVN_08_2023", "TP", "1h", "B", D, "max", 0.3, id="08:2023-T2-TP-B"),
    pytest.param("QCVN_08_2023", "TN", "1h", "C", D, "max", 2.0, id="08:2023-T2-TN-C"),
    # QCVN 40:2011/BTNMT Bảng 1, value C [S38][S39]
    pytest.param("QCVN_40_2011", "Temp", "1h", "A", D, "max", 40, id="40:2011-T1-row1-Temp-A"),
    pytest.param("QCVN_40_2011", "Color", "1h", "B", D, "max", 150, id="40:2011-T1-row2-Color-B"),
    pytest.param("QCVN_40_2011", "pH", "1h", "A", D, "min", 6, id="40:2011-T1-row3-pH-A-min"),
    pytest.param("QCVN_40_2011", "pH", "1h", "B", D, "min", 5.5, id="40:2011-T1-row3-pH-B-min"),
    pytest.param("QCVN_40_2011", "pH", "1h", "B", D, "max", 9, id="40:2011-T1-row3-pH-B-max"),
    pytest.param("QCVN_40_2011", "BOD5", "1h", "A", D, "max", 30, id="40:2011-T1-row4-BOD5-A"),
    pytest.param("QCVN_40_2011", "COD", "1h", "A", D, "max", 75, id="40:2011-T1-row5-COD-A"),
    pytest.param("QCVN_40_2011", "COD", "1h", "B", D, "max", 150, id="40:2011-T1-row5-COD-B"),
    pytest.param("QCVN_40_2011", "TSS", "1h", "B", D, "max", 100, id="40:2011-T1-row6-TSS-B"),
    pytest.param("QCVN_40_2011", "Hg", "1h", "A", D, "max", 0.005, id="40:2011-T1-row8-Hg-A"),
    pytest.param("QCVN_40_2011", "Cr3", "1h", "B", D, "max", 1, id="40:2011-T1-row12-Cr3-B"),
    pytest.param("QCVN_40_2011", "CN-", "1h", "A", D, "max", 0.07, id="40:2011-T1-row18-CN-A"),
    pytest.param("QCVN_40_2011", "NH4", "1h", "A", D, "max", 5, id="40:2011-T1-row23-NH4-A"),
    pytest.param("QCVN_40_2011", "NH4", "1h", "B", D, "max", 10, id="40:2011-T1-row23-NH4-B"),
    pytest.param("QCVN_40_2011", "TN", "1h", "B", D, "max", 40, id="40:2011-T1-row24-TN-B"),
    pytest.param("QCVN_40_2011", "TP", "1h", "A", D, "max", 4, id="40:2011-T1-row25-TP-A"),
    # QCVN 19:2009/BTNMT Bảng 1 column B (commonly cited, UNVERIFIED) [S47]
    pytest.param("QCVN_19_2009", "Dust", "1h", "B", D, "max", 200, id="19:2009-T1-dust-B"),
    pytest.param("QCVN_19_2009", "SO2", "1h", "B", D, "max", 500, id="19:2009-T1-SO2-B"),
    pytest.param("QCVN_19_2009", "NOx", "1h", "B", D, "max", 850, id="19:2009-T1-NOx-B"),
    pytest.param("QCVN_19_2009", "CO", "1h", "B", D, "max", 1000, id="19:2009-T1-CO-B"),
]  # fmt: skip


@pytest.mark.parametrize(("reg", "parameter", "basis", "column", "at", "field", "value"), VALUES)
def test_table_values(
    catalogue: Catalogue,
    reg: str,
    parameter: str,
    basis: str,
    column: str | None,
    at: date,
    field: str,
    value: float,
) -> None:
    cell = cell_at(catalogue, reg, parameter, basis, column, at)
    assert cell is not None and not cell.is_gap
    assert getattr(cell, field) == value


@pytest.mark.parametrize(
    ("reg", "parameter", "column", "why"),
    [
        pytest.param("QCVN_08_2023", "TSS", "B", "hidden", id="08:2023-T2-TSS-B-hidden"),
        pytest.param("QCVN_08_2023", "DO", "A", "hidden", id="08:2023-T2-DO-A-hidden"),
        pytest.param("QCVN_08_2023", "TOC", "C", "hidden", id="08:2023-T2-TOC-C-hidden"),
        pytest.param("QCVN_08_2023", "COD", "D", "hidden", id="08:2023-T2-COD-D-hidden"),
        pytest.param("QCVN_19_2009", "Dust", "A", "UNVERIFIED", id="19:2009-T1-dust-A"),
        pytest.param("QCVN_40_2011", "Cl-", "A", "UNVERIFIED", id="40:2011-T1-row26+-Cl-A"),
    ],
)
def test_unknown_cells_are_documented_gaps(
    catalogue: Catalogue, reg: str, parameter: str, column: str, why: str
) -> None:
    cell = cell_at(catalogue, reg, parameter, "1h", column, D)
    assert cell is not None and cell.is_gap and not cell.verified
    assert why in cell.note


@pytest.mark.parametrize(
    ("reg", "parameter", "column"),
    [
        pytest.param("QCVN_08_2023", "DO", "D", id="08:2023-T2-DO-D-interpretation"),
        pytest.param("QCVN_19_2009", "SO2", "B", id="19:2009-T1-SO2-B"),
        pytest.param("QCVN_40_2011", "Coliform", "B", id="40:2011-T1-row26+-coliform-B"),
        pytest.param("QCVN_05_2013", "PM10", None, id="05:2013-inferred-placement"),
    ],
)
def test_unverified_values_are_flagged(
    catalogue: Catalogue, reg: str, parameter: str, column: str | None
) -> None:
    at = date(2020, 1, 1) if reg == "QCVN_05_2013" else D
    period = "day" if reg == "QCVN_05_2013" else "1h"
    cell = cell_at(catalogue, reg, parameter, period, column, at)
    assert cell is not None and not cell.is_gap
    assert cell.verified is False and cell.note


def test_class_d_descriptive_cells_are_not_limits(catalogue: Catalogue) -> None:
    # QCVN 08:2023 classification table: D is "> 10" for BOD5, "< 6.0 or > 8.5" for pH.
    assert cell_at(catalogue, "QCVN_08_2023", "BOD5", "1h", "D", D) is None
    assert cell_at(catalogue, "QCVN_08_2023", "pH", "1h", "D", D) is None


@pytest.mark.parametrize(
    ("reg", "effective_from", "last_day", "replaced_by"),
    [
        pytest.param("QCVN_05_2023", date(2023, 9, 12), None, None, id="05:2023-Circular01/2023"),
        pytest.param("QCVN_05_2013", None, date(2023, 9, 11), "QCVN_05_2023", id="05:2013"),
        pytest.param("QCVN_08_2023", date(2023, 9, 12), None, None, id="08:2023-Circular01/2023"),
        pytest.param(
            "QCVN_40_2011", date(2012, 2, 15), date(2031, 12, 31), "QCVN_40_2025",
            id="40:2011-Circular47/2011-transition",
        ),
        pytest.param(
            "QCVN_19_2009", None, date(2031, 12, 31), "QCVN_19_2024", id="19:2009-transition"
        ),
        pytest.param("QCVN_40_2025", date(2025, 9, 1), None, None, id="40:2025-Circular06/2025"),
        pytest.param("QCVN_19_2024", date(2025, 7, 1), None, None, id="19:2024-Circular45/2024"),
    ],
)  # fmt: skip
def test_dates(
    catalogue: Catalogue,
    reg: str,
    effective_from: date | None,
    last_day: date | None,
    replaced_by: str | None,
) -> None:
    regulation = catalogue[reg]
    assert regulation.effective_from == effective_from
    assert regulation.last_day == last_day
    assert regulation.replaced_by == replaced_by


@pytest.mark.parametrize("reg", ["QCVN_40_2025", "QCVN_19_2024"])
def test_new_regulations_ship_no_verified_numbers(catalogue: Catalogue, reg: str) -> None:
    # §5.2 / §6.2: the primary tables were not retrieved → every row and cell is flagged
    # unverified (QCVN 40:2025: gaps only); permits supply the limits.
    regulation = catalogue[reg]
    assert regulation.rules and regulation.verified is False
    assert any("UNVERIFIED" in note for note in regulation.notes)
    for rule in regulation.rules:
        assert not rule.verified and rule.note
        assert all(not cell.verified and cell.note for _, cell in rule.cells())
    if reg == "QCVN_40_2025":
        assert all(cell.is_gap for rule in regulation.rules for _, cell in rule.cells())


@pytest.mark.parametrize(
    ("reg", "clause"),
    [
        ("QCVN_40_2025", "Circular 06/2025/TT-BTNMT Art. 3"),
        ("QCVN_19_2024", "Circular 45/2024/TT-BTNMT Art. 3.1"),
    ],
)
def test_new_regulations_cite_their_transition_clause(
    catalogue: Catalogue, reg: str, clause: str
) -> None:
    assert catalogue[reg].transition_clause.startswith(clause)
    assert "31/12/2031" in catalogue[reg].transition_clause


@pytest.mark.parametrize(
    ("reg", "names"),
    [("QCVN_40_2011", ("Kq", "Kf")), ("QCVN_19_2009", ("Kp", "Kv")), ("QCVN_05_2023", ())],
)
def test_coefficient_schemes(catalogue: Catalogue, reg: str, names: tuple[str, ...]) -> None:
    assert required_coefficients(catalogue, reg) == names


def test_qcvn40_exemptions_are_the_regulations_data(catalogue: Catalogue) -> None:
    # QCVN 40:2011/BTNMT §2.1.2: Cmax = C (Kq, Kf not applied) for temperature, colour, pH,
    # coliform, gross α and gross β; every other Table 1 maximum is C × Kq × Kf (§2.1.1).
    scheme = catalogue["QCVN_40_2011"].coefficients
    assert scheme is not None and scheme.exempt_clause == "§2.1.2" and scheme.clause == "§2.1.1"
    assert set(scheme.exempt) == {"Temp", "Color", "pH", "Coliform", "GrossAlpha", "GrossBeta"}
    for p in ("Temp", "Color", "Coliform", "GrossAlpha", "GrossBeta"):
        assert not scheme.applies_to(p, RuleKind.UPPER), p
    assert not scheme.applies_to("pH", RuleKind.RANGE)
    for p in ("COD", "TSS", "NH4", "BOD5", "TN", "TP"):
        assert scheme.applies_to(p, RuleKind.UPPER), p
    # QCVN 19:2009: no exemption is known; the doubt is flagged, not hidden.
    qcvn19 = catalogue["QCVN_19_2009"].coefficients
    assert qcvn19 is not None and qcvn19.exempt == [] and qcvn19.exempt_verified is False


def test_an_exemption_without_its_clause_is_refused() -> None:
    with pytest.raises(ValueError, match="exempt_clause"):
        CoefficientScheme(formula="Cmax = C × Kq × Kf", names=["Kq", "Kf"], exempt=["pH"])


def test_every_rule_cites_table_row_and_source(catalogue: Catalogue) -> None:
    for regulation in catalogue:
        assert regulation.issuing_act and regulation.sources
        for rule in regulation.rules:
            assert rule.table and rule.row and rule.sources, (regulation.id, rule.parameter)


def test_kinds_and_bases(catalogue: Catalogue) -> None:
    rules = {(r.parameter, r.kind) for r in catalogue["QCVN_08_2023"].rules}
    assert ("DO", RuleKind.LOWER) in rules and ("pH", RuleKind.RANGE) in rules
    assert Basis.YEAR.period is None and Basis.ROLLING_8H.period == "8h"


# ---- validation on load ----------------------------------------------------------------------


def write(tmp_path: Path, rules: str, header: str = HEADER, name: str = "qcvn_99_2099") -> Path:
    (tmp_path / f"{name}.yaml").write_text(header + rules, encoding="utf-8")
    return tmp_path


@pytest.mark.parametrize(
    ("rules", "expected"),
    [
        pytest.param(
            "rules:\n  - {parameter: PM25, label: x, kind: upper, unit: mg/L, table: T, row: '1',"
            " limit: {max: 1}}\n",
            ["qcvn_99_2099.yaml", "rules[0] (PM25)", "parameter", "allowed", "PM2.5"],
            id="unknown-parameter-lists-allowed",
        ),
        pytest.param(
            "rules:\n  - {parameter: COD, label: x, kind: maximum, unit: mg/L, table: T, row: '1',"
            " limit: {max: 1}}\n",
            ["rules[0] (COD)", "kind", "'upper'", "'lower'", "'range'"],
            id="unknown-kind-lists-allowed",
        ),
        pytest.param(
            "rules:\n  - {parameter: COD, label: x, kind: upper, unit: mg/L, period: 2h, table: T,"
            " row: '1', limit: {max: 1}}\n",
            ["rules[0] (COD)", "period", "'1h'", "'day'"],
            id="unknown-period-lists-allowed",
        ),
        pytest.param(
            "rules:\n  - {parameter: COD, label: x, kind: upper, unit: mg/L, table: T, row: '1',"
            " columns: {E: {max: 1}}}\n",
            ["rules[0] (COD)", "column 'E'", "allowed: A, B"],
            id="column-not-in-regulation",
        ),
        pytest.param(
            "rules:\n  - {parameter: COD, label: x, kind: upper, unit: mg/L, table: T, row: '1',"
            " columns: {A: {}}}\n",
            ["rules[0] (COD)", "columns.A", "gap"],
            id="gap-without-note",
        ),
        pytest.param(
            "rules:\n  - {parameter: pH, label: x, kind: range, unit: '-', table: T, row: '1',"
            " limit: {max: 9}}\n",
            ["rules[0] (pH)", "range needs min and max"],
            id="range-needs-both",
        ),
        pytest.param(
            "rules:\n  - {parameter: COD, label: x, kind: upper, unit: mg/L, table: T, row: '1',"
            " limit: {max: 1, verified: false}}\n",
            ["rules[0] (COD)", "limit", "verified: false needs a note"],
            id="unverified-needs-note",
        ),
        pytest.param(
            "rules:\n"
            "  - {parameter: COD, label: x, kind: upper, unit: mg/L, table: T, row: '1',"
            " limit: {max: 1}}\n"
            "  - {parameter: COD, label: x, kind: upper, unit: mg/L, table: T, row: '1',"
            " limit: {max: 2}}\n",
            ["rules[1] (COD)", "overlaps"],
            id="overlapping-dates",
        ),
        pytest.param(
            "rules:\n  - {parameter: COD, label: x, kind: upper, unit: mg/L, table: T, row: '1',"
            " limit: {max: 1}, sources: [S9]}\n",
            ["rules[0] (COD)", "S9"],
            id="unknown-source-tag",
        ),
        pytest.param(
            "rules:\n  - {parameter: COD, label: x, kind: upper, unit: mg/L, table: T, row: '1',"
            " limit: {max: 1}, colour: red}\n",
            ["rules[0] (COD)", "colour"],
            id="unknown-field",
        ),
    ],
)
def test_validation_errors_name_file_entry_field(
    tmp_path: Path, rules: str, expected: list[str]
) -> None:
    with pytest.raises(CatalogueError) as excinfo:
        load_catalogue(write(tmp_path, rules))
    for fragment in expected:
        assert fragment in str(excinfo.value)


def test_file_name_must_match_id(tmp_path: Path) -> None:
    with pytest.raises(CatalogueError, match=r"qcvn_98_2098.yaml: id: 'QCVN_99_2099'"):
        load_catalogue(write(tmp_path, "rules: []\n", name="qcvn_98_2098"))


def test_minimal_valid_file_loads(tmp_path: Path) -> None:
    cat = load_catalogue(
        write(
            tmp_path,
            "rules:\n  - {parameter: COD, label: COD, kind: upper, unit: mg/L, table: T, row: '5',"
            " columns: {A: {max: 75}, B: {max: 150}}, sources: [S1]}\n",
        )
    )
    rule = cat["QCVN_99_2099"].rules[0]
    assert rule.cell("B") == Cell(max=150) and rule.cell("C") is None


def test_unknown_regulation_lists_allowed(catalogue: Catalogue) -> None:
    with pytest.raises(KeyError, match="QCVN_40_2011"):
        catalogue["QCVN_41_2011"]
