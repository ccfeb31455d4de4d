"""Named failures of the stations package: why an input was rejected, and the exceptions.

:class:`RejectReason` is the closed vocabulary carried by ``Rejection.reason`` on
``readings.rejected``; each value names one specific problem, so a dead letter can be counted
and explained without reading its message.
"""

from __future__ import annotations

from enum import StrEnum


class RejectReason(StrEnum):
    # --- whole file / message -----------------------------------------------------------------
    BAD_FILENAME = "bad_filename"  # not PROVINCE_FACILITY_STATION_yyyyMMddHHmmss.txt
    PATH_TRAVERSAL = "path_traversal"  # a directory part, "..", NUL or a leading dot in the name
    BAD_FILENAME_TIMESTAMP = "bad_filename_timestamp"  # 14 digits but not a real local time
    FILE_TOO_LARGE = "file_too_large"  # over circular10.MAX_FILE_BYTES
    EMPTY_FILE = "empty_file"  # no bytes, or only blank lines
    NOT_UTF8 = "not_utf8"  # not decodable as UTF-8 (UTF-16, Windows-1258, binary junk)
    BINARY_CONTENT = "binary_content"  # decodes, but holds NUL or other control characters
    UNKNOWN_SOURCE = "unknown_source"  # file-name identity or JSON source_id not in the registry
    SENDER_MISMATCH = "sender_mismatch"  # (gateway) an account delivering for another source
    BAD_JSON = "bad_json"  # not parseable as JSON
    JSON_SCHEMA = "json_schema"  # JSON, but not the documented object / reading shape
    RATE_LIMITED = "rate_limited"  # (gateway) the account is over its deliveries per minute
    TOO_MANY_REJECTIONS = "too_many_rejections"  # (gateway) summary of a capped delivery's rest
    TOO_MANY_CONNECTIONS = "too_many_connections"  # (FTP) over the connections per IP
    # --- one line / one reading ---------------------------------------------------------------
    LINE_TOO_LONG = "line_too_long"  # over circular10.MAX_LINE_CHARS
    FIELD_COUNT = "field_count"  # not 5 TAB-separated fields
    UNKNOWN_PARAMETER = "unknown_parameter"  # symbol matches no parameter
    PARAMETER_NOT_MEASURED = "parameter_not_measured"  # a parameter this source does not measure
    BAD_NUMBER = "bad_number"  # value is not a decimal number
    NOT_FINITE = "not_finite"  # NaN or ±Inf (or overflows to it)
    UNKNOWN_UNIT = "unknown_unit"  # unit spelling not recognised
    WRONG_UNIT = "wrong_unit"  # unit recognised, but not convertible to the registry's unit
    BAD_TIMESTAMP = "bad_timestamp"  # not yyyyMMddHHmmss, or not a real time
    FUTURE_TIMESTAMP = "future_timestamp"  # later than now + tolerance
    ANCIENT_TIMESTAMP = "ancient_timestamp"  # earlier than now − horizon
    BAD_STATUS = "bad_status"  # not 00 / 01 / 02
    DUPLICATE_LINE = "duplicate_line"  # same parameter and time already in this file/message
    # --- a record a worker stage could not process or store (streams/errors.py) -----------------
    PROCESSING_ERROR = "processing_error"  # the stage raised on it (worker)
    STORAGE_ERROR = "storage_error"  # PostgreSQL refused its row (worker)


FILE_LEVEL_REASONS: frozenset[RejectReason] = frozenset(
    {
        RejectReason.BAD_FILENAME,
        RejectReason.PATH_TRAVERSAL,
        RejectReason.BAD_FILENAME_TIMESTAMP,
        RejectReason.FILE_TOO_LARGE,
        RejectReason.EMPTY_FILE,
        RejectReason.NOT_UTF8,
        RejectReason.BINARY_CONTENT,
        RejectReason.UNKNOWN_SOURCE,
        RejectReason.SENDER_MISMATCH,
        RejectReason.BAD_JSON,
    }
)


class StationsError(Exception):
    """Base of every error raised by the stations package."""


class RegistryError(StationsError, ValueError):
    """The registry file is invalid; ``lines`` holds one readable problem per entry."""

    def __init__(self, lines: list[str], path: str | None = None) -> None:
        self.lines = lines
        self.path = path
        where = f"{path}: " if path else ""
        super().__init__(f"{where}invalid registry ({len(lines)} problem(s)):\n" + "\n".join(lines))


class ParseError(StationsError):
    """One input problem with its coordinates; the parser turns it into a Rejection."""

    def __init__(
        self,
        reason: RejectReason,
        message: str,
        *,
        line: int | None = None,
        field: str | None = None,
    ) -> None:
        self.reason = reason
        self.message = message
        self.line = line
        self.field = field
        where = f"line {line}: " if line is not None else ""
        super().__init__(f"{reason}: {where}{message}")


class UnitError(StationsError, ValueError):
    """A unit cannot be used as asked."""


class UnknownUnitError(UnitError):
    def __init__(self, text: str) -> None:
        self.text = text
        super().__init__(f"unknown unit {text[:40]!r}")


class IncompatibleUnitError(UnitError):
    def __init__(self, from_unit: str, to_unit: str, why: str) -> None:
        self.from_unit = from_unit
        self.to_unit = to_unit
        super().__init__(f"cannot convert {from_unit} to {to_unit}: {why}")
