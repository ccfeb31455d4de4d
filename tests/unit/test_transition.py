"""Which regulation a point is held to on a date: the permit first, then the transition clauses.

Circular 06/2025/TT-BTNMT Art. 3 (QCVN 40:2025/BTNMT, in force 01/09/2025) and Circular
45/2024/TT-BTNMT Art. 3.1 (QCVN 19:2024/BTNMT, in force 01/07/2025): a facility operating, or with
its EIA approved / permit documents submitted, before the effective date keeps the old regulation
until 31/12/2031; a new facility applies the new one (docs/regulations.md §5.3).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date

import pytest

from tests.unit.limit_fakes import LimitSet, Param
from thresholds.catalogue import Catalogue, load_catalogue
from thresholds.limits import LimitResolutionError, applicable_regulations, resolve_limits
from thresholds.transition import Status, TransitionError, lineage, select_limit_sets


@dataclass(frozen=True)
class Point:
    id: str
    parameters: list[Param]
    limits: list[LimitSet]
    transition_status: str | None


WATER = [Param("COD", "mg/L"), Param("TSS", "mg/L"), Param("pH", "-")]
STACK = [Param("Dust", "mg/Nm3"), Param("SO2", "mg/Nm3"), Param("NOx", "mg/Nm3")]
OLD_40 = LimitSet("QCVN_40_2011", "B", {"Kq": 0.9, "Kf": 1.0})
NEW_40 = LimitSet("QCVN_40_2025", "B", overrides={"COD": {"max": 75, "basis": "GPMT 9, PL 1"}})
OLD_19 = LimitSet("QCVN_19_2009", "B", {"Kp": 1.0, "Kv": 1.0})
NEW_19 = LimitSet("QCVN_19_2024", "B", category="2.4-GT-LE300")


@pytest.fixture(scope="module")
def catalogue() -> Catalogue:
    return load_catalogue()


def regulations(point: Point, catalogue: Catalogue, at: date) -> set[str]:
    return {lim.regulation for lim in resolve_limits(point, catalogue, at)}


def test_lineage_follows_replaced_by(catalogue: Catalogue) -> None:
    assert lineage(catalogue, "QCVN_40_2011") == lineage(catalogue, "QCVN_40_2025")
    assert lineage(catalogue, "QCVN_19_2009") == "QCVN_19_2024"
    assert lineage(catalogue, "QCVN_05_2023") == "QCVN_05_2023"


# Circular 06/2025/TT-BTNMT Art. 3 — wastewater
@pytest.mark.parametrize(
    ("status", "at", "expected"),
    [
        pytest.param("new", date(2025, 9, 1), "QCVN_40_2025", id="new-from-effective-date"),
        pytest.param("new", date(2026, 11, 24), "QCVN_40_2025", id="new-2026"),
        pytest.param("existing", date(2026, 11, 24), "QCVN_40_2011", id="existing-in-transition"),
        pytest.param("existing", date(2031, 12, 31), "QCVN_40_2011", id="existing-last-day"),
        pytest.param("existing", date(2032, 1, 1), "QCVN_40_2025", id="existing-after-transition"),
        pytest.param(None, date(2026, 11, 24), "QCVN_40_2011", id="unknown-read-as-existing"),
        pytest.param("existing", date(2025, 3, 1), "QCVN_40_2011", id="before-effective-date"),
    ],
)
def test_wastewater_transition_circular_06_2025_art_3(
    catalogue: Catalogue, status: str | None, at: date, expected: str
) -> None:
    point = Point("HD-NT-90", WATER, [OLD_40, NEW_40], status)
    (chosen,) = select_limit_sets(point.id, point.limits, catalogue, at, status)
    assert str(chosen.limit_set.regulation) == expected
    if at >= date(2025, 9, 1):
        assert "Circular 06/2025/TT-BTNMT Art. 3" in chosen.reason
    assert regulations(point, catalogue, at) <= {expected}


# Circular 45/2024/TT-BTNMT Art. 3.1 — stack emissions
@pytest.mark.parametrize(
    ("status", "at", "expected"),
    [
        pytest.param("new", date(2025, 7, 1), "QCVN_19_2024", id="new-from-effective-date"),
        pytest.param("existing", date(2031, 12, 31), "QCVN_19_2009", id="existing-last-day"),
        pytest.param("existing", date(2032, 1, 1), "QCVN_19_2024", id="existing-after-transition"),
    ],
)
def test_stack_transition_circular_45_2024_art_3_1(
    catalogue: Catalogue, status: str, at: date, expected: str
) -> None:
    point = Point("HD-KT-90", STACK, [OLD_19, NEW_19], status)
    limits = resolve_limits(point, catalogue, at)
    assert {lim.regulation for lim in limits} == {expected}
    assert all("Circular 45/2024/TT-BTNMT Art. 3.1" in lim.selected_by for lim in limits)
    if expected == "QCVN_19_2024":
        # Bảng 2 mục 2.4 (gas turbine ≤ 300 MW), zone column B, values flagged UNVERIFIED
        by_param = {lim.parameter: lim for lim in limits}
        assert (by_param["NOx"].max, by_param["SO2"].max, by_param["Dust"].max) == (120, 80, 15)
        assert not any(lim.verified for lim in limits)
        assert "Bảng 2, dòng 2.4" in by_param["NOx"].legal_basis


def test_new_facility_before_the_new_regulation_exists_keeps_the_old(catalogue: Catalogue) -> None:
    point = Point("HD-KT-90", STACK, [OLD_19, NEW_19], Status.NEW)
    (chosen,) = select_limit_sets(point.id, point.limits, catalogue, date(2025, 6, 30), "new")
    assert chosen.limit_set is OLD_19 and "took effect on 2025-07-01" in chosen.reason


def test_permit_override_wins_over_the_transition(catalogue: Catalogue) -> None:
    # An existing facility whose renewed permit imposes QCVN 40:2025 from 01/07/2026: the permit
    # decides from that day, the transition (old regulation) before it.
    imposed = LimitSet(
        "QCVN_40_2025",
        "B",
        overrides={"COD": {"max": 60, "basis": "GPMT 115, PL 1"}},
        permit_clause="GPMT 115, Điều 2 khoản 3",
        valid_from=date(2026, 7, 1),
    )
    point = Point("HD-NT-91", WATER, [OLD_40, imposed], "existing")
    assert regulations(point, catalogue, date(2026, 6, 30)) == {"QCVN_40_2011"}
    (cod,) = resolve_limits(point, catalogue, date(2026, 7, 1))
    assert (cod.regulation, cod.max) == ("QCVN_40_2025", 60)
    assert cod.selected_by.startswith("imposed by the permit from 2026-07-01: GPMT 115")


def test_permit_can_keep_the_old_regulation_for_a_new_facility(catalogue: Catalogue) -> None:
    kept = LimitSet("QCVN_40_2011", "B", {"Kq": 1.0, "Kf": 1.0}, permit_clause="GPMT 7, Điều 2")
    point = Point("HD-NT-92", WATER, [kept, NEW_40], "new")
    assert regulations(point, catalogue, date(2026, 11, 24)) == {"QCVN_40_2011"}


def test_regulation_listed_alone_says_why(catalogue: Catalogue) -> None:
    point = Point("HD-NT-93", WATER, [NEW_40], "new")
    (line,) = applicable_regulations(point, catalogue, date(2026, 11, 24))
    assert line.startswith("QCVN 40:2025/BTNMT, cột B — new facility")
    assert "Circular 06/2025/TT-BTNMT Art. 3" in line


def test_existing_point_without_the_replacement_stops_at_transition_end(
    catalogue: Catalogue,
) -> None:
    point = Point("HD-NT-94", WATER, [OLD_40], "existing")
    assert regulations(point, catalogue, date(2031, 12, 31)) == {"QCVN_40_2011"}
    with pytest.raises(LimitResolutionError, match="not in force on 2032-01-01"):
        resolve_limits(point, catalogue, date(2032, 1, 1))


def test_unrelated_pair_is_an_error_naming_the_point(catalogue: Catalogue) -> None:
    three = [OLD_40, NEW_40, LimitSet("QCVN_40_2025", "A")]
    with pytest.raises(TransitionError, match="HD-NT-95"):
        select_limit_sets("HD-NT-95", three, catalogue, date(2026, 1, 1), "existing")


def test_category_rows_replace_general_rows_and_unknown_category_is_named(
    catalogue: Catalogue,
) -> None:
    # QCVN 19:2024: Bảng 1 general rows are gaps; the 2.4 rows (gas turbines) apply only to a set
    # naming that category, and an unknown category is an error listing the allowed ones.
    general = Point("HD-KT-96", STACK, [LimitSet("QCVN_19_2024", "B")], "new")
    assert resolve_limits(general, catalogue, date(2026, 1, 1)) == []
    wrong = Point("HD-KT-97", STACK, [LimitSet("QCVN_19_2024", "B", category="2.9")], "new")
    message = re.escape("category '2.9' not valid; allowed: 2.4-GT")
    with pytest.raises(LimitResolutionError, match=message):
        resolve_limits(wrong, catalogue, date(2026, 1, 1))
    big = Point("HD-KT-98", STACK, [LimitSet("QCVN_19_2024", "A", category="2.4-GT-GT1200")], "new")
    got = {lim.parameter: lim.max for lim in resolve_limits(big, catalogue, date(2026, 1, 1))}
    assert got == {"SO2": 50, "NOx": 50, "Dust": 15}
