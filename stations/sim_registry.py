"""Simulated series for every parameter of every registered source (typical levels per kind)."""

from __future__ import annotations

from core.parameters import Parameter as P
from core.parameters import SourceKind as K
from stations.registry import Registry
from stations.simulator import Series

# (typical level, diurnal amplitude share, noise share) in the registry's canonical units.
TYPICAL: dict[tuple[K, P], tuple[float, float, float]] = {
    (K.AMBIENT_AIR, P.SO2): (25, 0.3, 0.15),
    (K.AMBIENT_AIR, P.NO2): (35, 0.4, 0.15),
    (K.AMBIENT_AIR, P.NO): (15, 0.4, 0.2),
    (K.AMBIENT_AIR, P.NOX): (50, 0.4, 0.15),
    (K.AMBIENT_AIR, P.CO): (1200, 0.3, 0.1),
    (K.AMBIENT_AIR, P.O3): (60, 0.6, 0.1),
    (K.AMBIENT_AIR, P.PM10): (70, 0.3, 0.15),
    (K.AMBIENT_AIR, P.PM2_5): (38, 0.3, 0.15),
    (K.AMBIENT_AIR, P.TSP): (110, 0.3, 0.15),
    (K.AMBIENT_AIR, P.TEMP): (24, 0.15, 0.02),
    (K.AMBIENT_AIR, P.RH): (75, 0.15, 0.03),
    (K.AMBIENT_AIR, P.PRESSURE): (1012, 0.002, 0.001),
    (K.AMBIENT_AIR, P.WIND_SPEED): (2.5, 0.4, 0.2),
    (K.AMBIENT_AIR, P.WIND_DIR): (120, 0.3, 0.3),
    (K.SURFACE_WATER, P.PH): (7.3, 0.02, 0.01),
    (K.SURFACE_WATER, P.DO): (5.8, 0.15, 0.04),
    (K.SURFACE_WATER, P.TEMP): (24, 0.05, 0.01),
    (K.SURFACE_WATER, P.COD): (12, 0.1, 0.08),
    (K.SURFACE_WATER, P.TSS): (30, 0.1, 0.1),
    (K.SURFACE_WATER, P.NH4): (0.2, 0.1, 0.1),
    (K.WASTEWATER, P.PH): (7.2, 0.03, 0.01),
    (K.WASTEWATER, P.TEMP): (30, 0.05, 0.02),
    (K.WASTEWATER, P.COD): (70, 0.2, 0.1),
    (K.WASTEWATER, P.TSS): (40, 0.2, 0.1),
    (K.WASTEWATER, P.NH4): (4, 0.2, 0.1),
    (K.WASTEWATER, P.FLOW_IN): (60, 0.4, 0.1),
    (K.WASTEWATER, P.FLOW_OUT): (55, 0.4, 0.1),
    (K.STACK, P.FLOW): (90000, 0.1, 0.05),
    (K.STACK, P.TEMP): (140, 0.05, 0.02),
    (K.STACK, P.PRESSURE): (101, 0.001, 0.001),
    (K.STACK, P.O2): (9, 0.05, 0.03),
    (K.STACK, P.DUST): (60, 0.2, 0.1),
    (K.STACK, P.SO2): (250, 0.2, 0.1),
    (K.STACK, P.NOX): (400, 0.2, 0.1),
    (K.STACK, P.CO): (300, 0.2, 0.1),
    (K.STACK, P.H2O): (8, 0.05, 0.03),
    (K.STACK, P.OPACITY): (8, 0.2, 0.1),
    (K.SURFACE_WATER, P.TN): (1.0, 0.1, 0.1),
    (K.SURFACE_WATER, P.TP): (0.2, 0.1, 0.1),
    (K.SURFACE_WATER, P.EC): (350, 0.05, 0.05),
    (K.SURFACE_WATER, P.TURBIDITY): (25, 0.1, 0.1),
    (K.WASTEWATER, P.COLOR): (60, 0.2, 0.1),
    (K.WASTEWATER, P.TN): (18, 0.2, 0.1),
    (K.WASTEWATER, P.TP): (2.5, 0.2, 0.1),
}


def series_for(registry: Registry) -> list[Series]:
    out: list[Series] = []
    for src in registry.sources:
        for spec in src.parameters:
            code = P(spec.code)
            lo = spec.range[0]
            base, amp, noise = TYPICAL[(src.kind, code)]  # KeyError: add the pair above
            out.append(
                Series(
                    source_id=src.id,
                    parameter=code.value,
                    unit=spec.unit,
                    interval_s=spec.interval_s or src.interval_s,
                    base=base,
                    amplitude=amp,
                    noise=noise,
                    floor=lo,
                )
            )
    return out
