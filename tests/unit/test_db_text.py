"""storage.text: what a text field becomes before PostgreSQL, and the row builders that use it;
streams.errors' typed decoding and its split of a refused batch (pure parts, no database)."""

from __future__ import annotations

import asyncio
import base64
import json
import math
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import psycopg
import pytest

from core.records import Average, Rejection, ViolationEvent
from storage import rows
from storage.text import CODE, ORIGIN, PROSE, PROSE_MAX, db_json, db_text
from storage.writer import Row, is_data_error, is_transient
from streams.errors import RecordSchema, Undecodable, write_rows

T = datetime(2026, 11, 24, 3, 0, tzinfo=UTC)


def test_nul_and_controls_are_escaped_visibly() -> None:
    assert db_text("a\x00b.txt", ORIGIN) == "a\\x00b.txt"
    assert db_text("\x01\x1b[31m\x7f\x9f", CODE) == "\\x01\\x1b[31m\\x7f\\x9f"
    assert db_text("line\nfake: ok\r", CODE) == "line\\x0afake: ok\\x0d"


def test_prose_keeps_tab_and_newline_only() -> None:
    assert db_text("a\tb\nc\r\x00", PROSE_MAX, PROSE) == "a\tb\nc\\x0d\\x00"


def test_lone_surrogates_become_escapes_and_encode() -> None:
    name = b"HD_\xff.txt".decode("utf-8", "surrogateescape")
    out = db_text(name, ORIGIN)
    assert out == "HD_\\udcff.txt"
    out.encode("utf-8")  # what PostgreSQL needs


def test_ordinary_text_is_unchanged() -> None:
    for text in ("HD-KK-01", "µg/Nm3", "Nhiệt độ", "QCVN 05:2023/BTNMT, bảng 1", "‮evil"):
        assert db_text(text, CODE) == text


def test_length_is_bounded_with_a_marker() -> None:
    out = db_text("x" * 5000, CODE)
    assert len(out) == CODE
    assert out.endswith("…[+4814 chars]") and out.startswith("xxx")
    assert db_text("x" * CODE, CODE) == "x" * CODE  # at the limit: unchanged
    assert len(db_text("\x00" * 100, 50)) == 50  # bounded after escaping


def test_json_documents_lose_nul_and_non_finite_numbers() -> None:
    doc = {"k\x00": ["v\x00", math.inf, math.nan, 1.5, None, {"n": -math.inf}], "ok": 2}
    assert db_json(doc) == {"k\\x00": ["v\\x00", None, None, 1.5, None, {"n": None}], "ok": 2}
    json.dumps(db_json(doc), allow_nan=False)


def _rejection(origin: str, message: str) -> Rejection:
    return Rejection(
        reason="path_traversal",
        message=message,
        channel="http",
        received_at=T,
        original_b64=base64.b64encode(b"SO2\t1\x00").decode(),
        source_id="HD-KK-01",
        origin=origin,
    )


def test_rejection_row_escapes_text_and_keeps_the_bytes() -> None:
    rej = _rejection("a\x00b.txt", "name 'a\x00b.txt' holds a NUL\nsecond line")
    row = rows.rejection_row(rej)
    assert row[1:7] == (
        "path_traversal",
        "name 'a\\x00b.txt' holds a NUL\nsecond line",
        "http",
        "HD-KK-01",
        "a\\x00b.txt",
        None,
    )
    assert row[8] == b"SO2\t1\x00"  # original bytes exactly
    # the id is of the fields as received: an origin that escapes to the same text stays apart
    other = rows.rejection_row(_rejection("a\\x00b.txt", rej.message))
    assert other[5] == row[5] and other[0] != row[0]


def test_violation_rows_escape_every_text_field() -> None:
    e = ViolationEvent(
        violation_id="HD-NT-01/COD/x\x00",
        event="opened",
        seq=0,
        source_id="HD-NT-01",
        parameter="COD",
        rule_id="r\x00",
        period="1h",
        started_at=T,
        at=T,
        value=0.0,
        limit=5.0,
        ratio=math.inf,  # a lower limit and a zero value
        severity="none",
        legal_basis="QCVN\x00 40",
        message="m\x00",
    )
    event = rows.event_row(e)
    assert event[0] == "HD-NT-01/COD/x\\x00" and event[5] == math.inf  # the column keeps inf
    payload = event[7].obj
    assert payload["ratio"] is None and payload["message"] == "m\\x00"
    json.dumps(payload, allow_nan=False)
    violation = rows.violation_row(e)
    assert "\x00" not in "".join(v for v in violation if isinstance(v, str))


def _message(value: bytes) -> Any:
    class M:
        pass

    m = M()
    m.value, m.key, m.headers = value, b"k", []  # type: ignore[attr-defined]
    return m


def _loads(value: bytes) -> Any:
    import faust

    app = faust.App("test-db-text", broker="memory://")
    return RecordSchema(Average).loads_value(app, _message(value))


AVG = {
    "source_id": "HD-KK-01",
    "parameter": "SO2",
    "period": "1h",
    "window_start": "2026-11-24T03:00:00+00:00",
    "window_end": "2026-11-24T04:00:00+00:00",
    "value": 12,
    "unit": "µg/Nm3",
    "samples": 12,
    "expected": 12,
    "completeness": 1.0,
    "valid": True,
}


def test_record_schema_decodes_a_record() -> None:
    avg = _loads(json.dumps(AVG).encode())
    assert isinstance(avg, Average) and avg.value == 12 and avg.window_start == T


@pytest.mark.parametrize(
    ("change", "why"),
    [
        ({"window_start": "yesterday"}, "Invalid isoformat"),
        ({"samples": "twelve"}, "samples must be"),
        ({"valid": 1}, "valid must be"),
        ({"value": [1]}, "value must be"),
        ({"source_id": None}, "source_id must be"),
        ({"window_end": "2026-11-24T04:00:00"}, "window_end must be"),  # no offset
        ({"unit": None, "samples": None}, "must be"),
    ],
)
def test_record_schema_turns_a_bad_record_into_undecodable(
    change: dict[str, Any], why: str
) -> None:
    out = _loads(json.dumps({**AVG, **change}).encode())
    assert isinstance(out, Undecodable) and why in out.error, out


@pytest.mark.parametrize("payload", [b"{", b"[]", b'{"source_id": "HD-KK-01"}', b"\xff\x00"])
def test_record_schema_never_raises(payload: bytes) -> None:
    out = _loads(payload)
    assert isinstance(out, Undecodable) and out.error.startswith("not a Average")


def test_error_classes() -> None:
    assert is_transient(psycopg.OperationalError("connection refused"))
    assert is_transient(ConnectionResetError())
    assert not is_data_error(psycopg.OperationalError("connection refused"))
    assert is_data_error(psycopg.DataError("NUL"))
    assert is_data_error(psycopg.IntegrityError("dup"))
    assert is_data_error(UnicodeEncodeError("utf-8", "\udcff", 0, 1, "surrogate"))
    assert not is_data_error(psycopg.ProgrammingError("no such column"))


def test_write_rows_splits_a_refused_batch() -> None:
    calls: list[list[Row]] = []

    async def write(batch: Sequence[Row]) -> int:
        calls.append(list(batch))
        if any(r[0] == "bad" for r in batch):
            raise psycopg.DataError("invalid byte sequence")
        return len(batch)

    out = asyncio.run(write_rows(write, [("a",), ("bad",), ("c",)]))
    assert [type(e) if e else None for e in out] == [None, psycopg.DataError, None]
    assert calls == [[("a",), ("bad",), ("c",)], [("a",)], [("bad",)], [("c",)]]


def test_write_rows_lets_other_errors_through() -> None:
    async def write(batch: Sequence[Row]) -> int:
        raise psycopg.ProgrammingError("column does not exist")

    with pytest.raises(psycopg.ProgrammingError):
        asyncio.run(write_rows(write, [("a",)]))


def test_rejection_of_a_name_with_undecodable_bytes_gets_an_id_and_a_row() -> None:
    # found by tests/fuzz (fuzz_file): an FTP name's bytes kept as surrogates broke the id
    name = b"HD_TTQT_KHI001_2026\xea\xd2.txt".decode("utf-8", "surrogateescape")
    row = rows.rejection_row(_rejection(name, "bad name"))
    assert len(row[0]) == 32 and row[5] == "HD_TTQT_KHI001_2026\\udcea\\udcd2.txt"
    row[5].encode("utf-8")


def test_only_codes_are_memoised_not_origins_new_with_every_file() -> None:
    """An origin or archive path is new with every file: memoised, they filled the cache and
    the worker's memory grew with them (storage/text.py)."""
    from storage.text import _db_text_cached

    _db_text_cached.cache_clear()
    for i in range(50):
        assert db_text(f"HD_KK_01_{i:06d}.txt", ORIGIN) == f"HD_KK_01_{i:06d}.txt"
    assert _db_text_cached.cache_info().currsize == 0
    assert db_text("HD_KK_01") == db_text("HD_KK_01") == "HD_KK_01"
    assert _db_text_cached.cache_info().currsize == 1
