"""Manual validation in the console (issue 21): an operator invalidates a period of a source's
data (one parameter or all) with a reason, or restores it.

``POST /api/sources/{id}/validations`` checks the request (:func:`check_request`, pure), then in
one database transaction stores the decision (``storage.manual_validations``), writes its audit
entry and produces it to ``readings.raw`` keyed by the source, waiting for the broker's ack
before the commit: a decision is stored only if the worker will see it, and the worker applies
it in order with the source's readings (it then sets ``applied_at``). A broker that does not
acknowledge answers 503 and nothing is stored. The console recomputes nothing itself: averages,
VN_AQI, violations and reports follow from the pipeline.

Times in a request: ISO 8601 with an offset, or without one as local time (Asia/Ho_Chi_Minh,
what the source page's form sends).
"""

# No `from __future__ import annotations`: FastAPI reads these handlers' annotations, which
# name dependencies built inside build_router.

import asyncio
import logging
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

from aiokafka import AIOKafkaProducer
from fastapi import APIRouter, Depends, FastAPI, HTTPException, Request
from psycopg import AsyncConnection
from pydantic import BaseModel, Field

from console import auth
from core.records import ManualAction, ManualReason, ManualValidation
from core.settings import Settings
from core.topics import RAW, bootstrap_servers
from storage import manual_validations as store
from storage import queries as q
from thresholds.averaging import LOCAL_TZ

log = logging.getLogger(__name__)

#: Who may invalidate or restore data (regulators only read).
VALIDATE_ROLES = frozenset({auth.Role.OPERATOR, auth.Role.ADMIN})
#: The longest period one decision may cover: a longer one is several decisions, each reviewed.
MAX_PERIOD = timedelta(days=31)
MAX_NOTE = 2000
#: How long a request waits for the broker's ack before answering 503.
PRODUCE_TIMEOUT_S = 10.0


class ValidationRequest(BaseModel):
    parameter: str | None = Field(
        None, max_length=64, description="A parameter code the source measures; null: all"
    )
    start: datetime = Field(
        description="Inclusive. ISO 8601 with an offset, or local time (Asia/Ho_Chi_Minh)"
        " without one"
    )
    end: datetime = Field(description="Exclusive; same format as start")
    action: ManualAction
    reason: ManualReason
    note: str = Field("", max_length=MAX_NOTE, description="Required when reason is other")


class InvalidRequest(ValueError):
    """A request the console refuses, with the HTTP status and the message to answer."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class Decision:
    """A checked request, times in UTC."""

    source_id: str
    parameter: str | None
    start: datetime
    end: datetime
    action: ManualAction
    reason: ManualReason
    note: str


def as_utc(value: datetime) -> datetime:
    """An aware time as UTC; a naive one is local time (Asia/Ho_Chi_Minh)."""
    if value.tzinfo is None or value.utcoffset() is None:
        value = value.replace(tzinfo=LOCAL_TZ)
    return value.astimezone(UTC)


def _local(value: datetime) -> str:
    return value.astimezone(LOCAL_TZ).strftime("%Y-%m-%d %H:%M %Z")


def check_request(
    req: ValidationRequest,
    source_id: str,
    measured: Sequence[str] | None,
    now: datetime,
    late_horizon_hours: float,
) -> Decision:
    """The decision ``req`` asks for, or InvalidRequest saying what is wrong (pure).

    ``measured``: the source's parameter codes (None: no such source). A period must start no
    earlier than the late horizon before ``now``: older hours are final in the worker (its
    windows keep no more), so it could not take the readings out of their averages."""
    if measured is None:
        raise InvalidRequest(404, f"no source {source_id!r}")
    parameter = req.parameter.strip() if req.parameter is not None else None
    if parameter == "":
        parameter = None  # the form's "all parameters"
    if parameter is not None and parameter not in measured:
        known = ", ".join(measured) or "none registered"
        raise InvalidRequest(
            422, f"source {source_id} does not measure {parameter!r} (it measures: {known})"
        )
    start, end = as_utc(req.start), as_utc(req.end)
    if end <= start:
        raise InvalidRequest(
            422, f"the period must end after it starts: {_local(start)} – {_local(end)}"
        )
    if start > now:
        raise InvalidRequest(
            422, f"the period starts in the future ({_local(start)}; now {_local(now)})"
        )
    if end - start > MAX_PERIOD:
        raise InvalidRequest(
            422,
            f"the period is longer than {MAX_PERIOD.days} days ({(end - start).days} days):"
            " split it into several decisions",
        )
    horizon = timedelta(hours=late_horizon_hours)
    if start < now - horizon:
        raise InvalidRequest(
            422,
            f"the period starts at {_local(start)}, older than the late horizon"
            f" ({late_horizon_hours:g} h before now, {_local(now - horizon)}): its averages are"
            " final; the worker can no longer re-average it, so it cannot be invalidated or"
            " restored here",
        )
    note = req.note.strip()
    if req.reason is ManualReason.OTHER and not note:
        raise InvalidRequest(422, "reason 'other' needs a note saying why")
    return Decision(source_id, parameter, start, end, req.action, req.reason, note)


class ProduceError(RuntimeError):
    """The decision could not be produced to readings.raw (no broker, no ack in time)."""


class RawProducer:
    """The console's producer to ``readings.raw``, created in the app's lifespan.

    A broker that is down when the console starts does not stop the console: the producer is
    (re)connected on the next decision, which answers 503 while the broker stays down. Plain
    Kafka like the gateway's publisher (stations/gateway.py): the project has no Kafka TLS
    setting. No ``kafka_url`` (a console built for tests of other pages): every send fails."""

    def __init__(self, settings: Settings, timeout_s: float = PRODUCE_TIMEOUT_S) -> None:
        self.topic = settings.topic(RAW.name)
        self.timeout_s = timeout_s
        self._config: dict[str, Any] | None = (
            {
                "bootstrap_servers": bootstrap_servers(settings),
                "client_id": f"{settings.app_id}-console",
                "acks": "all",
                "enable_idempotence": False,  # Tansu does not implement idempotent producers
                "request_timeout_ms": int(timeout_s * 1000),
            }
            if settings.kafka_url
            else None
        )
        self._producer: AIOKafkaProducer | None = None
        self._lock = asyncio.Lock()

    async def start(self) -> None:
        """Connect now if the broker answers; a failure is logged and retried on first use."""
        try:
            await self._connected()
        except ProduceError as exc:
            log.warning("console: %s; manual validation answers 503 until it is back", exc)

    async def stop(self) -> None:
        async with self._lock:
            if self._producer is not None:
                await self._producer.stop()
                self._producer = None

    async def _connected(self) -> AIOKafkaProducer:
        async with self._lock:
            if self._producer is not None:
                return self._producer
            if self._config is None:
                raise ProduceError("the console has no Kafka bootstrap (QUANTRAC_KAFKA_URL)")
            producer = AIOKafkaProducer(**self._config)
            try:
                async with asyncio.timeout(self.timeout_s):
                    await producer.start()
            except Exception as exc:  # KafkaError subclasses, OSError, TimeoutError
                await producer.stop()
                raise ProduceError(
                    f"broker {self._config['bootstrap_servers']} unreachable:"
                    f" {exc.__class__.__name__}: {exc}"
                ) from exc
            self._producer = producer
            return producer

    async def send(self, validation: ManualValidation) -> None:
        """Produce and wait for the broker's ack; ProduceError if it does not come."""
        producer = await self._connected()
        try:
            async with asyncio.timeout(self.timeout_s):
                await producer.send_and_wait(
                    self.topic, validation.dumps(), key=validation.source_id.encode()
                )
        except Exception as exc:  # KafkaError subclasses and TimeoutError
            raise ProduceError(
                f"{self.topic}: no ack for decision {validation.id}:"
                f" {exc.__class__.__name__}: {exc}"
            ) from exc


@asynccontextmanager
async def producing(app: FastAPI, settings: Settings) -> AsyncIterator[None]:
    """The app's lifespan part: ``app.state.raw_producer`` while the app runs."""
    producer = RawProducer(settings)
    await producer.start()
    app.state.raw_producer = producer
    try:
        yield
    finally:
        await producer.stop()


def _now() -> datetime:
    return datetime.now(UTC)


async def page_context(
    conn: AsyncConnection[Any], session: auth.Session, source_id: str, settings: Settings
) -> dict[str, Any]:
    """What the source page's "Manual validation" section shows (console/templates/
    _manual_validation.html): the decisions, which invalidations a restore may still undo,
    and whether this user may decide."""
    rows = await store.list_for_source(conn, source_id)
    restored = {
        (r.parameter, r.period_start, r.period_end, r.at)
        for r in rows
        if r.action == ManualAction.RESTORE
    }
    oldest = _now() - timedelta(hours=settings.late_horizon_hours)

    def restore_state(r: store.ManualValidationRow) -> str:
        """``restore``: an invalidation no later restore of the same period undid, still
        re-averageable; ``final``: one beyond the late horizon; "": nothing to offer."""
        if r.action != ManualAction.INVALIDATE or any(
            p == r.parameter and s == r.period_start and e == r.period_end and at > r.at
            for p, s, e, at in restored
        ):
            return ""
        return "restore" if r.period_start >= oldest else "final"

    return {
        "validations": rows,
        "restore_state": restore_state,
        "can_validate": session.user.role in VALIDATE_ROLES,
        "mv_reasons": [r.value for r in ManualReason],
        "late_horizon_hours": f"{settings.late_horizon_hours:g}",
    }


def build_router(
    api_user: Callable[..., Any],
    get_conn: Callable[..., AsyncIterator[AsyncConnection[Any]]],
    settings: Settings,
) -> APIRouter:
    """``api_user`` and ``get_conn`` are the console's own (console/app.py): the same session,
    CSRF check and pool."""
    router = APIRouter(tags=["manual validation"])
    Conn = Annotated[AsyncConnection[Any], Depends(get_conn)]

    async def validator(session: Annotated[auth.Session, Depends(api_user)]) -> auth.Session:
        if session.user.role not in VALIDATE_ROLES:
            allowed = ", ".join(sorted(r.value for r in VALIDATE_ROLES))
            raise HTTPException(403, f"role {session.user.role} may not validate data ({allowed})")
        return session

    Validator = Annotated[auth.Session, Depends(validator)]
    Reader = Annotated[auth.Session, Depends(api_user)]

    @router.post(
        "/api/sources/{source_id}/validations",
        response_model=store.ManualValidationRow,
        status_code=202,
        responses={401: {}, 403: {}, 404: {}, 422: {}, 503: {}},
    )
    async def decide(
        request: Request, source_id: str, body: ValidationRequest, conn: Conn, session: Validator
    ) -> store.ManualValidationRow:
        """Invalidate or restore a period of a source's data (operator, admin); audited.

        202: stored and on ``readings.raw``, ``status`` pending until the worker applied it.
        503: the broker did not acknowledge; nothing stored."""
        now = _now()
        source = await q.get_source(conn, source_id)
        try:
            d = check_request(
                body,
                source_id,
                source.parameters if source else None,
                now,
                settings.late_horizon_hours,
            )
        except InvalidRequest as exc:
            raise HTTPException(exc.status, str(exc)) from None
        producer: RawProducer = request.app.state.raw_producer
        user = session.user.username
        try:
            async with conn.transaction():
                row = await store.insert(
                    conn,
                    source_id=d.source_id,
                    parameter=d.parameter,
                    start=d.start,
                    end=d.end,
                    action=d.action.value,
                    reason=d.reason.value,
                    note=d.note,
                    by_user=user,
                    at=now,
                )
                await auth.audit(
                    conn,
                    user,
                    "manual_validation",
                    f"source:{d.source_id}",
                    {
                        "id": row.id,
                        "parameter": d.parameter,
                        "start": d.start.isoformat(),
                        "end": d.end.isoformat(),
                        "action": d.action.value,
                        "reason": d.reason.value,
                        "note": d.note,
                    },
                )
                # last: the commit follows the broker's ack, and a failure rolls both back
                await producer.send(row.record())
        except ProduceError as exc:
            log.error("manual validation of %s by %s not stored: %s", source_id, user, exc)
            raise HTTPException(
                503,
                f"the message broker did not accept the decision ({exc}); nothing was stored,"
                " try again when it is back",
            ) from None
        return row

    @router.get(
        "/api/sources/{source_id}/validations",
        response_model=list[store.ManualValidationRow],
        responses={401: {}, 404: {}},
    )
    async def decisions(
        source_id: str, conn: Conn, session: Reader, limit: int = 500
    ) -> list[store.ManualValidationRow]:
        """The source's manual validation decisions, newest first; ``status`` is pending until
        the worker applied one, then applied (``applied_at``)."""
        if await q.get_source(conn, source_id) is None:
            raise HTTPException(404, f"no source {source_id!r}")
        return await store.list_for_source(conn, source_id, min(max(limit, 1), 1000))

    return router
