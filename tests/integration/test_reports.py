"""Regulator reports against a real PostgreSQL (tests/conftest.py: a fresh database per test).

A month (October 2026, local time) of 5-minute data is built in Python for two sources —
HD-NT-01 (wastewater outfall: COD, TSS, pH) with a calibration window, a device-error window, a
silent gap and a COD exceedance episode, and HD-KK-01 (ambient air: PM2.5, PM10) with a PM2.5
episode and daily VN_AQI — plus the averages, violations, events, acknowledgements and a rejected
file. Every expected figure is computed here from those Python lists (never by the report code)
and compared with every number the CSV and XLSX outputs contain, parsed back.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import math
import os
import re
import shutil
import subprocess
import sys
import zipfile
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from functools import cache
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import openpyxl
import psycopg
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from PIL import Image
from psycopg.types.json import Jsonb

from core.settings import Settings
from reports.api import build_router
from reports.cli import run_report
from reports.common import ReportContext
from reports.i18n import Lang, t
from reports.model import ReportKind
from reports.render_xlsx import sheet_title
from reports.service import Format, ReportRequest, write_report
from stations.registry import load_registry
from storage.migrate import migrate
from thresholds.catalogue import load_catalogue

pytestmark = pytest.mark.integration

TZ = ZoneInfo("Asia/Ho_Chi_Minh")
STEP = timedelta(minutes=5)
MONTH_START = datetime(2026, 10, 1, tzinfo=TZ)
MONTH_END = datetime(2026, 11, 1, tzinfo=TZ)
SLOTS = 31 * 288
NOW = datetime(2026, 11, 20, tzinfo=UTC)
NT, KK = "HD-NT-01", "HD-KK-01"
NT_PARAMS = {"COD": "mg/L", "TSS": "mg/L", "pH": "-"}
KK_PARAMS = {"PM2.5": "µg/Nm3", "PM10": "µg/Nm3"}
# Limits, independently of the resolver:
# QCVN 40:2011/BTNMT Bảng 1 cột B, Cmax = C × Kq × Kf with the registry's Kq = 1.1, Kf = 0.9:
#   COD (dòng 5) 150 → 148.5, TSS (dòng 6) 100 → 99, NH4 (dòng 23) 10 → 9.9; pH (dòng 3)
#   5.5–9 and Temp (dòng 1) 40 take no coefficients.
# QCVN 05:2023/BTNMT Bảng 1: PM2.5 24 h 45 µg/Nm³ (from 2026-01-01), PM10 24 h 100 µg/Nm³, on the
#   local calendar day (§1.3.8 "một ngày đêm").
NT_LIMITS = {
    "QCVN_40_2011:B:COD:1h": ("COD", "1h", None, 148.5),
    "QCVN_40_2011:B:NH4:1h": ("NH4", "1h", None, 9.9),
    "QCVN_40_2011:B:TSS:1h": ("TSS", "1h", None, 99.0),
    "QCVN_40_2011:B:Temp:1h": ("Temp", "1h", None, 40.0),
    "QCVN_40_2011:B:pH:1h": ("pH", "1h", 5.5, 9.0),
}
KK_PM_LIMITS = {
    "QCVN_05_2023:PM10:day": ("PM10", "day", None, 100.0),
    "QCVN_05_2023:PM2.5:day": ("PM2.5", "day", None, 45.0),
}
CAL = (datetime(2026, 10, 5, 2, tzinfo=TZ), datetime(2026, 10, 5, 4, tzinfo=TZ))
ERR = (datetime(2026, 10, 12, 10, tzinfo=TZ), datetime(2026, 10, 12, 13, tzinfo=TZ))
SILENT = (datetime(2026, 10, 20, tzinfo=TZ), datetime(2026, 10, 21, 6, tzinfo=TZ))
EPISODE = (datetime(2026, 10, 25, 8, tzinfo=TZ), datetime(2026, 10, 25, 12, tzinfo=TZ))
PM_EPISODE = (datetime(2026, 10, 10, tzinfo=TZ), datetime(2026, 10, 12, tzinfo=TZ))
NO_AQI_DAYS = {date(2026, 10, 3), date(2026, 10, 17)}
COD_VID = "HD-NT-01/COD/QCVN_40_2011:B:COD:1h/20261025T010000Z"
OUTAGE_VID = "HD-NT-01/outage/20261019T170000Z"


def within(at: datetime, span: tuple[datetime, datetime]) -> bool:
    return span[0] <= at < span[1]


def origin_of(source: str, at: datetime) -> str:
    return f"HD_{source.replace('-', '')}_{at.astimezone(TZ):%Y%m%d%H%M%S}.txt"


@dataclass
class Dataset:
    readings: list[tuple[Any, ...]] = field(default_factory=list)
    averages: list[tuple[Any, ...]] = field(default_factory=list)
    aqi: list[tuple[Any, ...]] = field(default_factory=list)


def _value(source: str, param: str, i: int, at: datetime) -> float:
    if source == NT:
        if param == "COD":
            return 200.0 if within(at, EPISODE) else 80.0 + 20.0 * ((i * 7919) % 100) / 100.0
        if param == "TSS":
            return 40.0 + (i % 17)
        return round(7.0 + ((i % 11) - 5) * 0.05, 2)
    if param == "PM2.5":
        return 60.0 + (i % 5) if within(at, PM_EPISODE) else 20.0 + (i % 13)
    return 40.0 + (i % 23)


def _hour_means(rows: list[tuple[Any, ...]], expected: int) -> list[tuple[Any, ...]]:
    """(source, parameter, '1h', start, end, value, unit, samples, expected, comp, valid, 0)."""
    out = []
    by: dict[tuple[str, str, datetime], list[float]] = defaultdict(list)
    for r in rows:
        if r[6] == "valid":
            local = r[2].astimezone(TZ)
            by[(r[0], r[1], local.replace(minute=0, second=0))].append(r[3])
    sources = {(r[0], r[1], r[4]) for r in rows}
    for src, param, unit in sorted(sources):
        h = MONTH_START
        while h < MONTH_END:
            vals = by.get((src, param, h), [])
            comp = len(vals) / expected
            out.append(
                (
                    src,
                    param,
                    "1h",
                    h.astimezone(UTC),
                    (h + timedelta(hours=1)).astimezone(UTC),
                    sum(vals) / len(vals) if vals else None,
                    unit,
                    len(vals),
                    expected,
                    comp,
                    comp >= 0.75,
                    0,
                )
            )
            h += timedelta(hours=1)
    return out


@cache
def dataset() -> Dataset:
    ds = Dataset()
    for source, params in ((NT, NT_PARAMS), (KK, KK_PARAMS)):
        for i in range(SLOTS):
            at = MONTH_START + i * STEP
            if source == NT and within(at, SILENT):
                continue
            for param, unit in params.items():
                status, flag = "00", "valid"
                if source == NT and within(at, CAL):
                    status, flag = "01", "calibrating"
                elif source == NT and within(at, ERR):
                    status, flag = "02", "device_error"
                elif param == "TSS" and i % 401 == 0:
                    flag = "spike"
                v = _value(source, param, i, at)
                ds.readings.append(
                    (
                        source,
                        param,
                        at.astimezone(UTC),
                        v,
                        unit,
                        status,
                        flag,
                        v,
                        unit,
                        (at + timedelta(minutes=2)).astimezone(UTC),
                        "ftp",
                        origin_of(source, at),
                    )
                )
    hourly = _hour_means(ds.readings, 12)
    ds.averages += hourly
    # local-day means of valid readings (288 expected)
    by_day: dict[tuple[str, str, str, date], list[float]] = defaultdict(list)
    for r in ds.readings:
        if r[6] == "valid":
            by_day[(r[0], r[1], r[4], r[2].astimezone(TZ).date())].append(r[3])
    for (src, param, unit, day), vals in sorted(by_day.items()):
        start = datetime(day.year, day.month, day.day, tzinfo=TZ)
        comp = len(vals) / 288
        ds.averages.append(
            (
                src,
                param,
                "day",
                start.astimezone(UTC),
                (start + timedelta(days=1)).astimezone(UTC),
                sum(vals) / len(vals),
                unit,
                len(vals),
                288,
                comp,
                comp >= 0.75,
                0,
            )
        )
    # 24-h rolling means of the hourly means (ending with each hour), air station only
    for param in KK_PARAMS:
        hours = [a for a in hourly if a[0] == KK and a[1] == param]
        for k in range(23, len(hours)):
            window = hours[k - 23 : k + 1]
            vals = [a[5] for a in window if a[10]]
            comp = len(vals) / 24
            ds.averages.append(
                (
                    KK,
                    param,
                    "24h",
                    window[0][3],
                    window[-1][4],
                    sum(vals) / len(vals) if vals else None,
                    KK_PARAMS[param],
                    len(vals),
                    24,
                    comp,
                    comp >= 0.75,
                    0,
                )
            )
    # daily VN_AQI (arbitrary test values derived from the PM2.5 day mean)
    for (src, param, _unit, day), vals in sorted(by_day.items()):
        if src == KK and param == "PM2.5" and day not in NO_AQI_DAYS:
            start = datetime(day.year, day.month, day.day, tzinfo=TZ).astimezone(UTC)
            ds.aqi.append((KK, "daily", start, round(2 * sum(vals) / len(vals)), "PM2.5"))
    return ds


def insert_dataset(url: str) -> Dataset:
    migrate(url)
    ds = dataset()
    reg = load_registry()
    with psycopg.connect(url) as conn:
        for sid in (NT, KK):
            s = reg.get(sid)
            conn.execute(
                "INSERT INTO sources (id, name, kind, district, lat, lon, facility_id, interval_s,"
                " spec) VALUES (%s,%s,%s,%s,%s,%s,%s,%s,%s)",
                (
                    s.id,
                    s.name,
                    s.kind.value,
                    s.district.value,
                    s.lat,
                    s.lon,
                    s.facility,
                    s.interval_s,
                    Jsonb(s.model_dump(mode="json")),
                ),
            )
        with conn.cursor() as cur:
            with cur.copy(
                "COPY readings (source_id, parameter, measured_at, value, unit, status, flag,"
                " raw_value, raw_unit, received_at, channel, origin) FROM STDIN"
            ) as copy:
                for r in ds.readings:
                    copy.write_row(r)
            with cur.copy(
                "COPY averages (source_id, parameter, period, window_start, window_end, value,"
                " unit, samples, expected, completeness, valid, revision) FROM STDIN"
            ) as copy:
                for a in ds.averages:
                    copy.write_row(a)
            cur.executemany(
                "INSERT INTO aqi (source_id, kind, window_start, aqi, category, dominant,"
                " sub_indices) VALUES (%s,%s,%s,%s,'',%s,'{}')",
                ds.aqi,
            )
        ep0, ep1 = (x.astimezone(UTC) for x in EPISODE)
        conn.execute(
            "INSERT INTO violations (violation_id, kind, source_id, parameter, rule_id, period,"
            ' state, started_at, ended_at, last_at, value, "limit", ratio, peak_value,'
            " peak_ratio, severity, legal_basis, last_seq) VALUES (%s,'exceedance',%s,'COD',"
            " 'QCVN_40_2011:B:COD:1h','1h','closed',%s,%s,%s,200,148.5,%s,200,%s,'1.1-1.5',"
            " 'QCVN 40:2011/BTNMT, Bảng 1, dòng 5 (COD), cột B',2)",
            (COD_VID, NT, ep0, ep1, ep1, 200 / 148.5, 200 / 148.5),
        )
        s0, s1 = (x.astimezone(UTC) for x in SILENT)
        conn.execute(
            "INSERT INTO violations (violation_id, kind, source_id, parameter, rule_id, period,"
            " state, started_at, ended_at, last_at, severity, last_seq) VALUES"
            " (%s,'outage',%s,'*','outage','1h','closed',%s,%s,%s,'none',1)",
            (OUTAGE_VID, NT, s0, s1, s1),
        )
        for seq, (event, at) in enumerate(
            [
                ("opened", ep0 + timedelta(hours=1)),
                ("updated", ep0 + timedelta(hours=2)),
                ("closed", ep1 + timedelta(hours=1)),
            ]
        ):
            conn.execute(
                "INSERT INTO violation_events (violation_id, seq, event, at, value, ratio,"
                " severity, payload) VALUES (%s,%s,%s,%s,200,%s,'1.1-1.5',%s)",
                (COD_VID, seq, event, at, 200 / 148.5, Jsonb({"event": event})),
            )
        for user, note, at in ACKS:
            conn.execute(
                "INSERT INTO acknowledgements (violation_id, username, note, at)"
                " VALUES (%s,%s,%s,%s)",
                (COD_VID, user, note, at),
            )
        conn.execute(
            "INSERT INTO rejections (rejection_id, reason, message, channel, source_id, origin,"
            " line, original, received_at) VALUES ('rej1','bad_line','unparsable','ftp',%s,%s,"
            " 3,%s,%s)",
            (
                NT,
                "HD_HDNT01_20261025090000.txt",
                REJECTED_BYTES,
                datetime(2026, 10, 25, 9, 1, tzinfo=TZ),
            ),
        )
    return ds


ACKS = [
    ("reg", "Đã yêu cầu cơ sở giải trình", datetime(2026, 10, 25, 14, tzinfo=TZ)),
    ("adm", "Chuyển thanh tra", datetime(2026, 10, 26, 9, tzinfo=TZ)),
]
REJECTED_BYTES = b"COD\t999\tmg/L\t20261025090000\t0X\r\n\xff\xfe garbage"


def ctx(lang: Lang) -> ReportContext:
    return ReportContext(load_registry(), load_catalogue(), 0.75, "Asia/Ho_Chi_Minh", lang, NOW)


def render(url: str, req: ReportRequest, archive: Path | None = None) -> bytes:
    buf = io.BytesIO()
    with psycopg.connect(url) as conn:
        write_report(conn, ctx(req.lang), req, buf, archive)
    return buf.getvalue()


# ---------------------------------------------------------------------------------------------
# expected figures, computed from the Python data only


def exp_completeness(ds: Dataset, source: str) -> dict[str, dict[str, Any]]:
    reg = load_registry().get(source)
    out = {}
    for spec in reg.parameters:
        p = spec.code.value
        interval = spec.interval_s or reg.interval_s
        rows = [r for r in ds.readings if r[0] == source and r[1] == p]
        valid = [r[3] for r in rows if r[6] == "valid"]
        cal = sum(1 for r in rows if r[5] == "01")
        err = sum(1 for r in rows if r[5] == "02")
        expected = 31 * 86400 // interval
        out[p] = {
            "interval_s": interval,
            "expected": expected,
            "received": len(rows),
            "valid": len(valid),
            "calibrating": cal,
            "device_error": err,
            "other_invalid": len(rows) - len(valid) - cal - err,
            "completeness": min(1.0, len(valid) / expected),
            "meets_threshold": len(valid) / expected >= 0.75,
            "mean": sum(valid) / len(valid) if valid else None,
            "max": max(valid) if valid else None,
        }
    return out


def exp_limit_stats(ds: Dataset, source: str, limits: dict[str, tuple[Any, ...]]) -> dict:
    out = {}
    for rule, (param, period, lo, hi) in limits.items():
        vals = [
            a[5]
            for a in ds.averages
            if a[0] == source and a[1] == param and a[2] == period and a[10] and a[5] is not None
        ]
        over = [v for v in vals if (hi is not None and v > hi) or (lo is not None and v < lo)]
        ratios = [max(v / hi if hi else 0.0, lo / v if lo else 0.0) for v in vals]
        out[rule] = {
            "limit_min": lo,
            "limit_max": hi,
            "valid_windows": len(vals),
            "exceeding": len(over),
            "hours_exceeding": float(len(over)) * (24 if period == "day" else 1),
            "mean": sum(vals) / len(vals) if vals else None,
            "max": max(vals) if vals else None,
            "max_ratio": max(ratios) if ratios else None,
        }
    return out


def exp_statistics(ds: Dataset, source: str) -> dict[tuple[str, str], dict[str, Any]]:
    groups: dict[tuple[str, str], list[tuple[Any, ...]]] = defaultdict(list)
    for a in ds.averages:
        if a[0] == source:
            groups[(a[1], a[2])].append(a)
    out = {}
    for key, rows in groups.items():
        vals = [a[5] for a in rows if a[10] and a[5] is not None]
        out[key] = {
            "windows": len(rows),
            "valid_windows": len(vals),
            "mean": sum(vals) / len(vals) if vals else None,
            "max": max(vals) if vals else None,
            "min": min(vals) if vals else None,
        }
    return out


def exp_outage(ds: Dataset, source: str) -> dict[str, float]:
    slots: dict[int, set[str]] = defaultdict(set)
    for r in ds.readings:
        if r[0] == source:
            slots[int(r[2].timestamp()) // 300].add(r[5])
    cal = sum(1 for s in slots.values() if "01" in s)
    err = sum(1 for s in slots.values() if "02" in s and "01" not in s)
    silent = SLOTS - len(slots)
    return {
        "expected_hours": SLOTS / 12,
        "calibration_hours": cal / 12,
        "error_hours": err / 12,
        "silence_hours": silent / 12,
        "lost_hours": (cal + err + silent) / 12,
    }


# ---------------------------------------------------------------------------------------------
# parsing the outputs back


def parse_csv(data: bytes) -> dict[str, list[dict[str, str]]]:
    assert data.startswith(b"\xef\xbb\xbf"), "CSV must start with a UTF-8 BOM"
    rows = list(csv.reader(io.StringIO(data.decode("utf-8-sig"))))
    sections: dict[str, list[dict[str, str]]] = {"": []}
    name, head = "", None
    for row in rows:
        if len(row) == 1 and row[0].startswith("== ") and row[0].endswith(" =="):
            name, head = row[0][3:-3], None
            sections[name] = []
        elif not row:
            continue
        elif head is None and name:
            head = row
        elif name:
            assert head is not None
            sections[name].append(dict(zip(head, row, strict=True)))
    return sections


def parse_xlsx(data: bytes) -> dict[str, list[dict[str, Any]]]:
    wb = openpyxl.load_workbook(io.BytesIO(data))
    out = {}
    for ws in wb.worksheets[1:]:
        assert ws.freeze_panes == "A2", f"sheet {ws.title}: header row not frozen"
        rows = list(ws.iter_rows(values_only=True))
        head = rows[0]
        assert all(c.font.b for c in ws[1]), f"sheet {ws.title}: header not bold"
        out[ws.title] = [dict(zip(head, r, strict=True)) for r in rows[1:]]
    return out


def num(cell: Any) -> float | None:
    if cell is None or cell == "":
        return None
    return float(cell)


def check(actual: Any, expected: Any, where: str) -> None:
    a = num(actual)
    if expected is None:
        assert a is None, f"{where}: expected empty, got {actual!r}"
    else:
        assert a is not None and math.isclose(a, expected, rel_tol=1e-9, abs_tol=1e-6), (
            f"{where}: expected {expected!r}, got {actual!r}"
        )


class Sheets:
    """Section rows by section key, from the CSV or the XLSX edition."""

    def __init__(self, data: bytes, fmt: Format, lang: Lang) -> None:
        self.lang = lang
        self.fmt = fmt
        self.parsed: dict[str, list[dict[str, Any]]]
        self.parsed = parse_csv(data) if fmt is Format.CSV else parse_xlsx(data)
        self.used: set[str] = set()

    def rows(self, key: str) -> list[dict[str, Any]]:
        title = t(key, self.lang)
        if self.fmt is Format.XLSX:
            matches = [
                k for k in self.parsed if title.startswith(k) or k == sheet_title(title, set())
            ]
            assert matches, f"no sheet for {key} in {list(self.parsed)}"
            title = matches[0]
        return [{self.key_of(h): v for h, v in r.items()} for r in self.parsed[title]]

    def key_of(self, header: str) -> str:
        for key in KEYS:
            if t(key, self.lang) == header:
                return key
        return header


KEYS = [
    "parameter",
    "unit",
    "interval_s",
    "expected",
    "received",
    "valid",
    "calibrating",
    "device_error",
    "other_invalid",
    "completeness",
    "meets_threshold",
    "mean",
    "max",
    "min",
    "rule_id",
    "averaging",
    "limit_min",
    "limit_max",
    "valid_windows",
    "exceeding",
    "hours_exceeding",
    "max_ratio",
    "windows",
    "violation_id",
    "kind",
    "state",
    "started_at",
    "ended_at",
    "duration_h",
    "peak_value",
    "peak_ratio",
    "severity",
    "acks",
    "legal_basis",
    "username",
    "at",
    "note",
    "month",
    "expected_hours",
    "calibration_hours",
    "error_hours",
    "silence_hours",
    "lost_hours",
    "window_start",
    "value",
    "samples",
    "source_id",
    "status",
    "violations",
    "day",
    "aqi",
    "category",
    "days",
    "rgb",
    "item",
    "name",
    "district",
    "facility",
    "verified",
    "measured_at",
    "device_status",
    "flag",
    "raw_value",
    "raw_unit",
    "received_at",
    "channel",
    "origin",
    "period_key",
    "window_end",
    "revision",
    "colour",
    "dominant",
]


def as_dt(cell: Any) -> datetime:
    return cell if isinstance(cell, datetime) else datetime.strptime(cell, "%Y-%m-%d %H:%M:%S")


def yes(cell: Any, lang: Lang) -> bool:
    if isinstance(cell, bool):
        return cell
    assert cell in (t("yes", lang), t("no", lang)), cell
    return bool(cell == t("yes", lang))


# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fmt", "lang"), [(Format.CSV, Lang.EN), (Format.XLSX, Lang.VI)], ids=["csv-en", "xlsx-vi"]
)
def test_compliance_report_numbers(database_url: str, fmt: Format, lang: Lang) -> None:
    ds = insert_dataset(database_url)
    data = render(database_url, ReportRequest(ReportKind.COMPLIANCE, fmt, lang, "2026-10", (NT,)))
    sheets = Sheets(data, fmt, lang)

    # summary: verdict and number of exceedance violations (the outage one is not counted)
    summary = {
        r["item"] if "item" in r else r[t("item", lang)]: r for r in sheets.rows("sec.summary")
    }
    assert summary[t("status", lang)]["value"] == t("violated", lang)
    check(summary[t("violations", lang)]["value"], 1, "summary violations")
    # issue 19: the facility (id, name, permit, status) and all its points
    assert summary[t("facility", lang)]["value"].startswith("PL-TPP — ")
    assert summary[t("permit", lang)]["value"].startswith("12/GPMT-BTNMT")
    assert summary[t("facility_status", lang)]["value"].startswith("existing: ")
    points = summary[t("facility_points", lang)]["value"]
    assert points.startswith(f"{NT} (wastewater), HD-KT-01 (stack)") and points.count("(") == 5

    comp = exp_completeness(ds, NT)
    rows = sheets.rows("sec.completeness")
    assert [r["parameter"] for r in rows] == list(comp)  # every registered parameter, in order
    for r in rows:
        e = comp[r["parameter"]]
        for k in (
            "interval_s",
            "expected",
            "received",
            "valid",
            "calibrating",
            "device_error",
            "other_invalid",
            "completeness",
            "mean",
            "max",
        ):
            check(r[k], e[k], f"completeness {r['parameter']}.{k}")
        assert yes(r["meets_threshold"], lang) is e["meets_threshold"]
    # the calibration/error windows and the gap are visible per parameter
    assert comp["COD"]["calibrating"] == 24 and comp["COD"]["device_error"] == 36
    assert comp["COD"]["received"] == SLOTS - 360

    limits = {r["rule_id"]: r for r in sheets.rows("sec.limits")}
    assert set(limits) == set(NT_LIMITS)
    for rule, (param, period, lo, hi) in NT_LIMITS.items():
        check(limits[rule]["limit_min"], lo, f"{rule} min")
        check(limits[rule]["limit_max"], hi, f"{rule} max")
        assert limits[rule]["averaging"] == period and limits[rule]["parameter"] == param
        assert limits[rule]["legal_basis"].startswith("QCVN 40:2011/BTNMT, Bảng 1")

    stats = exp_statistics(ds, NT)
    rows = sheets.rows("sec.statistics")
    assert {(r["parameter"], r["averaging"]) for r in rows} == set(stats)
    for r in rows:
        e = stats[(r["parameter"], r["averaging"])]
        for k in ("windows", "valid_windows", "mean", "max", "min"):
            check(r[k], e[k], f"statistics {r['parameter']}/{r['averaging']}.{k}")

    exp = exp_limit_stats(ds, NT, NT_LIMITS)
    rows = sheets.rows("sec.exceedances")
    assert {r["rule_id"] for r in rows} == set(exp)
    for r in rows:
        for k, v in exp[r["rule_id"]].items():
            check(r[k], v, f"exceedance {r['rule_id']}.{k}")
    assert exp["QCVN_40_2011:B:COD:1h"]["hours_exceeding"] == 4.0  # 08:00–12:00 on 25/10

    rows = sheets.rows("sec.violations")
    assert [r["violation_id"] for r in rows] == [OUTAGE_VID, COD_VID]  # by start time
    cod = rows[1]
    assert as_dt(cod["started_at"]) == EPISODE[0].replace(tzinfo=None)
    assert as_dt(cod["ended_at"]) == EPISODE[1].replace(tzinfo=None)
    check(cod["duration_h"], 4.0, "duration")
    check(cod["peak_value"], 200.0, "peak")
    check(cod["limit_max"], 148.5, "limit")
    check(cod["peak_ratio"], 200 / 148.5, "peak ratio")
    check(cod["acks"], 2, "acks")
    assert cod["severity"] == "1.1-1.5" and cod["kind"] == "exceedance"
    check(rows[0]["duration_h"], 30.0, "outage duration")
    check(rows[0]["acks"], 0, "outage acks")

    acks = sheets.rows("sec.acknowledgements")
    assert [(a["username"], a["note"], as_dt(a["at"])) for a in acks] == [
        (u, n, at.replace(tzinfo=None)) for u, n, at in ACKS
    ]

    (month,) = sheets.rows("sec.outages")
    assert month["month"] == "2026-10"
    check(month["interval_s"], 300, "outage interval")
    for k, v in exp_outage(ds, NT).items():
        check(month[k], v, f"outage {k}")
    check(month["calibration_hours"], 2.0, "calibration 02:00–04:00 on 05/10")
    check(month["error_hours"], 3.0, "device error 10:00–13:00 on 12/10")
    check(month["silence_hours"], 30.0, "silence 20/10 00:00 – 21/10 06:00")

    for key, period in (("sec.daily", "day"), ("sec.hourly", "1h")):
        want = [a for a in ds.averages if a[0] == NT and a[2] == period]
        got = sheets.rows(key)
        assert len(got) == len(want), key
        want.sort(key=lambda a: (a[1], a[3]))
        for r, a in zip(got, want, strict=True):
            assert r["parameter"] == a[1]
            assert as_dt(r["window_start"]) == a[3].astimezone(TZ).replace(tzinfo=None)
            check(r["value"], a[5], f"{key} {a[1]} {a[3]} value")
            check(r["samples"], a[7], f"{key} samples")
            check(r["expected"], a[8], f"{key} expected")
            check(r["completeness"], a[9], f"{key} completeness")
            assert yes(r["valid"], lang) is a[10]

    method = {r["item"]: r["value"] for r in sheets.rows("sec.method")}
    assert "75%" in method[t("m.completeness", lang)]
    assert "calibrating" in method[t("m.excluded", lang)]
    for rule in NT_LIMITS:
        assert "QCVN 40:2011" in method[f"{t('m.limit', lang)} {rule}"]


@pytest.mark.parametrize("fmt", [Format.CSV, Format.XLSX])
def test_air_quality_and_province(database_url: str, fmt: Format) -> None:
    ds = insert_dataset(database_url)
    lang = Lang.VI
    sheets = Sheets(
        render(database_url, ReportRequest(ReportKind.AIR_QUALITY, fmt, lang, "2026-10", (KK,))),
        fmt,
        lang,
    )
    # QĐ 1459/QĐ-TCMT Bảng 1: 0–50 Tốt, 51–100 Trung bình, 101–150 Kém, 151–200 Xấu,
    # 201–300 Rất xấu, 301–500 Nguy hại
    bands = [
        (50, "Tốt"),
        (100, "Trung bình"),
        (150, "Kém"),
        (200, "Xấu"),
        (300, "Rất xấu"),
        (500, "Nguy hại"),
    ]
    aqi_by_day = {a[2].astimezone(TZ).date(): a[3] for a in ds.aqi}
    rows = sheets.rows("sec.aqi_daily")
    assert len(rows) == 31
    counts: dict[str, int] = defaultdict(int)
    for r in rows:
        day = r["day"].date() if isinstance(r["day"], datetime) else date.fromisoformat(r["day"])
        want = aqi_by_day.get(day)
        check(r["aqi"], want, f"aqi {day}")
        name = next(n for hi, n in bands if want <= hi) if want is not None else t("no_data")
        assert r["category"] == name, day
        counts[name] += 1
    assert counts[t("no_data")] == len(NO_AQI_DAYS)
    cats = {r["category"]: r for r in sheets.rows("sec.aqi_categories")}
    for _, name in bands:
        check(cats[name]["days"], counts[name], f"days {name}")
    check(cats[t("no_data")]["days"], len(NO_AQI_DAYS), "no-data days")

    exceed = {r["rule_id"]: r for r in sheets.rows("sec.exceedances")}
    exp = exp_limit_stats(ds, KK, KK_PM_LIMITS)
    for rule, e in exp.items():
        for k, v in e.items():
            check(exceed[rule][k], v, f"{rule}.{k}")
    assert exp["QCVN_05_2023:PM2.5:day"]["exceeding"] == 2  # PM_EPISODE: Oct 10 and 11
    for rule, r in exceed.items():  # gases have no data: no valid averages, nothing exceeded
        if rule not in exp:
            check(r["valid_windows"], 0, rule)
            check(r["exceeding"], 0, rule)
    comp = exp_completeness(ds, KK)
    for r in sheets.rows("sec.completeness"):
        for k in ("expected", "received", "valid", "completeness"):
            check(r[k], comp[r["parameter"]][k], f"aq completeness {r['parameter']}.{k}")
    assert comp["WS"]["expected"] == 31 * 1440  # 60-s cadence from the registry

    prov = Sheets(
        render(database_url, ReportRequest(ReportKind.PROVINCE, fmt, lang, "2026-10")), fmt, lang
    )
    province_rows = prov.rows("sec.province")
    by_id = {r["source_id"]: r for r in province_rows}
    assert len(by_id) == 71  # 20 stations + the 38 facilities' 51 points (issue 19)
    assert by_id[NT]["status"] == t("violated") and by_id[KK]["status"] == t("complied")
    assert sum(r["status"] == t("did_not_report") for r in by_id.values()) == 69
    # grouped by facility: stations first, then each facility's points together
    order = [r[t("facility_id", lang)] or "" for r in province_rows]
    groups = [f for i, f in enumerate(order) if i == 0 or f != order[i - 1]]
    assert groups[0] == "" and len(groups) == 39 == len(set(groups))
    assert by_id[NT][t("permit", lang)].startswith("12/GPMT-BTNMT")
    for sid in (NT, KK):
        c = exp_completeness(ds, sid)
        expected = sum(p["expected"] for p in c.values())
        valid = sum(p["valid"] for p in c.values())
        check(by_id[sid]["expected"], expected, f"{sid} expected")
        check(by_id[sid]["received"], sum(p["received"] for p in c.values()), f"{sid} received")
        check(by_id[sid]["valid"], valid, f"{sid} valid")
        check(by_id[sid]["completeness"], valid / expected, f"{sid} completeness")
    check(by_id[NT]["violations"], 1, "NT violations")
    summary = {r["item"]: r["value"] for r in prov.rows("sec.summary")}
    assert [num(summary[t(k)]) for k in ("complied", "violated", "did_not_report")] == [1, 1, 69]


def test_export_streams_every_row(database_url: str) -> None:
    ds = insert_dataset(database_url)
    period = "2026-10-01..2026-10-15"
    a, b = datetime(2026, 10, 1, tzinfo=TZ), datetime(2026, 10, 16, tzinfo=TZ)
    want = sorted((r for r in ds.readings if a <= r[2] < b), key=lambda r: (r[0], r[1], r[2]))
    want_avg = sorted(
        (x for x in ds.averages if a <= x[3] < b), key=lambda x: (x[0], x[1], x[2], x[3])
    )
    req = ReportRequest(ReportKind.EXPORT, Format.CSV, Lang.EN, period, (f"{KK},{NT}",))
    sheets = Sheets(render(database_url, req), Format.CSV, Lang.EN)
    got = sheets.rows("sec.readings")
    assert len(got) == len(want)
    for g, r in zip(got, want, strict=True):
        assert (g["source_id"], g["parameter"]) == (r[0], r[1])
        assert as_dt(g["measured_at"]) == r[2].astimezone(TZ).replace(tzinfo=None)
        check(g["value"], r[3], "value")
        check(g["raw_value"], r[7], "raw value")
        assert (g["device_status"], g["flag"], g["origin"]) == (r[5], r[6], r[11])
    got_avg = sheets.rows("sec.averages")
    assert len(got_avg) == len(want_avg)
    for g, x in zip(got_avg, want_avg, strict=True):
        assert (g["source_id"], g["parameter"], g["period_key"]) == x[:3]
        for k, i in (("value", 5), ("samples", 7), ("expected", 8), ("completeness", 9)):
            check(g[k], x[i], f"export average {k}")

    xreq = ReportRequest(ReportKind.EXPORT, Format.XLSX, Lang.EN, period, (NT,))
    xs = Sheets(render(database_url, xreq), Format.XLSX, Lang.EN)
    got = xs.rows("sec.readings")
    nt = [r for r in want if r[0] == NT]
    assert len(got) == len(nt)
    for g, r in zip(got, nt, strict=True):
        assert isinstance(g["measured_at"], datetime) and isinstance(g["value"], int | float)
        assert g["measured_at"] == r[2].astimezone(TZ).replace(tzinfo=None)
        check(g["value"], r[3], "xlsx value")
        assert g["flag"] == r[6]


def pdf_pages_nonempty(pdf: bytes, tmp: Path) -> int:
    """Render with pdftoppm (Debian poppler-utils) and count pages that are not blank."""
    assert shutil.which("pdftoppm"), "pdftoppm missing: apt-get install -y poppler-utils"
    src = tmp / "r.pdf"
    src.write_bytes(pdf)
    subprocess.run(["pdftoppm", "-r", "30", "-png", str(src), str(tmp / "page")], check=True)
    pages = sorted(tmp.glob("page*.png"))
    assert pages
    for p in pages:
        img = Image.open(p).convert("L")
        dark = sum(img.histogram()[:200])
        assert dark > 50, f"{p.name} is blank"
    return len(pages)


@pytest.mark.parametrize(
    ("kind", "sources"),
    [(ReportKind.COMPLIANCE, (NT,)), (ReportKind.AIR_QUALITY, (KK,)), (ReportKind.PROVINCE, ())],
)
def test_pdf_renders_non_empty_pages(
    database_url: str, tmp_path: Path, kind: ReportKind, sources: tuple[str, ...]
) -> None:
    insert_dataset(database_url)
    pdf = render(database_url, ReportRequest(kind, Format.PDF, Lang.VI, "2026-10", sources))
    assert pdf.startswith(b"%PDF")
    assert pdf_pages_nonempty(pdf, tmp_path) >= 1


def test_evidence_package(database_url: str, tmp_path: Path) -> None:
    ds = insert_dataset(database_url)
    root = tmp_path / "archive"
    folder = root / "2026-10-25" / NT
    folder.mkdir(parents=True)
    archived_name = origin_of(NT, EPISODE[0])
    archived = b"COD\t200.0\tmg/L\t20261025080000\t00\r\n"
    (folder / archived_name).write_bytes(archived)
    # originals the package must not take: another source's folder, a path climbing out, a
    # link out of the folder, a file stored under a name no reading points at
    other = root / "2026-10-25" / KK
    other.mkdir(parents=True)
    (other / "kk.txt").write_bytes(b"KK's file")
    (folder / "link.txt").symlink_to(other / "kk.txt")
    (folder / origin_of(NT, EPISODE[0] + STEP)).write_bytes(b"named like a reading's origin")
    paths = {
        archived_name: f"2026-10-25/{NT}/{archived_name}",
        origin_of(NT, EPISODE[0] + 2 * STEP): f"2026-10-25/{KK}/kk.txt",
        origin_of(NT, EPISODE[0] + 3 * STEP): f"2026-10-25/{NT}/../{KK}/kk.txt",
        origin_of(NT, EPISODE[0] + 4 * STEP): f"2026-10-25/{NT}/link.txt",
        origin_of(NT, EPISODE[0] + 5 * STEP): f"2026-10-25/{NT}/gone.txt",
    }
    with psycopg.connect(database_url) as conn:
        for origin, path in paths.items():
            conn.execute("UPDATE readings SET archive_path = %s WHERE origin = %s", (path, origin))
    req = ReportRequest(ReportKind.EVIDENCE, Format.ZIP, violation=COD_VID)
    data = render(database_url, req, root)
    assert render(database_url, req, root) == data  # same data, same time: the same bytes
    zf = zipfile.ZipFile(io.BytesIO(data))
    names = set(zf.namelist())
    assert {
        "violation.json",
        "limit.json",
        "readings.csv",
        "averages.csv",
        "events.csv",
        "acknowledgements.csv",
        "originals/index.csv",
        "manifest.json",
        f"originals/archive/2026-10-25/{archived_name}",
    } <= names
    assert zf.read(f"originals/archive/2026-10-25/{archived_name}") == archived
    assert [n for n in names if n.startswith("originals/archive/")] == [
        f"originals/archive/2026-10-25/{archived_name}"
    ]
    rejected = [n for n in names if n.startswith("originals/rejected/")]
    assert len(rejected) == 1 and zf.read(rejected[0]) == REJECTED_BYTES
    index = {
        r["origin"]: (r["archive_path"], r["status"])
        for r in csv.DictReader(io.StringIO(zf.read("originals/index.csv").decode("utf-8-sig")))
    }
    out = [origin_of(NT, EPISODE[0] + i * STEP) for i in range(1, 6)]
    assert index[archived_name] == (paths[archived_name], "archive")
    assert index[out[0]] == ("", "not included: not archived (no archive path stored)")
    assert (
        index[out[1]][1] == f"not included: archive path {paths[out[1]]!r} is not in {NT}'s folder"
    )
    assert index[out[2]][1].endswith("is not <date>/<source>/<file>")
    assert (
        index[out[3]][1] == f"not included: {paths[out[3]]} resolves outside {NT}'s archive folder"
    )
    assert index[out[4]][1] == f"not included: {paths[out[4]]} is missing from the archive"

    manifest = json.loads(zf.read("manifest.json"))
    listed = {f["name"]: f for f in manifest["files"]}
    assert set(listed) == names - {"manifest.json"}
    for name, f in listed.items():
        body = zf.read(name)
        assert hashlib.sha256(body).hexdigest() == f["sha256"] and len(body) == f["bytes"], name

    facility = json.loads(zf.read("facility.json"))  # issue 19: evidence names the facility
    assert (facility["id"], facility["permit"]["number"]) == ("PL-TPP", "12/GPMT-BTNMT")
    assert [p["id"] for p in facility["points"]][:2] == [NT, "HD-KT-01"]
    limit = json.loads(zf.read("limit.json"))
    assert limit["limit"]["max"] == 148.5
    assert limit["limit"]["legal_basis"].startswith("QCVN 40:2011/BTNMT, Bảng 1, dòng 5")
    # readings of COD from 3 h before to 3 h after the episode (1-h basis), status and flag kept
    lo, hi = EPISODE[0] - timedelta(hours=3), EPISODE[1] + timedelta(hours=3)
    want = [r for r in ds.readings if r[0] == NT and r[1] == "COD" and lo <= r[2] < hi]
    rows = list(csv.DictReader(io.StringIO(zf.read("readings.csv").decode("utf-8-sig"))))
    assert len(rows) == len(want) == 120
    assert [float(r["value"]) for r in rows] == [r[3] for r in want]
    assert {(r["status"], r["flag"]) for r in rows} == {("00", "valid")}
    events = list(csv.DictReader(io.StringIO(zf.read("events.csv").decode("utf-8-sig"))))
    assert [e["event"] for e in events] == ["opened", "updated", "closed"]
    acks = list(csv.DictReader(io.StringIO(zf.read("acknowledgements.csv").decode("utf-8-sig"))))
    assert [a["username"] for a in acks] == ["reg", "adm"]


def test_cli_and_api(database_url: str, tmp_path: Path) -> None:
    insert_dataset(database_url)
    settings = Settings(database_url=database_url, data_dir=tmp_path)
    out = run_report(
        settings,
        [
            "province",
            "--period",
            "2026-10",
            "--format",
            "xlsx",
            "--lang",
            "en",
            "-o",
            str(tmp_path / "p.xlsx"),
        ],
    )
    wb = openpyxl.load_workbook(out)
    assert len(list(wb[sheet_title(t("sec.province", "en"), set())].iter_rows())) == 72

    app = FastAPI()
    app.include_router(build_router(settings))
    client = TestClient(app)
    r = client.get(
        "/api/reports/compliance",
        params={"source": NT, "period": "2026-10", "format": "csv", "lang": "en"},
    )
    assert r.status_code == 200, r.text
    assert r.content.startswith(b"\xef\xbb\xbf")
    assert "attachment" in r.headers["content-disposition"]
    assert parse_csv(r.content)[t("sec.outages", "en")][0]["Hours lost"]
    r = client.get("/api/reports/compliance", params={"source": NT, "period": "2026-13"})
    assert r.status_code == 400 and "2026-13" in r.text
    r = client.get(f"/api/reports/evidence/{COD_VID.replace('/', '%2F')}.zip")
    assert r.status_code in (200, 404)  # a '/' in a path segment depends on the ASGI server
    r = client.get("/api/reports/evidence", params={"violation": COD_VID})
    assert r.status_code == 200 and r.content[:2] == b"PK"
    r = client.get("/api/reports/evidence", params={"violation": "nope"})
    assert r.status_code == 404


HOSTILE_NOTE = '=HYPERLINK("http://x","y")'


def test_formula_like_text_is_written_as_text_numbers_stay_numbers(database_url: str) -> None:
    insert_dataset(database_url)
    notes = [HOSTILE_NOTE, "+1 555", "-gọi lại", "@SUM(A1)", "\tx", "\rx", "ghi chú thường"]
    with psycopg.connect(database_url) as conn:
        for i, note in enumerate(notes):
            conn.execute(
                "INSERT INTO acknowledgements (violation_id, username, note, at)"
                " VALUES (%s, 'reg', %s, %s)",
                (COD_VID, note, datetime(2026, 10, 27, 9, i, tzinfo=TZ)),
            )
        # a negative reading in the export (a temperature below zero is a number, not a formula)
        conn.execute(
            "UPDATE readings SET value = -3.5 WHERE source_id = %s AND parameter = 'pH'"
            " AND measured_at = %s",
            (NT, MONTH_START.astimezone(UTC)),
        )
    req = ReportRequest(ReportKind.COMPLIANCE, Format.CSV, Lang.EN, "2026-10", (NT,))
    acks = Sheets(render(database_url, req), Format.CSV, Lang.EN).rows("sec.acknowledgements")
    written = [a["note"] for a in acks]
    assert written[2:] == ["'" + n for n in notes[:-1]] + [notes[-1]]
    xreq = ReportRequest(ReportKind.COMPLIANCE, Format.XLSX, Lang.EN, "2026-10", (NT,))
    wb = openpyxl.load_workbook(io.BytesIO(render(database_url, xreq)))
    cells = {c.value: c for ws in wb.worksheets for row in ws.iter_rows() for c in row}
    for note in notes:
        cell = cells[note.replace("\r", "\n")]  # XML reads a bare CR back as LF
        assert cell.data_type == "s", (note, cell.data_type)
    assert cells[HOSTILE_NOTE].quotePrefix
    assert not any(c.data_type == "f" for c in cells.values())

    period = "2026-10-01..2026-10-01"
    ereq = ReportRequest(ReportKind.EXPORT, Format.CSV, Lang.EN, period, (NT,))
    rows = Sheets(render(database_url, ereq), Format.CSV, Lang.EN).rows("sec.readings")
    ph = [r["value"] for r in rows if r["parameter"] == "pH"]
    assert "-3.5" in ph and not any(v.startswith("'") for v in ph)
    xreq = ReportRequest(ReportKind.EXPORT, Format.XLSX, Lang.EN, period, (NT,))
    wb = openpyxl.load_workbook(io.BytesIO(render(database_url, xreq)))
    negative = [c for ws in wb.worksheets for row in ws.iter_rows() for c in row if c.value == -3.5]
    assert negative and all(c.data_type == "n" for c in negative)


@pytest.mark.parametrize(
    ("kind", "source", "period", "message"),
    [
        ("compliance", NT, "2017", "ends before 2018, the first year with data"),
        ("province", None, "2099-01", "starts after the current year"),
        ("air-quality", KK, "2023-01", "starts before QCVN 05:2023/BTNMT existed"),
        ("compliance", KK, "2023-09-01..2023-09-30", "held to it from 2023-09-12"),
        # issue 19: HD-NT-20's permit imposes QCVN 40:2025 from 2026-07-01 (one basis a report)
        ("compliance", "HD-NT-20", "2026-06-15..2026-07-15", "split the period"),
        ("province", None, "2025-01-01..2026-10-31", "at most 366 days"),
        ("export", NT, "2026", "365 days; this report covers at most 92 days"),
        ("compliance", NT, "0000", "year 0 is out of range"),
        ("export", NT, "9999-12", "out of range"),
        ("export", NT, "2026-02-30", "is not a calendar date"),
    ],
)
def test_periods_no_report_can_cover_get_400_and_exit_2(
    database_url: str, tmp_path: Path, kind: str, source: str | None, period: str, message: str
) -> None:
    migrate(database_url)
    settings = Settings(database_url=database_url, data_dir=tmp_path)
    app = FastAPI()
    app.include_router(build_router(settings))
    params = {"period": period, **({"source": source} if source else {})}
    r = TestClient(app).get(f"/api/reports/{kind}", params=params)
    assert r.status_code == 400, r.text
    assert message in r.json()["detail"], r.text

    from reports.service import ReportRequestError

    argv = [kind, "--period", period, *(["--source", source] if source else [])]
    with pytest.raises(ReportRequestError, match=re.escape(message)):
        run_report(settings.model_copy(update={"database_url": "postgresql://unused"}), argv)
    # the command itself: the message on stderr, exit status 2, no database started
    done = subprocess.run(
        [sys.executable, "-m", "quantrac_cli", "report", *argv],
        capture_output=True,
        text=True,
        env={**os.environ, "QUANTRAC_DATA_DIR": str(tmp_path / "cli")},
        timeout=60,
    )
    assert done.returncode == 2, done.stderr
    assert message in done.stderr and not (tmp_path / "cli" / "pg").exists()


def test_a_year_report_and_a_quarter_export_are_within_the_maximums(
    database_url: str, tmp_path: Path
) -> None:
    insert_dataset(database_url)
    settings = Settings(database_url=database_url, data_dir=tmp_path)
    app = FastAPI()
    app.include_router(build_router(settings))
    client = TestClient(app)
    r = client.get("/api/reports/province", params={"period": "2024"})  # 366 days, leap year
    assert r.status_code == 200, r.text
    r = client.get("/api/reports/export", params={"period": "2026-Q4", "source": NT})
    assert r.status_code == 200, r.text
    narrow = settings.model_copy(update={"report_max_days": 31})
    app = FastAPI()
    app.include_router(build_router(narrow))
    r = TestClient(app).get("/api/reports/compliance", params={"period": "2026-Q4", "source": NT})
    assert r.status_code == 400 and "at most 31 days (QUANTRAC_REPORT_MAX_DAYS)" in r.text
