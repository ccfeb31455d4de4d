"""The scheduled reports in the console: a page listing them, a JSON list, downloads.

Regulators and admins only (the reports go to regulators; operators watch alerts). Every
download is audited (who, which report, its checksum). The files are the ones the scheduler
stored (reports/scheduler.py), served byte for byte.
"""

# No `from __future__ import annotations`: FastAPI reads these handlers' annotations, which
# name dependencies built inside build_router.

from collections.abc import AsyncIterator, Callable
from datetime import datetime
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, Depends, HTTPException, Request, Response
from fastapi.responses import HTMLResponse
from psycopg import AsyncConnection
from psycopg.rows import dict_row
from pydantic import BaseModel

from console import auth
from console.api_models import file_answer
from reports.service import MEDIA_TYPES

SEE_ROLES = frozenset({auth.Role.REGULATOR, auth.Role.ADMIN})

LABELS = {
    "vi": {
        "title": "Báo cáo định kỳ",
        "intro": "Báo cáo tháng do hệ thống tự lập ngày 1 hằng tháng và gửi thư cho cơ quan quản"
        " lý; mỗi lượt tải về đều được ghi nhật ký.",
        "period": "Kỳ",
        "kind": "Loại",
        "subject": "Nguồn / trạm",
        "facility": "Cơ sở",
        "status": "Trạng thái",
        "made": "Lập lúc",
        "mailed": "Đã gửi thư",
        "file": "Tệp",
        "none": "Chưa có báo cáo định kỳ nào.",
        "compliance": "Tuân thủ",
        "air-quality": "Chất lượng môi trường",
    },
    "en": {
        "title": "Scheduled reports",
        "intro": "Monthly reports made on the 1st of each month and e-mailed to the regulators;"
        " every download is audited.",
        "period": "Period",
        "kind": "Kind",
        "subject": "Source / station",
        "facility": "Facility",
        "status": "Status",
        "made": "Made at",
        "mailed": "E-mailed",
        "file": "File",
        "none": "No scheduled report yet.",
        "compliance": "Compliance",
        "air-quality": "Environmental quality",
    },
}


class ScheduledReport(BaseModel):
    id: int
    kind: str
    subject: str
    facility: str | None
    period: str
    status: str
    format: str
    filename: str | None
    size_bytes: int | None
    sha256: str | None
    error: str | None
    attempts: int
    created_at: datetime
    updated_at: datetime
    mailed_at: datetime | None
    mailed_to: list[str] | None
    mail_error: str | None


COLUMNS = ", ".join(ScheduledReport.model_fields)


async def list_reports(
    conn: AsyncConnection[Any], period: str | None = None, limit: int = 500
) -> list[ScheduledReport]:
    where, params = ("WHERE period = %s", [period]) if period else ("", [])
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(
            f"SELECT {COLUMNS} FROM scheduled_reports {where}"
            " ORDER BY period DESC, kind, facility NULLS LAST, subject LIMIT %s",
            [*params, limit],
        )
        return [ScheduledReport(**r) for r in await cur.fetchall()]


Render = Callable[..., HTMLResponse]


def build_router(
    render: Render,
    page_user: Callable[..., Any],
    api_user: Callable[..., Any],
    get_conn: Callable[..., AsyncIterator[AsyncConnection[Any]]],
) -> APIRouter:
    """``render``, ``page_user``, ``api_user`` and ``get_conn`` are the console's own
    (console/app.py), so pages look and log in the same way."""
    router = APIRouter(tags=["scheduled reports"])
    Conn = Annotated[AsyncConnection[Any], Depends(get_conn)]

    async def allowed(session: Annotated[auth.Session, Depends(api_user)]) -> auth.Session:
        if session.user.role not in SEE_ROLES:
            raise HTTPException(403, f"role {session.user.role} may not see scheduled reports")
        return session

    Viewer = Annotated[auth.Session, Depends(allowed)]
    PageUser = Annotated[auth.Session, Depends(page_user)]

    @router.get("/api/scheduled-reports", response_model=list[ScheduledReport])
    async def api_list(
        conn: Conn, session: Viewer, period: str | None = None
    ) -> list[ScheduledReport]:
        return await list_reports(conn, period)

    @router.get(
        "/api/scheduled-reports/{report_id}/download",
        responses={**file_answer(*MEDIA_TYPES.values()), 404: {}, 409: {}},
    )
    async def download(report_id: int, conn: Conn, session: Viewer) -> Response:
        row = await (
            await conn.execute(
                "SELECT status, filename, media_type, content, sha256, kind, subject, period"
                " FROM scheduled_reports WHERE id = %s",
                (report_id,),
            )
        ).fetchone()
        if row is None:
            raise HTTPException(404, f"no scheduled report {report_id}")
        status, filename, media_type, content, sha256, kind, subject, period = row
        if status != "done":
            raise HTTPException(409, f"scheduled report {report_id} is {status}, no file")
        detail = {"kind": kind, "subject": subject, "period": period, "sha256": sha256}
        await auth.audit(
            conn,
            session.user.username,
            "scheduled_report_downloaded",
            f"scheduled_report:{report_id}",
            detail,
        )
        return Response(
            bytes(content),
            media_type=media_type,
            headers={
                "Content-Disposition": f"attachment; filename*=UTF-8''{quote(filename)}",
                "X-Content-SHA256": sha256,
            },
        )

    @router.get("/scheduled-reports", response_class=HTMLResponse, include_in_schema=False)
    async def page(request: Request, conn: Conn, session: PageUser) -> HTMLResponse:
        if session.user.role not in SEE_ROLES:
            return render(request, "error.html", session, 403, message="forbidden")
        rows = await list_reports(conn)
        return render(request, "scheduled.html", session, rows=rows, labels=LABELS)

    return router
