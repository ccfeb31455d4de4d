"""Records that cross agent and topic boundaries (the contract between pipeline stages).

Every topic carries one of these, keyed by ``source_id`` (``violations`` by ``violation_id``).
Times are timezone-aware UTC datetimes; local-time alignment (Asia/Ho_Chi_Minh) happens in the
averaging functions, never in the records.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, fields
from datetime import datetime
from enum import StrEnum
from typing import Any, TypeVar

import faust


class DeviceStatus(StrEnum):
    """Instrument status field of a Circular 10/2021 line."""

    MEASURING = "00"
    CALIBRATING = "01"
    ERROR = "02"


class Channel(StrEnum):
    FTP = "ftp"
    HTTP = "http"
    MQTT = "mqtt"
    SIMULATOR = "sim"
    KAFKA = "kafka"  # produced to readings.raw by something other than the gateway


class QcFlag(StrEnum):
    """One verdict per reading; only VALID readings count towards compliance averages."""

    VALID = "valid"
    CALIBRATING = "calibrating"
    DEVICE_ERROR = "device_error"
    OUT_OF_RANGE = "out_of_range"
    SPIKE = "spike"
    FLATLINE = "flatline"
    DUPLICATE = "duplicate"
    LATE = "late"


# Faust's own ISO-8601 parser is pure Python; the C one in the standard library (which reads
# "Z" since 3.11) halves the cost of decoding a message of readings.
ISO = datetime.fromisoformat
# Wire names (the "__faust" ns in each message) are the ones from before these records moved
# from streams/ to core/: messages already on the topics still decode after an upgrade.


class Period(StrEnum):
    """Averaging periods the regulations are written against (plus NowCast for VN_AQI)."""

    HOUR = "1h"  # local clock hour
    ROLLING_8H = "8h"  # mean of the 8 hourly means ending with this hour
    ROLLING_24H = "24h"  # mean of the 24 hourly means ending with this hour
    DAY = "day"  # local calendar day 00:00–24:00
    NOWCAST = "nowcast"  # Decision 1459 NowCast, PM10 and PM2.5 only


class RawReading(
    faust.Record,
    namespace="streams.records.RawReading",
    serializer="json",
    isodates=True,
    date_parser=ISO,
):
    """One measured value as a station sent it (unit as sent, not yet normalised)."""

    source_id: str
    parameter: str  # a core.parameters.Parameter value
    value: float
    unit: str
    measured_at: datetime  # UTC
    status: str  # a DeviceStatus value
    received_at: datetime  # UTC
    channel: str  # a Channel value
    origin: str  # file name or message id, for the evidence trail
    # where the gateway archived the delivery, relative to the archive root
    # (``<local date>/<source id>/<name>``); None when it was not archived (simulator, feeds,
    # older messages). Evidence packages read originals only from here (reports/evidence.py).
    archive_path: str | None = None


R = TypeVar("R", bound=faust.Record)


def flat_from_data(cls: type[R]) -> Callable[[Any], R]:
    """``cls.from_data`` for a record with no nested record, without Faust's generated
    constructor (~1 µs a record against ~8; it was a twentieth of the worker's CPU for the raw
    readings, as much again for the records its sinks read back). The same result: required
    fields or TypeError, ``__faust`` dropped, other keys kept, absent fields at their
    defaults, times parsed by ``ISO`` (TypeError for a non-string, ValueError for a bad one,
    None kept). Faust checks no types, neither does this. tests/unit/test_raw_decode.py holds
    them equal for every record the worker decodes."""
    options = cls._options
    names = tuple(options.fieldpos.values())
    defaults = dict(options.defaults)
    required = tuple(n for n in names if n not in defaults)
    times = tuple(n for n, t in options.fields.items() if t in (datetime, datetime | None))
    nested = [n for n, t in options.fields.items() if "Record" in repr(t) or "records." in repr(t)]
    assert not nested, f"{cls.__name__}.{nested[0]} is a record: use {cls.__name__}.from_data"

    def decode(data: Any) -> R:
        if not isinstance(data, dict):
            raise TypeError(f"a {cls.__name__} must be an object, not {type(data).__name__}")
        missing = [n for n in required if n not in data]
        if missing:
            raise TypeError(f"{cls.__name__} is missing {', '.join(missing)}")
        fields = {n: data[n] if n in data else defaults[n] for n in names}
        for n in times:
            if fields[n] is not None:
                fields[n] = ISO(fields[n])
        for k, v in data.items():  # what Faust keeps besides the fields
            if k not in fields and k != "__faust":
                fields[k] = v
        record: R = object.__new__(cls)
        record.__dict__.update(__evaluated_fields__=set(), **fields)
        return record

    return decode


raw_reading = flat_from_data(RawReading)


# A raw reading's position: its message's offset on readings.raw × POSITION_STRIDE + its index
# in the message. Positions of one series only grow, so state can tell a re-emitted copy.
POSITION_STRIDE = 1024
MAX_BATCH_READINGS = 500  # per RawBatch or QcBatch message (< POSITION_STRIDE; ~200 KiB)


class RawBatch(
    faust.Record,
    namespace="streams.records.RawBatch",
    serializer="json",
    isodates=True,
    date_parser=ISO,
):
    """What ``readings.raw`` carries: one source's readings from one delivery (a Circular 10
    file, an HTTP or MQTT body), in the order received; large deliveries are split at
    MAX_BATCH_READINGS. One message per delivery, not per reading: Faust's per-message cost
    (fetch, decode, dispatch) is what bounds the worker's throughput."""

    source_id: str
    readings: list[RawReading]


def raw_batches(readings: Iterable[RawReading], *, by_time: bool = True) -> list[RawBatch]:
    """Readings as messages: one per source (and, ``by_time``, per measurement time: what one
    station file holds), in the order each group first appears, so a source's readings keep
    their order. The gateway passes one delivery with ``by_time=False``: one message."""
    groups: dict[tuple[str, datetime | None], list[RawReading]] = {}
    for r in readings:
        groups.setdefault((r.source_id, r.measured_at if by_time else None), []).append(r)
    return [
        RawBatch(source_id=source_id, readings=group[i : i + MAX_BATCH_READINGS])
        for (source_id, _), group in groups.items()
        for i in range(0, len(group), MAX_BATCH_READINGS)
    ]


class ManualAction(StrEnum):
    INVALIDATE = "invalidate"
    RESTORE = "restore"


class ManualReason(StrEnum):
    """Why an operator invalidated a period (issue 21); ``other`` needs a note."""

    MAINTENANCE = "maintenance"
    CALIBRATION = "calibration"
    ANALYSER_FAULT = "analyser_fault"
    OTHER = "other"


@dataclass(frozen=True, slots=True)
class ManualHour:
    """What a manual decision changes in one hour of one series' averages: the sum and count
    of the valid readings it withdraws (negative) or restores (positive). The validate stage
    reads them from the database, where every reading stored before the decision is."""

    source_id: str
    parameter: str
    unit: str  # the registry's, as the readings' values
    hour: datetime  # UTC start of the local clock hour
    sum: float
    n: int
    position: int  # the decision's position on readings.raw (see POSITION_STRIDE)

    def to_data(self) -> dict[str, Any]:
        return {
            "source_id": self.source_id,
            "parameter": self.parameter,
            "unit": self.unit,
            "hour": self.hour.isoformat(),
            "sum": self.sum,
            "n": self.n,
            "position": self.position,
        }

    @classmethod
    def from_data(cls, d: dict[str, Any]) -> ManualHour:
        return cls(
            d["source_id"],
            d["parameter"],
            d["unit"],
            ISO(d["hour"]),
            d["sum"],
            d["n"],
            d["position"],
        )


@dataclass(frozen=True, slots=True)
class ManualValidation:
    """An operator's decision on a period of a source's data (one parameter, or every one when
    ``parameter`` is None): the console stores it (table manual_validations, its ``id``) and
    produces it to ``readings.raw`` keyed by source, so the validate stage applies it in order
    with the source's readings: everything stored before it is judged again, everything after
    it is flagged on arrival."""

    id: int
    source_id: str
    parameter: str | None
    start: datetime  # UTC, inclusive
    end: datetime  # UTC, exclusive
    action: str  # a ManualAction value
    reason: str  # a ManualReason value
    note: str
    by: str  # the console user
    at: datetime  # when the user decided

    def to_data(self) -> dict[str, Any]:
        return {
            "validation": {
                "id": self.id,
                "source_id": self.source_id,
                "parameter": self.parameter,
                "start": self.start.isoformat(),
                "end": self.end.isoformat(),
                "action": self.action,
                "reason": self.reason,
                "note": self.note,
                "by": self.by,
                "at": self.at.isoformat(),
            }
        }

    def dumps(self) -> bytes:
        return json.dumps(self.to_data(), separators=(",", ":"), ensure_ascii=False).encode()

    @classmethod
    def from_data(cls, data: dict[str, Any]) -> ManualValidation:
        """Raises ValueError (or KeyError, TypeError) for what is not a ManualValidation."""
        d = data["validation"]
        start, end, at = ISO(d["start"]), ISO(d["end"]), ISO(d["at"])
        if any(t.utcoffset() is None for t in (start, end, at)):
            raise ValueError("start, end and at need their UTC offset")
        if not end > start:
            raise ValueError(f"the period must end after it starts: {d['start']} – {d['end']}")
        parameter = d.get("parameter")
        texts = (d["source_id"], d["note"], d["by"])
        if not all(isinstance(t, str) for t in texts) or not isinstance(parameter, str | None):
            raise TypeError("source_id, parameter, note and by must be strings")
        if isinstance(d["id"], bool) or not isinstance(d["id"], int):
            raise TypeError(f"id must be an integer, got {d['id']!r}")
        return cls(
            id=d["id"],
            source_id=d["source_id"],
            parameter=parameter,
            start=start,
            end=end,
            action=ManualAction(d["action"]).value,
            reason=ManualReason(d["reason"]).value,
            note=d["note"],
            by=d["by"],
            at=at,
        )


@dataclass(slots=True)
class QcReading:
    """A RawReading after QA/QC: value in the registry's unit and one QC flag.

    A plain dataclass, not a Faust record: the worker makes, sends and reads one per reading,
    and Faust's record machinery was a fifth of its CPU (QcBatch.dumps/loads is the codec)."""

    source_id: str
    parameter: str
    value: float  # in `unit`, the registry's (regulation's) unit
    unit: str
    measured_at: datetime
    status: str
    received_at: datetime
    channel: str
    origin: str
    flag: str  # a QcFlag value
    raw_value: float
    raw_unit: str
    position: int = -1  # on readings.raw (see POSITION_STRIDE): state ignores a re-emitted copy
    archive_path: str | None = None  # the RawReading's
    # Manual validation (issue 21): the id of the operator's invalidation in force for this
    # reading when it arrived (None: none); such a reading is stored but never averaged.
    manual_id: int | None = None

    def to_data(self) -> dict[str, Any]:
        d = {f: getattr(self, f) for f in _QC_FIELDS}
        d["measured_at"] = self.measured_at.isoformat()
        d["received_at"] = self.received_at.isoformat()
        if d["manual_id"] is None:  # almost always: not worth a key per reading on the wire
            del d["manual_id"]
        return d

    @classmethod
    def from_data(cls, d: dict[str, Any]) -> QcReading:
        return cls(
            **{
                **{f: d[f] for f in _QC_FIELDS if f in d},
                "measured_at": ISO(d["measured_at"]),
                "received_at": ISO(d["received_at"]),
            }
        )


_QC_FIELDS = tuple(f.name for f in fields(QcReading))


@dataclass(slots=True)
class QcBatch:
    """One source's QcReadings from one validate batch, in raw-offset order: what
    ``readings.valid`` carries, as JSON (the fields of each reading, times in ISO 8601).

    One message per source per batch rather than one per reading: the per-message cost (send,
    fetch, dispatch) dominates the worker's CPU."""

    source_id: str
    readings: list[QcReading]
    # a manual decision's changes to the averages (one series' hours, never split: ≤ 31 days)
    hours: list[ManualHour] = field(default_factory=list)

    def dumps(self) -> bytes:
        data: dict[str, Any] = {
            "source_id": self.source_id,
            "readings": [r.to_data() for r in self.readings],
        }
        if self.hours:
            data["hours"] = [h.to_data() for h in self.hours]
        return json.dumps(data, separators=(",", ":")).encode()

    @classmethod
    def loads(cls, payload: bytes) -> QcBatch:
        """Raises ValueError, KeyError or TypeError for what is not a QcBatch."""
        data = json.loads(payload)
        return cls(
            data["source_id"],
            [QcReading.from_data(r) for r in data["readings"]],
            [ManualHour.from_data(h) for h in data.get("hours", ())],
        )


class Average(
    faust.Record,
    namespace="streams.records.Average",
    serializer="json",
    isodates=True,
    date_parser=ISO,
):
    """A regulatory average; re-emitted with a higher revision when late data corrects it."""

    source_id: str
    parameter: str
    period: str  # a Period value
    window_start: datetime  # UTC, inclusive
    window_end: datetime  # UTC, exclusive
    value: float | None  # None when no valid sample
    unit: str
    samples: int  # valid samples used
    expected: int  # samples the reporting cadence promises in the window
    completeness: float  # samples / expected, 0..1
    valid: bool  # completeness >= threshold
    revision: int = 0
    final: bool = True  # False for the running (partial) hour used by early warnings
    # Reference-O2 correction of a stack (thresholds/reference_o2.py, issue 19): when
    # ``o2_reference`` is set, ``value`` is the concentration at the reference O2 (None when the
    # window is not judged, ``not_judged`` says why) and these say what it was corrected from.
    measured_value: float | None = None
    o2_measured: float | None = None
    o2_reference: float | None = None
    correction_basis: str = ""
    not_judged: str = ""


class ViolationEvent(
    faust.Record,
    namespace="streams.records.ViolationEvent",
    serializer="json",
    isodates=True,
    date_parser=ISO,
):
    """One step in a violation's life: opened, updated, closed, corrected; or an outage."""

    violation_id: str  # deterministic: source/parameter/rule/episode start
    event: str  # opened | updated | closed | corrected | warning | outage_opened | outage_closed
    seq: int  # 0 for opened, +1 per later event of the same violation
    source_id: str
    parameter: str
    rule_id: str
    period: str
    started_at: datetime  # window start of the first exceeding average
    at: datetime  # window end of the average that caused this event
    value: float | None
    limit: float | None
    ratio: float | None  # value / limit (limit / value for lower limits)
    severity: str
    peak_value: float | None = None
    peak_ratio: float | None = None
    ended_at: datetime | None = None
    legal_basis: str = ""
    message: str = ""
    # Decree 45/2022/NĐ-CP, for sources only (wastewater, stacks; docs/regulations.md §8b): the
    # article and clause of the band in ``severity``, its sanction text, whether a source
    # confirms it (None: no schedule applies, e.g. an ambient station), the flow bracket the
    # fine is chosen by, and the flow used for it ("permitted" from the registry, or "measured").
    penalty_article: str = ""
    penalty_sanction: str = ""
    penalty_verified: bool | None = None
    flow_bracket: str = ""
    flow_basis: str = ""
    flow_value: float | None = None
    # Reference-O2 correction (stacks, issue 19): ``value``/``peak_value`` are at the reference
    # O2; these are the measured values and the window's O2 they were corrected from.
    measured_value: float | None = None
    o2_measured: float | None = None
    o2_reference: float | None = None
    peak_measured_value: float | None = None
    peak_o2_measured: float | None = None
    correction_basis: str = ""
    # Judged more than ``found_late_after_hours`` after its window ended: a station's backlog
    # after an outage, judged when it arrived (issue 18): the same verdict, a late alert.
    found_late: bool = False
    # A violation a late correction showed never was (e.g. its data invalidated by hand, issue
    # 21): closed, with no duration and no penalty band; kept, with its events, for the record.
    retracted: bool = False


class Rejection(
    faust.Record,
    namespace="streams.records.Rejection",
    serializer="json",
    isodates=True,
    date_parser=ISO,
):
    """The dead letter: what could not be accepted, why, and the exact bytes received."""

    reason: str  # a core.errors.RejectReason value
    message: str
    channel: str
    received_at: datetime
    original_b64: str  # base64 of the original bytes (a whole file or one line)
    source_id: str | None = None
    origin: str = ""
    line: int | None = None
    field: str | None = None
    archive_path: str | None = None  # as RawReading.archive_path; None for a quarantined body


class AqiRecord(
    faust.Record,
    namespace="streams.records.AqiRecord",
    serializer="json",
    isodates=True,
    date_parser=ISO,
):
    """Hourly or daily VN_AQI of an ambient air station (Decision 1459/QĐ-TCMT)."""

    source_id: str
    kind: str  # "hourly" | "daily"
    window_start: datetime
    aqi: int | None
    category: str | None
    dominant: str | None
    sub_indices: dict[str, int | None]


class Tick(
    faust.Record,
    namespace="streams.records.Tick",
    serializer="json",
    isodates=True,
    date_parser=ISO,
):
    """The leader's clock, per source: drives the data-outage check on the owning worker."""

    source_id: str
    at: datetime


class WaterQualityDay(
    faust.Record,
    namespace="streams.records.WaterQualityDay",
    serializer="json",
    isodates=True,
    date_parser=ISO,
):
    """A surface-water station's local day: QCVN 08:2023 class and VN_WQI (Decision 1460).

    Re-emitted with a higher revision as the day's parameter means arrive (or are corrected).
    ``alert``: the class is worse than the station's target class — a department water quality
    alert, not a source violation (thresholds/water_quality.py)."""

    source_id: str
    day: str  # local date, ISO
    day_start: datetime  # UTC instant of the local day's start
    water_class: str | None  # A..D, None when no parameter could be classified
    target_class: str | None
    alert: bool
    wqi: int | None
    wqi_meets_minimum: bool
    wqi_groups: dict[str, float]
    wqi_note: str
    means: dict[str, float]  # the daily means used, by parameter
    classes: dict[str, str]  # parameter → class
    skipped: dict[str, str]  # parameter → why it is not classified
    over_table1: list[str]  # above a QCVN 08:2023 Table 1 health limit
    revision: int
