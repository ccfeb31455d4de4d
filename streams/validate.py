"""The validate stage: one RawReading → a QcReading (unit-normalised, one QC flag) or a Rejection.

Readings from the gateway are already parsed against the registry; this stage re-checks the
source, parameter and unit because anything can be produced to ``readings.raw`` directly, and a
reading it cannot place is dead-lettered with its exact bytes, never dropped.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from datetime import datetime

from stations.errors import RejectReason, UnitError
from stations.registry import Registry
from stations.units import convert
from streams.records import QcReading, RawReading, Rejection
from thresholds.qc import QcRuleBook, SeriesState, judge


@dataclass(frozen=True)
class Validator:
    registry: Registry
    rules: QcRuleBook
    late_horizon_s: float
    future_tolerance_s: float

    def reject(
        self, r: RawReading, reason: RejectReason, message: str, field: str | None = None
    ) -> Rejection:
        return Rejection(
            reason=reason.value,
            message=message,
            channel=r.channel,
            received_at=r.received_at,
            original_b64=base64.b64encode(r.dumps(serializer="json")).decode(),
            source_id=r.source_id,
            origin=r.origin,
            field=field,
        )

    def check(
        self, r: RawReading, state: SeriesState, now: datetime, position: int = -1
    ) -> QcReading | Rejection:
        try:
            source = self.registry.get(r.source_id)
        except KeyError:
            return self.reject(
                r,
                RejectReason.UNKNOWN_SOURCE,
                f"source {r.source_id!r} is not in the registry",
                "source_id",
            )
        spec = source.parameter(r.parameter)
        if spec is None:
            measured = ", ".join(p.code.value for p in source.parameters)
            return self.reject(
                r,
                RejectReason.PARAMETER_NOT_MEASURED,
                f"{r.source_id} does not measure {r.parameter!r} (measured: {measured})",
                "parameter",
            )
        try:
            value = convert(r.value, r.unit, spec.unit, r.parameter)
        except UnitError as exc:
            return self.reject(
                r,
                RejectReason.WRONG_UNIT,
                f"{r.parameter} in {r.unit!r} cannot become {spec.unit}: {exc}",
                "unit",
            )
        flag = judge(
            value,
            r.status,
            spec.range,
            state,
            self.rules.rules_for(source.kind, spec.code),
            measured_at=r.measured_at,
            now=now,
            late_horizon_s=self.late_horizon_s,
            future_tolerance_s=self.future_tolerance_s,
        )
        return QcReading(
            source_id=r.source_id,
            parameter=r.parameter,
            value=value,
            unit=spec.unit.value,
            measured_at=r.measured_at,
            status=r.status,
            received_at=r.received_at,
            channel=r.channel,
            origin=r.origin,
            flag=flag.value,
            raw_value=r.value,
            raw_unit=r.unit,
            position=position,
        )
