"""Facilities in the registry (issue 19): 38 of them, each with its points, permit and status."""

from __future__ import annotations

import copy
import json
from datetime import date
from typing import Any

import pytest
import yaml

from core.errors import RegistryError
from core.parameters import SourceKind
from stations.registry import (
    DEFAULT_PATH,
    Fuel,
    Registry,
    format_table,
    load_registry,
    parse_registry,
    to_json,
)
from stations.sim_registry import series_for


@pytest.fixture(scope="module")
def registry() -> Registry:
    return load_registry()


@pytest.fixture(scope="module")
def raw() -> dict[str, Any]:
    data = yaml.safe_load(DEFAULT_PATH.read_text(encoding="utf-8"))
    assert isinstance(data, dict)
    return data


def test_38_facilities_each_point_in_exactly_one(registry: Registry) -> None:
    assert len(registry.facilities) == 38
    stations = [s for s in registry.sources if not s.kind.is_emission]
    points = [s for s in registry.sources if s.kind.is_emission]
    assert len(stations) == 20 and len(points) >= 38
    ids = {f.id for f in registry.facilities}
    assert all(p.facility in ids for p in points)
    by_facility = [s.id for f in registry.facilities for s in registry.points_of(f.id)]
    assert sorted(by_facility) == sorted(p.id for p in points)  # each point once
    assert all(registry.points_of(f.id) for f in registry.facilities)
    assert any(len(registry.points_of(f.id)) > 1 for f in registry.facilities)


def test_facilities_say_they_are_illustrative(registry: Registry) -> None:
    for f in registry.facilities:
        assert f.illustrative and "minh họa" in f.permit.note, f.id
        assert f.sector and f.status_basis, f.id


def test_status_and_transition_status(registry: Registry) -> None:
    statuses = {f.status for f in registry.facilities}
    assert statuses == {"existing", "new"}
    for f in registry.facilities:
        for point in registry.points_of(f.id):
            assert point.transition_status == f.status
        if f.status == "new":
            assert f.commissioned is not None and f.commissioned >= date(2025, 7, 1)


def test_stacks_carry_sector_fuel_and_o2(registry: Registry) -> None:
    # The reference-O2 correction reads `sector`, `fuel` and `measures_o2` on every stack.
    for stack in registry.of_kind(SourceKind.STACK):
        facility = registry.facility(stack.facility or "")
        assert stack.sector == facility.sector, stack.id
        assert stack.fuel is not None and stack.fuel == facility.fuel, stack.id
        assert stack.measures_o2, stack.id
    assert registry.get("HD-KT-23").fuel is Fuel.GAS
    assert registry.get("HD-NT-01").sector is None  # outfalls: no combustion


def test_json_lists_facilities_and_round_trips(registry: Registry) -> None:
    data = json.loads(to_json(registry))
    assert len(data["facilities"]) == 38 and len(data["sources"]) == 71
    pl = next(f for f in data["facilities"] if f["id"] == "PL-TPP")
    assert pl["permit"]["number"] == "12/GPMT-BTNMT" and pl["status"] == "existing"
    stack = next(s for s in data["sources"] if s["id"] == "HD-KT-01")
    assert (stack["sector"], stack["fuel"]) == ("nhiệt điện than", "coal")
    assert Registry.model_validate(data).get("HD-KT-01").transition_status == "existing"


def test_every_point_simulates(registry: Registry) -> None:
    series = series_for(registry)
    assert {s.source_id for s in series} == {s.id for s in registry.sources}


def _errors(data: dict[str, Any]) -> list[str]:
    with pytest.raises(RegistryError) as info:
        parse_registry(yaml.safe_dump(data, allow_unicode=True))
    return info.value.lines


def _facility(data: dict[str, Any], fid: str) -> dict[str, Any]:
    return next(f for f in data["facilities"] if f["id"] == fid)


def test_facility_without_points_is_named(raw: dict[str, Any]) -> None:
    data = copy.deepcopy(raw)
    data["facilities"].append({**_facility(data, "GO-NG"), "id": "EMPTY-01"})
    assert "facilities[EMPTY-01]: no monitoring point refers to it" in "\n".join(_errors(data))


def test_new_facility_may_not_keep_the_replaced_regulation(raw: dict[str, Any]) -> None:
    data = copy.deepcopy(raw)
    _facility(data, "CB-TM")["status"] = "new"
    _facility(data, "CB-TM")["commissioned"] = date(2025, 10, 1)
    text = "\n".join(_errors(data))
    assert "sources[HD-NT-19].limits[0]: QCVN_40_2011 is replaced by QCVN_40_2025" in text
    assert "facility CB-TM is 'new'" in text


def test_new_status_with_an_old_commissioning_date_is_refused(raw: dict[str, Any]) -> None:
    data = copy.deepcopy(raw)
    _facility(data, "NDK-TK")["commissioned"] = date(2020, 1, 1)
    assert any("facilities[NDK-TK]" in e and "it is 'existing'" in e for e in _errors(data))


@pytest.mark.parametrize(
    ("field", "value", "fragment"),
    [
        ("status", "old", "'old' is not one of: existing, new"),
        ("permit", "GPMT 1", "facilities[GO-NG].permit"),
        ("fuel", "peat", "'peat' is not one of: coal"),
    ],
)
def test_facility_field_errors_name_entry_and_allowed(
    raw: dict[str, Any], field: str, value: Any, fragment: str
) -> None:
    data = copy.deepcopy(raw)
    _facility(data, "GO-NG")[field] = value
    assert any(fragment in e for e in _errors(data)), _errors(data)


def test_valid_from_needs_the_permit_clause(raw: dict[str, Any]) -> None:
    data = copy.deepcopy(raw)
    point = next(s for s in data["sources"] if s["id"] == "HD-NT-19")
    point["limits"][1]["valid_from"] = date(2027, 1, 1)
    assert any("'valid_from' needs 'permit_clause'" in e for e in _errors(data))


def test_table_lists_each_facility_with_its_points(registry: Registry) -> None:
    lines = format_table(registry).splitlines()
    rows = [line for line in lines if line.split(" ")[0] in {f.id for f in registry.facilities}]
    assert len(rows) == 38
    pl = next(line for line in rows if line.startswith("PL-TPP"))
    assert "existing" in pl and "12/GPMT-BTNMT" in pl and "HD-NT-01,HD-KT-01" in pl
