"""Data export: raw readings with status and QC flags, and the averages, for any sources/period.

Streamed: rows come from a server-side (named) cursor ``CHUNK`` rows at a time and the renderers
write them as they arrive, so a year of 1-minute data for all 58 sources never sits in memory.
The connection must stay open (and in a transaction, as named cursors need) while rendering.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator, Sequence
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import psycopg

from reports.common import ReportContext
from reports.method import method_rows, method_section
from reports.model import CellType, Column, Report, ReportKind, Section
from reports.periods import ReportPeriod

CHUNK = 5000

F, N, D, B, TX = CellType.FLOAT, CellType.INT, CellType.DATETIME, CellType.BOOL, CellType.TEXT

READING_COLUMNS = [
    Column("source_id"),
    Column("parameter"),
    Column("measured_at", D),
    Column("value", F),
    Column("unit"),
    Column("device_status"),
    Column("flag"),
    Column("raw_value", F),
    Column("raw_unit"),
    Column("received_at", D),
    Column("channel"),
    Column("origin"),
    Column("manual_id", N),  # the operator's invalidation in force (issue 21); flag: automatic
]
AVERAGE_COLUMNS = [
    Column("source_id"),
    Column("parameter"),
    Column("period_key"),
    Column("window_start", D),
    Column("window_end", D),
    Column("value", F),
    Column("unit"),
    Column("samples", N),
    Column("expected", N),
    Column("completeness", F),
    Column("valid", B),
    Column("revision", N),
]


def stream_rows(
    conn: psycopg.Connection[Any],
    sql: str,
    params: Sequence[Any],
    local_cols: Sequence[int],
    tz: str,
) -> Iterator[tuple[Any, ...]]:
    """Rows of ``sql`` through a named cursor; columns in ``local_cols`` converted to local time.

    Local conversion happens here (not with AT TIME ZONE in SQL) so the output is naive local time
    whatever the server's TimeZone setting is.
    """
    zone = ZoneInfo(tz)
    with conn.cursor(name=f"export_{uuid.uuid4().hex[:8]}") as cur:
        cur.itersize = CHUNK
        cur.execute(sql, params)
        for row in cur:
            if local_cols:
                row = list(row)
                for i in local_cols:
                    v: datetime | None = row[i]
                    if v is not None:
                        row[i] = v.astimezone(zone).replace(tzinfo=None)
            yield tuple(row)


def readings_rows(
    conn: psycopg.Connection[Any],
    source_ids: Sequence[str],
    start: datetime,
    end: datetime,
    tz: str,
) -> Iterator[tuple[Any, ...]]:
    return stream_rows(
        conn,
        "SELECT source_id, parameter, measured_at, value, unit, status, flag, raw_value, raw_unit,"
        " received_at, channel, origin, manual_id FROM readings"
        " WHERE source_id = ANY(%s) AND measured_at >= %s AND measured_at < %s"
        " ORDER BY source_id, parameter, measured_at",
        (list(source_ids), start, end),
        (2, 9),
        tz,
    )


def averages_rows(
    conn: psycopg.Connection[Any],
    source_ids: Sequence[str],
    start: datetime,
    end: datetime,
    tz: str,
) -> Iterator[tuple[Any, ...]]:
    return stream_rows(
        conn,
        "SELECT source_id, parameter, period, window_start, window_end, value, unit, samples,"
        " expected, completeness, valid, revision FROM averages"
        " WHERE source_id = ANY(%s) AND window_start >= %s AND window_start < %s"
        " ORDER BY source_id, parameter, period, window_start",
        (list(source_ids), start, end),
        (3, 4),
        tz,
    )


def resolve_sources(ctx: ReportContext, requested: Sequence[str]) -> list[str]:
    """``all`` (or nothing) means every registered source; unknown ids raise KeyError."""
    if not requested or [r.lower() for r in requested] == ["all"]:
        return [s.id for s in ctx.registry.sources]
    ids = [i.strip() for r in requested for i in r.split(",") if i.strip()]
    for i in ids:
        ctx.registry.get(i)
    return ids


def build_export(
    conn: psycopg.Connection[Any],
    ctx: ReportContext,
    source_ids: Sequence[str],
    period: ReportPeriod,
) -> Report:
    """A report whose two data sections are lazy generators (render while ``conn`` is open)."""
    tz = ctx.timezone
    return Report(
        ReportKind.EXPORT,
        "title.export",
        ", ".join(source_ids) if len(source_ids) <= 5 else f"{len(source_ids)}",
        period.label,
        tz,
        ctx.now,
        [
            Section(
                "sec.readings",
                READING_COLUMNS,
                readings_rows(conn, source_ids, period.start, period.end, tz),
            ),
            Section(
                "sec.averages",
                AVERAGE_COLUMNS,
                averages_rows(conn, source_ids, period.start, period.end, tz),
            ),
            method_section(method_rows(lang=ctx.lang, timezone=tz, threshold=ctx.threshold)),
        ],
    )
