"""The notification delivery log in the console (operators and admins): /notifications and
/api/notifications, read from ``notification_deliveries`` (migration 0012, notify/store.py).

Built with the console's own render function and dependencies (passed in, so this module does
not import console.app). Recipients are stored without credentials; payloads are not shown here
(the violation page has the facts), so the page never carries anything secret.
"""

# No ``from __future__ import annotations``: FastAPI must see the route parameters' Annotated
# dependencies, which are local to build_router, as objects rather than strings.
from collections.abc import Callable
from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response
from psycopg.rows import class_row
from pydantic import BaseModel

from console import auth

Status = Literal["pending", "sent", "failed", "grouped", "cancelled"]
#: page wording, (Vietnamese, English); the template picks by the page's language
LABELS: dict[str, tuple[str, str]] = {
    "title": ("Thông báo đã gửi", "Notification deliveries"),
    "nav": ("Thông báo", "Notifications"),
    "created": ("Tạo lúc", "Queued"),
    "kind": ("Loại", "Kind"),
    "route": ("Tuyến", "Route"),
    "channel": ("Kênh", "Channel"),
    "recipient": ("Người nhận", "Recipient"),
    "violation": ("Vi phạm", "Violation"),
    "subject": ("Tiêu đề", "Subject"),
    "status": ("Trạng thái", "Status"),
    "attempts": ("Lần gửi", "Attempts"),
    "sent_at": ("Gửi lúc", "Sent"),
    "last_error": ("Lỗi gần nhất", "Last error"),
    "all": ("Tất cả", "All"),
    "filter": ("Lọc", "Filter"),
    "none": ("Chưa có thông báo nào.", "No notifications yet."),
    "next": ("gửi lại lúc", "next try"),
}


class DeliveryRow(BaseModel):
    id: int
    created_at: datetime
    kind: str
    route: str
    channel: str
    channel_type: str
    recipient: str
    violation_id: str
    source_id: str
    subject: str
    status: str
    attempts: int
    next_attempt_at: datetime
    sent_at: datetime | None
    last_error: str | None
    grouped_into: int | None


_SELECT = (
    "SELECT id, created_at, kind, route, channel, channel_type, recipient, violation_id,"
    " source_id, subject, status, attempts, next_attempt_at, sent_at, last_error, grouped_into"
    " FROM notification_deliveries"
)


async def deliveries(
    conn: Any, *, status: str | None = None, violation_id: str | None = None, limit: int = 200
) -> list[DeliveryRow]:
    where, args = [], []
    if status:
        where.append("status = %s")
        args.append(status)
    if violation_id:
        where.append("violation_id = %s")
        args.append(violation_id)
    sql = _SELECT + (" WHERE " + " AND ".join(where) if where else "")
    sql += " ORDER BY created_at DESC, id DESC LIMIT %s"
    async with conn.cursor(row_factory=class_row(DeliveryRow)) as cur:
        await cur.execute(sql, [*args, limit])
        rows: list[DeliveryRow] = await cur.fetchall()
    return rows


def build_router(
    render: Callable[..., HTMLResponse],
    page_user: Callable[..., Any],
    api_user: Callable[..., Any],
    get_conn: Callable[..., Any],
) -> APIRouter:
    """The delivery log's page and API, for the console's ``create_app``."""
    router = APIRouter()
    PageUser = Annotated[auth.Session, Depends(page_user)]
    ApiUser = Annotated[auth.Session, Depends(api_user)]
    Conn = Annotated[Any, Depends(get_conn)]

    @router.get(
        "/api/notifications",
        response_model=list[DeliveryRow],
        tags=["notifications"],
        responses={401: {}, 403: {}},
    )
    async def api_notifications(
        session: ApiUser,
        conn: Conn,
        status: Status | None = None,
        violation_id: Annotated[str | None, Query(max_length=500)] = None,
        limit: Annotated[int, Query(ge=1, le=1000)] = 200,
    ) -> Response:
        """The delivery log, newest first (operators and admins)."""
        if session.user.role not in auth.ACK_ROLES:
            return JSONResponse({"detail": "forbidden"}, status_code=403)
        rows = await deliveries(conn, status=status, violation_id=violation_id, limit=limit)
        return JSONResponse([r.model_dump(mode="json") for r in rows])

    @router.get("/notifications", response_class=HTMLResponse, include_in_schema=False)
    async def notifications_page(
        request: Request,
        session: PageUser,
        conn: Conn,
        status: Status | None = None,
        violation_id: Annotated[str | None, Query(max_length=500)] = None,
    ) -> HTMLResponse:
        if session.user.role not in auth.ACK_ROLES:
            return render(request, "error.html", session, 403, message="forbidden")
        rows = await deliveries(conn, status=status, violation_id=violation_id, limit=500)
        return render(
            request,
            "notifications.html",
            session,
            rows=rows,
            labels=LABELS,
            statuses=["pending", "sent", "failed", "grouped", "cancelled"],
            status=status or "",
            violation_id=violation_id or "",
        )

    return router
