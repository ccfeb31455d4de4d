"""Core of ``quantrac aqi``: hourly or daily VN_AQI from a CSV of hourly means.

Input columns: ``time`` (the START of the hour, ISO 8601: ``2026-11-24T13:00`` is taken as
Asia/Ho_Chi_Minh local time, an explicit offset such as ``+07:00`` or ``Z`` is honoured), and any
of ``SO2``, ``NO2``, ``CO``, ``O3``, ``PM10``, ``PM2.5`` in µg/m³ (empty = missing; an absent
column = all missing). Other columns are copied through in hourly mode.

Hourly mode adds ``AQI``, ``AQI_<pollutant>`` and ``category``; PM uses the NowCast of the hour
and the 11 hours before it, looked up by time in the file (hours not in the file are missing).

Daily mode (``daily=True``) prints one row per local calendar day that has data (at least one
hourly mean of an AQI pollutant): the hours STARTING 00:00 … 23:00 local, which are the hours the
decision labels 1:00 … 0:00 by their end (``thresholds.aqi.day_aqi``, shared with the worker).
``hours`` counts the day's hours with data. A statistic with fewer than 18 of 24 hourly means
(an O3 8-h mean with fewer than 6 of 8) is left empty, and so is the AQI when neither PM has a
24-h mean: such a day is printed as incomplete (empty AQI and category), never extrapolated.
That completeness rule is the project's, not the decision's; daily mode writes it, with the day
definition, as ``# `` lines to ``err`` (stderr in the CLI) so stdout stays plain CSV.
"""

from __future__ import annotations

import csv
from datetime import datetime
from typing import Final, TextIO

from core.parameters import Parameter
from thresholds.aqi import (
    AQI_POLLUTANTS,
    COMPLETENESS_RULE,
    GASES_MAX_1H,
    PM,
    AqiResult,
    daily_aqi_by_day,
    hourly_aqi,
    nowcast,
)
from thresholds.averaging import HOUR, LOCAL_TZ

TIME_COLUMN: Final = "time"
AQI_COLUMNS: Final = ["AQI", *(f"AQI_{p}" for p in AQI_POLLUTANTS), "category"]
DAILY_STAT_COLUMNS: Final = [
    "PM10_24h",
    "PM2.5_24h",
    "SO2_max1h",
    "NO2_max1h",
    "CO_max1h",
    "O3_max1h",
    "O3_max8h",
]

Hours = dict[datetime, dict[Parameter, float | None]]


class AqiCsvError(ValueError):
    """A malformed input CSV; names the line (1 = header) and the column."""

    def __init__(self, line: int, column: str | None, message: str) -> None:
        where = f"line {line}" + (f", column {column!r}" if column else "")
        super().__init__(f"{where}: {message}")
        self.line = line
        self.column = column


def _parse_time(text: str, line: int) -> datetime:
    try:
        ts = datetime.fromisoformat(text.strip())
    except ValueError:
        raise AqiCsvError(line, TIME_COLUMN, f"not an ISO 8601 time: {text!r}") from None
    ts = ts.replace(tzinfo=LOCAL_TZ) if ts.tzinfo is None else ts.astimezone(LOCAL_TZ)
    if (ts.minute, ts.second, ts.microsecond) != (0, 0, 0):
        raise AqiCsvError(line, TIME_COLUMN, f"not the start of an hour: {text!r}")
    return ts


def _parse_value(text: str, line: int, column: str) -> float | None:
    text = text.strip()
    if not text:
        return None
    try:
        value = float(text)
    except ValueError:
        raise AqiCsvError(line, column, f"not a number: {text!r}") from None
    if not value >= 0:  # also catches NaN
        raise AqiCsvError(line, column, f"concentration must be >= 0 µg/m³, got {text!r}")
    return value


def read_rows(inp: TextIO) -> tuple[list[str], list[tuple[int, list[str]]], Hours]:
    """Parse and validate the whole file: header, raw rows (with line numbers), hourly values."""
    reader = csv.reader(inp)
    header = [h.strip() for h in next(reader, [])]
    if TIME_COLUMN not in header:
        raise AqiCsvError(1, TIME_COLUMN, f"missing; header is {header}")
    columns = {p: header.index(p.value) for p in AQI_POLLUTANTS if p.value in header}
    rows: list[tuple[int, list[str]]] = []
    hours: Hours = {}
    for row in reader:
        line = reader.line_num
        if not row or all(not cell.strip() for cell in row):
            continue
        if len(row) != len(header):
            raise AqiCsvError(line, None, f"expected {len(header)} fields, got {len(row)}")
        ts = _parse_time(row[header.index(TIME_COLUMN)], line)
        if ts in hours:
            raise AqiCsvError(line, TIME_COLUMN, f"hour {ts.isoformat()} appears twice")
        hours[ts] = {p: _parse_value(row[i], line, p.value) for p, i in columns.items()}
        rows.append((line, row))
    return header, rows, hours


def _fmt(x: float | int | None) -> str:
    if x is None:
        return ""
    return str(x) if isinstance(x, int) else f"{x:.2f}"


def _aqi_cells(result: AqiResult) -> list[str]:
    subs = [_fmt(result.sub_indices.get(str(p))) for p in AQI_POLLUTANTS]
    return [_fmt(result.aqi), *subs, result.category.value if result.category else ""]


def _series(hours: Hours, p: Parameter, start: datetime, n: int) -> list[float | None]:
    """n hourly values of ``p`` from ``start`` backwards (``start`` first)."""
    return [hours.get(start - k * HOUR, {}).get(p) for k in range(n)]


def hourly_result(hours: Hours, ts: datetime) -> AqiResult:
    inputs: dict[Parameter, float | None] = {}
    for p in AQI_POLLUTANTS:
        if p in PM:
            inputs[p] = nowcast(_series(hours, p, ts, 12))
        else:
            inputs[p] = hours[ts].get(p)
    return hourly_aqi(inputs)


DAILY_HEADER: Final = (
    "# quantrac aqi --daily: daily VN_AQI per Decision 1459/QĐ-TCMT",
    "# day: the local calendar day, hours starting 00:00-23:00 Asia/Ho_Chi_Minh (the decision's"
    " 1:00 ... 0:00 are hour ends); `time` is the hour start",
    f"# {COMPLETENESS_RULE}; a day with less is printed with empty statistics and AQI",
)


def daily_rows(hours: Hours) -> list[list[str]]:
    """One row per local calendar day with data (``thresholds.aqi.daily_aqi_by_day``)."""
    out: list[list[str]] = []
    for d in daily_aqi_by_day(hours, LOCAL_TZ):
        stats = d.stats
        cells = [
            d.day.isoformat(),
            str(d.hours),
            _fmt(stats.mean_24h.get(Parameter.PM10)),
            _fmt(stats.mean_24h.get(Parameter.PM2_5)),
            *(_fmt(stats.max_1h.get(p)) for p in (*GASES_MAX_1H, Parameter.O3)),
            _fmt(stats.o3_max_8h),
        ]
        out.append(cells + _aqi_cells(d.result))
    return out


def run_aqi_csv(inp: TextIO, out: TextIO, daily: bool, err: TextIO | None = None) -> None:
    """Read hourly means from ``inp``, write hourly (or daily) VN_AQI CSV to ``out``.

    In daily mode the method header (day definition, completeness rule) goes to ``err``.
    """
    header, rows, hours = read_rows(inp)
    writer = csv.writer(out, lineterminator="\n")
    if daily:
        if err is not None:
            print(*DAILY_HEADER, sep="\n", file=err)
        writer.writerow(["date", "hours", *DAILY_STAT_COLUMNS, *AQI_COLUMNS])
        writer.writerows(daily_rows(hours))
        return
    writer.writerow([*header, *AQI_COLUMNS])
    time_index = header.index(TIME_COLUMN)
    for line, row in rows:
        ts = _parse_time(row[time_index], line)
        writer.writerow([*row, *_aqi_cells(hourly_result(hours, ts))])
