"""Records → table rows, in the column order of storage.writer's TableSpecs."""

from __future__ import annotations

import base64
import hashlib
import json
from datetime import date

from psycopg.types.json import Jsonb

from core.records import (
    AqiRecord,
    Average,
    QcReading,
    Rejection,
    ViolationEvent,
    WaterQualityDay,
)
from storage.text import ORIGIN, PROSE, PROSE_MAX, db_json, db_text, db_text_or_none
from storage.writer import Row

# Every text field goes through storage.text (escaped, bounded): see its docstring for why.


def reading_row(r: QcReading) -> Row:
    return (
        db_text(r.source_id),
        db_text(r.parameter),
        r.measured_at,
        r.value,
        db_text(r.unit),
        db_text(r.status),
        db_text(r.flag),
        r.raw_value,
        db_text(r.raw_unit),
        r.received_at,
        db_text(r.channel),
        db_text(r.origin, ORIGIN),
        db_text_or_none(r.archive_path, ORIGIN),
        r.position if r.position >= 0 else None,
        r.manual_id,
    )


def average_row(a: Average) -> Row:
    return (
        db_text(a.source_id),
        db_text(a.parameter),
        db_text(a.period),
        a.window_start,
        a.window_end,
        a.value,
        db_text(a.unit),
        a.samples,
        a.expected,
        a.completeness,
        a.valid,
        a.revision,
    )


def aqi_row(a: AqiRecord) -> Row:
    return (
        db_text(a.source_id),
        db_text(a.kind),
        a.window_start,
        a.aqi,
        db_text_or_none(a.category),
        db_text_or_none(a.dominant),
        Jsonb(db_json(a.sub_indices)),
    )


def water_quality_row(w: WaterQualityDay) -> Row:
    return (
        db_text(w.source_id),
        date.fromisoformat(w.day),
        w.day_start,
        db_text_or_none(w.water_class),
        db_text_or_none(w.target_class),
        w.alert,
        w.wqi,
        w.wqi_meets_minimum,
        Jsonb(db_json(w.wqi_groups)),
        db_text(w.wqi_note, PROSE_MAX, PROSE),
        Jsonb(db_json(w.means)),
        Jsonb(db_json(w.classes)),
        Jsonb(db_json(w.skipped)),
        Jsonb(db_json(w.over_table1)),
        w.revision,
    )


def event_row(e: ViolationEvent) -> Row:
    payload = json.loads(e.dumps(serializer="json"))
    payload.pop("__faust", None)
    return (
        db_text(e.violation_id),
        e.seq,
        db_text(e.event),
        e.at,
        e.value,
        e.ratio,
        db_text(e.severity),
        Jsonb(db_json(payload)),
    )


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
        db_text(e.violation_id),
        kind,
        db_text(e.source_id),
        db_text(e.parameter),
        db_text(e.rule_id),
        db_text(e.period),
        "closed" if closed else "open",
        e.started_at,
        e.ended_at,
        e.at,
        e.value,
        e.limit,
        e.ratio,
        e.peak_value,
        e.peak_ratio,
        db_text(e.severity),
        db_text(e.legal_basis, PROSE_MAX, PROSE),
        e.seq,
        # Decree 45/2022 (wastewater and stacks only; NULL for ambient stations and outages)
        db_text_or_none(e.penalty_article or None),
        db_text_or_none(e.penalty_sanction or None, PROSE_MAX, PROSE),
        e.penalty_verified,
        db_text_or_none(e.flow_bracket or None),
        db_text_or_none(e.flow_basis or None),
        e.flow_value,
        # reference-O2 correction (stacks): value/peak are corrected, these are what they came from
        e.measured_value,
        e.o2_measured,
        e.o2_reference,
        e.peak_measured_value,
        e.peak_o2_measured,
        db_text_or_none(e.correction_basis or None, PROSE_MAX, PROSE),
        e.found_late,
        e.retracted,
    )


def rejection_id(r: Rejection) -> str:
    h = hashlib.sha256()
    for part in (r.channel, r.origin, str(r.line), r.reason, r.original_b64):
        h.update(part.encode("utf-8", "surrogatepass"))  # a name's undecodable bytes, too
        h.update(b"\0")
    return h.hexdigest()[:32]


def rejection_row(r: Rejection) -> Row:
    return (
        rejection_id(r),  # of the fields as received: two origins that escape alike stay two
        db_text(r.reason),
        db_text(r.message, PROSE_MAX, PROSE),
        db_text(r.channel),
        db_text_or_none(r.source_id),
        db_text(r.origin, ORIGIN),
        r.line,
        db_text_or_none(r.field),
        base64.b64decode(r.original_b64),  # the exact bytes, never escaped
        r.received_at,
        db_text_or_none(r.archive_path, ORIGIN),
    )
