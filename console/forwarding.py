"""Forwarding to downstream receivers in the console (operators and admins): /forwarding and
/api/forwarding, read from the delivery ledger (migration 0011, storage/forward_ledger.py).

Each destination the forwarder has run for, with its backlog (files waiting, the oldest one's
age), files set aside, deliveries in the last 24 h and the last error; below, the files that have
failed at least once. The ledger holds no credentials, so nothing secret reaches the page.
Built with the console's own render function and dependencies (passed in, so this module does
not import console.app).
"""

# No ``from __future__ import annotations``: FastAPI must see the route parameters' Annotated
# dependencies, which are local to build_router, as objects rather than strings.
from collections.abc import Callable
from datetime import UTC, date, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response
from pydantic import BaseModel

from console import auth
from storage import forward_ledger as ledger

#: page wording, (Vietnamese, English); the template picks by the page's language
LABELS: dict[str, tuple[str, str]] = {
    "title": ("Chuyển tiếp dữ liệu", "Data forwarding"),
    "destination": ("Nơi nhận", "Destination"),
    "queued": ("Đang chờ", "Waiting"),
    "oldest": ("Tệp chờ lâu nhất", "Oldest waiting"),
    "failed": ("Bị từ chối, tạm gác", "Refused, set aside"),
    "delivered_24h": ("Đã gửi (24 giờ)", "Delivered (24 h)"),
    "last_delivered": ("Gửi gần nhất", "Last delivered"),
    "last_error": ("Lỗi gần nhất", "Last error"),
    "scanned_day": ("Đã quét đến ngày", "Archive scanned to"),
    "problems": ("Tệp gửi lỗi", "Files with errors"),
    "file": ("Tệp", "File"),
    "state": ("Trạng thái", "State"),
    "attempts": ("Lần gửi", "Attempts"),
    "next_attempt": ("Thử lại lúc", "Next attempt"),
    "none": (
        "Chưa có nơi nhận nào (quantrac forward chưa chạy).",
        "No destination yet (quantrac forward has not run).",
    ),
    "retry_hint": (
        "Tệp bị gác lại được gửi lại bằng lệnh: quantrac forward retry <nơi nhận>",
        "Files set aside are sent again with: quantrac forward retry <destination>",
    ),
}


class DestinationRow(BaseModel):
    destination: str
    queued: int
    failed: int
    oldest_queued_at: datetime | None
    oldest_age_s: float | None
    delivered_24h: int
    last_delivered_at: datetime | None
    last_error: str | None
    last_error_at: datetime | None
    last_error_path: str | None
    scanned_day: date | None


class ProblemRow(BaseModel):
    destination: str
    archive_path: str
    state: str
    attempts: int
    last_error: str | None
    last_attempt_at: datetime | None
    next_attempt_at: datetime


class ForwardingView(BaseModel):
    destinations: list[DestinationRow]
    problems: list[ProblemRow]


async def forwarding_view(conn: Any, now: datetime) -> ForwardingView:
    states = await ledger.states(conn, now)
    problems = await ledger.problems(conn, limit=200)
    return ForwardingView(
        destinations=[
            DestinationRow(
                **vars(s),
                oldest_age_s=(now - s.oldest_queued_at).total_seconds()
                if s.oldest_queued_at
                else None,
            )
            for s in states
        ],
        problems=[ProblemRow(**vars(p)) for p in problems],
    )


def build_router(
    render: Callable[..., HTMLResponse],
    page_user: Callable[..., Any],
    api_user: Callable[..., Any],
    get_conn: Callable[..., Any],
) -> APIRouter:
    """The forwarding page and API, for the console's ``create_app``."""
    router = APIRouter()
    PageUser = Annotated[auth.Session, Depends(page_user)]
    ApiUser = Annotated[auth.Session, Depends(api_user)]
    Conn = Annotated[Any, Depends(get_conn)]

    @router.get(
        "/api/forwarding",
        response_model=ForwardingView,
        tags=["forwarding"],
        responses={401: {}, 403: {}},
    )
    async def api_forwarding(session: ApiUser, conn: Conn) -> Response:
        """Each destination's backlog and last error, and the files that failed (operators
        and admins)."""
        if session.user.role not in auth.ACK_ROLES:
            return JSONResponse({"detail": "forbidden"}, status_code=403)
        view = await forwarding_view(conn, datetime.now(UTC))
        return JSONResponse(view.model_dump(mode="json"))

    @router.get("/forwarding", response_class=HTMLResponse, include_in_schema=False)
    async def forwarding_page(request: Request, session: PageUser, conn: Conn) -> HTMLResponse:
        if session.user.role not in auth.ACK_ROLES:
            return render(request, "error.html", session, 403, message="forbidden")
        view = await forwarding_view(conn, datetime.now(UTC))
        return render(request, "forwarding.html", session, view=view, labels=LABELS)

    return router
