"""Evidence package per violation: a ZIP with everything an enforcement file needs.

Contents:
- ``violation.json``: the violation as recorded (times UTC, ISO 8601);
- ``limit.json``: the limit applied, with its legal citation (resolved from the registry and the
  catalogue; the violation's own recorded legal basis is kept beside it);
- ``readings.csv``: the parameter's readings around the episode with device status and QC flag;
- ``averages.csv``: the parameter's averages (all periods) around the episode;
- ``events.csv`` and ``acknowledgements.csv``: the violation's history;
- ``originals/``: the original station files — archived files found under the archive directory by
  the readings' origin names, and rejected inputs (exact bytes) of the source in the window;
  ``originals/index.csv`` lists every origin and whether its bytes are included;
- ``manifest.json``: SHA-256 and size of every other file.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import zipfile
from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta
from pathlib import Path, PurePosixPath
from typing import Any, BinaryIO
from zoneinfo import ZoneInfo

import psycopg

from reports.common import ReportContext, ViolationRow, fetch_acks, fetch_events, fetch_violation
from reports.render_csv import BOM
from storage.writer import AVERAGE_COLUMNS, READING_COLUMNS
from thresholds.limits import resolve_limits

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


def _csv(header: Sequence[str], rows: Iterable[Sequence[Any]]) -> bytes:
    buf = io.StringIO()
    buf.write(BOM)
    w = csv.writer(buf)
    w.writerow(header)
    for row in rows:
        w.writerow(
            ["" if v is None else (v.isoformat() if isinstance(v, datetime) else v) for v in row]
        )
    return buf.getvalue().encode("utf-8")


def _json(data: Any) -> bytes:
    return json.dumps(data, ensure_ascii=False, indent=2, default=str).encode("utf-8")


def _safe_name(name: str) -> str:
    return "".join(ch if ch.isalnum() or ch in "._-" else "_" for ch in name)[:120] or "file"


def find_archived(archive_dir: Path | None, origin: str) -> Path | None:
    """The archived copy of a station file, looked up by its base name (None if not archived)."""
    if archive_dir is None or not archive_dir.is_dir() or not origin:
        return None
    base = PurePosixPath(origin).name
    direct = archive_dir / origin.lstrip("/")
    if direct.is_file():
        return direct
    return next((p for p in archive_dir.rglob(base) if p.is_file()), None)


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
    if source is not None:
        day = v.started_at.astimezone(ZoneInfo(ctx.timezone)).date()
        for lim in resolve_limits(source, ctx.catalogue, day):
            if lim.rule_id == v.rule_id:
                limit_doc["limit"] = lim.model_dump(mode="json")
    files["limit.json"] = _json(limit_doc)

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

    index: list[tuple[str, str, str]] = []
    for origin in sorted({r[9] for r in readings}):
        found = find_archived(archive_dir, origin)
        if found is not None:
            name = f"originals/archive/{_safe_name(found.name)}"
            files[name] = found.read_bytes()
            index.append((origin, "archive", name))
        else:
            index.append((origin, "not archived", ""))
    rejected = conn.execute(
        "SELECT rejection_id, reason, origin, original FROM rejections WHERE source_id = %s"
        " AND received_at >= %s AND received_at < %s ORDER BY received_at, rejection_id",
        (v.source_id, start, end),
    ).fetchall()
    for rid, reason, origin, original in rejected:
        name = f"originals/rejected/{_safe_name(rid)}_{_safe_name(PurePosixPath(origin).name)}"
        files[name] = bytes(original)
        index.append((origin, f"rejected: {reason}", name))
    files["originals/index.csv"] = _csv(["origin", "status", "file"], index)

    manifest = {
        "violation_id": v.violation_id,
        "generated_at": ctx.now.isoformat(),
        "window": [start.isoformat(), end.isoformat()],
        "files": [
            {"name": n, "sha256": hashlib.sha256(b).hexdigest(), "bytes": len(b)}
            for n, b in files.items()
        ],
    }
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for name, data in files.items():
            zf.writestr(name, data)
        zf.writestr(MANIFEST, _json(manifest))
    return [*files, MANIFEST]
