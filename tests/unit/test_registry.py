"""The source registry: the shipped data, the schema's error messages, look-ups and listings."""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from core.errors import RegistryError
from core.parameters import Parameter, SourceKind
from stations.registry import (
    DEFAULT_PATH,
    Registry,
    RegulationId,
    check_file,
    format_table,
    load_registry,
    parse_registry,
    to_json,
)


@pytest.fixture(scope="module")
def registry() -> Registry:
    return load_registry()


@pytest.fixture(scope="module")
def raw() -> dict[str, Any]:
    data = yaml.load(
        DEFAULT_PATH.read_text(encoding="utf-8"),
        Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader),
    )
    assert isinstance(data, dict)
    return data


# --- the shipped data ---------------------------------------------------------------------------


def test_counts(registry: Registry) -> None:
    # Issue 19: 20 stations and 38 facilities with large emission sources, each with its points
    counts = {k: len(registry.of_kind(k)) for k in SourceKind}
    assert counts[SourceKind.AMBIENT_AIR] == 10
    assert counts[SourceKind.SURFACE_WATER] == 10
    assert counts[SourceKind.WASTEWATER] + counts[SourceKind.STACK] == 51
    assert counts[SourceKind.STACK] > counts[SourceKind.WASTEWATER] >= 12
    assert len(registry.facilities) == 38
    assert len(registry.sources) == 71 >= 20 + 38


def test_file_says_it_is_illustrative() -> None:
    head = DEFAULT_PATH.read_text(encoding="utf-8")[:600]
    assert "ILLUSTRATIVE" in head


@pytest.mark.parametrize(
    ("kind", "prefix", "old", "new"),
    [
        (SourceKind.AMBIENT_AIR, "HD-KK-", RegulationId.QCVN_05_2023, None),
        (SourceKind.WASTEWATER, "HD-NT-", RegulationId.QCVN_40_2011, RegulationId.QCVN_40_2025),
        (SourceKind.STACK, "HD-KT-", RegulationId.QCVN_19_2009, RegulationId.QCVN_19_2024),
    ],
)
def test_ids_and_limit_sets_by_kind(
    registry: Registry,
    kind: SourceKind,
    prefix: str,
    old: RegulationId,
    new: RegulationId | None,
) -> None:
    # Emission points of existing facilities list the old regulation and its replacement (the
    # transition picks one per date); new facilities list only the replacement.
    for source in registry.of_kind(kind):
        assert source.id.startswith(prefix)
        regulations = [limit.regulation for limit in source.limits]
        if new is None:
            assert regulations == [old]
        elif source.transition_status == "new":
            assert regulations == [new], source.id
        else:
            assert regulations == [old, new], source.id


def test_surface_water_is_classified_not_limited(registry: Registry) -> None:
    # QCVN 08:2023 classifies the water body (docs/regulations.md §4.1): no limit set, a target
    for source in registry.of_kind(SourceKind.SURFACE_WATER):
        assert source.id.startswith("HD-NM-")
        assert source.limits == []
        assert source.target_class in ("A", "B", "C", "D")
    assert all(
        s.target_class is None for s in registry.sources if s.kind is not SourceKind.SURFACE_WATER
    )


def test_automatic_stations_installed_2019_to_2021(registry: Registry) -> None:
    for kind in (SourceKind.AMBIENT_AIR, SourceKind.SURFACE_WATER):
        for source in registry.of_kind(kind):
            assert 2019 <= source.installed.year <= 2021, source.id


@pytest.mark.parametrize(
    ("kind", "required"),
    [
        (SourceKind.AMBIENT_AIR, {"SO2", "NO2", "CO", "O3", "PM10", "PM2.5", "Temp", "RH", "WS"}),
        (SourceKind.SURFACE_WATER, {"pH", "DO", "Temp", "COD", "TSS", "NH4"}),
        # Decree 40/2019 wastewater set (docs/regulations.md §2): inflow, outflow, T, pH, COD,
        # TSS, NH4
        (SourceKind.WASTEWATER, {"FlowIn", "FlowOut", "Temp", "pH", "COD", "TSS", "NH4"}),
        (SourceKind.STACK, {"Flow", "Temp", "P", "O2", "Dust", "SO2", "NOx", "CO"}),
    ],
)
def test_parameter_sets(registry: Registry, kind: SourceKind, required: set[str]) -> None:
    for source in registry.of_kind(kind):
        assert required <= {p.code.value for p in source.parameters}, source.id


def test_unverified_coefficients_are_flagged(registry: Registry) -> None:
    # docs/regulations.md §5.1 / §6.1: Kq/Kf and Kp/Kv tables are UNVERIFIED
    for source in registry.sources:
        for limit in source.limits:
            if limit.coefficients:
                in_doubt = limit.verified is False or limit.coefficients_verified is False
                assert in_doubt and "docs/regulations.md" in limit.note, source.id


# TT 10/2021 Art. 35.1 (docs/regulations.md §1.4): instrument range >= 3 x the regulatory limit.
@pytest.mark.parametrize(
    ("parameter", "limit"),
    [
        pytest.param(Parameter.SO2, 350, id="QCVN05:2023-T1-SO2-1h-350"),
        pytest.param(Parameter.CO, 30000, id="QCVN05:2023-T1-CO-1h-30000"),
        pytest.param(Parameter.NO2, 200, id="QCVN05:2023-T1-NO2-1h-200"),
        pytest.param(Parameter.O3, 200, id="QCVN05:2023-T1-O3-1h-200"),
        pytest.param(Parameter.TSP, 300, id="QCVN05:2023-T1-TSP-1h-300"),
        pytest.param(Parameter.PM10, 100, id="QCVN05:2023-T1-PM10-24h-100"),
        pytest.param(Parameter.PM2_5, 50, id="QCVN05:2023-T1-PM2.5-24h-50"),
    ],
)
def test_air_ranges_cover_three_times_the_limit(
    registry: Registry, parameter: Parameter, limit: float
) -> None:
    for source in registry.of_kind(SourceKind.AMBIENT_AIR):
        spec = source.parameter(parameter)
        if spec is not None:
            assert spec.range[1] >= 3 * limit, source.id


@pytest.mark.parametrize(
    ("parameter", "limit_b"),
    [
        pytest.param(Parameter.COD, 150, id="QCVN40:2011-T1-row5-COD-B-150"),
        pytest.param(Parameter.TSS, 100, id="QCVN40:2011-T1-row6-TSS-B-100"),
        pytest.param(Parameter.NH4, 10, id="QCVN40:2011-T1-row23-NH4-B-10"),
        pytest.param(Parameter.TN, 40, id="QCVN40:2011-T1-row24-TN-B-40"),
        pytest.param(Parameter.TP, 6, id="QCVN40:2011-T1-row25-TP-B-6"),
        pytest.param(Parameter.COLOR, 150, id="QCVN40:2011-T1-row2-Colour-B-150"),
    ],
)
def test_wastewater_ranges_cover_three_times_cmax(
    registry: Registry, parameter: Parameter, limit_b: float
) -> None:
    for source in registry.of_kind(SourceKind.WASTEWATER):
        spec = source.parameter(parameter)
        if spec is None or source.transition_status == "new":
            continue
        limit = next(ls for ls in source.limits if ls.regulation is RegulationId.QCVN_40_2011)
        cmax = limit_b * limit.coefficients["Kq"] * limit.coefficients["Kf"]
        assert spec.range[1] >= 3 * cmax, source.id


def test_permit_overrides_within_three_times_range(registry: Registry) -> None:
    for source in registry.sources:
        for limit in source.limits:
            for code, override in limit.overrides.items():
                spec = source.parameter(code)
                assert spec is not None
                assert override.max is None or spec.range[1] >= 3 * override.max, source.id


# --- look-ups -----------------------------------------------------------------------------------


def test_get_and_by_ftp(registry: Registry) -> None:
    source = registry.get("HD-KK-01")
    assert registry.by_ftp("HD", "TTQT", "KHI001") is source
    assert registry.by_ftp("hd", "ttqt", "khi001") is source
    assert registry.by_ftp("HD", "TTQT", "KHI999") is None


def test_get_unknown_names_the_id(registry: Registry) -> None:
    with pytest.raises(KeyError, match="HD-XX-99"):
        registry.get("HD-XX-99")


def test_parameter_and_interval(registry: Registry) -> None:
    source = registry.get("HD-KK-01")
    assert source.parameter("PM2.5") is not None
    assert source.parameter(Parameter.COD) is None
    assert source.interval_for(Parameter.SO2) == 300
    assert source.interval_for(Parameter.WIND_SPEED) == 60  # a parameter's own cadence
    assert registry.get("HD-KT-01").interval_for("Dust") == 60
    with pytest.raises(KeyError, match="does not measure"):
        source.interval_for(Parameter.COD)


def test_facility_lookup(registry: Registry) -> None:
    source = registry.get("HD-KT-01")
    assert source.facility is not None
    assert "Phả Lại" in registry.facility(source.facility).name


# --- listings -----------------------------------------------------------------------------------


def test_format_table(registry: Registry) -> None:
    table = format_table(registry)
    for source in registry.sources:
        assert source.id in table
    assert table.splitlines()[-1].startswith("71 sources")


def test_to_json(registry: Registry) -> None:
    data = json.loads(to_json(registry))
    assert len(data["sources"]) == 71 and len(data["facilities"]) == 38
    assert data["sources"][0]["installed"].count("-") == 2
    assert Registry.model_validate(data).get("HD-NT-03").kind == SourceKind.WASTEWATER


def test_check_file_valid() -> None:
    assert check_file(DEFAULT_PATH) == []


def test_check_file_reports_path_and_problem(tmp_path: Path) -> None:
    path = tmp_path / "edited.yaml"
    path.write_text("sources: [\n", encoding="utf-8")
    (line,) = check_file(path)
    assert str(path) in line and "not valid YAML" in line
    assert "FileNotFoundError" in check_file(tmp_path / "missing.yaml")[0]


# --- validation errors name the entry, the field and the allowed values ------------------------


def _dump(data: dict[str, Any]) -> str:
    dumper = getattr(yaml, "CSafeDumper", yaml.SafeDumper)
    return yaml.dump(data, Dumper=dumper, allow_unicode=True)


def _source(data: dict[str, Any], source_id: str) -> dict[str, Any]:
    return next(s for s in data["sources"] if s["id"] == source_id)


def _set(source_id: str, key: str, value: Any) -> Callable[[dict[str, Any]], None]:
    return lambda d: _source(d, source_id).__setitem__(key, value)


def _param(source_id: str, index: int, key: str, value: Any) -> Callable[[dict[str, Any]], None]:
    return lambda d: _source(d, source_id)["parameters"][index].__setitem__(key, value)


def _limit(source_id: str, key: str, value: Any) -> Callable[[dict[str, Any]], None]:
    return lambda d: _source(d, source_id)["limits"][0].__setitem__(key, value)


def _dup_ftp(d: dict[str, Any]) -> None:
    _source(d, "HD-KK-02")["ftp"] = dict(_source(d, "HD-KK-01")["ftp"])


def _dup_param(d: dict[str, Any]) -> None:
    params = _source(d, "HD-NT-03")["parameters"]
    params.append(dict(params[0]))


@pytest.mark.parametrize(
    ("mutate", "expected"),
    [
        (
            _param("HD-NT-03", 4, "code", "COD2"),
            "sources[HD-NT-03].parameters[4].code: 'COD2' is not one of: SO2, NO2, NO, NOx",
        ),
        (_param("HD-NT-03", 4, "unit", "furlong"), "parameters[4].unit: 'furlong' is not one of"),
        (_param("HD-NT-03", 4, "unit", "µg/Nm3"), "unit 'µg/Nm3' does not fit COD; use one of"),
        (_param("HD-NT-03", 4, "range", [500, 0]), "range min must be below max"),
        (_param("HD-NT-03", 4, "rnage", [0, 5]), "parameters[4].rnage: unknown field"),
        (_set("HD-KK-03", "kind", "air"), "sources[HD-KK-03].kind: 'air' is not one of:"),
        (_set("HD-KK-03", "district", "Hà Nội"), "district: 'Hà Nội' is not one of: TP Hải"),
        (_set("HD-KK-03", "lat", 106.39), "sources[HD-KK-03].lat: Input should be less"),
        (_set("HD-KK-03", "id", "hd-kk-03"), "String should match pattern"),
        (_set("HD-KK-04", "id", "HD-KK-03"), "sources: 'HD-KK-03' is used more than once"),
        (_dup_ftp, "sources[].ftp: 'HD_TTQT_KHI001' is used more than once"),
        (_dup_param, "sources[HD-NT-03]: parameters listed twice: FlowIn"),
        (_set("HD-NT-03", "facility", "NOPE"), "sources[HD-NT-03].facility: 'NOPE' is not one"),
        (_set("HD-NT-03", "facility", None), "an emission source needs 'facility'"),
        (_set("HD-KK-01", "facility", "PL-TPP"), "'facility' is for emission sources only"),
        (_limit("HD-NT-03", "column", "B1"), "column 'B1' is not one of: A, B"),
        (
            _set("HD-NM-01", "limits", [{"regulation": "QCVN_08_2023", "column": "B"}]),
            "QCVN_08_2023 classifies the water body",
        ),
        (_set("HD-NM-01", "target_class", None), "needs 'target_class' (A, B, C or D)"),
        (_set("HD-NM-01", "target_class", "E"), "target_class: 'E' is not one of: A, B, C, D"),
        (_set("HD-KK-01", "target_class", "B"), "'target_class' is for surface-water stations"),
        (_limit("HD-NT-03", "coefficients", {"Kq": 0.9}), "QCVN_40_2011 takes coefficients: Kq"),
        (_limit("HD-NT-03", "coefficients", {"Kq": 0.9, "Kf": 0}), "coefficient Kf must be > 0"),
        (_set("HD-NT-03", "limits", [{"regulation": "QCVN_05_2023"}]), "applies to ambient_air"),
        (_limit("HD-NT-03", "regulation", "QCVN_14"), "'QCVN_14' is not one of: QCVN_05_2023"),
        (
            _limit("HD-NT-03", "overrides", {"Dust": {"max": 5, "basis": "GPMT 1"}}),
            "limits[0].overrides: Dust not measured here",
        ),
        (
            _limit("HD-NT-03", "overrides", {"COD": {"max": 5}}),
            "limits[0].overrides.COD.basis: required field is missing",
        ),
        (_set("HD-KK-01", "interval_s", 1), "interval_s: Input should be greater than or equal"),
    ],
)
def test_errors_are_readable(
    raw: dict[str, Any], mutate: Callable[[dict[str, Any]], None], expected: str
) -> None:
    data = copy.deepcopy(raw)
    mutate(data)
    with pytest.raises(RegistryError) as info:
        parse_registry(_dump(data), "edited.yaml")
    assert any(expected in line for line in info.value.lines), info.value.lines
    assert "edited.yaml" in str(info.value)


def test_all_problems_reported_at_once(raw: dict[str, Any]) -> None:
    data = copy.deepcopy(raw)
    _param("HD-NT-03", 4, "code", "COD2")(data)
    _set("HD-KK-03", "district", "Hà Nội")(data)
    with pytest.raises(RegistryError) as info:
        parse_registry(_dump(data))
    assert len(info.value.lines) == 2


@pytest.mark.parametrize("text", ["", "- a\n- b\n", "just text"])
def test_top_level_must_be_a_mapping(text: str) -> None:
    with pytest.raises(RegistryError, match="top level"):
        parse_registry(text)


def test_unit_aliases_accepted_and_normalised(raw: dict[str, Any]) -> None:
    data = copy.deepcopy(raw)
    _param("HD-NT-03", 4, "unit", "mg/l")(data)
    registry = parse_registry(_dump(data))
    spec = registry.get("HD-NT-03").parameter("COD")
    assert spec is not None and spec.unit == "mg/L"
