"""Circular 10/2021 parser: the hostile corpus, the usual mess, the JSON form, and fuzzing.

Clock of every test: received 2026-11-24 10:10:00 local (03:10 UTC); lines stamped 10:05 local.
"""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from core.errors import FILE_LEVEL_REASONS, ParseError, RejectReason
from core.records import Channel, DeviceStatus, RawReading
from stations.circular10 import (
    EXCERPT_BYTES,
    LOCAL_TZ,
    MAX_FILE_BYTES,
    FileIdentity,
    ParseResult,
    format_file,
    parse_file,
    parse_filename,
    parse_json,
    parse_number,
)
from stations.registry import Registry, load_registry

CORPUS = Path(__file__).parent.parent / "corpus" / "circular10"
RECEIVED = datetime(2026, 11, 24, 3, 10, tzinfo=UTC)
MEASURED = datetime(2026, 11, 24, 3, 5, tzinfo=UTC)  # 20261124100500 local
AIR = "HD_TTQT_KHI001_20261124100500.txt"  # HD-KK-01
STACK = "HD_NDPL_KHI001_20261124100500.txt"  # HD-KT-01 (Phả Lại)
OUTFALL = "HD_KCNDA_NTH001_20261124100500.txt"  # HD-NT-03 (KCN Đại An)
R = RejectReason


@pytest.fixture(scope="module")
def registry() -> Registry:
    return load_registry()


def _parse(registry: Registry, name: str, data: bytes, **kw: Any) -> ParseResult:
    return parse_file(name, data, registry, received_at=RECEIVED, channel=Channel.FTP, **kw)


# --- the corpus: each malformed or hostile input gets its specific reason -----------------------

# (corpus file, upload name, expected reason, line or None for whole file, field, good readings)
CORPUS_TABLE: list[tuple[str, str, RejectReason, int | None, str | None, int]] = [
    ("binary_junk.bin", AIR, R.BINARY_CONTENT, None, None, 0),
    ("not_utf8_cp1258.txt", AIR, R.NOT_UTF8, None, None, 0),
    ("utf16_le.txt", AIR, R.NOT_UTF8, None, None, 0),
    ("empty.txt", AIR, R.EMPTY_FILE, None, None, 0),
    ("blank_lines_only.txt", AIR, R.EMPTY_FILE, None, None, 0),
    ("bom_only.txt", AIR, R.EMPTY_FILE, None, None, 0),
    ("control_chars.txt", AIR, R.BINARY_CONTENT, None, None, 0),
    ("valid_air.txt", "HD_TTQT_KHI999_20261124100500.txt", R.UNKNOWN_SOURCE, None, None, 0),
    ("valid_air.txt", "HN_TTQT_KHI001_20261124100500.txt", R.UNKNOWN_SOURCE, None, None, 0),
    ("valid_air.txt", "../../etc/" + AIR, R.PATH_TRAVERSAL, None, "name", 0),
    ("valid_air.txt", "..\\" + AIR, R.PATH_TRAVERSAL, None, "name", 0),
    ("valid_air.txt", "C:" + AIR, R.PATH_TRAVERSAL, None, "name", 0),
    ("valid_air.txt", ".htaccess", R.PATH_TRAVERSAL, None, "name", 0),
    ("valid_air.txt", AIR + "\x00.png", R.PATH_TRAVERSAL, None, "name", 0),
    ("valid_air.txt", AIR.replace(".txt", ".csv"), R.BAD_FILENAME, None, "name", 0),
    ("valid_air.txt", "HD_TTQT_20261124100500.txt", R.BAD_FILENAME, None, "name", 0),
    ("valid_air.txt", "HD_TT QT_KHI001_20261124100500.txt", R.BAD_FILENAME, None, "name", 0),
    ("valid_air.txt", "A" * 300 + ".txt", R.BAD_FILENAME, None, "name", 0),
    (
        "valid_air.txt",
        "HD_TTQT_KHI001_20261324100500.txt",
        R.BAD_FILENAME_TIMESTAMP,
        None,
        "name",
        0,
    ),
    ("valid_air.txt", "HD_TTQT_KHI001_2026112410.txt", R.BAD_FILENAME_TIMESTAMP, None, "name", 0),
    ("truncated_line.txt", AIR, R.FIELD_COUNT, 2, None, 1),
    ("extra_field.txt", AIR, R.FIELD_COUNT, 2, None, 1),
    ("single_field.txt", AIR, R.FIELD_COUNT, 2, None, 1),
    ("long_line.txt", AIR, R.LINE_TOO_LONG, 2, None, 1),
    ("unknown_parameter.txt", AIR, R.UNKNOWN_PARAMETER, 2, "parameter", 1),
    ("sql_in_symbol.txt", AIR, R.UNKNOWN_PARAMETER, 2, "parameter", 1),
    ("not_measured.txt", AIR, R.PARAMETER_NOT_MEASURED, 2, "parameter", 1),
    ("bad_number.txt", AIR, R.BAD_NUMBER, 2, "value", 1),
    ("ambiguous_separators.txt", AIR, R.BAD_NUMBER, 2, "value", 1),
    ("arabic_digits.txt", AIR, R.BAD_NUMBER, 2, "value", 1),
    ("empty_value.txt", AIR, R.BAD_NUMBER, 2, "value", 1),
    ("nan.txt", AIR, R.NOT_FINITE, 2, "value", 1),
    ("infinity.txt", AIR, R.NOT_FINITE, 2, "value", 1),
    ("overflow.txt", AIR, R.NOT_FINITE, 2, "value", 1),
    ("unknown_unit.txt", AIR, R.UNKNOWN_UNIT, 2, "unit", 1),
    ("html_in_unit.txt", AIR, R.UNKNOWN_UNIT, 2, "unit", 1),
    ("wrong_unit.txt", AIR, R.WRONG_UNIT, 2, "unit", 1),
    ("stack_ppm_dust.txt", STACK, R.WRONG_UNIT, 2, "unit", 1),
    ("stack_water_unit.txt", STACK, R.WRONG_UNIT, 2, "unit", 1),
    ("outfall_flow_in_ug.txt", OUTFALL, R.WRONG_UNIT, 2, "unit", 1),
    ("bad_timestamp.txt", AIR, R.BAD_TIMESTAMP, 2, "timestamp", 1),
    ("impossible_date.txt", AIR, R.BAD_TIMESTAMP, 2, "timestamp", 1),
    ("future.txt", AIR, R.FUTURE_TIMESTAMP, 2, "timestamp", 1),
    ("ancient.txt", AIR, R.ANCIENT_TIMESTAMP, 2, "timestamp", 1),
    ("bad_status.txt", AIR, R.BAD_STATUS, 2, "status", 1),
    ("status_word.txt", AIR, R.BAD_STATUS, 2, "status", 1),
    ("duplicate_line.txt", AIR, R.DUPLICATE_LINE, 2, "parameter", 1),
    ("conflicting_duplicate.txt", AIR, R.DUPLICATE_LINE, 2, "parameter", 1),
]


def test_corpus_is_complete() -> None:
    files = {p.name for p in CORPUS.iterdir()}
    used = {row[0] for row in CORPUS_TABLE}
    assert len(files) >= 30
    assert files == used  # every corpus file has a row, every row a file


@pytest.mark.parametrize(
    ("file", "upload_name", "reason", "line", "field", "good"),
    CORPUS_TABLE,
    ids=[f"{row[0]}-{row[2]}" for row in CORPUS_TABLE],
)
def test_corpus(
    registry: Registry,
    file: str,
    upload_name: str,
    reason: RejectReason,
    line: int | None,
    field: str | None,
    good: int,
) -> None:
    data = (CORPUS / file).read_bytes()
    result = _parse(registry, upload_name, data)
    (rejection,) = result.rejections
    assert (rejection.reason, rejection.line, rejection.field) == (reason.value, line, field)
    assert len(result.readings) == good
    assert rejection.channel == "ftp" and rejection.received_at == RECEIVED
    assert rejection.message
    original = base64.b64decode(rejection.original_b64)
    if line is None:
        assert original == data  # the whole file travels with a file-level rejection
        assert result.file_rejected and reason in FILE_LEVEL_REASONS
    else:
        assert original == data.splitlines()[line - 1]  # exactly the offending line's bytes
        assert rejection.source_id == result.source_id is not None


def test_fifty_megabyte_file(registry: Registry) -> None:
    line = b"SO2\t1\tug/m3\t20261124100500\t00\r\n"
    data = line * (50 * 1024 * 1024 // len(line) + 1)
    assert len(data) >= 50 * 1024 * 1024 == 50 * MAX_FILE_BYTES
    result = _parse(registry, AIR, data)
    (rejection,) = result.rejections
    assert rejection.reason == R.FILE_TOO_LARGE
    assert rejection.source_id == "HD-KK-01"
    assert base64.b64decode(rejection.original_b64) == data[:EXCERPT_BYTES]


# --- the usual mess is forgiven -----------------------------------------------------------------

T = "20261124100500"


@pytest.mark.parametrize(
    ("name", "body", "expected"),
    [
        pytest.param(AIR, f"\ufeffSO2\t12.5\tµg/Nm3\t{T}\t00\r\n", [("SO2", 12.5)], id="bom-crlf"),
        pytest.param(AIR, f"SO2\t12.5\tµg/Nm3\t{T}\t00\r", [("SO2", 12.5)], id="cr-only"),
        pytest.param(AIR, f"SO2\t12.5\tµg/Nm3\t{T}\t00", [("SO2", 12.5)], id="no-final-eol"),
        pytest.param(
            AIR, f"SO2\t12.5\tµg/Nm3\t{T}\t00  \t \r\n\r\n   \r\n", [("SO2", 12.5)], id="blanks"
        ),
        pytest.param(AIR, f"PM2,5\t31,2\tug/m3\t{T}\t00\n", [("PM2.5", 31.2)], id="pm2,5-comma"),
        pytest.param(AIR, f"pm2.5\t-0,5\tug/m3\t{T}\t02\n", [("PM2.5", -0.5)], id="negative"),
        pytest.param(AIR, f"TEMP\t25\toC\t{T}\t00\n", [("Temp", 25.0)], id="TEMP"),
        pytest.param(AIR, f"Nhiệt độ\t25\t°C\t{T}\t00\n", [("Temp", 25.0)], id="nhiet-do"),
        pytest.param(AIR, f"SO2 12.5 ug/m3 {T} 00\n", [("SO2", 12.5)], id="space-separated"),
        pytest.param(AIR, f"CO\t1.2\tppm\t{T}\t01\n", [("CO", 1.2)], id="ppm-convertible"),
        pytest.param(AIR, f"NO2\t1.5e2\tµg/Nm3\t{T}\t00\n", [("NO2", 150.0)], id="exponent"),
        pytest.param(
            AIR.lower().replace(".txt", ".TXT"),
            f"O3\t40\tug/m3\t{T}\t00\n",
            [("O3", 40.0)],
            id="lower-case-name",
        ),
        pytest.param(
            "HD_TTQT_KHI001__20261124100500.txt",
            f"O3\t40\tug/m3\t{T}\t00\n",
            [("O3", 40.0)],
            id="double-underscore",
        ),
        pytest.param(STACK, f"PM\t45\tmg/Nm3\t{T}\t00\n", [("Dust", 45.0)], id="PM-is-dust"),
        pytest.param(STACK, f"Flow\t1e6\tm3/h\t{T}\t00\n", [("Flow", 1e6)], id="stack-flow"),
        pytest.param(STACK, f"SO2\t100\tppm\t{T}\t00\n", [("SO2", 100.0)], id="stack-ppm"),
        pytest.param(
            OUTFALL, f"Flow\t120\tm3/h\t{T}\t00\n", [("FlowOut", 120.0)], id="flow-is-flowout"
        ),
        pytest.param(OUTFALL, f"NH4+\t2,1\tmg/l\t{T}\t00\n", [("NH4", 2.1)], id="NH4+"),
        pytest.param(OUTFALL, f"pH\t7.2\t\t{T}\t00\n", [("pH", 7.2)], id="ph-empty-unit"),
        pytest.param(
            OUTFALL, f"FlowIn\t2400\tm3/ngày\t{T}\t00\n", [("FlowIn", 2400.0)], id="m3-per-day"
        ),
    ],
)
def test_usual_mess_is_forgiven(
    registry: Registry, name: str, body: str, expected: list[tuple[str, float]]
) -> None:
    result = _parse(registry, name, body.encode("utf-8"))
    assert result.rejections == []
    assert [(r.parameter, r.value) for r in result.readings] == expected


def test_unicode_blank_lines_are_an_empty_file(registry: Registry) -> None:
    result = _parse(registry, AIR, "\u3000\r\n\u00a0\r\n".encode())
    assert [(r.reason, r.line) for r in result.rejections] == [(R.EMPTY_FILE, None)]


def test_reading_fields(registry: Registry) -> None:
    result = _parse(registry, AIR, f"SO2\t12,5\tug/m3\t{T}\t01\r\n".encode())
    (reading,) = result.readings
    assert reading.source_id == "HD-KK-01"
    assert reading.unit == "ug/m3"  # as sent; QC normalises
    assert reading.measured_at == MEASURED  # 10:05 Asia/Ho_Chi_Minh = 03:05 UTC
    assert reading.status == DeviceStatus.CALIBRATING
    assert reading.received_at == RECEIVED
    assert reading.channel == "ftp"
    assert reading.origin == AIR
    assert result.source_id == "HD-KK-01" and not result.file_rejected


def test_good_lines_kept_around_bad_ones(registry: Registry) -> None:
    body = (
        f"SO2\t10\tµg/Nm3\t{T}\t00\n"
        f"XX\t1\tµg/Nm3\t{T}\t00\n"
        "\n"
        f"NO2\tabc\tµg/Nm3\t{T}\t00\n"
        f"NO2\t20\tµg/Nm3\t{T}\t00\n"
    )
    result = _parse(registry, AIR, body.encode())
    assert [r.parameter for r in result.readings] == ["SO2", "NO2"]
    assert [(r.reason, r.line) for r in result.rejections] == [
        (R.UNKNOWN_PARAMETER, 2),
        (R.BAD_NUMBER, 4),
    ]


@pytest.mark.parametrize(
    ("offset_s", "tolerance_s", "reason"),
    [
        (300, 300, None),
        (301, 300, R.FUTURE_TIMESTAMP),
        (0, 300, None),
        (60, 0, R.FUTURE_TIMESTAMP),
        (-3 * 86400, 300, None),
    ],
)
def test_future_tolerance(
    registry: Registry, offset_s: int, tolerance_s: float, reason: RejectReason | None
) -> None:
    stamp = (RECEIVED + timedelta(seconds=offset_s)).astimezone(LOCAL_TZ).strftime("%Y%m%d%H%M%S")
    body = f"SO2\t1\tµg/Nm3\t{stamp}\t00\n".encode()
    result = _parse(registry, AIR, body, future_tolerance_s=tolerance_s)
    assert [r.reason for r in result.rejections] == ([reason] if reason else [])


def test_ancient_horizon_and_explicit_now(registry: Registry) -> None:
    body = f"SO2\t1\tµg/Nm3\t{T}\t00\n".encode()
    later = RECEIVED + timedelta(days=10)
    result = _parse(registry, AIR, body, now=later, horizon_s=7 * 86400)
    assert [r.reason for r in result.rejections] == [R.ANCIENT_TIMESTAMP]
    assert _parse(registry, AIR, body, now=later).rejections == []


@pytest.mark.parametrize("name", [AIR, "../bad name"])
def test_naive_clock_is_a_programming_error(registry: Registry, name: str) -> None:
    naive = datetime(2026, 11, 24)
    with pytest.raises(ValueError, match="timezone-aware"):
        parse_file(
            name, b"SO2\t1\tug/m3\t20261124100500\t00", registry, received_at=naive, channel="ftp"
        )
    with pytest.raises(ValueError, match="timezone-aware"):
        parse_json(b"{}", registry, received_at=RECEIVED, channel="http", now=naive)


# --- small parsers -----------------------------------------------------------------------------


def test_parse_filename() -> None:
    assert parse_filename("hd_ttqt_khi001_20261124100500.txt") == FileIdentity(
        "HD", "TTQT", "KHI001", MEASURED
    )


@pytest.mark.parametrize(
    ("text", "value"),
    [("12.5", 12.5), ("12,5", 12.5), ("-3", -3.0), ("+.5", 0.5), ("1E3", 1000.0), (" 7 ", 7.0)],
)
def test_parse_number(text: str, value: float) -> None:
    assert parse_number(text) == value


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("", R.BAD_NUMBER),
        ("1_000", R.BAD_NUMBER),  # float() would accept it
        ("0x1F", R.BAD_NUMBER),
        ("1,2,3", R.BAD_NUMBER),
        ("12 5", R.BAD_NUMBER),
        ("nan", R.NOT_FINITE),
        ("+inf", R.NOT_FINITE),
        ("1e400", R.NOT_FINITE),
        ("9" * 50, R.BAD_NUMBER),
    ],
)
def test_parse_number_rejects(text: str, reason: RejectReason) -> None:
    with pytest.raises(ParseError) as info:
        parse_number(text)
    assert info.value.reason == reason and info.value.field == "value"


# --- the JSON form -----------------------------------------------------------------------------


def _doc(*readings: object, source_id: str = "HD-KK-01") -> bytes:
    return json.dumps({"source_id": source_id, "readings": list(readings)}).encode()


GOOD = {"parameter": "SO2", "value": 12.5, "unit": "µg/Nm3", "measured_at": T, "status": "00"}


def _with(**changes: object) -> dict[str, object]:
    return {**GOOD, **changes}


def _without(key: str) -> dict[str, object]:
    return {k: v for k, v in GOOD.items() if k != key}


@pytest.mark.parametrize(
    ("data", "reason", "line", "field"),
    [
        (b"", R.EMPTY_FILE, None, None),
        (b"{not json", R.BAD_JSON, None, None),
        (b"[" * 100_000 + b"]" * 100_000, R.BAD_JSON, None, None),  # recursion bomb
        (b"\xff\xfe{\x00}\x00", R.NOT_UTF8, None, None),
        (b"[1, 2]", R.JSON_SCHEMA, None, None),
        (b'{"source_id": 5, "readings": []}', R.JSON_SCHEMA, None, None),
        (_doc(GOOD, source_id="HD-XX-01"), R.UNKNOWN_SOURCE, None, None),
        (_doc(), R.EMPTY_FILE, None, None),
        (b" " * (MAX_FILE_BYTES + 1), R.FILE_TOO_LARGE, None, None),
        (_doc(GOOD, "junk"), R.JSON_SCHEMA, 2, None),
        (_doc(GOOD, _without("unit")), R.JSON_SCHEMA, 2, "unit"),
        (_doc(GOOD, _with(parameter=7)), R.JSON_SCHEMA, 2, "parameter"),
        (_doc(GOOD, _with(parameter="XYZ")), R.UNKNOWN_PARAMETER, 2, "parameter"),
        (_doc(GOOD, _with(parameter="COD")), R.PARAMETER_NOT_MEASURED, 2, "parameter"),
        (_doc(GOOD, _with(parameter="NO2", value=True)), R.BAD_NUMBER, 2, "value"),
        (_doc(GOOD, _with(parameter="NO2", value=None)), R.BAD_NUMBER, 2, "value"),
        (_doc(GOOD, _with(parameter="NO2", value="1.2.3")), R.BAD_NUMBER, 2, "value"),
        (_doc(GOOD, _with(parameter="NO2", value=float("nan"))), R.NOT_FINITE, 2, "value"),
        (_doc(GOOD, _with(parameter="NO2", value=10**400)), R.NOT_FINITE, 2, "value"),
        (_doc(GOOD, _with(parameter="NO2", unit="mg/L")), R.WRONG_UNIT, 2, "unit"),
        (_doc(GOOD, _with(parameter="NO2", unit=["x"])), R.JSON_SCHEMA, 2, "unit"),
        (
            _doc(GOOD, _with(parameter="NO2", measured_at="yesterday")),
            R.BAD_TIMESTAMP,
            2,
            "measured_at",
        ),
        (
            _doc(GOOD, _with(parameter="NO2", measured_at=1764036300)),
            R.BAD_TIMESTAMP,
            2,
            "measured_at",
        ),
        (
            _doc(GOOD, _with(parameter="NO2", measured_at="2030-01-01T00:00:00Z")),
            R.FUTURE_TIMESTAMP,
            2,
            "measured_at",
        ),
        (_doc(GOOD, _with(parameter="NO2", status=0)), R.BAD_STATUS, 2, "status"),
        (_doc(GOOD, GOOD), R.DUPLICATE_LINE, 2, "parameter"),
    ],
)
def test_json_rejections(
    registry: Registry, data: bytes, reason: RejectReason, line: int | None, field: str | None
) -> None:
    result = parse_json(data, registry, received_at=RECEIVED, channel=Channel.HTTP)
    (rejection,) = result.rejections
    assert (rejection.reason, rejection.line, rejection.field) == (reason.value, line, field)
    assert len(result.readings) == (1 if line else 0)
    assert rejection.channel == "http" and rejection.origin.startswith("json:")


@pytest.mark.parametrize(
    "measured_at",
    [T, "2026-11-24T10:05:00+07:00", "2026-11-24T03:05:00Z", "2026-11-24T10:05:00"],
    ids=["local-digits", "offset", "utc-z", "naive-is-local"],
)
def test_json_times(registry: Registry, measured_at: str) -> None:
    data = _doc(_with(measured_at=measured_at))
    result = parse_json(data, registry, received_at=RECEIVED, channel="mqtt", origin="m-1")
    (reading,) = result.readings
    assert reading.measured_at == MEASURED
    assert reading.origin == "m-1" and reading.channel == "mqtt"


def test_json_rejected_item_carries_its_own_bytes(registry: Registry) -> None:
    bad = _with(parameter="XYZ")
    result = parse_json(_doc(GOOD, bad), registry, received_at=RECEIVED, channel="http")
    (rejection,) = result.rejections
    assert json.loads(base64.b64decode(rejection.original_b64)) == bad


# --- format_file is the inverse ------------------------------------------------------------------


def _reading(parameter: str, value: float, unit: str, minute: int, status: str) -> RawReading:
    return RawReading(
        source_id="HD-KK-01",
        parameter=parameter,
        value=value,
        unit=unit,
        measured_at=datetime(2026, 11, 24, 2, minute, tzinfo=UTC),
        status=status,
        received_at=RECEIVED,
        channel="sim",
        origin="",
    )


_values = st.floats(min_value=-1e9, max_value=1e9, allow_nan=False, allow_infinity=False)


@given(
    st.lists(
        st.tuples(
            st.sampled_from([("SO2", "µg/Nm3"), ("PM2.5", "ug/m3"), ("CO", "ppm"), ("WD", "deg")]),
            _values,
            st.sampled_from(list(DeviceStatus)),
        ),
        min_size=1,
        max_size=4,
        unique_by=lambda t: t[0][0],
    ),
    st.integers(min_value=0, max_value=59),
)
@settings(max_examples=50, suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_format_then_parse_round_trip(
    registry: Registry, items: list[tuple[tuple[str, str], float, DeviceStatus]], minute: int
) -> None:
    readings = [_reading(p, v, u, minute, s.value) for (p, u), v, s in items]
    name, body = format_file(readings, registry)
    assert name.startswith("HD_TTQT_KHI001_202611240")
    result = _parse(registry, name, body)
    assert result.rejections == []
    assert [(r.parameter, r.value, r.unit, r.measured_at, r.status) for r in result.readings] == [
        (r.parameter, r.value, r.unit, r.measured_at, r.status) for r in readings
    ]


def test_format_file_refuses_mixed_sources(registry: Registry) -> None:
    other = _reading("SO2", 1, "µg/Nm3", 0, "00")
    other.source_id = "HD-KK-02"
    with pytest.raises(ValueError, match="one source"):
        format_file([_reading("SO2", 1, "µg/Nm3", 0, "00"), other], registry)
    with pytest.raises(ValueError, match="no readings"):
        format_file([], registry)


# --- never raises, never hangs, never drops silently ---------------------------------------------


def _accounted(result: ParseResult, data: bytes) -> None:
    for rejection in result.rejections:
        assert RejectReason(rejection.reason)
    if not result.file_rejected:
        body = data.removeprefix(b"\xef\xbb\xbf")
        lines = [ln for ln in body.splitlines() if ln.decode("utf-8").strip()]
        assert len(result.readings) + len(result.rejections) == len(lines)


_names = st.one_of(
    st.text(max_size=60),
    st.sampled_from([AIR, STACK, OUTFALL, "../" + AIR, "x.txt"]),
)


_bytes = st.one_of(
    st.binary(max_size=2048),
    st.text(max_size=300).map(lambda t: t.encode("utf-8")),
)


@given(_names, _bytes)
@settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
def test_random_bytes_never_raise(registry: Registry, name: str, data: bytes) -> None:
    result = _parse(registry, name, data)
    assert result.readings or result.rejections
    _accounted(result, data)


_field_text = st.text(alphabet="SO2PM,.5-+eE0123456789naifµg/Nm3 \u00a0\u3000\t", max_size=20)


@given(st.lists(st.lists(_field_text, min_size=1, max_size=7).map("\t".join), max_size=20))
@settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
def test_random_lines_are_each_accounted_for(registry: Registry, lines: list[str]) -> None:
    data = "\r\n".join(lines).encode("utf-8")
    result = _parse(registry, AIR, data)
    _accounted(result, data)


@given(st.binary(max_size=1024))
@settings(
    max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
def test_random_json_never_raises(registry: Registry, data: bytes) -> None:
    result = parse_json(data, registry, received_at=RECEIVED, channel="http")
    assert result.rejections or result.readings


# --- found by the fuzzers (tests/fuzz) -----------------------------------------------------------


def test_fuzz_year_one_line_is_rejected_not_raised(registry: Registry) -> None:
    # fuzz_file: 0001-01-01 00:00 local is year 0 in UTC (datetime.astimezone raised OverflowError)
    data = base64.b64decode(
        "U08yCTEyLjUJwrVnL05tMwkwMDAxMDEwMTAwMDAwMAkwMA0KTk8yCTFlOTk5CcK1Zy9ObTMJ"
        "MjAyNjExMjQxMDA1MDAJMDANCg=="
    )
    assert data.startswith(b"SO2\t12.5\t\xc2\xb5g/Nm3\t00010101000000\t00\r\n")
    result = _parse(registry, AIR, data)
    assert [(r.reason, r.line, r.field) for r in result.rejections] == [
        (R.BAD_TIMESTAMP, 1, "timestamp"),
        (R.NOT_FINITE, 2, "value"),
    ]
    name = AIR.replace("20261124100500", "00010101000000")
    (rejection,) = _parse(registry, name, f"SO2\t1\tµg/Nm3\t{T}\t00\n".encode()).rejections
    assert (rejection.reason, rejection.field) == (R.BAD_FILENAME_TIMESTAMP, "name")


@pytest.mark.parametrize(
    "measured_at",
    ["00010101000000", "0001-01-01", "0001-01-01T00:00:00+01:00", "9999-12-31T23:00:00Z"],
)
def test_fuzz_json_times_out_of_range_are_rejected(registry: Registry, measured_at: str) -> None:
    # fuzz_json: the UTC (or, for the message, local) form of these is outside datetime's range
    result = parse_json(
        _doc(_with(measured_at=measured_at)), registry, received_at=RECEIVED, channel="http"
    )
    (rejection,) = result.rejections
    assert (rejection.reason, rejection.line, rejection.field) == (
        R.BAD_TIMESTAMP,
        1,
        "measured_at",
    )


@pytest.mark.parametrize("header", ["Basic é", "Basic SEQtS0stMDE6\ufffd", "Basic \x00µg"])
def test_fuzz_non_ascii_basic_token_is_no_credentials(header: str) -> None:
    # fuzz_http: base64.b64decode raised ValueError on a non-ASCII token (the handler's 500)
    from stations.http_ingest import basic_credentials

    assert basic_credentials(header) is None
