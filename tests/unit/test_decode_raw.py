"""streams/validate.py decode_raw: what the worker accepts on readings.raw, and what it
dead-letters whole, with the message's exact bytes."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime
from typing import Any

import pytest

from core.records import QcReading, RawReading, Rejection, raw_batches
from stations.registry import load_registry
from streams.validate import Validator, decode_raw
from thresholds.qc import SeriesState, load_qc_rules

NOW = datetime(2026, 11, 24, 3, 10, tzinfo=UTC)


def reading(**changes: Any) -> RawReading:
    fields: dict[str, Any] = {
        "source_id": "HD-KK-01",
        "parameter": "SO2",
        "value": 41.5,
        "unit": "µg/Nm3",
        "measured_at": NOW,
        "status": "00",
        "received_at": NOW,
        "channel": "ftp",
        "origin": "HD_TTQT_KHI001_20261124100500.txt",
    }
    return RawReading(**{**fields, **changes})


def test_a_batch_gives_its_readings_in_order() -> None:
    rs = [reading(parameter=p) for p in ("SO2", "NO2", "CO")]
    (batch,) = raw_batches(rs)
    out = decode_raw(batch.dumps(serializer="json"), NOW)
    assert isinstance(out, list)
    assert [r.parameter for r in out] == ["SO2", "NO2", "CO"]
    assert out[0].measured_at == NOW and out[0].value == 41.5


def test_a_bare_reading_from_an_older_gateway_is_accepted() -> None:
    out = decode_raw(reading().dumps(serializer="json"), NOW)
    assert isinstance(out, list) and len(out) == 1 and out[0].source_id == "HD-KK-01"


def _json(**changes: object) -> bytes:
    return json.dumps({**json.loads(reading().dumps(serializer="json")), **changes}).encode()


@pytest.mark.parametrize(
    ("payload", "reason", "says"),
    [
        (b"\xff\xfe junk", "bad_json", "not JSON"),
        (b"[1, 2]", "json_schema", "not a RawBatch or RawReading"),
        (b'{"readings": [{"source_id": "HD-KK-01"}]}', "json_schema", "missing"),
        (_json(value="41,5"), "json_schema", "value must be a number"),
        (_json(value=True), "json_schema", "value must be a number"),
        (_json(parameter=7), "json_schema", "parameter must be a string"),
        (_json(measured_at="2026-11-24T10:05:00"), "json_schema", "with its offset"),
        (_json(measured_at="yesterday"), "json_schema", "not a RawBatch or RawReading"),
    ],
)
def test_anything_else_is_dead_lettered_whole(payload: bytes, reason: str, says: str) -> None:
    out = decode_raw(payload, NOW)
    assert isinstance(out, Rejection), out
    assert out.reason == reason
    assert says in out.message
    assert base64.b64decode(out.original_b64) == payload  # the exact bytes
    assert out.channel == "kafka" and out.received_at == NOW


def test_records_carrying_undecodable_file_names_serialise() -> None:
    """A file name that is not UTF-8 reaches the records as surrogate escapes (the gateway
    dead-letters it with that name): the JSON codec must write it, or the publish fails and
    the station is told to resend a file that can never be accepted (an orjson codec refuses
    lone surrogates; the standard library's escapes them)."""
    name = b"HD_NDPL_KHI\x8e.txt".decode("utf-8", "surrogateescape")
    rejection = Rejection(
        reason="bad_filename",
        message=f"{name!r} is not a Circular 10 file name",
        channel="ftp",
        received_at=NOW,
        original_b64="",
        origin=name,
    )
    back = Rejection.loads(rejection.dumps(serializer="json"), serializer="json")
    assert back.origin == name
    out = decode_raw(reading(origin=name).dumps(serializer="json"), NOW)
    assert isinstance(out, list) and out[0].origin == name


def test_the_validator_caches_registered_series_only() -> None:
    """Unknown sources and parameters are refused with their own reasons, and the series the
    validator remembers stay bounded by the registry whatever names the input carries."""
    validator = Validator(load_registry(), load_qc_rules(), 72 * 3600, 300)
    flags = [
        validator.check(reading(**change), SeriesState(), NOW)
        for change in ({}, {"source_id": "HD-XX-99"}, {"parameter": "Hg"})
    ]
    assert isinstance(flags[0], QcReading) and flags[0].flag == "valid"
    assert [getattr(f, "reason", None) for f in flags[1:]] == [
        "unknown_source",
        "parameter_not_measured",
    ]
    for i in range(50):
        validator.check(reading(source_id=f"HD-XX-{i}"), SeriesState(), NOW)
    assert set(validator._cache) == {("HD-KK-01", "SO2")}


def test_a_reading_is_stored_in_the_registry_unit_with_what_was_sent() -> None:
    # SO2 at HD-KK-01 is registered in µg/Nm3 (stations/registry.yaml); 1 ppb of SO2 is
    # 64.066 / 24.45 µg/Nm3 (25 °C, 101.325 kPa: core/units.py's MOLAR_VOLUME_L)
    validator = Validator(load_registry(), load_qc_rules(), 72 * 3600, 300)
    same, spelled, ppb, wrong = (
        validator.check(reading(unit=unit, value=value), SeriesState(), NOW)
        for unit, value in (("µg/Nm3", 41.5), ("ug/Nm3", 41.5), ("ppb", 10.0), ("mg/L", 41.5))
    )
    assert isinstance(same, QcReading) and isinstance(spelled, QcReading)
    assert (same.value, same.unit, same.raw_unit) == (41.5, "µg/Nm3", "µg/Nm3")
    assert (spelled.value, spelled.unit, spelled.raw_unit) == (41.5, "µg/Nm3", "ug/Nm3")
    assert isinstance(ppb, QcReading)
    assert ppb.value == pytest.approx(10.0 * 64.066 / 24.45, rel=1e-6) and ppb.raw_unit == "ppb"
    assert isinstance(wrong, Rejection) and wrong.reason == "wrong_unit"
