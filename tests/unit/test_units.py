"""Unit spellings and conversions (core/units.py)."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from core.errors import IncompatibleUnitError, UnknownUnitError
from core.parameters import Parameter
from core.units import (
    MOLAR_VOLUME_L,
    Dimension,
    Unit,
    can_convert,
    convert,
    dimension_of,
    parse_unit,
)


@pytest.mark.parametrize(
    ("text", "unit"),
    [
        ("µg/Nm3", Unit.UG_NM3),  # micro sign U+00B5
        ("μg/Nm3", Unit.UG_NM3),  # Greek mu U+03BC
        ("ug/Nm3", Unit.UG_NM3),
        ("µg/Nm³", Unit.UG_NM3),
        ("UG/NM3", Unit.UG_NM3),
        (" µg / Nm3 ", Unit.UG_NM3),
        ("mcg/Nm3", Unit.UG_NM3),
        ("ug/m3", Unit.UG_M3),
        ("µg/m³", Unit.UG_M3),
        ("mg/Nm3", Unit.MG_NM3),
        ("mg/m3", Unit.MG_M3),
        ("mg/l", Unit.MG_L),
        ("mg/L", Unit.MG_L),
        ("g/m3", Unit.MG_L),
        ("oC", Unit.DEG_C),
        ("°C", Unit.DEG_C),
        ("độ C", Unit.DEG_C),
        ("", Unit.PH),
        ("-", Unit.PH),
        ("pH", Unit.PH),
        ("m3/h", Unit.M3_H),
        ("m³/h", Unit.M3_H),
        ("m3/ngày", Unit.M3_D),
        ("m3/ngđ", Unit.M3_D),
        ("m3/day", Unit.M3_D),
        ("Nm3/h", Unit.NM3_H),
        ("%", Unit.PERCENT),
        ("% vol", Unit.PERCENT),
        ("kPa", Unit.KPA),
        ("hPa", Unit.HPA),
        ("mbar", Unit.MBAR),
        ("m/s", Unit.M_S),
        ("độ", Unit.DEG),
        ("°", Unit.DEG),
        ("uS/cm", Unit.US_CM),
        ("µS/cm", Unit.US_CM),
        ("NTU", Unit.NTU),
        ("Pt/Co", Unit.PT_CO),
        ("Pt-Co", Unit.PT_CO),
        ("ppb", Unit.PPB),
        ("ppm", Unit.PPM),
    ],
)
def test_parse_unit_aliases(text: str, unit: Unit) -> None:
    assert parse_unit(text) == unit


@pytest.mark.parametrize("text", ["bananas", "mg", "µg/Nm4", "x" * 100, "<script>", "m3"])
def test_parse_unit_unknown(text: str) -> None:
    with pytest.raises(UnknownUnitError):
        parse_unit(text)


@pytest.mark.parametrize(
    ("value", "src", "dst", "parameter", "expected"),
    [
        (1.0, "mg/m3", "µg/m3", None, 1000.0),
        (250.0, "µg/m3", "mg/m3", None, 0.25),
        (1.5, "mg/Nm3", "µg/Nm3", None, 1500.0),
        # ambient analysers' µg/m³ taken at reference conditions (documented policy)
        (35.0, "ug/m3", "µg/Nm3", None, 35.0),
        (12.0, "mg/l", "mg/L", None, 12.0),
        (500.0, "µg/L", "mg/L", None, 0.5),
        # ppb → µg/Nm³ at 25 °C: × M / 24.45 (QCVN 05:2023 Nm³ = 25 °C, 760 mmHg)
        (1.0, "ppb", "µg/Nm3", Parameter.SO2, 64.066 / 24.45),  # 2.620
        (1.0, "ppb", "µg/Nm3", Parameter.NO2, 46.0055 / 24.45),  # 1.882
        (1.0, "ppb", "µg/Nm3", Parameter.O3, 47.998 / 24.45),  # 1.963
        (1.0, "ppm", "µg/Nm3", Parameter.CO, 28.010 / 24.45 * 1000),  # 1145.6
        (100.0, "ppm", "mg/Nm3", Parameter.SO2, 100 * 64.066 / 24.45),  # stack SO2
        (100.0, "ppm", "mg/Nm3", Parameter.NOX, 100 * 46.0055 / 24.45),  # NOx as NO2
        (2620.3, "µg/Nm3", "ppm", Parameter.SO2, 2620.3 * 24.45 / 64.066 / 1000),
        (298.15, "K", "°C", None, 25.0),
        (77.0, "°F", "°C", None, 25.0),
        (25.0, "°C", "K", None, 298.15),
        (2400.0, "m3/ngày", "m3/h", None, 100.0),
        (10.0, "L/s", "m3/h", None, 36.0),
        (1.0, "m3/s", "m3/h", None, 3600.0),
        (1013.25, "mbar", "hPa", None, 1013.25),
        (101.325, "kPa", "hPa", None, 1013.25),
        (760.0, "mmHg", "kPa", None, 101.325),
        (1.2, "mS/cm", "µS/cm", None, 1200.0),
        (36.0, "km/h", "m/s", None, 10.0),
    ],
)
def test_convert(
    value: float, src: str, dst: str, parameter: Parameter | None, expected: float
) -> None:
    assert convert(value, src, dst, parameter) == pytest.approx(expected, rel=1e-4)


def test_molar_volume_is_25_degrees() -> None:
    # R·T/P at 298.15 K, 101.325 kPa = 24.465 L; the conventional 24.45 is within 0.1 %.
    assert math.isclose(MOLAR_VOLUME_L, 8.314462 * 298.15 / 101.325, rel_tol=1e-3)


@pytest.mark.parametrize(
    ("src", "dst", "parameter"),
    [
        ("mg/L", "µg/Nm3", Parameter.PM10),
        ("ppm", "mg/Nm3", Parameter.DUST),  # dust has no molar mass
        ("ppb", "µg/Nm3", None),
        ("ppm", "mg/L", Parameter.COD),
        ("Nm3/h", "m3/h", Parameter.FLOW),  # needs stack T and P
        ("°C", "%", Parameter.TEMP),
        ("NTU", "Pt-Co", None),
        ("-", "mg/L", Parameter.PH),
    ],
)
def test_incompatible(src: str, dst: str, parameter: Parameter | None) -> None:
    with pytest.raises(IncompatibleUnitError):
        convert(1.0, src, dst, parameter)
    assert not can_convert(src, dst, parameter)


def test_strict_reference_conditions_refuses_actual_m3() -> None:
    with pytest.raises(IncompatibleUnitError, match="normal"):
        convert(1.0, "µg/m3", "µg/Nm3", assume_reference_conditions=False)


def test_unknown_unit_in_convert() -> None:
    with pytest.raises(UnknownUnitError, match="furlongs"):
        convert(1.0, "furlongs", "m/s")
    assert not can_convert("furlongs", "m/s")


def test_every_unit_has_a_dimension() -> None:
    assert {dimension_of(u) for u in Unit} <= set(Dimension)


_SAME_DIMENSION_PAIRS = [
    (a, b) for a in Unit for b in Unit if a != b and dimension_of(a) == dimension_of(b)
]


@given(
    st.sampled_from(_SAME_DIMENSION_PAIRS),
    st.floats(min_value=-1e6, max_value=1e6, allow_nan=False),
)
def test_round_trip(pair: tuple[Unit, Unit], value: float) -> None:
    a, b = pair
    back = convert(convert(value, a, b), b, a)
    assert math.isclose(back, value, rel_tol=1e-9, abs_tol=1e-9)


def test_the_spellings_remembered_are_bounded_and_unknown_ones_never_are() -> None:
    from core import units

    remembered = units._parse_spelling
    remembered.cache_clear()
    spellings = ["mg/L", "mg/l", "MG/L", " mg / L ", "Mg/L"]
    assert {parse_unit(s) for s in spellings} == {parse_unit("mg/L")}
    info = remembered.cache_info()
    assert (info.currsize, info.maxsize) == (len(spellings), 4096)
    for s in spellings:
        parse_unit(s)
    assert remembered.cache_info().hits == 1 + len(spellings)  # "mg/L" above, then each again
    with pytest.raises(UnknownUnitError):
        parse_unit("furlongs")
    with pytest.raises(UnknownUnitError):
        parse_unit("furlongs")  # not remembered as anything
    assert remembered.cache_info().currsize == len(spellings)
