"""Measurement units: the spellings stations send, and conversion to the registry's unit.

Stations write units however their datalogger vendor likes (``ug/m3``, ``µg/Nm³``, ``mg/l``,
``oC``, ``m3/ngày`` …). :func:`parse_unit` maps a spelling to one canonical :class:`Unit`;
:func:`convert` turns a value from the unit a station sent into the registry's unit, or raises a
named error when that is impossible (``mg/L`` is never ``µg/Nm3``).

Gas mixing ratios (ppb, ppm) convert to mass concentrations at 25 °C and 1 atm, the reference
conditions of QCVN 05:2023 and QCVN 19:2009 ("Nm³ = 25 °C, 760 mmHg", docs/regulations.md §3.1 and
§6.1), via the molar volume 24.45 L/mol: µg/Nm³ = ppb × M / 24.45.
"""

from __future__ import annotations

import functools
import unicodedata
from dataclasses import dataclass
from enum import StrEnum

from core.errors import IncompatibleUnitError, UnknownUnitError
from core.parameters import Parameter

#: Litres per mole of ideal gas at 25 °C and 101.325 kPa (the Nm³ of QCVN 05:2023 / 19:2009).
MOLAR_VOLUME_L = 24.45

#: Molar masses (g/mol) of the gases a mixing ratio may be sent for. NOx is expressed as NO2,
#: the convention of emission limits.
MOLAR_MASS_G: dict[Parameter, float] = {
    Parameter.SO2: 64.066,
    Parameter.NO2: 46.0055,
    Parameter.NOX: 46.0055,
    Parameter.NO: 30.006,
    Parameter.CO: 28.010,
    Parameter.O3: 47.998,
}


class Dimension(StrEnum):
    """What a unit measures; conversion happens only within one dimension (plus ppb→mass)."""

    GAS_MASS_CONC = "gas mass concentration"
    MIXING_RATIO = "gas mixing ratio"
    WATER_CONC = "water concentration"
    TEMPERATURE = "temperature"
    PH = "pH"
    VOLUME_FLOW = "volume flow"
    NORMAL_FLOW = "normal volume flow"
    PERCENT = "percent"
    PRESSURE = "pressure"
    SPEED = "speed"
    ANGLE = "angle"
    CONDUCTIVITY = "conductivity"
    TURBIDITY = "turbidity"
    COLOUR = "colour"


class Unit(StrEnum):
    """Canonical unit spellings (the ones the registry stores)."""

    UG_NM3 = "µg/Nm3"
    MG_NM3 = "mg/Nm3"
    G_NM3 = "g/Nm3"
    UG_M3 = "µg/m3"
    MG_M3 = "mg/m3"
    PPB = "ppb"
    PPM = "ppm"
    MG_L = "mg/L"
    UG_L = "µg/L"
    G_L = "g/L"
    DEG_C = "°C"
    KELVIN = "K"
    DEG_F = "°F"
    PH = "-"
    M3_H = "m3/h"
    M3_D = "m3/d"
    M3_S = "m3/s"
    M3_MIN = "m3/min"
    L_S = "L/s"
    L_MIN = "L/min"
    NM3_H = "Nm3/h"
    NM3_S = "Nm3/s"
    PERCENT = "%"
    PA = "Pa"
    HPA = "hPa"
    KPA = "kPa"
    MBAR = "mbar"
    BAR = "bar"
    MMHG = "mmHg"
    M_S = "m/s"
    KM_H = "km/h"
    DEG = "deg"
    US_CM = "µS/cm"
    MS_CM = "mS/cm"
    MS_M = "mS/m"
    NTU = "NTU"
    PT_CO = "Pt/Co"  # as QCVN 40:2011 Table 1 writes it


@dataclass(frozen=True)
class _Scale:
    dimension: Dimension
    factor: float  # value × factor = value in the dimension's base unit
    offset: float = 0.0  # added after the factor (temperature only)
    reference: bool = True  # gas concentrations: per Nm³ (True) or per actual m³ (False)


_SCALES: dict[Unit, _Scale] = {
    # base µg/Nm³
    Unit.UG_NM3: _Scale(Dimension.GAS_MASS_CONC, 1.0),
    Unit.MG_NM3: _Scale(Dimension.GAS_MASS_CONC, 1e3),
    Unit.G_NM3: _Scale(Dimension.GAS_MASS_CONC, 1e6),
    Unit.UG_M3: _Scale(Dimension.GAS_MASS_CONC, 1.0, reference=False),
    Unit.MG_M3: _Scale(Dimension.GAS_MASS_CONC, 1e3, reference=False),
    # base ppb
    Unit.PPB: _Scale(Dimension.MIXING_RATIO, 1.0),
    Unit.PPM: _Scale(Dimension.MIXING_RATIO, 1e3),
    # base mg/L
    Unit.MG_L: _Scale(Dimension.WATER_CONC, 1.0),
    Unit.UG_L: _Scale(Dimension.WATER_CONC, 1e-3),
    Unit.G_L: _Scale(Dimension.WATER_CONC, 1e3),
    # base °C
    Unit.DEG_C: _Scale(Dimension.TEMPERATURE, 1.0),
    Unit.KELVIN: _Scale(Dimension.TEMPERATURE, 1.0, offset=-273.15),
    Unit.DEG_F: _Scale(Dimension.TEMPERATURE, 5.0 / 9.0, offset=-32.0 * 5.0 / 9.0),
    Unit.PH: _Scale(Dimension.PH, 1.0),
    # base m³/h
    Unit.M3_H: _Scale(Dimension.VOLUME_FLOW, 1.0),
    Unit.M3_D: _Scale(Dimension.VOLUME_FLOW, 1.0 / 24.0),
    Unit.M3_S: _Scale(Dimension.VOLUME_FLOW, 3600.0),
    Unit.M3_MIN: _Scale(Dimension.VOLUME_FLOW, 60.0),
    Unit.L_S: _Scale(Dimension.VOLUME_FLOW, 3.6),
    Unit.L_MIN: _Scale(Dimension.VOLUME_FLOW, 0.06),
    # base Nm³/h (a normal flow needs the stack's T and P to become an actual flow: no mixing)
    Unit.NM3_H: _Scale(Dimension.NORMAL_FLOW, 1.0),
    Unit.NM3_S: _Scale(Dimension.NORMAL_FLOW, 3600.0),
    Unit.PERCENT: _Scale(Dimension.PERCENT, 1.0),
    # base Pa
    Unit.PA: _Scale(Dimension.PRESSURE, 1.0),
    Unit.HPA: _Scale(Dimension.PRESSURE, 100.0),
    Unit.KPA: _Scale(Dimension.PRESSURE, 1000.0),
    Unit.MBAR: _Scale(Dimension.PRESSURE, 100.0),
    Unit.BAR: _Scale(Dimension.PRESSURE, 1e5),
    Unit.MMHG: _Scale(Dimension.PRESSURE, 133.322387415),
    # base m/s
    Unit.M_S: _Scale(Dimension.SPEED, 1.0),
    Unit.KM_H: _Scale(Dimension.SPEED, 1.0 / 3.6),
    Unit.DEG: _Scale(Dimension.ANGLE, 1.0),
    # base µS/cm
    Unit.US_CM: _Scale(Dimension.CONDUCTIVITY, 1.0),
    Unit.MS_CM: _Scale(Dimension.CONDUCTIVITY, 1e3),
    Unit.MS_M: _Scale(Dimension.CONDUCTIVITY, 10.0),
    Unit.NTU: _Scale(Dimension.TURBIDITY, 1.0),
    Unit.PT_CO: _Scale(Dimension.COLOUR, 1.0),
}

# Spellings seen in the field, after _key() folding (lower case, no spaces, µ/μ → u, ³ → 3,
# Vietnamese diacritics removed). Each canonical spelling is added automatically.
_ALIASES: dict[str, Unit] = {
    "ug/nm3": Unit.UG_NM3,
    "mcg/nm3": Unit.UG_NM3,
    "ug/m3n": Unit.UG_NM3,
    "ugnm-3": Unit.UG_NM3,
    "ug/nm^3": Unit.UG_NM3,
    "microgram/nm3": Unit.UG_NM3,
    "mg/nm3": Unit.MG_NM3,
    "mg/m3n": Unit.MG_NM3,
    "mgnm-3": Unit.MG_NM3,
    "g/nm3": Unit.G_NM3,
    "ug/m3": Unit.UG_M3,
    "mcg/m3": Unit.UG_M3,
    "ug/m^3": Unit.UG_M3,
    "microgram/m3": Unit.UG_M3,
    "mg/m3": Unit.MG_M3,
    "mg/m^3": Unit.MG_M3,
    "ppb": Unit.PPB,
    "ppbv": Unit.PPB,
    "ppm": Unit.PPM,
    "ppmv": Unit.PPM,
    "mg/l": Unit.MG_L,
    "g/m3": Unit.MG_L,
    "ug/l": Unit.UG_L,
    "g/l": Unit.G_L,
    "°c": Unit.DEG_C,
    "oc": Unit.DEG_C,
    "ºc": Unit.DEG_C,
    "degc": Unit.DEG_C,
    "c": Unit.DEG_C,
    "celsius": Unit.DEG_C,
    "doc": Unit.DEG_C,  # "độ C"
    "k": Unit.KELVIN,
    "°f": Unit.DEG_F,
    "degf": Unit.DEG_F,
    "-": Unit.PH,
    "": Unit.PH,
    "ph": Unit.PH,
    "m3/h": Unit.M3_H,
    "m3/hr": Unit.M3_H,
    "m3/gio": Unit.M3_H,
    "m3h-1": Unit.M3_H,
    "m3/d": Unit.M3_D,
    "m3/day": Unit.M3_D,
    "m3/ngay": Unit.M3_D,
    "m3/ngd": Unit.M3_D,
    "m3/ngay.dem": Unit.M3_D,
    "m3/24h": Unit.M3_D,
    "m3/s": Unit.M3_S,
    "m3/min": Unit.M3_MIN,
    "m3/phut": Unit.M3_MIN,
    "l/s": Unit.L_S,
    "l/min": Unit.L_MIN,
    "nm3/h": Unit.NM3_H,
    "nm3/hr": Unit.NM3_H,
    "nm3/s": Unit.NM3_S,
    "%": Unit.PERCENT,
    "%vol": Unit.PERCENT,
    "%v": Unit.PERCENT,
    "vol%": Unit.PERCENT,
    "%rh": Unit.PERCENT,
    "pa": Unit.PA,
    "hpa": Unit.HPA,
    "kpa": Unit.KPA,
    "mbar": Unit.MBAR,
    "mb": Unit.MBAR,
    "bar": Unit.BAR,
    "mmhg": Unit.MMHG,
    "m/s": Unit.M_S,
    "ms-1": Unit.M_S,
    "km/h": Unit.KM_H,
    "deg": Unit.DEG,
    "°": Unit.DEG,
    "do": Unit.DEG,  # "độ"
    "degree": Unit.DEG,
    "degrees": Unit.DEG,
    "us/cm": Unit.US_CM,
    "ms/cm": Unit.MS_CM,
    "ms/m": Unit.MS_M,
    "ntu": Unit.NTU,
    "pt-co": Unit.PT_CO,
    "pt/co": Unit.PT_CO,
    "ptco": Unit.PT_CO,
    "pt_co": Unit.PT_CO,
    "pcu": Unit.PT_CO,
}

#: Longest unit text looked at; anything longer is not a unit.
MAX_UNIT_CHARS = 32


def _key(text: str) -> str:
    """Fold a unit spelling: NFKC (³ → 3), µ/μ → u, no diacritics, no spaces, lower case."""
    folded = unicodedata.normalize("NFKC", text).replace("μ", "u").replace("đ", "d")
    folded = folded.replace("Đ", "d")
    decomposed = unicodedata.normalize("NFD", folded)
    kept = "".join(ch for ch in decomposed if unicodedata.category(ch) != "Mn" or ch == "°")
    return "".join(kept.split()).lower()


_PARAMETER_CODES = frozenset(p.value for p in Parameter)
_LOOKUP: dict[str, Unit] = {**{_key(u.value): u for u in Unit}, **_ALIASES}


def parse_unit(text: str | Unit) -> Unit:
    """The canonical unit for a spelling; raises UnknownUnitError if none matches."""
    if isinstance(text, Unit):
        return text
    return _parse_spelling(text)


# A feed sends the same few spellings, reading after reading, and folding one (two Unicode
# normalisations) cost more than the rest of the conversion. Bounded: what a station sends is
# not ours to grow without end. A spelling that is no unit raises, and is not remembered.
@functools.lru_cache(maxsize=4096)
def _parse_spelling(text: str) -> Unit:
    if len(text) > MAX_UNIT_CHARS:
        raise UnknownUnitError(text)
    unit = _LOOKUP.get(_key(text))
    if unit is None:
        raise UnknownUnitError(text)
    return unit


def dimension_of(unit: str | Unit) -> Dimension:
    return _SCALES[parse_unit(unit)].dimension


def convert(
    value: float,
    from_unit: str | Unit,
    to_unit: str | Unit,
    parameter: Parameter | str | None = None,
    *,
    assume_reference_conditions: bool = True,
) -> float:
    """``value`` in ``from_unit`` expressed in ``to_unit``.

    ``parameter`` is needed only for ppb/ppm ↔ mass concentration (the molar mass).
    ``assume_reference_conditions``: ambient analysers commonly label their output µg/m³ while
    reporting at the analyser's reference conditions; when True (the default) µg/m³ is taken as
    µg/Nm³. Pass False to refuse such a conversion.
    Raises UnknownUnitError for an unknown spelling, IncompatibleUnitError when impossible.
    """
    src, dst = parse_unit(from_unit), parse_unit(to_unit)
    if src == dst:
        return value
    a, b = _SCALES[src], _SCALES[dst]
    if a.dimension == b.dimension:
        if a.reference != b.reference and not assume_reference_conditions:
            raise IncompatibleUnitError(src, dst, "actual m³ vs normal m³ needs T and P")
        base = value * a.factor + a.offset
        return (base - b.offset) / b.factor
    mixing = {a.dimension, b.dimension} == {Dimension.MIXING_RATIO, Dimension.GAS_MASS_CONC}
    if mixing:
        molar_mass = _molar_mass(parameter, src, dst)
        if a.dimension == Dimension.MIXING_RATIO:
            ug_nm3 = value * a.factor * molar_mass / MOLAR_VOLUME_L
            return ug_nm3 / b.factor
        ppb = value * a.factor * MOLAR_VOLUME_L / molar_mass
        return ppb / b.factor
    raise IncompatibleUnitError(src, dst, f"{a.dimension} cannot become {b.dimension}")


def _molar_mass(parameter: Parameter | str | None, src: Unit, dst: Unit) -> float:
    mass = None
    if parameter is not None and parameter in _PARAMETER_CODES:
        mass = MOLAR_MASS_G.get(Parameter(parameter))
    if mass is None:
        gases = ", ".join(p.value for p in MOLAR_MASS_G)
        raise IncompatibleUnitError(
            src, dst, f"ppb/ppm converts only for {gases}, not {parameter!r}"
        )
    return mass


def can_convert(
    from_unit: str | Unit, to_unit: str | Unit, parameter: Parameter | str | None = None
) -> bool:
    """True when :func:`convert` would succeed (unknown spellings are False too)."""
    try:
        convert(1.0, from_unit, to_unit, parameter)
    except (UnknownUnitError, IncompatibleUnitError):
        return False
    return True
