"""The closed vocabulary of measured parameters and their canonical units.

One place for the parameter codes every other module speaks. Codes follow the symbols of
Circular 10/2021/TT-BTNMT Annex 15 (Table 34) where one exists ("PM2,5" is written "PM2.5"
here); the remaining codes (weather, inflow/outflow, stack gases) name what dataloggers send
in practice.
"""

from __future__ import annotations

from enum import StrEnum


class Parameter(StrEnum):
    # ambient air (concentrations in µg/Nm³, CO included, as QCVN 05:2023 and Decision 1459 use)
    SO2 = "SO2"
    NO2 = "NO2"
    NO = "NO"
    NOX = "NOx"
    CO = "CO"
    O3 = "O3"
    PM10 = "PM10"
    PM2_5 = "PM2.5"
    TSP = "TSP"
    # weather at air stations
    TEMP = "Temp"
    RH = "RH"
    PRESSURE = "P"
    WIND_SPEED = "WS"
    WIND_DIR = "WD"
    # water (surface water and wastewater)
    PH = "pH"
    DO = "DO"
    COD = "COD"
    BOD5 = "BOD5"
    TSS = "TSS"
    NH4 = "NH4"
    TN = "TN"
    TP = "TP"
    TOC = "TOC"
    EC = "EC"
    TURBIDITY = "Turbidity"
    COLOR = "Color"
    FLOW_IN = "FlowIn"
    FLOW_OUT = "FlowOut"
    # stacks (continuous emission monitoring)
    FLOW = "Flow"
    O2 = "O2"
    DUST = "Dust"
    H2O = "H2O"
    OPACITY = "Opacity"


class SourceKind(StrEnum):
    AMBIENT_AIR = "ambient_air"
    SURFACE_WATER = "surface_water"
    WASTEWATER = "wastewater"
    STACK = "stack"

    @property
    def is_emission(self) -> bool:
        return self in (SourceKind.WASTEWATER, SourceKind.STACK)
