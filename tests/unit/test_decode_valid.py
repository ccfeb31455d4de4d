"""core/records.py QcBatch codec and streams/validate.py decode_valid: what readings.valid
carries between the validate and averaging stages, and what the averager dead-letters."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from core.records import QcBatch, QcFlag, QcReading, Rejection
from streams.validate import decode_valid

NOW = datetime(2026, 11, 24, 3, 10, tzinfo=UTC)


def qc(**changes: Any) -> QcReading:
    fields: dict[str, Any] = {
        "source_id": "HD-NT-01",
        "parameter": "COD",
        "value": 41.5,
        "unit": "mg/L",
        "measured_at": NOW,
        "status": "00",
        "received_at": NOW + timedelta(seconds=2),
        "channel": "ftp",
        "origin": "HD_NT_NUOC001_20261124101000.txt",
        "flag": QcFlag.VALID.value,
        "raw_value": 41.5,
        "raw_unit": "mg/l",
        "position": 7 * 1024 + 3,
    }
    return QcReading(**{**fields, **changes})


def test_a_batch_survives_the_wire_exactly() -> None:
    batch = QcBatch("HD-NT-01", [qc(), qc(parameter="TSS", value=12.0, flag="spike")])
    assert QcBatch.loads(batch.dumps()) == batch


def test_times_are_iso_8601_with_their_offset_on_the_wire() -> None:
    wire = json.loads(QcBatch("HD-NT-01", [qc()]).dumps())
    assert wire["readings"][0]["measured_at"] == "2026-11-24T03:10:00+00:00"


def test_a_message_the_faust_record_wrote_still_decodes() -> None:
    """Before 2026-12 readings.valid carried Faust records: the same fields plus metadata."""
    r = json.loads(QcBatch("HD-NT-01", [qc()]).dumps())["readings"][0]
    faust_era = {
        "source_id": "HD-NT-01",
        "readings": [{**r, "__faust": {"ns": "streams.records.QcReading"}}],
        "__faust": {"ns": "streams.records.QcBatch"},
    }
    out = decode_valid(json.dumps(faust_era).encode(), NOW)
    assert out == QcBatch("HD-NT-01", [qc()])


@pytest.mark.parametrize(
    "payload",
    [
        b"\xff not json",
        b"[]",
        b'{"source_id": "HD-NT-01"}',
        b'{"source_id": "HD-NT-01", "readings": [{"parameter": "COD"}]}',
        b'{"source_id": "HD-NT-01", "readings": [7]}',
    ],
)
def test_what_is_not_a_qc_batch_is_dead_lettered_with_its_bytes(payload: bytes) -> None:
    out = decode_valid(payload, NOW, "t.readings.valid:2:41")
    assert isinstance(out, Rejection)
    assert out.reason == "json_schema" and "readings.valid" in out.message
    assert base64.b64decode(out.original_b64) == payload
    assert out.origin == "t.readings.valid:2:41" and out.channel == "kafka"
