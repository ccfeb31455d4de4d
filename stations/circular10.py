"""Circular 10/2021/TT-BTNMT wire format: file names, TAB-separated lines, and the JSON form.

A datalogger uploads ``PROVINCE_FACILITY_STATION_yyyyMMddHHmmss.txt`` holding one line per
reading: ``symbol<TAB>value<TAB>unit<TAB>yyyyMMddHHmmss<TAB>status`` (status 00 measuring,
01 calibrating, 02 device error), times in local time (Asia/Ho_Chi_Minh) — docs/regulations.md §1.3.

The parser is strict about meaning and forgiving about the usual mess (UTF-8 BOM, CRLF, trailing
blanks, ``PM2,5``, decimal commas, symbol and unit spellings). It never raises on input bytes:
each problem becomes a :class:`Rejection` naming a specific :class:`RejectReason`, the line and
the field, carrying the original bytes; the good lines of a partly bad file are kept.
Values and units are kept as sent; conversion to the registry's unit is the QC stage's job.
"""

from __future__ import annotations

import base64
import hashlib
import json
import math
import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from core.errors import (
    IncompatibleUnitError,
    ParseError,
    RejectReason,
    UnknownUnitError,
)
from core.parameters import Parameter
from core.records import Channel, DeviceStatus, RawReading, Rejection
from core.units import convert
from stations.registry import Registry, Source

LOCAL_TZ = ZoneInfo("Asia/Ho_Chi_Minh")

#: Largest file or JSON message accepted (a 5-minute file of 20 parameters is about 1 KiB).
MAX_FILE_BYTES = 1024 * 1024
#: Longest line looked at; a real line is under 60 characters.
MAX_LINE_CHARS = 512
MAX_NAME_CHARS = 255
#: For a file too large to keep in a Rejection, only its head is carried (the gateway archives
#: the whole original anyway).
EXCERPT_BYTES = 64 * 1024
DEFAULT_FUTURE_TOLERANCE_S = 300.0
DEFAULT_HORIZON_S = 3 * 365 * 86400.0

FIELDS = ("parameter", "value", "unit", "timestamp", "status")

_UTF8_BOM = b"\xef\xbb\xbf"
_NUMBER = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d{1,3})?", re.ASCII)
_EOL = re.compile(r"\r\n|\r|\n")
_EOL_BYTES = re.compile(rb"\r\n|\r|\n")
_STATUSES = frozenset(s.value for s in DeviceStatus)
_CODE_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789")
_CONTROL = frozenset(chr(c) for c in range(32) if chr(c) not in "\t\r\n") | {"\x7f"}

# Symbols seen in the field, folded by _fold(); a tuple lists candidates in order of preference,
# the first one the source measures wins ("Flow" is FlowOut at an outfall without "Flow").
_SYMBOLS: dict[str, tuple[Parameter, ...]] = {
    "temperature": (Parameter.TEMP,),
    "nhietdo": (Parameter.TEMP,),
    "oxyhoatan": (Parameter.DO,),
    "bod": (Parameter.BOD5,),
    "ss": (Parameter.TSS,),
    "nh4n": (Parameter.NH4,),
    "nnh4": (Parameter.NH4,),
    "amoni": (Parameter.NH4,),
    "tongn": (Parameter.TN,),
    "tongnito": (Parameter.TN,),
    "tongp": (Parameter.TP,),
    "tongphotpho": (Parameter.TP,),
    "conductivity": (Parameter.EC,),
    "doduan": (Parameter.EC,),
    "turb": (Parameter.TURBIDITY,),
    "doduc": (Parameter.TURBIDITY,),
    "colour": (Parameter.COLOR,),
    "mau": (Parameter.COLOR,),
    "domau": (Parameter.COLOR,),
    "qin": (Parameter.FLOW_IN,),
    "luuluongvao": (Parameter.FLOW_IN,),
    "qout": (Parameter.FLOW_OUT,),
    "luuluongra": (Parameter.FLOW_OUT,),
    "flow": (Parameter.FLOW, Parameter.FLOW_OUT),
    "luuluong": (Parameter.FLOW, Parameter.FLOW_OUT),
    "pm": (Parameter.DUST,),  # TT 10 Annex 15 "PM" = total dust at a stack
    "bui": (Parameter.DUST,),
    "buitong": (Parameter.DUST,),
    "doam": (Parameter.RH, Parameter.H2O),
    "humidity": (Parameter.RH,),
    "pressure": (Parameter.PRESSURE,),
    "apsuat": (Parameter.PRESSURE,),
    "windspeed": (Parameter.WIND_SPEED,),
    "tocdogio": (Parameter.WIND_SPEED,),
    "winddirection": (Parameter.WIND_DIR,),
    "huonggio": (Parameter.WIND_DIR,),
}


def _fold(symbol: str) -> str:
    """``PM2,5`` → ``pm25``, ``NH4+`` → ``nh4``, ``Nhiệt độ`` → ``nhietdo``."""
    text = unicodedata.normalize("NFKC", symbol).replace("đ", "d").replace("Đ", "D")
    text = "".join(c for c in unicodedata.normalize("NFD", text) if unicodedata.category(c) != "Mn")
    return "".join(c for c in text.lower() if c.isascii() and c.isalnum())


_LOOKUP: dict[str, tuple[Parameter, ...]] = {
    **{_fold(p.value): (p,) for p in Parameter},
    **_SYMBOLS,
}


@dataclass(frozen=True)
class FileIdentity:
    """What a Circular 10 file name says: who sent it, and when (UTC)."""

    province: str
    facility: str
    station: str
    stamp: datetime


@dataclass
class ParseResult:
    origin: str
    source_id: str | None = None
    readings: list[RawReading] = field(default_factory=list)
    rejections: list[Rejection] = field(default_factory=list)

    @property
    def file_rejected(self) -> bool:
        """True when the whole file/message was refused (no line was looked at)."""
        return any(r.line is None for r in self.rejections) and not self.readings


# ---------------------------------------------------------------------------------------------
# small pure parsers (raise ParseError)


def parse_local_stamp(text: str, *, field_name: str = "timestamp") -> datetime:
    """``yyyyMMddHHmmss`` in Vietnam local time → aware UTC datetime."""
    if len(text) != 14 or not text.isascii() or not text.isdigit():
        raise ParseError(
            RejectReason.BAD_TIMESTAMP,
            f"expected yyyyMMddHHmmss, got {_show(text)}",
            field=field_name,
        )
    try:
        local = datetime(
            int(text[0:4]),
            int(text[4:6]),
            int(text[6:8]),
            int(text[8:10]),
            int(text[10:12]),
            int(text[12:14]),
            tzinfo=LOCAL_TZ,
        )
    except ValueError as exc:
        raise ParseError(
            RejectReason.BAD_TIMESTAMP, f"{text} is not a real time ({exc})", field=field_name
        ) from None
    try:
        return local.astimezone(UTC)
    except OverflowError:  # 0001-01-01 before 07:00 local is still year 0 in UTC
        raise ParseError(
            RejectReason.BAD_TIMESTAMP, f"{text} is out of range", field=field_name
        ) from None


def to_local_stamp(moment: datetime) -> str:
    """Aware datetime → ``yyyyMMddHHmmss`` in Vietnam local time."""
    return moment.astimezone(LOCAL_TZ).strftime("%Y%m%d%H%M%S")


def parse_filename(name: str) -> FileIdentity:
    """Split ``PROVINCE_FACILITY_STATION_yyyyMMddHHmmss.txt``; raises ParseError."""
    if len(name) > MAX_NAME_CHARS:
        raise ParseError(
            RejectReason.BAD_FILENAME, f"name longer than {MAX_NAME_CHARS} chars", field="name"
        )
    if any(c in name for c in "/\\:\x00") or ".." in name or name.startswith("."):
        raise ParseError(
            RejectReason.PATH_TRAVERSAL, f"name {_show(name)} holds a path", field="name"
        )
    stem, dot, ext = name.rpartition(".")
    # Empty parts are tolerated: some dataloggers write "TH_BSON_KHILO2__<stamp>.txt".
    parts = [p for p in stem.split("_") if p]
    if not dot or ext.lower() != "txt" or len(parts) != 4:
        raise ParseError(
            RejectReason.BAD_FILENAME,
            f"{_show(name)} is not PROVINCE_FACILITY_STATION_yyyyMMddHHmmss.txt",
            field="name",
        )
    codes = [p.upper() for p in parts[:3]]
    for label, code in zip(("province", "facility", "station"), codes, strict=True):
        if len(code) > 16 or not set(code) <= _CODE_CHARS:
            raise ParseError(
                RejectReason.BAD_FILENAME,
                f"{label} code {_show(code)} must be 1-16 letters or digits",
                field="name",
            )
    try:
        stamp = parse_local_stamp(parts[3], field_name="name")
    except ParseError as exc:
        raise ParseError(
            RejectReason.BAD_FILENAME_TIMESTAMP, f"file name time: {exc.message}", field="name"
        ) from None
    return FileIdentity(codes[0], codes[1], codes[2], stamp)


def resolve_symbol(symbol: str, source: Source) -> Parameter:
    """The parameter a line's symbol means at this source; raises ParseError."""
    candidates = _LOOKUP.get(_fold(symbol)) if len(symbol) <= 32 else None
    if not candidates:
        raise ParseError(
            RejectReason.UNKNOWN_PARAMETER,
            f"unknown parameter symbol {_show(symbol)}",
            field="parameter",
        )
    for code in candidates:
        if source.parameter(code) is not None:
            return code
    measured = ", ".join(p.code.value for p in source.parameters)
    raise ParseError(
        RejectReason.PARAMETER_NOT_MEASURED,
        f"{candidates[0].value} is not measured at {source.id} (measured: {measured})",
        field="parameter",
    )


def parse_number(text: str) -> float:
    """A decimal number, decimal comma allowed; raises ParseError (BAD_NUMBER, NOT_FINITE)."""
    t = text.strip()
    if t.lower().lstrip("+-") in {"nan", "inf", "infinity"}:
        raise ParseError(RejectReason.NOT_FINITE, f"value is {t}", field="value")
    if "," in t:
        if "." in t or t.count(",") > 1:
            raise ParseError(
                RejectReason.BAD_NUMBER, f"ambiguous separators in {_show(t)}", field="value"
            )
        t = t.replace(",", ".")
    if len(t) > 40 or not _NUMBER.fullmatch(t):
        raise ParseError(RejectReason.BAD_NUMBER, f"{_show(text)} is not a number", field="value")
    value = float(t)
    if not math.isfinite(value):
        raise ParseError(RejectReason.NOT_FINITE, f"{t} overflows", field="value")
    return value


# ---------------------------------------------------------------------------------------------
# per-reading checks shared by the file and JSON forms


@dataclass
class _Checks:
    source: Source
    origin: str
    channel: str
    received_at: datetime
    now: datetime
    future_tolerance: timedelta
    horizon: timedelta
    seen: dict[tuple[Parameter, datetime], float] = field(default_factory=dict)

    def unit(self, unit: str, code: Parameter, field_name: str = "unit") -> str:
        spec = self.source.parameter(code)
        assert spec is not None  # resolve_symbol only returns measured parameters
        try:
            convert(1.0, unit, spec.unit, code)
        except UnknownUnitError:
            raise ParseError(
                RejectReason.UNKNOWN_UNIT, f"unknown unit {_show(unit)}", field=field_name
            ) from None
        except IncompatibleUnitError as exc:
            raise ParseError(
                RejectReason.WRONG_UNIT,
                f"{code.value} in {_show(unit)} cannot be expressed in {spec.unit} ({exc})",
                field=field_name,
            ) from None
        return unit

    def time(self, moment: datetime, field_name: str = "timestamp") -> datetime:
        if moment > self.now + self.future_tolerance:
            raise ParseError(
                RejectReason.FUTURE_TIMESTAMP,
                f"{to_local_stamp(moment)} local is ahead of now ({to_local_stamp(self.now)}) "
                f"by more than {self.future_tolerance.total_seconds():.0f} s",
                field=field_name,
            )
        if moment < self.now - self.horizon:
            raise ParseError(
                RejectReason.ANCIENT_TIMESTAMP,
                f"{to_local_stamp(moment)} local is older than {self.horizon.days} days",
                field=field_name,
            )
        return moment

    def status(self, text: object) -> str:
        if isinstance(text, str) and text in _STATUSES:
            return text
        allowed = ", ".join(s.value for s in DeviceStatus)
        raise ParseError(
            RejectReason.BAD_STATUS,
            f"status {_show(str(text))} is not one of {allowed}",
            field="status",
        )

    def reading(
        self, code: Parameter, value: float, unit: str, measured_at: datetime, status: str
    ) -> RawReading:
        key = (code, measured_at)
        if key in self.seen:
            same = "same" if self.seen[key] == value else f"other value, first {self.seen[key]}"
            raise ParseError(
                RejectReason.DUPLICATE_LINE,
                f"{code.value} at {to_local_stamp(measured_at)} already given ({same})",
                field="parameter",
            )
        self.seen[key] = value
        return RawReading(
            source_id=self.source.id,
            parameter=code.value,
            value=value,
            unit=unit,
            measured_at=measured_at,
            status=status,
            received_at=self.received_at,
            channel=self.channel,
            origin=self.origin,
        )


def _show(text: str) -> str:
    return repr(text if len(text) <= 40 else text[:37] + "...")


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _rejection(
    error: ParseError,
    original: bytes,
    *,
    origin: str,
    channel: str,
    received_at: datetime,
    source_id: str | None,
    line: int | None = None,
) -> Rejection:
    return Rejection(
        reason=error.reason.value,
        message=error.message,
        channel=channel,
        received_at=received_at,
        original_b64=_b64(original),
        source_id=source_id,
        origin=origin,
        line=line if line is not None else error.line,
        field=error.field,
    )


def _check_size(data: bytes) -> None:
    if len(data) > MAX_FILE_BYTES:
        raise ParseError(
            RejectReason.FILE_TOO_LARGE,
            f"{len(data)} bytes, limit {MAX_FILE_BYTES} (first {EXCERPT_BYTES} bytes kept)",
        )


def _prepare(data: bytes) -> str:
    """Whole-file content checks; returns the text without BOM."""
    body = data.removeprefix(_UTF8_BOM)
    if not body.strip():
        raise ParseError(RejectReason.EMPTY_FILE, "no content")
    if body[:2] in (b"\xff\xfe", b"\xfe\xff"):
        raise ParseError(RejectReason.NOT_UTF8, "UTF-16 byte order mark; UTF-8 is required")
    if b"\x00" in body:
        raise ParseError(RejectReason.BINARY_CONTENT, f"NUL byte at offset {body.index(0)}")
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ParseError(RejectReason.NOT_UTF8, f"not UTF-8 at byte {exc.start}") from None
    for i, ch in enumerate(text):
        if ch in _CONTROL:
            raise ParseError(RejectReason.BINARY_CONTENT, f"control character {ch!r} at offset {i}")
    return text


def _require_aware(received_at: datetime, now: datetime | None) -> None:
    """A naive clock is the caller's bug, not bad input: raise instead of rejecting."""
    if received_at.tzinfo is None or (now is not None and now.tzinfo is None):
        raise ValueError("received_at and now must be timezone-aware")


def _checks(
    source: Source,
    origin: str,
    channel: Channel | str,
    received_at: datetime,
    now: datetime | None,
    future_tolerance_s: float,
    horizon_s: float,
) -> _Checks:
    return _Checks(
        source=source,
        origin=origin,
        channel=str(channel),
        received_at=received_at,
        now=now or received_at,
        future_tolerance=timedelta(seconds=future_tolerance_s),
        horizon=timedelta(seconds=horizon_s),
    )


# ---------------------------------------------------------------------------------------------
# the file form


def _reject_whole(
    result: ParseResult,
    error: ParseError,
    data: bytes,
    channel: str,
    received_at: datetime,
    source_id: str | None,
) -> ParseResult:
    """Dead-letter a whole file or message with its bytes (an excerpt when it is too large)."""
    original = data[:EXCERPT_BYTES] if error.reason == RejectReason.FILE_TOO_LARGE else data
    result.rejections.append(
        _rejection(
            error,
            original,
            origin=result.origin,
            channel=channel,
            received_at=received_at,
            source_id=source_id,
        )
    )
    return result


def parse_file(
    name: str,
    data: bytes,
    registry: Registry,
    *,
    received_at: datetime,
    channel: Channel | str,
    now: datetime | None = None,
    future_tolerance_s: float = DEFAULT_FUTURE_TOLERANCE_S,
    horizon_s: float = DEFAULT_HORIZON_S,
) -> ParseResult:
    """Parse one uploaded Circular 10 file. Never raises on any ``name``/``data``.

    ``now`` (default ``received_at``) anchors the future/ancient checks, which keeps this pure.
    """
    _require_aware(received_at, now)
    result = ParseResult(origin=name if len(name) <= MAX_NAME_CHARS else name[:MAX_NAME_CHARS])
    chan = str(channel)

    def reject_file(error: ParseError, source_id: str | None = None) -> ParseResult:
        return _reject_whole(result, error, data, chan, received_at, source_id)

    try:
        identity = parse_filename(name)
    except ParseError as exc:
        return reject_file(exc)
    source = registry.by_ftp(identity.province, identity.facility, identity.station)
    try:
        _check_size(data)
    except ParseError as exc:
        return reject_file(exc, source.id if source else None)
    if source is None:
        triple = f"{identity.province}_{identity.facility}_{identity.station}"
        return reject_file(
            ParseError(RejectReason.UNKNOWN_SOURCE, f"no registered source sends as {triple}")
        )
    result.source_id = source.id
    try:
        text = _prepare(data)
    except ParseError as exc:
        return reject_file(exc, source.id)

    checks = _checks(source, result.origin, chan, received_at, now, future_tolerance_s, horizon_s)
    # CRLF, LF and a lone CR all end a line; a line's original bytes exclude the terminator.
    raw_lines = _EOL_BYTES.split(data.removeprefix(_UTF8_BOM))
    text_lines = _EOL.split(text)
    for number, (raw, line) in enumerate(zip(raw_lines, text_lines, strict=True), start=1):
        stripped = line.strip()
        if not stripped:
            continue
        try:
            result.readings.append(_parse_line(stripped, checks))
        except ParseError as exc:
            result.rejections.append(
                _rejection(
                    exc,
                    raw,
                    origin=result.origin,
                    channel=chan,
                    received_at=received_at,
                    source_id=source.id,
                    line=number,
                )
            )
    if not result.readings and not result.rejections:  # only Unicode blanks: still accounted for
        return reject_file(ParseError(RejectReason.EMPTY_FILE, "only blank lines"), source.id)
    return result


def _split_fields(line: str) -> list[str]:
    fields = [f.strip() for f in line.split("\t")]
    if len(fields) != len(FIELDS) and "\t" not in line:
        spaced = line.split()  # some dataloggers pad with spaces instead of TABs
        if len(spaced) == len(FIELDS):
            return spaced
    return fields


def _parse_line(line: str, checks: _Checks) -> RawReading:
    if len(line) > MAX_LINE_CHARS:
        raise ParseError(
            RejectReason.LINE_TOO_LONG, f"{len(line)} characters, limit {MAX_LINE_CHARS}"
        )
    fields = _split_fields(line)
    if len(fields) != len(FIELDS):
        raise ParseError(
            RejectReason.FIELD_COUNT,
            f"expected 5 TAB-separated fields ({' '.join(FIELDS)}), got {len(fields)}",
        )
    symbol, value_text, unit, stamp, status = fields
    code = resolve_symbol(symbol, checks.source)
    value = parse_number(value_text)
    checks.unit(unit, code)
    measured_at = checks.time(parse_local_stamp(stamp))
    return checks.reading(code, value, unit, measured_at, checks.status(status))


# ---------------------------------------------------------------------------------------------
# the JSON form


def parse_json(
    data: bytes,
    registry: Registry,
    *,
    received_at: datetime,
    channel: Channel | str,
    now: datetime | None = None,
    origin: str = "",
    future_tolerance_s: float = DEFAULT_FUTURE_TOLERANCE_S,
    horizon_s: float = DEFAULT_HORIZON_S,
) -> ParseResult:
    """Parse ``{"source_id": ..., "readings": [{parameter, value, unit, measured_at, status}]}``.

    ``measured_at`` is ISO 8601 (an offset is honoured; none means local time) or
    ``yyyyMMddHHmmss`` local. ``origin`` defaults to ``json:<sha256 prefix>`` of the bytes.
    Rejection.line is the 1-based position in ``readings``. Never raises on any ``data``.
    """
    _require_aware(received_at, now)
    chan = str(channel)
    result = ParseResult(origin=origin or f"json:{hashlib.sha256(data).hexdigest()[:16]}")

    def reject(error: ParseError, source_id: str | None = None) -> ParseResult:
        return _reject_whole(result, error, data, chan, received_at, source_id)

    try:
        text = _prepare_json_text(data)
        doc = json.loads(text)
    except ParseError as exc:
        return reject(exc)
    except (ValueError, RecursionError) as exc:
        return reject(ParseError(RejectReason.BAD_JSON, f"not JSON: {str(exc)[:120]}"))
    if (
        not isinstance(doc, dict)
        or not isinstance(doc.get("source_id"), str)
        or not isinstance(doc.get("readings"), list)
    ):
        return reject(
            ParseError(
                RejectReason.JSON_SCHEMA,
                'expected {"source_id": "<id>", "readings": [...]}',
            )
        )
    source = registry.find(doc["source_id"])
    if source is None:
        return reject(
            ParseError(RejectReason.UNKNOWN_SOURCE, f"unknown source_id {_show(doc['source_id'])}")
        )
    result.source_id = source.id
    if not doc["readings"]:
        return reject(ParseError(RejectReason.EMPTY_FILE, "no readings"), source.id)
    checks = _checks(source, result.origin, chan, received_at, now, future_tolerance_s, horizon_s)
    for number, item in enumerate(doc["readings"], start=1):
        try:
            result.readings.append(_parse_item(item, checks))
        except ParseError as exc:
            result.rejections.append(
                _rejection(
                    exc,
                    _item_bytes(item),
                    origin=result.origin,
                    channel=chan,
                    received_at=received_at,
                    source_id=source.id,
                    line=number,
                )
            )
    return result


def _prepare_json_text(data: bytes) -> str:
    _check_size(data)
    body = data.removeprefix(_UTF8_BOM)
    if not body.strip():
        raise ParseError(RejectReason.EMPTY_FILE, "no content")
    try:
        return body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ParseError(RejectReason.NOT_UTF8, f"not UTF-8 at byte {exc.start}") from None


def _item_bytes(item: Any) -> bytes:
    try:
        return json.dumps(item, ensure_ascii=False).encode("utf-8")
    except (ValueError, TypeError, RecursionError):
        return b""


_JSON_KEYS = ("parameter", "value", "unit", "measured_at", "status")


def _parse_item(item: Any, checks: _Checks) -> RawReading:
    if not isinstance(item, dict):
        raise ParseError(RejectReason.JSON_SCHEMA, "a reading must be an object")
    for key in _JSON_KEYS:
        if key not in item:
            raise ParseError(RejectReason.JSON_SCHEMA, f"missing {key!r}", field=key)
    symbol, value, unit, stamp = item["parameter"], item["value"], item["unit"], item["measured_at"]
    if not isinstance(symbol, str):
        raise ParseError(RejectReason.JSON_SCHEMA, "parameter must be a string", field="parameter")
    code = resolve_symbol(symbol, checks.source)
    number = _json_number(value)
    if not isinstance(unit, str):
        raise ParseError(RejectReason.JSON_SCHEMA, "unit must be a string", field="unit")
    checks.unit(unit, code)
    measured_at = checks.time(_json_time(stamp), "measured_at")
    return checks.reading(code, number, unit, measured_at, checks.status(item["status"]))


def _json_number(value: Any) -> float:
    if isinstance(value, str):
        return parse_number(value)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ParseError(
            RejectReason.BAD_NUMBER,
            f"value must be a number, got {type(value).__name__}",
            field="value",
        )
    try:
        number = float(value)
    except OverflowError:
        number = math.inf
    if not math.isfinite(number):
        raise ParseError(RejectReason.NOT_FINITE, f"value is {number}", field="value")
    return number


def _json_time(stamp: Any) -> datetime:
    if not isinstance(stamp, str) or len(stamp) > 40:
        raise ParseError(
            RejectReason.BAD_TIMESTAMP, "measured_at must be a short string", field="measured_at"
        )
    if len(stamp) == 14 and stamp.isdigit():
        return parse_local_stamp(stamp, field_name="measured_at")
    try:
        moment = datetime.fromisoformat(stamp)
    except ValueError:
        raise ParseError(
            RejectReason.BAD_TIMESTAMP, f"{_show(stamp)} is not ISO 8601", field="measured_at"
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=LOCAL_TZ)
    try:
        moment.astimezone(LOCAL_TZ)  # rejections show it in local time
        return moment.astimezone(UTC)
    except OverflowError:  # e.g. 0001-01-01 local, 9999-12-31T23:00Z
        raise ParseError(
            RejectReason.BAD_TIMESTAMP, f"{_show(stamp)} is out of range", field="measured_at"
        ) from None


# ---------------------------------------------------------------------------------------------
# the inverse, for the simulator and tests


def format_file(
    readings: Sequence[RawReading], registry: Registry, *, stamp: datetime | None = None
) -> tuple[str, bytes]:
    """A valid Circular 10 file (name, CRLF body) holding ``readings`` of one source.

    ``stamp`` (default: the latest ``measured_at``) goes into the file name.
    Raises ValueError for an empty list, mixed sources or non-finite values.
    """
    if not readings:
        raise ValueError("no readings to format")
    ids = {r.source_id for r in readings}
    if len(ids) != 1:
        raise ValueError(f"one file holds one source, got {sorted(ids)}")
    source = registry.get(ids.pop())
    moment = stamp or max(r.measured_at for r in readings)
    p = source.ftp
    name = f"{p.province}_{p.facility}_{p.station}_{to_local_stamp(moment)}.txt"
    lines = []
    for r in readings:
        if not math.isfinite(r.value):
            raise ValueError(f"{r.parameter} value {r.value} is not finite")
        symbol = "PM2,5" if r.parameter == Parameter.PM2_5 else r.parameter
        fields = (symbol, repr(float(r.value)), r.unit, to_local_stamp(r.measured_at), r.status)
        lines.append("\t".join(fields))
    return name, ("\r\n".join(lines) + "\r\n").encode("utf-8")


__all__ = [
    "EXCERPT_BYTES",
    "LOCAL_TZ",
    "MAX_FILE_BYTES",
    "MAX_LINE_CHARS",
    "FileIdentity",
    "ParseResult",
    "format_file",
    "parse_file",
    "parse_filename",
    "parse_json",
    "parse_local_stamp",
    "parse_number",
    "resolve_symbol",
    "to_local_stamp",
]
