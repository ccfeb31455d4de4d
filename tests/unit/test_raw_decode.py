"""``core.records.flat_from_data``: the worker's fast decode of a record (a raw reading, what its
sinks read back) gives what Faust's ``from_data`` gives, value for value, and fails where it
fails."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import faust
import pytest

from core.records import (
    AqiRecord,
    Average,
    RawBatch,
    RawReading,
    Rejection,
    Tick,
    ViolationEvent,
    flat_from_data,
    raw_reading,
)

GOOD: dict[str, Any] = {
    "source_id": "HD-KK-01",
    "parameter": "PM2.5",
    "value": 31.5,
    "unit": "µg/m³",
    "measured_at": "2026-03-02T01:05:00+00:00",
    "status": "00",
    "received_at": "2026-03-02T01:06:10.123456Z",
    "channel": "ftp",
    "origin": "HD_KK01_20260302080500.txt",
}

SAME = [
    GOOD,
    {**GOOD, "archive_path": "2026-03-02/HD-KK-01/f.txt"},
    {**GOOD, "value": 3},  # an int stays an int: Faust checks no types, the validator does
    {**GOOD, "value": "3"},
    {**GOOD, "measured_at": None},
    {**GOOD, "measured_at": "2026-03-02T08:05:00+07:00"},
    {**GOOD, "measured_at": "2026-03-02T01:05:00"},  # naive: the validator refuses it
    {**GOOD, "extra": [1, 2]},  # an unknown key is kept, as Faust keeps it
    {**GOOD, "__faust": {"ns": "streams.records.RawReading"}},  # the wire's namespace: dropped
]


def _attrs(r: RawReading) -> dict[str, Any]:
    return dict(vars(r))


@pytest.mark.parametrize("data", SAME)
def test_the_fast_decode_gives_faust_s_record(data: dict[str, Any]) -> None:
    fast, faust = raw_reading(json.loads(json.dumps(data))), RawReading.from_data(dict(data))
    assert _attrs(fast) == _attrs(faust)
    assert fast == faust and fast.dumps() == faust.dumps()
    assert (fast.measured_at, fast.archive_path) == (faust.measured_at, faust.archive_path)


@pytest.mark.parametrize(
    ("data", "error"),
    [
        ({k: v for k, v in GOOD.items() if k != "origin"}, TypeError),
        ({k: v for k, v in GOOD.items() if k != "source_id"}, TypeError),
        ({**GOOD, "measured_at": 1772413500}, TypeError),
        ({**GOOD, "received_at": "yesterday"}, ValueError),
        (5, TypeError),
        ("text", TypeError),
        (None, TypeError),
    ],
)
def test_the_fast_decode_fails_where_faust_fails(data: Any, error: type[Exception]) -> None:
    with pytest.raises(error):
        RawReading.from_data(data)
    with pytest.raises(error):
        raw_reading(data)


def _records() -> list[faust.Record]:
    t = datetime(2026, 3, 2, 1, 0, tzinfo=UTC)
    return [
        Average(
            source_id="HD-NT-01",
            parameter="COD",
            period="1h",
            window_start=t,
            window_end=t + timedelta(hours=1),
            value=230.0,
            unit="mg/L",
            samples=12,
            expected=12,
            completeness=1.0,
            valid=True,
        ),
        Average(
            source_id="HD-KT-01",
            parameter="SO2",
            period="1h",
            window_start=t,
            window_end=t + timedelta(hours=1),
            value=None,
            unit="mg/Nm³",
            samples=0,
            expected=60,
            completeness=0.0,
            valid=False,
            revision=2,
            final=False,
            not_judged="no valid O2 in the window",
        ),
        Rejection(
            reason="json_schema",
            message="not a RawBatch",
            channel="ftp",
            received_at=t,
            original_b64="e30=",
        ),
        Tick(source_id="HD-KK-01", at=t),
        ViolationEvent(
            violation_id="HD-NT-01/COD/r1/2026-03-02T01:00:00+00:00",
            event="closed",
            seq=3,
            source_id="HD-NT-01",
            parameter="COD",
            rule_id="r1",
            period="1h",
            started_at=t,
            at=t + timedelta(hours=3),
            value=120.0,
            limit=148.5,
            ratio=0.81,
            severity="minor",
            ended_at=t + timedelta(hours=3),
            found_late=True,
        ),
        AqiRecord(
            source_id="HD-KK-01",
            kind="hourly",
            window_start=t,
            aqi=57,
            category="moderate",
            dominant="PM2.5",
            sub_indices={"PM2.5": 57, "O3": None},
        ),
    ]


@pytest.mark.parametrize("record", _records(), ids=lambda r: type(r).__name__)
def test_every_flat_record_decodes_as_faust_decodes_it(record: faust.Record) -> None:
    """The worker's sinks read these back from their topics (streams/errors.RecordSchema)."""
    data = json.loads(record.dumps())
    fast = flat_from_data(type(record))(data)
    faust_made = type(record).from_data(json.loads(record.dumps()))
    assert _attrs(fast) == _attrs(faust_made) and fast.dumps() == faust_made.dumps()
    partial = {k: v for k, v in data.items() if k not in type(record)._options.defaults}
    assert _attrs(flat_from_data(type(record))(partial)) == _attrs(
        type(record).from_data(dict(partial))
    )


def test_a_record_with_records_inside_is_left_to_faust() -> None:
    with pytest.raises(AssertionError, match="readings"):
        flat_from_data(RawBatch)
