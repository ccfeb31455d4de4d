"""The validate stage: one RawReading → a QcReading (unit-normalised, one QC flag) or a Rejection.

Readings from the gateway are already parsed against the registry; this stage re-checks the
source, parameter and unit because anything can be produced to ``readings.raw`` directly, and a
reading it cannot place is dead-lettered with its exact bytes, never dropped. For the same
reason a message is decoded here (:func:`decode_raw`), not by Faust, which would only log one it
cannot decode: a message that is not a RawBatch (or a bare RawReading, as gateways published
before batches) is dead-lettered whole.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

from core.errors import RejectReason, UnitError
from core.records import (
    Channel,
    ManualAction,
    ManualValidation,
    QcBatch,
    QcReading,
    RawReading,
    Rejection,
    raw_reading,
)
from core.units import convert
from stations.registry import ParameterSpec, Registry
from thresholds.qc import QcRuleBook, QcRules, SeriesState, judge

_TEXT_FIELDS = ("source_id", "parameter", "unit", "status", "channel", "origin")


def _shape_error(r: RawReading) -> str | None:
    """Why a decoded reading is not one the validator can judge (Faust checks no types)."""
    d = r.__dict__
    for name in _TEXT_FIELDS:
        if not isinstance(d[name], str):
            return f"{name} must be a string, got {d[name]!r}"
    value = d["value"]
    if type(value) is not float and (isinstance(value, bool) or not isinstance(value, int | float)):
        return f"value must be a number, got {value!r}"
    if d["archive_path"] is not None and not isinstance(d["archive_path"], str):
        return f"archive_path must be a string or null, got {d['archive_path']!r}"
    for name in ("measured_at", "received_at"):
        t = d[name]
        if not isinstance(t, datetime) or t.utcoffset() is None:
            return f"{name} must be an ISO 8601 time with its offset, got {t!r}"
    return None


def decode_raw(
    payload: bytes, received_at: datetime, origin: str = ""
) -> list[RawReading] | ManualValidation | Rejection:
    """A ``readings.raw`` message as its readings (or an operator's manual validation, which
    the console produces there to keep it in order with the source's readings), or a
    Rejection carrying its exact bytes.

    ``origin`` names the message (topic:partition:offset), so a message delivered again after
    a crash gives the same rejection (same id), and two equal messages give two."""

    def reject(reason: RejectReason, message: str) -> Rejection:
        return message_rejection(payload, received_at, origin, reason, "readings.raw", message)

    try:
        data = json.loads(payload)
    except ValueError as exc:  # UnicodeDecodeError included
        return reject(RejectReason.BAD_JSON, f"not JSON: {exc}")
    if isinstance(data, dict) and "validation" in data:
        try:
            return ManualValidation.from_data(data)
        except (TypeError, ValueError, KeyError, AttributeError) as exc:
            return reject(RejectReason.JSON_SCHEMA, f"not a manual validation: {exc!r}")
    try:
        if isinstance(data, dict) and "readings" in data:
            if "source_id" not in data:
                raise TypeError("RawBatch is missing source_id")
            if not isinstance(data["readings"], list):
                raise TypeError(f"readings must be a list, not {type(data['readings']).__name__}")
            readings = [raw_reading(r) for r in data["readings"]]
        else:
            readings = [raw_reading(data)]
    except (TypeError, ValueError, KeyError, AttributeError) as exc:
        return reject(RejectReason.JSON_SCHEMA, f"not a RawBatch or RawReading: {exc}")
    for i, r in enumerate(readings):
        if (error := _shape_error(r)) is not None:
            return reject(RejectReason.JSON_SCHEMA, f"reading {i}: {error}")
    return readings


def message_rejection(
    payload: bytes,
    received_at: datetime,
    origin: str,
    reason: RejectReason,
    topic: str,
    message: str,
) -> Rejection:
    """A ``topic`` message that cannot be decoded, dead-lettered whole with its exact bytes."""
    return Rejection(
        reason=reason.value,
        message=f"{topic} message: {message}",
        channel=Channel.KAFKA.value,
        received_at=received_at,
        original_b64=base64.b64encode(payload).decode(),
        origin=origin,
    )


def decode_valid(payload: bytes, received_at: datetime, origin: str = "") -> QcBatch | Rejection:
    """A ``readings.valid`` message as its QcBatch, or a Rejection carrying its exact bytes
    (only the validate stage produces to it, but nothing stops anything else from doing so)."""
    try:
        return QcBatch.loads(payload)
    except (ValueError, KeyError, TypeError) as exc:  # JSONDecodeError is a ValueError
        return message_rejection(
            payload,
            received_at,
            origin,
            RejectReason.JSON_SCHEMA,
            "readings.valid",
            f"not a QcBatch: {exc!r}",
        )


@dataclass(frozen=True)
class _Series:
    spec: ParameterSpec
    rules: QcRules
    unit: str  # spec.unit's text: a reading sent in it needs no conversion


@dataclass(frozen=True)
class Validator:
    registry: Registry
    rules: QcRuleBook
    late_horizon_s: float
    future_tolerance_s: float
    _cache: dict[tuple[str, str], _Series] = field(default_factory=dict, repr=False, compare=False)

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
            archive_path=r.archive_path,
        )

    def _series(self, source_id: str, parameter: str) -> _Series | None:
        """What judging a series needs, looked up once per registered series (a lookup per
        reading in the registry's pydantic models was a twentieth of the check); None for a
        source or parameter the registry does not have, which is not cached: the input names
        those, and the cache stays bounded by the registry."""
        key = (source_id, parameter)
        found = self._cache.get(key)
        if found is None:
            source = self.registry.find(source_id)
            spec = source.parameter(parameter) if source is not None else None
            if source is None or spec is None:
                return None
            rules = self.rules.rules_for(source.kind, spec.code)
            found = self._cache[key] = _Series(spec, rules, spec.unit.value)
        return found

    def check(
        self, r: RawReading, state: SeriesState, now: datetime, position: int = -1
    ) -> QcReading | Rejection:
        series = self._series(r.source_id, r.parameter)
        if series is None:
            source = self.registry.find(r.source_id)
            if source is None:
                return self.reject(
                    r,
                    RejectReason.UNKNOWN_SOURCE,
                    f"source {r.source_id!r} is not in the registry",
                    "source_id",
                )
            measured = ", ".join(p.code.value for p in source.parameters)
            return self.reject(
                r,
                RejectReason.PARAMETER_NOT_MEASURED,
                f"{r.source_id} does not measure {r.parameter!r} (measured: {measured})",
                "parameter",
            )
        spec = series.spec
        try:
            same = r.unit == series.unit
            value = r.value if same else convert(r.value, r.unit, spec.unit, r.parameter)
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
            series.rules,
            measured_at=r.measured_at,
            now=now,
            late_horizon_s=self.late_horizon_s,
            future_tolerance_s=self.future_tolerance_s,
        )
        return QcReading(
            source_id=r.source_id,
            parameter=r.parameter,
            value=value,
            unit=series.unit,
            measured_at=r.measured_at,
            status=r.status,
            received_at=r.received_at,
            channel=r.channel,
            origin=r.origin,
            flag=flag.value,
            raw_value=r.value,
            raw_unit=r.unit,
            position=position,
            archive_path=r.archive_path,
            manual_id=state.manual.in_force(int(r.measured_at.timestamp())),
        )


@dataclass(frozen=True)
class Mark:
    """A manual validation as the item of one series (a whole-source one gives one per
    parameter the source measures)."""

    validation: ManualValidation
    parameter: str

    @property
    def source_id(self) -> str:
        return self.validation.source_id


@dataclass(frozen=True)
class Revalidation:
    """What a manual validation changed in one series' periods: the validate stage's store
    labels the stored readings of ``period`` and re-averages those of ``spans`` (the parts that
    became invalid, or valid again) that were stored before the decision (``position``)."""

    validation: ManualValidation
    parameter: str
    manual_id: int | None  # the readings' label from now on (None: restored)
    spans: tuple[tuple[datetime, datetime], ...]
    position: int

    @property
    def withdraws(self) -> bool:
        return self.manual_id is not None


@dataclass(slots=True)  # not frozen: its constructor costs twice as much, once per reading
class Arrival:
    """A raw reading (or a manual validation) as the validate step sees it: where it sits on
    ``readings.raw`` and the wall clock of its batch (the QC rules for the future and the late
    horizon need one)."""

    reading: RawReading | Mark
    position: int  # offset × POSITION_STRIDE + index: the reading's id downstream
    now: datetime


def revalidate(state: SeriesState, mark: Mark, position: int) -> Revalidation:
    """A manual validation applied to one series' periods: what it changed."""
    v = mark.validation
    start, end = int(v.start.timestamp()), int(v.end.timestamp())
    if v.action == ManualAction.INVALIDATE:
        spans = state.manual.invalidate(start, end, v.id)
        label: int | None = v.id
    else:
        spans = [(a, b) for a, b, _ in state.manual.restore(start, end)]
        label = None
    utc = tuple((datetime.fromtimestamp(a, UTC), datetime.fromtimestamp(b, UTC)) for a, b in spans)
    return Revalidation(v, mark.parameter, label, utc, position)


def validate(
    state: SeriesState, items: Sequence[Arrival], config: Validator
) -> tuple[SeriesState, list[QcReading | Rejection | Revalidation]]:
    """The validate stage's step: one series' raw readings → flagged readings or rejections,
    and its manual validations → what they changed."""
    out: list[QcReading | Rejection | Revalidation] = []
    for a in items:
        if isinstance(a.reading, Mark):
            out.append(revalidate(state, a.reading, a.position))
        else:
            out.append(config.check(a.reading, state, a.now, a.position))
    return state, out
