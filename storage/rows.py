"""Records → table rows, in the column order of storage.writer's TableSpecs."""

from __future__ import annotations

import base64
import hashlib
import json
from datetime import date

from psycopg.types.json import Jsonb

from storage.writer import Row
from streams.records import (
    AqiRecord,
    Average,
    QcReading,
    Rejection,
    ViolationEvent,
    WaterQualityDay,
)


def reading_row(r: QcReading) -> Row:
    return (
        r.source_id,
        r.parameter,
        r.measured_at,
        r.value,
        r.unit,
        r.status,
        r.flag,
        r.raw_value,
        r.raw_unit,
        r.received_at,
        r.channel,
        r.origin,
    )


def average_row(a: Average) -> Row:
    return (
        a.source_id,
        a.parameter,
        a.period,
        a.window_start,
        a.window_end,
        a.value,
        a.unit,
        a.samples,
        a.expected,
        a.completeness,
        a.valid,
        a.revision,
    )


def aqi_row(a: AqiRecord) -> Row:
    return (
        a.source_id,
        a.kind,
        a.window_start,
        a.aqi,
        a.category,
        a.dominant,
        Jsonb(a.sub_indices),
    )


def water_quality_row(w: WaterQualityDay) -> Row:
    return (
        w.source_id,
        date.fromisoformat(w.day),
        w.day_start,
        w.water_class,
        w.target_class,
        w.alert,
        w.wqi,
        w.wqi_meets_minimum,
        Jsonb(w.wqi_groups),
        w.wqi_note,
        Jsonb(w.means),
        Jsonb(w.classes),
        Jsonb(w.skipped),
        Jsonb(w.over_table1),
        w.revision,
    )


def event_row(e: ViolationEvent) -> Row:
    payload = json.loads(e.dumps(serializer="json"))
    payload.pop("__faust", None)
    return (e.violation_id, e.seq, e.event, e.at, e.value, e.ratio, e.severity, Jsonb(payload))


def violation_row(e: ViolationEvent) -> Row:
    """The violation's current state after this event (the table keeps the latest seq).

    An early warning (the running hour already makes the hourly mean's exceedance likely or
    certain) is its own record, kind ``warning``: it announces, it does not stay open — the
    hourly average then opens the real violation, or does not.
    """
    kind = (
        "outage"
        if e.event.startswith("outage")
        else "warning"
        if e.event == "warning"
        else "exceedance"
    )
    closed = e.event in ("closed", "outage_closed", "warning")
    return (
        e.violation_id,
        kind,
        e.source_id,
        e.parameter,
        e.rule_id,
        e.period,
        "closed" if closed else "open",
        e.started_at,
        e.ended_at,
        e.at,
        e.value,
        e.limit,
        e.ratio,
        e.peak_value,
        e.peak_ratio,
        e.severity,
        e.legal_basis,
        e.seq,
        # Decree 45/2022 (wastewater and stacks only; NULL for ambient stations and outages)
        e.penalty_article or None,
        e.penalty_sanction or None,
        e.penalty_verified,
        e.flow_bracket or None,
        e.flow_basis or None,
        e.flow_value,
    )


def rejection_id(r: Rejection) -> str:
    h = hashlib.sha256()
    for part in (r.channel, r.origin, str(r.line), r.reason, r.original_b64):
        h.update(part.encode())
        h.update(b"\0")
    return h.hexdigest()[:32]


def rejection_row(r: Rejection) -> Row:
    return (
        rejection_id(r),
        r.reason,
        r.message,
        r.channel,
        r.source_id,
        r.origin,
        r.line,
        r.field,
        base64.b64decode(r.original_b64),
        r.received_at,
    )
