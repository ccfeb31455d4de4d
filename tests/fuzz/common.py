"""What the harnesses share: the input format, the fixed clock, and the contracts they assert.

Input format (every harness)::

    input  := [ "N:" head "\\n" ] body
    head   := name [ "\\t" account [ "\\t" field ]* ]

Without the ``N:`` line (a plain corpus file) the body is uploaded as ``AIR`` by its owner
``HD-KK-01``, so the real corpus drives the line parser; with it, ``name`` is the file name
(UTF-8, undecodable bytes kept as surrogates, as a server may hand them over) or, for the JSON
harness, the ``source_id``; an empty ``account`` means "no authenticated sender". Further
fields are harness-specific (the HTTP harness: an ``Authorization`` header, a declared
``Content-Length``).

The contracts are the ones ``stations.circular10`` and ``stations.gateway`` document: the parsers
never raise; every input comes out as readings and/or rejections; a whole-input rejection
carries the whole input (its head when too large), a line rejection exactly that line's bytes,
an item rejection the item re-serialised; every reason is in the closed vocabulary; accepted
readings are finite, of a measured parameter in a convertible unit, timezone-aware (UTC) and
inside the future/ancient window; a path never yields readings; a sender delivering for another
source is refused whole.

Import this module inside ``atheris.instrument_imports()``: it imports the code under test.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import math
import os
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from core.errors import FILE_LEVEL_REASONS, ParseError, RejectReason
from core.parameters import Parameter
from core.records import DeviceStatus, QcFlag, QcReading, RawReading, Rejection
from core.units import convert
from stations.circular10 import (
    DEFAULT_HORIZON_S,
    EXCERPT_BYTES,
    MAX_NAME_CHARS,
    ParseResult,
    parse_filename,
)
from stations.gateway import MAX_EVIDENCE_BYTES
from stations.registry import load_registry

HERE = Path(__file__).resolve().parent
CORPUS = HERE.parent / "corpus" / "circular10"
DICTIONARY = HERE / "circular10.dict"

REGISTRY = load_registry()
#: The corpus's clock: received 2026-11-24 10:10 local; its lines are stamped 10:05 local.
NOW = datetime(2026, 11, 24, 3, 10, tzinfo=UTC)
TOLERANCE_S = 300.0
AIR = "HD_TTQT_KHI001_20261124100500.txt"
OWNER = "HD-KK-01"
HEADER = b"N:"

BOM = b"\xef\xbb\xbf"
EOL = re.compile(r"\r\n|\r|\n")
EOL_BYTES = re.compile(rb"\r\n|\r|\n")
JSON_KEYS = ("parameter", "value", "unit", "measured_at", "status")
STATUSES = frozenset(s.value for s in DeviceStatus)
NAME_REASONS = frozenset(
    {RejectReason.BAD_FILENAME, RejectReason.PATH_TRAVERSAL, RejectReason.BAD_FILENAME_TIMESTAMP}
)
LINE_FIELDS = frozenset({None, "parameter", "value", "unit", "timestamp", "status"})
ITEM_FIELDS = frozenset({None, "parameter", "value", "unit", "measured_at", "status"})


@dataclass(frozen=True)
class Case:
    name: str
    account: str | None
    extra: tuple[bytes, ...]
    body: bytes


def split_input(data: bytes, default_name: str = AIR) -> Case:
    """The input format above."""
    if not data.startswith(HEADER):
        return Case(default_name, OWNER, (), data)
    head, _, body = data[len(HEADER) :].partition(b"\n")
    name, *rest = head.split(b"\t")
    account = rest[0].decode("utf-8", "replace") if rest else OWNER
    return Case(name.decode("utf-8", "surrogateescape"), account or None, tuple(rest[1:]), body)


def as_json_doc(source_id: str, body: bytes) -> bytes:
    """A Circular 10 body as the JSON form: one item per non-blank line, fields by position
    (a sixth field and beyond become extra keys, missing ones missing keys); ``value`` is a
    JSON literal when it reads as one (``12.5``, ``1e999``, ``NaN``, ``true``, ``[]``…)."""
    items: list[dict[str, Any]] = []
    for line in EOL.split(body.decode("utf-8", "surrogateescape")):
        if not line.strip():
            continue
        item: dict[str, Any] = {}
        for i, text in enumerate(line.split("\t")):
            key = JSON_KEYS[i] if i < len(JSON_KEYS) else f"extra{i}"
            item[key] = _literal(text) if key == "value" else text
        items.append(item)
    return json.dumps({"source_id": source_id, "readings": items}).encode("ascii")


def _literal(text: str) -> Any:
    try:
        value = json.loads(text)
    except (ValueError, RecursionError):
        return text
    return text if isinstance(value, str) else value


def identity_owner(name: str) -> str | None:
    """The registered source a file name claims to be from, if any (what judge_file compares)."""
    try:
        identity = parse_filename(name)
    except ParseError:
        return None
    source = REGISTRY.by_ftp(identity.province, identity.facility, identity.station)
    return source.id if source else None


# ---------------------------------------------------------------------------------------------
# seeds: the corpus files (tests/corpus/circular10) are the body seeds as they are; these add
# what a corpus file cannot say (another name, sender, door, header), built here, not copied

STACK = "HD_NDPL_KHI001_20261124100500.txt"  # HD-KT-01
OUTFALL = "HD_KCNDA_NTH001_20261124100500.txt"  # HD-NT-03
WATER = "HD_TTQT_NUO001_20261124100500.txt"  # HD-NM-01
_T = "20261124100500"
AIR_BODY = f"SO2\t12.5\tµg/Nm3\t{_T}\t00\r\nPM2,5\t31,2\tug/m3\t{_T}\t01\r\n"
STACK_BODY = f"PM\t45\tmg/Nm3\t{_T}\t00\r\nSO2\t100\tppm\t{_T}\t00\r\nFlow\t1e6\tm3/h\t{_T}\t02\r\n"
OUTFALL_BODY = f"Flow\t120\tm3/h\t{_T}\t00\nCOD\t35,5\tmg/L\t{_T}\t00\npH\t7.1\t-\t{_T}\t00\n"
WATER_BODY = f"DO\t6.2\tmg/L\t{_T}\t00\nNhiệt độ\t25\t°C\t{_T}\t00\n"
JSON_BODY = json.dumps(
    {
        "source_id": OWNER,
        "readings": [
            {
                "parameter": "SO2",
                "value": 12.5,
                "unit": "µg/Nm3",
                "measured_at": _T,
                "status": "00",
            },
            {
                "parameter": "NO2",
                "value": "41,0",
                "unit": "ug/m3",
                "measured_at": "2026-11-24T10:05:00+07:00",
                "status": "01",
            },
            {"parameter": "CO", "value": 1.2, "unit": "ppm", "measured_at": "2026-11-24T03:05:00Z"},
        ],
    },
    ensure_ascii=False,
).encode()


def _head(*fields: str) -> bytes:
    return HEADER + "\t".join(fields).encode() + b"\n"


_FILE_SEEDS = [
    _head(STACK, "HD-KT-01") + STACK_BODY.encode(),
    _head(OUTFALL, "HD-NT-03") + OUTFALL_BODY.encode(),
    _head(WATER, "HD-NM-01") + WATER_BODY.encode(),
    _head(AIR, "HD-KK-02") + AIR_BODY.encode(),  # another station's file: sender mismatch
    _head(AIR, "") + AIR_BODY.encode(),  # no authenticated sender
    _head("hd_ttqt_khi001__20261124100500.TXT", OWNER) + AIR_BODY.encode(),
    _head("../" + AIR, OWNER) + AIR_BODY.encode(),
]
SEEDS: dict[str, list[bytes]] = {
    "fuzz_file": _FILE_SEEDS,
    "fuzz_json": [
        JSON_BODY,
        _head("HD-KT-01", "HD-KT-01") + STACK_BODY.encode(),
        _head("HD-NT-03", "HD-NT-03") + OUTFALL_BODY.encode(),
        _head(OWNER, "HD-KK-02") + AIR_BODY.encode(),  # sender mismatch
        _head(OWNER, "") + JSON_BODY,
    ],
    "fuzz_http": [
        *_FILE_SEEDS,
        JSON_BODY,
        _head("", "HD-KK-02") + JSON_BODY,  # sender mismatch on /ingest
        _head(AIR, OWNER, "Basic SEQtS0stMDE6d3Jvbmc=") + AIR_BODY.encode(),  # wrong password
        _head(AIR, OWNER, "", str(2 * 1024 * 1024)) + AIR_BODY.encode(),  # declared too large
        _head(AIR, OWNER, "", "chunked") + AIR_BODY.encode(),  # no Content-Length
    ],
}


# ---------------------------------------------------------------------------------------------
# contracts


def check_reading(
    r: RawReading, *, source_id: str | None, channel: str, origin: str, now: datetime = NOW
) -> None:
    assert source_id is not None and r.source_id == source_id, (r.source_id, source_id)
    source = REGISTRY.get(r.source_id)
    spec = source.parameter(r.parameter)
    assert spec is not None, f"{r.parameter} is not measured at {source.id}"
    assert type(r.value) is float and math.isfinite(r.value), r.value
    convert(1.0, r.unit, spec.unit, Parameter(r.parameter))  # the QC stage must be able to
    moment = r.measured_at
    assert isinstance(moment, datetime) and moment.utcoffset() == timedelta(0), moment
    assert now - timedelta(seconds=DEFAULT_HORIZON_S) <= moment, moment
    assert moment <= now + timedelta(seconds=TOLERANCE_S), moment
    assert r.status in STATUSES, r.status
    assert (r.received_at, r.channel, r.origin) == (NOW, channel, origin)


def check_rejection(rej: Rejection, *, channel: str, origin: str) -> tuple[RejectReason, bytes]:
    reason = RejectReason(rej.reason)  # ValueError: outside the closed vocabulary
    assert isinstance(rej.message, str) and rej.message.strip(), rej
    assert (rej.received_at, rej.channel, rej.origin) == (NOW, channel, origin), rej
    return reason, base64.b64decode(rej.original_b64, validate=True)


def _whole_evidence(reason: RejectReason, data: bytes) -> bytes:
    return data[:EXCERPT_BYTES] if reason == RejectReason.FILE_TOO_LARGE else data


def _unique_readings(result: ParseResult) -> None:
    keys = [(r.parameter, r.measured_at) for r in result.readings]
    assert len(keys) == len(set(keys)), "one (parameter, time) accepted twice"


def _check_lines(result: ParseResult, count: int, fields: frozenset[str | None]) -> None:
    lines = [r.line for r in result.rejections]
    assert None not in lines and len(set(lines)) == len(lines), lines
    assert len(result.readings) + len(lines) == count, "an input line was dropped silently"
    for rej in result.rejections:
        assert RejectReason(rej.reason) not in FILE_LEVEL_REASONS, rej
        assert rej.field in fields, rej.field
        assert rej.source_id == result.source_id, rej


def _check_outputs(
    result: ParseResult, *, channel: str, origin: str
) -> tuple[Rejection, RejectReason, bytes] | None:
    """What every parse promises: something came out under ``origin``, each reading is sound
    and unique; a whole-input rejection stands alone. Returns that rejection, its reason and
    its original bytes (None: the input was judged line by line or item by item)."""
    assert result.origin == origin
    assert result.readings or result.rejections, "nothing came out"
    for r in result.readings:
        check_reading(r, source_id=result.source_id, channel=channel, origin=origin)
    _unique_readings(result)
    whole = [r for r in result.rejections if r.line is None]
    if not whole:
        return None
    assert result.file_rejected and len(result.rejections) == 1, result.rejections
    reason, original = check_rejection(whole[0], channel=channel, origin=origin)
    return whole[0], reason, original


def check_file(name: str, data: bytes, result: ParseResult, *, channel: str) -> None:
    """``parse_file(name, data)`` kept its promises."""
    origin = name[:MAX_NAME_CHARS]
    if any(c in name for c in "/\\\x00") or ".." in name:
        assert not result.readings, f"{name!r} holds a path but was accepted"
    whole = _check_outputs(result, channel=channel, origin=origin)
    if whole:
        rejection, reason, original = whole
        assert reason in FILE_LEVEL_REASONS, reason
        assert original == _whole_evidence(reason, data), "whole-file evidence is not the file"
        if reason in NAME_REASONS:
            try:
                parse_filename(name)
            except ParseError as exc:
                assert exc.reason == reason, (exc.reason, reason)
            else:
                raise AssertionError(f"{reason} for a valid name {name!r}")
            return
        owner = identity_owner(name)
        if reason == RejectReason.UNKNOWN_SOURCE:
            assert owner is None, owner
        elif reason != RejectReason.FILE_TOO_LARGE:  # the size is checked before the source
            assert owner is not None, reason
        assert rejection.source_id == owner == result.source_id, (rejection.source_id, owner)
        return
    owner = identity_owner(name)
    assert owner is not None and result.source_id == owner, (result.source_id, owner)
    body = data.removeprefix(BOM)
    raw_lines = EOL_BYTES.split(body)
    text_lines = EOL.split(body.decode("utf-8"))  # a file that does not decode is refused whole
    assert len(raw_lines) == len(text_lines)
    nonblank = {i for i, line in enumerate(text_lines, start=1) if line.strip()}
    _check_lines(result, len(nonblank), LINE_FIELDS)
    for rej in result.rejections:
        _, original = check_rejection(rej, channel=channel, origin=origin)
        assert rej.line in nonblank, (rej.line, "not a non-blank line")
        assert rej.line is not None and original == raw_lines[rej.line - 1], "not the line's bytes"


def json_origin(data: bytes) -> str:
    return f"json:{hashlib.sha256(data).hexdigest()[:16]}"


def check_json(data: bytes, result: ParseResult, *, channel: str, origin: str = "") -> None:
    """``parse_json(data)`` kept its promises."""
    origin = origin or json_origin(data)
    whole = _check_outputs(result, channel=channel, origin=origin)
    if whole:
        rejection, reason, original = whole
        assert reason in FILE_LEVEL_REASONS | {RejectReason.JSON_SCHEMA}, reason
        assert original == _whole_evidence(reason, data), "whole-message evidence differs"
        assert rejection.source_id == result.source_id, rejection
        return
    doc = json.loads(data.removeprefix(BOM).decode("utf-8"))
    assert isinstance(doc, dict) and isinstance(doc["readings"], list) and doc["readings"]
    source = REGISTRY.find(doc["source_id"])
    assert source is not None and result.source_id == source.id
    items = doc["readings"]
    _check_lines(result, len(items), ITEM_FIELDS)
    for rej in result.rejections:
        _, original = check_rejection(rej, channel=channel, origin=origin)
        assert rej.line is not None and 1 <= rej.line <= len(items), rej.line
        item = items[rej.line - 1]
        try:
            expected = json.dumps(item, ensure_ascii=False).encode("utf-8")
        except (ValueError, RecursionError):
            expected = b""  # no UTF-8 form (a lone surrogate): the parser sends no bytes
        assert original == expected, "an item rejection does not carry its item"


def check_judged(
    parsed: ParseResult,
    judged: ParseResult,
    data: bytes,
    *,
    account: str | None,
    claimed: str | None,
) -> None:
    """``judge_*`` = ``parse_*`` + the sender check + attribution + bounded evidence."""
    if account is not None and claimed is not None and claimed != account:
        assert not judged.readings and judged.source_id is None
        (rej,) = judged.rejections
        assert rej.reason == RejectReason.SENDER_MISMATCH and rej.line is None, rej
        assert rej.source_id == account and rej.origin == parsed.origin, rej
        expected = _bounded(base64.b64encode(data).decode("ascii"))
        assert base64.b64decode(rej.original_b64) == expected
        return
    assert judged.source_id == parsed.source_id and judged.origin == parsed.origin

    def fields(r: RawReading) -> tuple[Any, ...]:
        return (r.source_id, r.parameter, r.value, r.unit, r.measured_at, r.status)

    assert [fields(r) for r in judged.readings] == [fields(r) for r in parsed.readings]
    assert len(judged.rejections) == len(parsed.rejections)
    for mine, theirs in zip(judged.rejections, parsed.rejections, strict=True):
        assert (mine.reason, mine.line, mine.field) == (theirs.reason, theirs.line, theirs.field)
        assert mine.source_id == (theirs.source_id or account), (mine.source_id, account)
        assert base64.b64decode(mine.original_b64) == _bounded(theirs.original_b64)


def _bounded(original_b64: str) -> bytes:
    """Evidence as the gateway bounds it (a Kafka message is capped near 1 MiB)."""
    original = base64.b64decode(original_b64)
    if len(original_b64) > (MAX_EVIDENCE_BYTES * 4) // 3 + 4:
        return original[:EXCERPT_BYTES]
    return original


# ---------------------------------------------------------------------------------------------
# storable: what a harness produced goes through the worker's row builders and BatchWriter into
# a migrated PostgreSQL (QUANTRAC_FUZZ_DATABASE_URL; tests/fuzz/test_fuzz.py passes one), so a
# text PostgreSQL refuses (a NUL, a lone surrogate from a file name) is a finding, not a stall.
# Rows are written every STORE_EVERY inputs (one transaction per input cost 10× the speed); a
# refused batch is written row by row to find the refused row, and the finding names the input
# that produced it (libFuzzer's saved input may be a later one).

DATABASE_ENV = "QUANTRAC_FUZZ_DATABASE_URL"
STORE_EVERY = 64


class Storage:
    def __init__(self, url: str) -> None:
        from psycopg_pool import AsyncConnectionPool

        from storage import writer

        self.loop = asyncio.new_event_loop()
        # no flush to disk per commit: what is refused does not depend on it, the speed does
        options = {"options": "-c synchronous_commit=off"}
        pool = AsyncConnectionPool(url, min_size=1, max_size=1, open=False, kwargs=options)
        self.loop.run_until_complete(pool.open())
        self.readings = writer.BatchWriter(pool, writer.READINGS, retry_max_s=1.0)
        self.rejections = writer.BatchWriter(pool, writer.REJECTIONS, retry_max_s=1.0)
        self.pending: list[tuple[bytes, list[Any], list[Any]]] = []

    def add(self, data: bytes, result: ParseResult) -> None:
        from storage import rows

        qc = [
            QcReading(
                source_id=r.source_id,
                parameter=r.parameter,
                value=r.value,
                unit=r.unit,
                measured_at=r.measured_at,
                status=r.status,
                received_at=r.received_at,
                channel=r.channel,
                origin=r.origin,
                flag=QcFlag.VALID.value,
                raw_value=r.value,
                raw_unit=r.unit,
            )
            for r in result.readings
        ]
        readings = [rows.reading_row(q) for q in qc]
        rejections = [rows.rejection_row(r) for r in result.rejections]
        self.pending.append((data, readings, rejections))
        if len(self.pending) >= STORE_EVERY:
            self.flush()

    def flush(self) -> None:
        """Raises AssertionError naming the input whose row PostgreSQL (or psycopg) refused."""
        from streams.errors import write_rows

        pending, self.pending = self.pending, []
        for index, table in ((1, self.readings), (2, self.rejections)):
            owned = [(data, row) for data, *tables in pending for row in tables[index - 1]]
            if not owned:
                continue
            errors = self.loop.run_until_complete(write_rows(table.write, [r for _, r in owned]))
            for (data, row), error in zip(owned, errors, strict=True):
                if error is not None:
                    raise AssertionError(
                        f"{table.spec.table} refused {row!r}: {error!r}; input (base64): "
                        f"{base64.b64encode(data).decode()}"
                    )


_storage: list[Storage | None] = []


def check_storable(data: bytes, result: ParseResult) -> None:
    """``result``'s readings and rejections can be stored (a no-op without a database)."""
    if not _storage:
        url = os.environ.get(DATABASE_ENV)
        _storage.append(Storage(url) if url else None)
    if _storage[0] is not None:
        _storage[0].add(data, result)
