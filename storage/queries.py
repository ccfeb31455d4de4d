"""The read side: what the console and the reports ask of the database.

Every function takes an open ``AsyncConnection`` and returns typed, frozen records, so callers
never see cursor rows. Resolutions map onto the tables the pipeline writes: raw ``readings``,
hourly ``averages`` (period ``1h``) and the ``readings_daily`` view (local days).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import date, datetime, timedelta
from enum import StrEnum
from typing import Any
from zoneinfo import ZoneInfo

from psycopg import AsyncConnection
from psycopg.rows import dict_row

from thresholds.averaging import samples_in


class Resolution(StrEnum):
    RAW = "raw"
    HOURLY = "hourly"  # averages, period '1h'
    DAILY = "daily"  # readings_daily view, local days


class StationStatus(StrEnum):
    ONLINE = "online"
    STALE = "stale"
    OFFLINE = "offline"


#: A source is online while its last reading is at most this many intervals old, stale up to
#: OFFLINE_INTERVALS, offline beyond (or when it never reported). Both floors keep fast
#: (60 s) stations from flickering on ordinary FTP batching delays.
STALE_INTERVALS = 2
OFFLINE_INTERVALS = 6
STALE_FLOOR_S = 15 * 60
OFFLINE_FLOOR_S = 60 * 60


@dataclass(frozen=True)
class SeriesPoint:
    at: datetime
    value: float | None
    valid: bool
    flag: str = "valid"  # QC flag for raw points; 'valid'/'invalid' for averages


@dataclass(frozen=True)
class LatestValue:
    source_id: str
    parameter: str
    measured_at: datetime
    value: float
    unit: str
    flag: str


@dataclass(frozen=True)
class SourceRow:
    id: str
    name: str
    kind: str
    district: str
    lat: float | None
    lon: float | None
    facility_id: str | None
    facility: str | None
    permit: str | None
    interval_s: int
    parameters: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class ViolationFilter:
    state: str | None = None  # open | closed
    kind: str | None = None  # exceedance | outage
    source_id: str | None = None
    district: str | None = None
    severity: tuple[str, ...] = ()
    since: datetime | None = None  # last_at >= since
    until: datetime | None = None  # started_at < until
    limit: int = 200


@dataclass(frozen=True)
class ViolationRow:
    violation_id: str
    kind: str
    source_id: str
    source_name: str | None
    district: str | None
    parameter: str
    rule_id: str
    period: str
    state: str
    started_at: datetime
    ended_at: datetime | None
    last_at: datetime
    value: float | None
    limit: float | None
    ratio: float | None
    peak_value: float | None
    peak_ratio: float | None
    severity: str
    legal_basis: str
    last_seq: int
    acknowledged_at: datetime | None
    acknowledged_by: str | None
    ack_note: str | None
    # Decree 45/2022 (docs/regulations.md §8b): NULL for ambient stations and outages
    penalty_article: str | None = None
    penalty_sanction: str | None = None
    penalty_verified: bool | None = None
    flow_bracket: str | None = None
    flow_basis: str | None = None
    flow_value: float | None = None
    # Reference-O2 correction (stacks, issue 19): value/peak_value are at o2_reference; these
    # are what they were corrected from. NULL where no correction applies.
    measured_value: float | None = None
    o2_measured: float | None = None
    o2_reference: float | None = None
    peak_measured_value: float | None = None
    peak_o2_measured: float | None = None
    correction_basis: str | None = None
    found_late: bool = False  # judged from a backlog, long after its window (issue 18)
    retracted: bool = False  # a late correction showed it never was (issue 21)

    def penalty_text(self) -> str:
        """``Điều 18 … · 20–<40 m³/ngày (permitted flow 30)``; "" when no band applies."""
        if not self.penalty_article:
            return ""
        text = self.penalty_article
        if self.flow_bracket:
            text += f" · {self.flow_bracket}"
            if self.flow_basis and self.flow_value is not None:
                text += f" ({self.flow_basis} flow {self.flow_value:g})"
        return text

    def duration_h(self) -> float:
        """Closed: end − start; open: last evidence − start (still running)."""
        end = self.ended_at or self.last_at
        return (end - self.started_at).total_seconds() / 3600.0


@dataclass(frozen=True)
class ViolationEventRow:
    seq: int
    event: str
    at: datetime
    value: float | None
    ratio: float | None
    severity: str
    message: str
    recorded_at: datetime


@dataclass(frozen=True)
class AckRow:
    id: int
    username: str
    note: str
    at: datetime


@dataclass(frozen=True)
class ViolationDetail:
    violation: ViolationRow
    events: list[ViolationEventRow]
    acknowledgements: list[AckRow]


@dataclass(frozen=True)
class BoardRow:
    source_id: str
    name: str
    kind: str
    district: str
    interval_s: int
    last_reading_at: datetime | None
    age_s: float | None
    status: StationStatus
    completeness_today: float | None  # 0..1, None before the first expected reading
    open_violations: int
    aqi: int | None  # latest hourly VN_AQI (air stations)
    aqi_at: datetime | None
    # surface water: the latest day's QCVN 08:2023 class and VN_WQI (water_quality_days)
    water_day: date | None = None
    water_class: str | None = None
    target_class: str | None = None
    wqi: int | None = None
    water_alert: bool = False  # the class is worse than the target: a water quality alert


@dataclass(frozen=True)
class WaterDayRow:
    """A surface-water station's day: class, VN_WQI, and whether it is a water quality alert."""

    source_id: str
    source_name: str | None
    day: date
    water_class: str | None
    target_class: str | None
    alert: bool
    wqi: int | None
    wqi_meets_minimum: bool
    skipped: dict[str, str]


@dataclass(frozen=True)
class AuditEntry:
    id: int
    at: datetime
    actor: str
    action: str
    target: str
    detail: dict[str, Any]


# --- pure helpers -------------------------------------------------------------------------


def station_status(age_s: float | None, interval_s: int) -> StationStatus:
    """Online / stale / offline from the age of the last reading and the reporting interval."""
    if age_s is None:
        return StationStatus.OFFLINE
    if age_s <= max(STALE_INTERVALS * interval_s, STALE_FLOOR_S):
        return StationStatus.ONLINE
    if age_s <= max(OFFLINE_INTERVALS * interval_s, OFFLINE_FLOOR_S):
        return StationStatus.STALE
    return StationStatus.OFFLINE


def parameter_intervals(spec: dict[str, Any], default_interval_s: int) -> dict[str, int]:
    """Parameter code → reporting interval, from a registry entry (``sources.spec``)."""
    out: dict[str, int] = {}
    for p in spec.get("parameters") or []:
        if isinstance(p, dict) and "code" in p:
            out[str(p["code"])] = int(p.get("interval_s") or default_interval_s)
    return out


def expected_readings(intervals: dict[str, int], elapsed_s: float) -> float:
    """Readings the cadence promises over ``elapsed_s``, summed over the parameters
    (thresholds.averaging.samples_in, the rule the windows and reports count with)."""
    return sum(samples_in(elapsed_s, i) for i in intervals.values() if i > 0)


def completeness(valid: int, expected: float) -> float | None:
    """Share of promised readings that arrived valid, capped at 1 (None when none promised)."""
    if expected <= 0:
        return None
    return min(1.0, valid / expected)


def local_midnight(now: datetime, tz: str) -> datetime:
    local = now.astimezone(ZoneInfo(tz))
    return local.replace(hour=0, minute=0, second=0, microsecond=0)


# --- queries ------------------------------------------------------------------------------


def _source(row: dict[str, Any]) -> SourceRow:
    spec = row.get("spec") or {}
    params = [str(p["code"]) for p in spec.get("parameters") or [] if isinstance(p, dict)]
    return SourceRow(
        id=row["id"],
        name=row["name"],
        kind=row["kind"],
        district=row["district"],
        lat=row["lat"],
        lon=row["lon"],
        facility_id=row["facility_id"],
        facility=row["facility"],
        permit=row["permit"],
        interval_s=row["interval_s"],
        parameters=params,
    )


_SOURCE_COLS = "id, name, kind, district, lat, lon, facility_id, facility, permit, interval_s, spec"


async def list_sources(conn: AsyncConnection[Any]) -> list[SourceRow]:
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(f"SELECT {_SOURCE_COLS} FROM sources ORDER BY id")
        return [_source(r) for r in await cur.fetchall()]


async def get_source(conn: AsyncConnection[Any], source_id: str) -> SourceRow | None:
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(f"SELECT {_SOURCE_COLS} FROM sources WHERE id = %s", (source_id,))
        row = await cur.fetchone()
    return _source(row) if row else None


async def series(
    conn: AsyncConnection[Any],
    source_id: str,
    parameter: str,
    start: datetime,
    end: datetime,
    resolution: Resolution = Resolution.RAW,
) -> list[SeriesPoint]:
    """Values of one parameter in [start, end), oldest first, at the requested resolution."""
    if resolution is Resolution.RAW:
        sql = (
            "SELECT measured_at, value, flag = 'valid', flag FROM readings"
            " WHERE source_id = %s AND parameter = %s AND measured_at >= %s AND measured_at < %s"
            " ORDER BY measured_at"
        )
    elif resolution is Resolution.HOURLY:
        sql = (
            "SELECT window_start, value, valid, CASE WHEN valid THEN 'valid' ELSE 'invalid' END"
            " FROM averages WHERE source_id = %s AND parameter = %s AND period = '1h'"
            " AND window_start >= %s AND window_start < %s ORDER BY window_start"
        )
    else:
        sql = (
            "SELECT bucket, mean, n_valid > 0, CASE WHEN n_valid > 0 THEN 'valid'"
            " ELSE 'invalid' END FROM readings_daily WHERE source_id = %s AND parameter = %s"
            " AND bucket >= %s AND bucket < %s ORDER BY bucket"
        )
    cur = await conn.execute(sql, (source_id, parameter, start, end))
    rows = await cur.fetchall()
    return [SeriesPoint(at, value, bool(valid), flag) for at, value, valid, flag in rows]


async def latest_values(
    conn: AsyncConnection[Any], source_id: str | None = None
) -> list[LatestValue]:
    """The newest reading of each (source, parameter), whatever its QC flag."""
    where = "WHERE source_id = %s" if source_id else ""
    cur = await conn.execute(
        "SELECT DISTINCT ON (source_id, parameter) source_id, parameter, measured_at, value,"
        f" unit, flag FROM readings {where}"
        " ORDER BY source_id, parameter, measured_at DESC",
        (source_id,) if source_id else (),
    )
    return [LatestValue(*r) for r in await cur.fetchall()]


async def latest_limits(conn: AsyncConnection[Any], source_id: str) -> dict[str, float]:
    """Parameter → the limit its most recent violation was judged against.

    The console shows values against limits without re-deriving the regulation tables.
    """
    cur = await conn.execute(
        'SELECT DISTINCT ON (parameter) parameter, "limit" FROM violations'
        " WHERE source_id = %s AND kind = 'exceedance' AND \"limit\" IS NOT NULL"
        " ORDER BY parameter, last_at DESC",
        (source_id,),
    )
    return {p: lim for p, lim in await cur.fetchall()}


#: The one violation read model: the console, the live feed and the reports all select this.
VIOLATION_SELECT = (
    "SELECT v.violation_id, v.kind, v.source_id, s.name AS source_name, s.district,"
    " v.parameter, v.rule_id, v.period, v.state, v.started_at, v.ended_at, v.last_at, v.value,"
    ' v."limit", v.ratio, v.peak_value, v.peak_ratio, v.severity, v.legal_basis, v.last_seq,'
    " v.acknowledged_at, v.acknowledged_by, v.ack_note, v.penalty_article, v.penalty_sanction,"
    " v.penalty_verified, v.flow_bracket, v.flow_basis, v.flow_value, v.measured_value,"
    " v.o2_measured, v.o2_reference, v.peak_measured_value, v.peak_o2_measured,"
    " v.correction_basis, v.found_late, v.retracted"
    " FROM violations v LEFT JOIN sources s ON s.id = v.source_id"
)


async def list_violations(
    conn: AsyncConnection[Any], f: ViolationFilter | None = None
) -> list[ViolationRow]:
    """Violations matching every given filter, newest episode first."""
    f = f or ViolationFilter()
    clauses: list[str] = []
    args: list[Any] = []
    for column, value in (
        ("v.state", f.state),
        ("v.kind", f.kind),
        ("v.source_id", f.source_id),
        ("s.district", f.district),
    ):
        if value:
            clauses.append(f"{column} = %s")
            args.append(value)
    if f.severity:
        clauses.append("v.severity = ANY(%s)")
        args.append(list(f.severity))
    if f.since:
        clauses.append("v.last_at >= %s")
        args.append(f.since)
    if f.until:
        clauses.append("v.started_at < %s")
        args.append(f.until)
    where = (" WHERE " + " AND ".join(clauses)) if clauses else ""
    args.append(max(1, min(f.limit, 5000)))
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(
            f"{VIOLATION_SELECT}{where} ORDER BY v.started_at DESC, v.violation_id LIMIT %s",
            args,
        )
        return [ViolationRow(**r) for r in await cur.fetchall()]


async def violations_by_id(conn: AsyncConnection[Any], ids: list[str]) -> list[ViolationRow]:
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(f"{VIOLATION_SELECT} WHERE v.violation_id = ANY(%s)", (ids,))
        return [ViolationRow(**r) for r in await cur.fetchall()]


async def violation_detail(conn: AsyncConnection[Any], violation_id: str) -> ViolationDetail | None:
    found = await violations_by_id(conn, [violation_id])
    if not found:
        return None
    cur = await conn.execute(
        "SELECT seq, event, at, value, ratio, severity, coalesce(payload->>'message', ''),"
        " recorded_at FROM violation_events WHERE violation_id = %s ORDER BY seq",
        (violation_id,),
    )
    events = [ViolationEventRow(*r) for r in await cur.fetchall()]
    cur = await conn.execute(
        "SELECT id, username, note, at FROM acknowledgements WHERE violation_id = %s"
        " ORDER BY at, id",
        (violation_id,),
    )
    acks = [AckRow(*r) for r in await cur.fetchall()]
    return ViolationDetail(found[0], events, acks)


async def station_board(
    conn: AsyncConnection[Any], now: datetime, tz: str = "Asia/Ho_Chi_Minh"
) -> list[BoardRow]:
    """One row per source: liveness, today's completeness, open violations, current AQI."""
    midnight = local_midnight(now, tz)
    cur = await conn.execute(
        "SELECT s.id, s.name, s.kind, s.district, s.interval_s, s.spec,"
        " (SELECT max(measured_at) FROM readings r WHERE r.source_id = s.id),"
        " (SELECT count(*) FROM readings r WHERE r.source_id = s.id AND r.flag = 'valid'"
        "    AND r.measured_at >= %s AND r.measured_at <= %s),"
        " (SELECT count(*) FROM violations v WHERE v.source_id = s.id AND v.state = 'open'),"
        " a.aqi, a.window_start"
        " FROM sources s LEFT JOIN LATERAL (SELECT aqi, window_start FROM aqi"
        "   WHERE aqi.source_id = s.id AND aqi.kind = 'hourly'"
        "   ORDER BY window_start DESC LIMIT 1) a ON true"
        " ORDER BY s.id",
        (midnight, now),
    )
    elapsed = max(0.0, (now - midnight).total_seconds())
    rows: list[BoardRow] = []
    for (
        sid,
        name,
        kind,
        district,
        interval_s,
        spec,
        last,
        valid,
        n_open,
        aqi,
        aqi_at,
    ) in await cur.fetchall():
        age = (now - last).total_seconds() if last else None
        intervals = parameter_intervals(spec or {}, interval_s)
        rows.append(
            BoardRow(
                source_id=sid,
                name=name,
                kind=kind,
                district=district,
                interval_s=interval_s,
                last_reading_at=last,
                age_s=age,
                status=station_status(age, interval_s),
                completeness_today=completeness(valid, expected_readings(intervals, elapsed)),
                open_violations=n_open,
                aqi=aqi,
                aqi_at=aqi_at,
            )
        )
    latest = {w.source_id: w for w in await latest_water_days(conn)}
    return [
        replace(
            r,
            water_day=w.day,
            water_class=w.water_class,
            target_class=w.target_class,
            wqi=w.wqi,
            water_alert=w.alert,
        )
        if (w := latest.get(r.source_id))
        else r
        for r in rows
    ]


async def latest_water_days(
    conn: AsyncConnection[Any], *, alerts_only: bool = False
) -> list[WaterDayRow]:
    """The newest day of each surface-water station (only those in alert, if asked)."""
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(
            "SELECT * FROM (SELECT DISTINCT ON (w.source_id) w.source_id, s.name AS source_name,"
            " w.day, w.water_class, w.target_class, w.alert, w.wqi, w.wqi_meets_minimum,"
            " w.skipped FROM water_quality_days w LEFT JOIN sources s ON s.id = w.source_id"
            " ORDER BY w.source_id, w.day DESC) latest"
            + (" WHERE alert" if alerts_only else "")
            + " ORDER BY source_id"
        )
        return [WaterDayRow(**r) for r in await cur.fetchall()]


async def audit_entries(
    conn: AsyncConnection[Any],
    *,
    target: str | None = None,
    since: datetime | None = None,
    limit: int = 200,
) -> list[AuditEntry]:
    clauses: list[str] = []
    args: list[Any] = []
    if target:
        clauses.append("target = %s")
        args.append(target)
    if since:
        clauses.append("at >= %s")
        args.append(since)
    where = (" WHERE " + " AND ".join(clauses)) if clauses else ""
    cur = await conn.execute(
        f"SELECT id, at, actor, action, target, detail FROM audit_log{where}"
        " ORDER BY at DESC, id DESC LIMIT %s",
        [*args, max(1, min(limit, 5000))],
    )
    return [AuditEntry(*r) for r in await cur.fetchall()]


def default_window(now: datetime, hours: float) -> tuple[datetime, datetime]:
    return now - timedelta(hours=hours), now
