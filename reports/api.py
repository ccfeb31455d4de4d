"""``GET /api/reports/{kind}?source=&period=&format=&lang=`` and
``GET /api/reports/evidence/{violation_id}.zip``: the same reports over HTTP.

Sync handlers (FastAPI runs them in its thread pool): the report is rendered into a temporary
file, then streamed back and the file removed, so memory stays flat for big exports too. The
console includes the router and passes its own auth dependencies (e.g. a role check).
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import quote

import psycopg
from fastapi import APIRouter, HTTPException, Query
from fastapi.params import Depends
from fastapi.responses import FileResponse
from starlette.background import BackgroundTask

from core.settings import Settings
from reports.common import ReportContext
from reports.evidence import ViolationNotFound
from reports.i18n import Lang
from reports.model import ReportKind
from reports.periods import PeriodError
from reports.service import (
    MEDIA_TYPES,
    Format,
    ReportRequest,
    ReportRequestError,
    connect,
    write_report,
)


def _file_response(*formats: Format) -> dict[int | str, dict[str, Any]]:
    """The OpenAPI answer of a file route: binary content of each format's media type."""
    binary = {"schema": {"type": "string", "format": "binary"}}
    return {
        200: {
            "description": "The report file (Content-Disposition names it)",
            "content": {MEDIA_TYPES[f].split(";")[0]: binary for f in formats},
        },
        400: {"description": "bad request (kind, period, source, format)"},
        404: {"description": "no such source or violation"},
    }


def build_router(
    settings: Settings,
    *,
    dependencies: Sequence[Depends] = (),
    connector: Callable[[str], psycopg.Connection[Any]] = connect,
) -> APIRouter:
    router = APIRouter(prefix="/api/reports", tags=["reports"], dependencies=list(dependencies))

    def serve(req: ReportRequest) -> FileResponse:
        if not settings.database_url:
            raise HTTPException(503, "no database configured")
        fd, name = tempfile.mkstemp(prefix="quantrac-report-", suffix=f".{req.fmt.value}")
        path = Path(name)
        try:
            with os.fdopen(fd, "wb") as out, connector(settings.database_url) as conn:
                ctx = ReportContext.from_settings(settings, req.lang)
                write_report(conn, ctx, req, out, settings.data_dir / "archive")
        except (ReportRequestError, PeriodError) as exc:
            path.unlink(missing_ok=True)
            raise HTTPException(400, str(exc)) from exc
        except (ViolationNotFound, KeyError) as exc:
            path.unlink(missing_ok=True)
            raise HTTPException(404, str(exc).strip("'\"")) from exc
        except BaseException:
            path.unlink(missing_ok=True)
            raise
        filename = req.filename()
        return FileResponse(
            path,
            media_type=MEDIA_TYPES[req.fmt],
            headers={"Content-Disposition": f"attachment; filename*=UTF-8''{quote(filename)}"},
            background=BackgroundTask(path.unlink, missing_ok=True),
        )

    @router.get(
        "/evidence/{violation_id}.zip",
        response_class=FileResponse,
        responses=_file_response(Format.ZIP),
    )
    def evidence(violation_id: str) -> FileResponse:
        return serve(ReportRequest(ReportKind.EVIDENCE, Format.ZIP, violation=violation_id))

    @router.get("/{kind}", response_class=FileResponse, responses=_file_response(*Format))
    def report(
        kind: ReportKind,
        period: str | None = None,
        source: Annotated[list[str] | None, Query()] = None,
        format: Format = Format.CSV,
        lang: Lang = Lang.VI,
        violation: str | None = None,
    ) -> FileResponse:
        sources = tuple(i.strip() for s in source or [] for i in s.split(",") if i.strip())
        fmt = Format.ZIP if kind is ReportKind.EVIDENCE else format
        return serve(ReportRequest(kind, fmt, lang, period, sources, violation))

    return router
