"""Evidence package per violation: a ZIP with everything an enforcement file needs.

Contents:
- ``violation.json``: the violation as recorded (times UTC, ISO 8601);
- ``limit.json``: the limit applied, with its legal citation (resolved from the registry and the
  catalogue; the violation's own recorded legal basis is kept beside it);
- ``facility.json`` (emission sources, issue 19): the facility the point belongs to — id,
  illustrative name, operator, permit, sector, existing/new status and its basis — and all its
  monitoring points, so the file is read per facility;
- ``readings.csv``: the parameter's readings around the episode with device status and QC flag;
- ``averages.csv``: the parameter's averages (all periods) around the episode;
- ``o2_correction.csv`` (stacks with a reference O2, issue 19): per window of the violation's
  averaging period, the measured value, the stack's O2 average of the same window, the reference
  O2, the corrected value the limit was applied to, and why a window was not judged;
- ``events.csv`` and ``acknowledgements.csv``: the violation's history;
- ``originals/``: the original station files — each reading's archived file, taken only from the
  ``archive_path`` stored with it and only when that path lies in the violation's own source
  folder of the archive (:func:`archived_original`), and rejected inputs (exact bytes, from the
  database) of the source in the window; ``originals/index.csv`` lists every origin, its
  archive path, and whether its bytes are included or why not;
- ``manifest.json``: SHA-256 and size of every other file.

Nothing is looked up by file name: a body another account delivered under a station's file name
sits in that account's folder (or in the gateway's quarantine, outside the archive root), never in
the station's. The ZIP's entries carry the package's ``generated_at`` as their time, so the same
data and time give the same bytes.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import re
import zipfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path, PurePosixPath
from typing import Any, BinaryIO
from zoneinfo import ZoneInfo

import psycopg

from reports.common import ReportContext, ViolationRow, fetch_acks, fetch_events, fetch_violation
from reports.render_csv import BOM, inert
from storage.writer import AVERAGE_COLUMNS, READING_COLUMNS
from thresholds.limits import resolve_limits
from thresholds.reference_o2 import (
    O2,
    ReferenceO2,
    correct_series,
    settings_of,
    with_reference,
)

MARGIN = {
    "1h": timedelta(hours=3),
    "8h": timedelta(hours=12),
    "24h": timedelta(hours=48),
    "day": timedelta(hours=48),
}
MANIFEST = "manifest.json"


class ViolationNotFound(KeyError):
    """No violation with this id."""


def evidence_window(v: ViolationRow) -> tuple[datetime, datetime]:
    margin = MARGIN.get(v.period, timedelta(hours=6))
    return v.started_at - margin, (v.ended_at or v.last_at) + margin


def _cell(v: Any) -> Any:
    """Numbers as they are, times in ISO 8601, text made inert (no formulas: render_csv)."""
    if v is None:
        return ""
    if isinstance(v, datetime):
        return v.isoformat()
    return inert(v) if isinstance(v, str) else v


def _csv(header: Sequence[str], rows: Iterable[Sequence[Any]]) -> bytes:
    buf = io.StringIO()
    buf.write(BOM)
    w = csv.writer(buf)
    w.writerow(header)
    for row in rows:
        w.writerow([_cell(v) for v in row])
    return buf.getvalue().encode("utf-8")


def _json(data: Any) -> bytes:
    return json.dumps(data, ensure_ascii=False, indent=2, default=str).encode("utf-8")


def _safe_name(name: str) -> str:
    return "".join(ch if ch.isalnum() or ch in "._-" else "_" for ch in name)[:120] or "file"


_DAY = re.compile(r"^\d{4}-\d{2}-\d{2}$")


class NotIncluded(ValueError):
    """Why an original is listed in the index without its bytes (the message is the reason)."""


def archive_member(archive_path: str | None, source_id: str) -> PurePosixPath:
    """``archive_path`` as ``<local date>/<source_id>/<name>``, or NotIncluded (pure).

    Only the gateway's layout of ``source_id``'s own folder passes: no absolute path, no ``..``
    or ``.``, no other source's folder, no deeper or shallower path."""
    if not archive_path:
        raise NotIncluded("not archived (no archive path stored)")
    path = PurePosixPath(archive_path)
    parts = path.parts
    if str(path) != archive_path or path.is_absolute() or "\\" in archive_path or len(parts) != 3:
        raise NotIncluded(f"archive path {archive_path!r} is not <date>/<source>/<file>")
    day, folder, _ = parts
    if not _DAY.match(day) or ".." in parts:
        raise NotIncluded(f"archive path {archive_path!r} is not <date>/<source>/<file>")
    if folder != source_id:
        raise NotIncluded(f"archive path {archive_path!r} is not in {source_id}'s folder")
    return path


def archived_original(archive_dir: Path | None, archive_path: str | None, source_id: str) -> bytes:
    """The bytes of ``source_id``'s archived original at ``archive_path``, or NotIncluded.

    The path must pass :func:`archive_member` and, with every symbolic link resolved, still name
    a regular file directly in ``<archive root>/<date>/<source_id>/``."""
    member = archive_member(archive_path, source_id)
    if archive_dir is None or not archive_dir.is_dir():
        raise NotIncluded("no archive directory configured")
    root = archive_dir.resolve()
    folder = root / member.parts[0] / member.parts[1]
    try:
        target = (root / member).resolve(strict=True)
    except (OSError, RuntimeError):  # missing, or a symlink loop
        raise NotIncluded(f"{member} is missing from the archive") from None
    if target.parent != folder or not target.is_file():
        raise NotIncluded(f"{member} resolves outside {source_id}'s archive folder")
    try:  # O_NOFOLLOW: a link swapped in after the check is refused, not followed
        fd = os.open(target, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
    except OSError as exc:
        raise NotIncluded(f"{member} cannot be read: {exc.strerror}") from None
    with os.fdopen(fd, "rb") as f:
        return f.read()


@dataclass(frozen=True)
class _Window:
    period: str
    window_start: datetime
    window_end: datetime
    value: float | None
    valid: bool


def _o2_correction(
    conn: psycopg.Connection[Any],
    v: ViolationRow,
    start: datetime,
    end: datetime,
    reference: ReferenceO2,
) -> bytes:
    """The violation's windows with measured value, O2, reference and corrected value."""
    rows = conn.execute(
        "SELECT parameter, period, window_start, window_end, value, valid FROM averages"
        " WHERE source_id = %s AND parameter = ANY(%s) AND period = %s"
        " AND window_start >= %s AND window_start < %s ORDER BY window_start",
        (v.source_id, [v.parameter, O2], v.period, start, end),
    ).fetchall()
    pollutant = [_Window(*r[1:]) for r in rows if r[0] == v.parameter]
    o2 = [_Window(*r[1:]) for r in rows if r[0] == O2]
    header = [
        "period",
        "window_start",
        "window_end",
        "measured_value",
        "o2_measured",
        "o2_reference",
        "corrected_value",
        "not_judged",
        "reference_basis",
    ]
    return _csv(
        header,
        [
            (
                a.period,
                a.window_start,
                a.window_end,
                a.value,
                c.o2_measured,
                c.o2_reference,
                c.corrected,
                c.reason,
                reference.text(),
            )
            for a, c in correct_series(pollutant, o2, reference)
        ],
    )


def build_evidence(
    conn: psycopg.Connection[Any],
    ctx: ReportContext,
    violation_id: str,
    out: BinaryIO,
    archive_dir: Path | None = None,
) -> list[str]:
    """Write the ZIP to ``out``; return the names of the files in it (manifest last)."""
    v = fetch_violation(conn, violation_id)
    if v is None:
        raise ViolationNotFound(f"violation {violation_id!r} not found")
    start, end = evidence_window(v)
    files: dict[str, bytes] = {}

    files["violation.json"] = _json(
        {
            k: (getattr(v, k).isoformat() if isinstance(getattr(v, k), datetime) else getattr(v, k))
            for k in v.__dataclass_fields__
        }
        | {"duration_h": v.duration_h()}
    )
    limit_doc: dict[str, Any] = {
        "rule_id": v.rule_id,
        "recorded_legal_basis": v.legal_basis,
        "recorded_limit": v.limit,
    }
    source = ctx.registry.find(v.source_id)
    o2set = settings_of(ctx.registry, source) if source and source.kind.value == "stack" else None
    if o2set is not None and v.parameter not in o2set.parameters:
        o2set = None
    if source is not None:
        day = v.started_at.astimezone(ZoneInfo(ctx.timezone)).date()
        limits = resolve_limits(source, ctx.catalogue, day)
        if o2set is not None:
            limits = with_reference(limits, o2set.reference, o2set.parameters)
        for lim in limits:
            if lim.rule_id == v.rule_id:
                limit_doc["limit"] = lim.model_dump(mode="json")
    files["limit.json"] = _json(limit_doc)
    if source is not None and source.facility:
        facility = ctx.registry.facility(source.facility)
        files["facility.json"] = _json(
            facility.model_dump(mode="json")
            | {
                "points": [
                    {"id": p.id, "name": p.name, "kind": p.kind.value}
                    for p in ctx.registry.points_of(facility.id)
                ]
            }
        )

    # The stored columns, less the two the package is already about (source, parameter).
    reading_cols = READING_COLUMNS[2:]
    readings = conn.execute(
        f"SELECT {', '.join(reading_cols)} FROM readings WHERE source_id = %s"
        " AND parameter = %s AND measured_at >= %s AND measured_at < %s ORDER BY measured_at",
        (v.source_id, v.parameter, start, end),
    ).fetchall()
    files["readings.csv"] = _csv(list(reading_cols), readings)
    average_cols = AVERAGE_COLUMNS[2:]
    averages = conn.execute(
        f"SELECT {', '.join(average_cols)} FROM averages WHERE source_id = %s"
        " AND parameter = %s AND window_start >= %s AND window_start < %s"
        " ORDER BY period, window_start",
        (v.source_id, v.parameter, start, end),
    ).fetchall()
    files["averages.csv"] = _csv(list(average_cols), averages)
    if o2set is not None and o2set.reference is not None:
        files["o2_correction.csv"] = _o2_correction(conn, v, start, end, o2set.reference)
    events = fetch_events(conn, v.violation_id)
    files["events.csv"] = _csv(
        ["seq", "event", "at", "value", "ratio", "severity", "payload"],
        [
            (
                e["seq"],
                e["event"],
                e["at"],
                e["value"],
                e["ratio"],
                e["severity"],
                json.dumps(e["payload"], ensure_ascii=False),
            )
            for e in events
        ],
    )
    acks = fetch_acks(conn, [v.violation_id])
    files["acknowledgements.csv"] = _csv(
        ["username", "at", "note"], [(a.username, a.at, a.note) for a in acks]
    )

    index: list[tuple[str, str, str, str]] = []
    at_origin, at_path = reading_cols.index("origin"), reading_cols.index("archive_path")
    for origin, archive_path in sorted(
        {(r[at_origin], r[at_path]) for r in readings}, key=lambda o: (o[0], o[1] or "")
    ):
        try:
            data = archived_original(archive_dir, archive_path, v.source_id)
        except NotIncluded as why:
            index.append((origin, archive_path or "", f"not included: {why}", ""))
            continue
        archived_on, _, file_name = PurePosixPath(archive_path or "").parts
        name = f"originals/archive/{archived_on}/{_safe_name(file_name)}"
        files[name] = data
        index.append((origin, archive_path or "", "archive", name))
    rejected = conn.execute(
        "SELECT rejection_id, reason, origin, original, archive_path FROM rejections"
        " WHERE source_id = %s AND received_at >= %s AND received_at < %s"
        " ORDER BY received_at, rejection_id",
        (v.source_id, start, end),
    ).fetchall()
    for rid, reason, origin, original, archive_path in rejected:
        name = f"originals/rejected/{_safe_name(rid)}_{_safe_name(PurePosixPath(origin).name)}"
        files[name] = bytes(original)
        index.append((origin, archive_path or "", f"rejected: {reason}", name))
    files["originals/index.csv"] = _csv(["origin", "archive_path", "status", "file"], index)

    manifest = {
        "violation_id": v.violation_id,
        "generated_at": ctx.now.isoformat(),
        "window": [start.isoformat(), end.isoformat()],
        "files": [
            {"name": n, "sha256": hashlib.sha256(b).hexdigest(), "bytes": len(b)}
            for n, b in files.items()
        ],
    }
    stamp = ctx.now.astimezone(ZoneInfo(ctx.timezone)).timetuple()[:6]
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for name, data in [*files.items(), (MANIFEST, _json(manifest))]:
            info = zipfile.ZipInfo(name, date_time=stamp)  # not the wall clock: reproducible
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            zf.writestr(info, data)
    return [*files, MANIFEST]
