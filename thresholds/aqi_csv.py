"""Core of ``quantrac aqi``: hourly or daily VN_AQI from a CSV of hourly means.

Input columns: ``time`` (start of the local hour, ISO 8601: ``2026-11-24T13:00`` is taken as
Asia/Ho_Chi_Minh, an explicit offset such as ``+07:00`` is honoured), and any of ``SO2``, ``NO2``,
``CO``, ``O3``, ``PM10``, ``PM2.5`` in µg/m³ (empty = missing; an absent column = all missing).
Other columns are copied through in hourly mode.

Hourly mode adds ``AQI``, ``AQI_<pollutant>`` and ``category``; PM uses the NowCast of the hour
and the 11 hours before it, looked up by time in the file (hours not in the file are missing).

Daily mode (``daily=True``) prints one row per VN_AQI day: Decision 1459 averages PM "from 01:00
to 00:00 the next day", read here (as the brief asks) with ``time`` as the hour start, so the hour
starting 00:00 belongs to the previous day. If a data source labels hours by their end, that day
is the calendar day of the hour starts instead: change ``VN_DAY_FIRST_HOUR`` to 0.
Day statistics need 75 % of the day's hours (``daily_stats``); the O3 8-h means of the first
hours use the 7 hours before the day when the file has them.
"""

from __future__ import annotations

import csv
from datetime import date, datetime, timedelta
from typing import Final, TextIO

from stations.parameters import Parameter
from thresholds.aqi import (
    AQI_POLLUTANTS,
    GASES_MAX_1H,
    PM,
    AqiResult,
    daily_aqi,
    daily_stats,
    hourly_aqi,
    nowcast,
)
from thresholds.averaging import HOUR, LOCAL_TZ

VN_DAY_FIRST_HOUR: Final = 1  # local hour start that opens a VN_AQI day (01:00 … 00:00)
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
    """n hourly values of ``p`` from ``start`` backwards (step −1 h) or forwards (n < 0)."""
    step = -HOUR if n > 0 else HOUR
    return [hours.get(start + k * step, {}).get(p) for k in range(abs(n))]


def hourly_result(hours: Hours, ts: datetime) -> AqiResult:
    inputs: dict[Parameter, float | None] = {}
    for p in AQI_POLLUTANTS:
        if p in PM:
            inputs[p] = nowcast(_series(hours, p, ts, 12))
        else:
            inputs[p] = hours[ts].get(p)
    return hourly_aqi(inputs)


def vn_day(ts: datetime) -> date:
    """The VN_AQI day an hour (given by its local start) belongs to."""
    return (ts.astimezone(LOCAL_TZ) - timedelta(hours=VN_DAY_FIRST_HOUR)).date()


def daily_rows(hours: Hours, threshold: float = 0.75) -> list[list[str]]:
    out: list[list[str]] = []
    for day in sorted({vn_day(ts) for ts in hours}):
        first = datetime(day.year, day.month, day.day, VN_DAY_FIRST_HOUR, tzinfo=LOCAL_TZ)
        day_hours = {p: _series(hours, p, first, -24) for p in AQI_POLLUTANTS}
        o3_before = _series(hours, Parameter.O3, first - 7 * HOUR, -7)
        stats = daily_stats(day_hours, o3_before, threshold)
        n_hours = sum(first + k * HOUR in hours for k in range(24))
        cells = [
            day.isoformat(),
            str(n_hours),
            _fmt(stats.mean_24h.get(Parameter.PM10)),
            _fmt(stats.mean_24h.get(Parameter.PM2_5)),
            *(_fmt(stats.max_1h.get(p)) for p in (*GASES_MAX_1H, Parameter.O3)),
            _fmt(stats.o3_max_8h),
        ]
        out.append(cells + _aqi_cells(daily_aqi(stats)))
    return out


def run_aqi_csv(inp: TextIO, out: TextIO, daily: bool, threshold: float = 0.75) -> None:
    """Read hourly means from ``inp``, write hourly (or daily) VN_AQI CSV to ``out``."""
    header, rows, hours = read_rows(inp)
    writer = csv.writer(out, lineterminator="\n")
    if daily:
        writer.writerow(["date", "hours", *DAILY_STAT_COLUMNS, *AQI_COLUMNS])
        writer.writerows(daily_rows(hours, threshold))
        return
    writer.writerow([*header, *AQI_COLUMNS])
    time_index = header.index(TIME_COLUMN)
    for line, row in rows:
        ts = _parse_time(row[time_index], line)
        writer.writerow([*row, *_aqi_cells(hourly_result(hours, ts))])
