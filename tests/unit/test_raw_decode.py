"""``core.records.raw_reading``: the worker's fast decode of a raw reading gives what Faust's
``RawReading.from_data`` gives, value for value, and fails where it fails."""

from __future__ import annotations

import json
from typing import Any

import pytest

from core.records import RawReading, raw_reading

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
