"""The read side of the open-data API (console/open_data.py): public station data only.

Every function takes a time window [start, end) already checked by the caller, a page
(``limit`` + ``offset``) and returns rows as dicts in a stable order, ``limit + 1`` at most so
the caller can tell whether another page follows. Nothing here reads acknowledgements, notes,
the audit log, users or rejected originals: those are the operators' data.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from psycopg import AsyncConnection
from psycopg.rows import dict_row

Row = dict[str, Any]


@dataclass(frozen=True)
class Page:
    limit: int
    offset: int


@dataclass(frozen=True)
class Window:
    start: datetime
    end: datetime


async def _rows(conn: AsyncConnection[Any], sql: str, args: dict[str, Any]) -> list[Row]:
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(sql, args)
        return list(await cur.fetchall())


def _paged(page: Page) -> dict[str, Any]:
    return {"limit": page.limit + 1, "offset": page.offset}


def station_parameters(spec: dict[str, Any], interval_s: int) -> list[Row]:
    """The registry's parameters of a source: code, unit, reporting interval (s)."""
    return [
        {
            "code": str(p["code"]),
            "unit": str(p.get("unit", "")),
            "interval_s": int(p.get("interval_s") or interval_s),
        }
        for p in spec.get("parameters") or []
        if isinstance(p, dict) and "code" in p
    ]


async def stations(
    conn: AsyncConnection[Any],
    page: Page,
    *,
    kind: str | None = None,
    district: str | None = None,
    source_id: str | None = None,
) -> list[Row]:
    rows = await _rows(
        conn,
        "SELECT id, name, kind, district, lat, lon, facility_id, facility, interval_s, spec"
        " FROM sources WHERE (%(kind)s::text IS NULL OR kind = %(kind)s)"
        " AND (%(district)s::text IS NULL OR district = %(district)s)"
        " AND (%(id)s::text IS NULL OR id = %(id)s)"
        " ORDER BY id LIMIT %(limit)s OFFSET %(offset)s",
        {"kind": kind, "district": district, "id": source_id, **_paged(page)},
    )
    for r in rows:
        r["parameters"] = station_parameters(r.pop("spec") or {}, r["interval_s"])
    return rows


async def latest(
    conn: AsyncConnection[Any], window: Window, page: Page, *, source_id: str | None = None
) -> list[Row]:
    """The newest reading of each (source, parameter) inside the window, whatever its QC flag
    (the flag says whether it counts)."""
    return await _rows(
        conn,
        "SELECT DISTINCT ON (source_id, parameter) source_id, parameter, measured_at, value,"
        " unit, flag FROM readings WHERE measured_at >= %(start)s AND measured_at < %(end)s"
        " AND (%(source)s::text IS NULL OR source_id = %(source)s)"
        " ORDER BY source_id, parameter, measured_at DESC LIMIT %(limit)s OFFSET %(offset)s",
        {"start": window.start, "end": window.end, "source": source_id, **_paged(page)},
    )


async def averages(
    conn: AsyncConnection[Any],
    period: str,
    window: Window,
    page: Page,
    *,
    source_id: str | None = None,
    parameter: str | None = None,
) -> list[Row]:
    """The worker's averages of one period (``1h`` clock hours, ``day`` local days) whose
    window starts inside [start, end), with their sample counts, completeness and validity."""
    return await _rows(
        conn,
        "SELECT source_id, parameter, period, window_start, window_end, value, unit, samples,"
        " expected, completeness, valid FROM averages WHERE period = %(period)s"
        " AND window_start >= %(start)s AND window_start < %(end)s"
        " AND (%(source)s::text IS NULL OR source_id = %(source)s)"
        " AND (%(parameter)s::text IS NULL OR parameter = %(parameter)s)"
        " ORDER BY window_start, source_id, parameter LIMIT %(limit)s OFFSET %(offset)s",
        {
            "period": period,
            "start": window.start,
            "end": window.end,
            "source": source_id,
            "parameter": parameter,
            **_paged(page),
        },
    )


async def aqi(
    conn: AsyncConnection[Any],
    kind: str,
    window: Window,
    page: Page,
    *,
    source_id: str | None = None,
) -> list[Row]:
    """VN_AQI (Decision 1459/QĐ-TCMT) per station, ``hourly`` or ``daily``."""
    return await _rows(
        conn,
        "SELECT source_id, kind, window_start, aqi, category, dominant, sub_indices FROM aqi"
        " WHERE kind = %(kind)s AND window_start >= %(start)s AND window_start < %(end)s"
        " AND (%(source)s::text IS NULL OR source_id = %(source)s)"
        " ORDER BY window_start, source_id LIMIT %(limit)s OFFSET %(offset)s",
        {"kind": kind, "start": window.start, "end": window.end, "source": source_id}
        | _paged(page),
    )


async def water_quality(
    conn: AsyncConnection[Any], window: Window, page: Page, *, source_id: str | None = None
) -> list[Row]:
    """Surface-water days (QCVN 08:2023 class, VN_WQI of Decision 1460/QĐ-TCMT) whose local
    day starts inside the window."""
    return await _rows(
        conn,
        "SELECT source_id, day, water_class, target_class, alert, wqi, wqi_meets_minimum,"
        " means FROM water_quality_days WHERE day_start >= %(start)s AND day_start < %(end)s"
        " AND (%(source)s::text IS NULL OR source_id = %(source)s)"
        " ORDER BY day, source_id LIMIT %(limit)s OFFSET %(offset)s",
        {"start": window.start, "end": window.end, "source": source_id} | _paged(page),
    )


async def violation_summary(
    conn: AsyncConnection[Any], window: Window, page: Page, *, facility_id: str | None = None
) -> list[Row]:
    """Per facility (a source without one stands alone), the violations that were running at
    some time in the window: counts by kind and state, the parameters, the worst ratio."""
    return await _rows(
        conn,
        "SELECT coalesce(s.facility_id, v.source_id) AS facility_key,"
        " min(s.facility_id) AS facility_id, min(s.facility) AS facility,"
        " min(s.district) AS district,"
        " array_agg(DISTINCT v.source_id ORDER BY v.source_id) AS sources,"
        " array_agg(DISTINCT v.parameter ORDER BY v.parameter) AS parameters,"
        " count(*) AS violations,"
        " count(*) FILTER (WHERE v.kind = 'exceedance') AS exceedances,"
        " count(*) FILTER (WHERE v.kind = 'outage') AS outages,"
        " count(*) FILTER (WHERE v.state = 'open') AS open,"
        " max(v.peak_ratio) AS peak_ratio,"
        " min(v.started_at) AS first_started_at, max(v.last_at) AS last_at"
        " FROM violations v JOIN sources s ON s.id = v.source_id"
        " WHERE v.last_at >= %(start)s AND v.started_at < %(end)s"
        " AND (%(facility)s::text IS NULL OR coalesce(s.facility_id, v.source_id) = %(facility)s)"
        " GROUP BY 1 ORDER BY 1 LIMIT %(limit)s OFFSET %(offset)s",
        {"start": window.start, "end": window.end, "facility": facility_id} | _paged(page),
    )
