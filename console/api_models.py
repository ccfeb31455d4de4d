"""Response models of the console's JSON routes that answer plain dicts, so that every route
has a schema in the OpenAPI document (issue 20; tests/integration/test_open_api.py walks it)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from storage import queries as q

#: A redirect answer (form login, logout): no body, a Location.
REDIRECT: dict[int | str, dict[str, Any]] = {
    303: {
        "description": "Redirect (no body)",
        "headers": {"Location": {"schema": {"type": "string"}, "description": "where to go"}},
    }
}
#: Server-Sent Events (``event: violation`` with a violation's JSON, ``event: session_ended``).
EVENT_STREAM: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "text/event-stream of violation events",
        "content": {"text/event-stream": {"schema": {"type": "string"}}},
    }
}


def file_answer(*media_types: str) -> dict[int | str, dict[str, Any]]:
    """The 200 answer of a route that sends a file: binary content of each media type."""
    binary = {"schema": {"type": "string", "format": "binary"}}
    return {
        200: {
            "description": "The file (Content-Disposition names it)",
            "content": {t.split(";")[0]: binary for t in media_types},
        }
    }


class Me(BaseModel):
    username: str
    role: str
    csrf_token: str


class LatestWithLimit(BaseModel):
    source_id: str
    parameter: str
    measured_at: datetime
    value: float
    unit: str
    flag: str
    limit: float | None = None


class SourceDetail(BaseModel):
    source: q.SourceRow
    latest: list[LatestWithLimit]
    open_violations: list[q.ViolationRow]


class SmoothedPoint(BaseModel):
    at: datetime
    value: float | None
    smoothed: float | None


class UserRow(BaseModel):
    username: str
    role: str
    full_name: str
    disabled: bool
    created_at: datetime
    created_by: str


class UserCreated(BaseModel):
    username: str
    role: str


class UserState(BaseModel):
    username: str
    disabled: bool


class PasswordDone(BaseModel):
    username: str
    password: str  # "reset" or "changed", never a password


class ChartData(BaseModel):
    """What a console chart draws from (console/chart_data.py: chart_payload)."""

    model_config = ConfigDict(extra="allow")

    source_id: str
    parameter: str
    unit: str
    window: str
    start: float = Field(description="Unix seconds")
    end: float = Field(description="Unix seconds")
    timezone: str
    series: list[dict[str, Any]] = Field(description="measured, smoothed, average, flagged")
    limits: list[dict[str, Any]]
    min: float | None
    max: float | None
