"""``/api/v1/open/…``: the open-data API for machine clients (a read token, or a session).

Stations and their parameters; latest values; hourly and daily averages with completeness and
validity; VN_AQI; surface-water quality; violations summarised per facility. Every list is
paged (``limit`` at most 1000, ``offset``; ``next_offset`` says where the next page starts, or
null), filterable by a time window (``start``/``end``, ISO 8601 with an offset, bounded
spans) and served as JSON or, with ``?format=csv``, CSV (formula-safe text cells, as the
reports' CSV: reports/render_csv.py). Rate limited per token (console/tokens.py).
"""

from __future__ import annotations

import csv
import io
import json
import math
from collections.abc import Sequence
from datetime import UTC, date, datetime, timedelta
from typing import Annotated, Any, Generic, Literal, TypeVar

from fastapi import APIRouter, Depends, HTTPException, Query, Response
from psycopg import AsyncConnection
from pydantic import BaseModel, Field

from console.tokens import ConnDep, buckets_for, read_client
from core.settings import Settings
from reports.render_csv import inert
from storage import open_data as od

Conn = AsyncConnection[Any]
MAX_LIMIT = 1000
Format = Literal["json", "csv"]
T = TypeVar("T", bound=BaseModel)
CSV_MEDIA = "text/csv; charset=utf-8"
CSV_RESPONSE: dict[int | str, dict[str, Any]] = {
    200: {"content": {"text/csv": {"schema": {"type": "string"}}}},
    400: {},
    401: {},
    403: {},
    422: {},
    429: {},
}


class Page(BaseModel, Generic[T]):
    items: list[T]
    limit: int
    offset: int
    next_offset: int | None = Field(description="offset of the next page; null on the last")


class StationParameter(BaseModel):
    code: str
    unit: str
    interval_s: int


class Station(BaseModel):
    id: str
    name: str
    kind: str
    district: str
    lat: float | None
    lon: float | None
    facility_id: str | None
    facility: str | None
    interval_s: int
    parameters: list[StationParameter]


class LatestValue(BaseModel):
    source_id: str
    parameter: str
    measured_at: datetime
    value: float
    unit: str
    flag: str = Field(description="QC flag: only 'valid' values count towards averages")


class Average(BaseModel):
    source_id: str
    parameter: str
    period: str
    window_start: datetime
    window_end: datetime
    value: float | None
    unit: str
    samples: int
    expected: int
    completeness: float
    valid: bool = Field(description="completeness met the threshold (a counted average)")


class Aqi(BaseModel):
    source_id: str
    kind: str
    window_start: datetime
    aqi: int | None
    category: str | None
    dominant: str | None
    sub_indices: dict[str, Any]


class WaterQualityDay(BaseModel):
    source_id: str
    day: date
    water_class: str | None
    target_class: str | None
    alert: bool
    wqi: int | None
    wqi_meets_minimum: bool
    means: dict[str, Any]


class FacilityViolations(BaseModel):
    facility_key: str = Field(description="facility id, or the source id of a lone source")
    facility_id: str | None
    facility: str | None
    district: str | None
    sources: list[str]
    parameters: list[str]
    violations: int
    exceedances: int
    outages: int
    open: int
    peak_ratio: float | None
    first_started_at: datetime
    last_at: datetime


def paging(
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = 100,
    offset: Annotated[int, Query(ge=0, le=1_000_000)] = 0,
) -> od.Page:
    return od.Page(limit, offset)


PageDep = Annotated[od.Page, Depends(paging)]


def window(
    start: datetime | None, end: datetime | None, default: timedelta, longest: timedelta
) -> od.Window:
    """[start, end): defaults end = now, start = end - ``default``; offsets required."""
    for name, value in (("start", start), ("end", end)):
        if value is not None and value.utcoffset() is None:
            raise HTTPException(422, f"{name}: give a time zone offset, e.g. Z or +07:00")
    end = end or datetime.now(UTC)
    start = start or end - default
    if start >= end:
        raise HTTPException(422, "start must be before end")
    if end - start > longest:
        raise HTTPException(422, f"at most {longest.days} days per request")
    return od.Window(start, end)


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return repr(value) if math.isfinite(value) else ""
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, list):
        return inert(";".join(str(v) for v in value))
    if isinstance(value, dict):
        return inert(json.dumps(value, ensure_ascii=False, sort_keys=True))
    if isinstance(value, int):
        return str(value)
    return inert(str(value))


def to_csv(model: type[BaseModel], items: Sequence[BaseModel]) -> str:
    """One header row (the field names), one row per item; nested parameters flattened."""
    out = io.StringIO()
    w = csv.writer(out, lineterminator="\r\n")
    cols = list(model.model_fields)
    w.writerow(cols)
    for item in items:
        row = item.model_dump()
        if "parameters" in row and row["parameters"] and isinstance(row["parameters"][0], dict):
            row["parameters"] = [f"{p['code']} ({p['unit']})" for p in row["parameters"]]
        w.writerow([_cell(row[c]) for c in cols])
    return out.getvalue()


def respond(
    model: type[T], rows: list[od.Row], page: od.Page, fmt: Format, name: str
) -> Page[T] | Response:
    more = len(rows) > page.limit
    items = [model.model_validate(r) for r in rows[: page.limit]]
    nxt = page.offset + page.limit if more else None
    if fmt == "csv":
        headers = {"Content-Disposition": f'attachment; filename="{name}.csv"'}
        if nxt is not None:
            headers["X-Next-Offset"] = str(nxt)
        return Response(to_csv(model, items), media_type=CSV_MEDIA, headers=headers)
    return Page[model](  # type: ignore[valid-type]
        items=items, limit=page.limit, offset=page.offset, next_offset=nxt
    )


def build_router(settings: Settings) -> APIRouter:
    buckets = buckets_for(settings)
    router = APIRouter(
        prefix="/api/v1/open",
        tags=["open data"],
        dependencies=[Depends(read_client(buckets))],
        responses=CSV_RESPONSE,
    )

    @router.get("/stations", response_model=Page[Station])
    async def stations(
        conn: ConnDep,
        page: PageDep,
        kind: str | None = None,
        district: str | None = None,
        format: Format = "json",
    ) -> Any:
        """Registered stations with their coordinates and parameters (code, unit, interval)."""
        rows = await od.stations(conn, page, kind=kind, district=district)
        return respond(Station, rows, page, format, "stations")

    @router.get("/stations/{source_id}", response_model=Station, responses={404: {}})
    async def station(source_id: str, conn: ConnDep, format: Format = "json") -> Any:
        rows = await od.stations(conn, od.Page(1, 0), source_id=source_id)
        if not rows:
            raise HTTPException(404, f"no station {source_id[:80]!r}")
        item = Station.model_validate(rows[0])
        if format == "csv":
            return Response(to_csv(Station, [item]), media_type=CSV_MEDIA)
        return item

    @router.get("/latest", response_model=Page[LatestValue])
    async def latest(
        conn: ConnDep,
        page: PageDep,
        source: str | None = None,
        start: datetime | None = None,
        end: datetime | None = None,
        format: Format = "json",
    ) -> Any:
        """The newest value of each station's parameter in [start, end) (default: 7 days)."""
        w = window(start, end, timedelta(days=7), timedelta(days=31))
        rows = await od.latest(conn, w, page, source_id=source)
        return respond(LatestValue, rows, page, format, "latest")

    @router.get("/averages", response_model=Page[Average])
    async def averages(
        conn: ConnDep,
        page: PageDep,
        period: Literal["1h", "day"] = "1h",
        source: str | None = None,
        parameter: str | None = None,
        start: datetime | None = None,
        end: datetime | None = None,
        format: Format = "json",
    ) -> Any:
        """Hourly (``1h``, default 24 h, at most 93 days) or daily (``day``, local days,
        default 30 days, at most 732) averages whose window starts in [start, end)."""
        if period == "1h":
            w = window(start, end, timedelta(hours=24), timedelta(days=93))
        else:
            w = window(start, end, timedelta(days=30), timedelta(days=732))
        rows = await od.averages(conn, period, w, page, source_id=source, parameter=parameter)
        return respond(Average, rows, page, format, f"averages-{period}")

    @router.get("/aqi", response_model=Page[Aqi])
    async def aqi(
        conn: ConnDep,
        page: PageDep,
        kind: Literal["hourly", "daily"] = "hourly",
        source: str | None = None,
        start: datetime | None = None,
        end: datetime | None = None,
        format: Format = "json",
    ) -> Any:
        """VN_AQI per station (Decision 1459/QĐ-TCMT), hourly (default 24 h) or daily."""
        default = timedelta(hours=24) if kind == "hourly" else timedelta(days=30)
        w = window(start, end, default, timedelta(days=93 if kind == "hourly" else 732))
        rows = await od.aqi(conn, kind, w, page, source_id=source)
        return respond(Aqi, rows, page, format, f"aqi-{kind}")

    @router.get("/water-quality", response_model=Page[WaterQualityDay])
    async def water_quality(
        conn: ConnDep,
        page: PageDep,
        source: str | None = None,
        start: datetime | None = None,
        end: datetime | None = None,
        format: Format = "json",
    ) -> Any:
        """Surface-water stations' daily class (QCVN 08:2023) and VN_WQI (default 30 days)."""
        w = window(start, end, timedelta(days=30), timedelta(days=732))
        rows = await od.water_quality(conn, w, page, source_id=source)
        return respond(WaterQualityDay, rows, page, format, "water-quality")

    @router.get("/violations/summary", response_model=Page[FacilityViolations])
    async def violation_summary(
        conn: ConnDep,
        page: PageDep,
        facility: str | None = None,
        start: datetime | None = None,
        end: datetime | None = None,
        format: Format = "json",
    ) -> Any:
        """Per facility, the violations running at some time in [start, end) (default 30
        days): counts by kind and state, parameters, worst ratio. No notes or names of staff."""
        w = window(start, end, timedelta(days=30), timedelta(days=732))
        rows = await od.violation_summary(conn, w, page, facility_id=facility)
        return respond(FacilityViolations, rows, page, format, "violations-summary")

    return router
