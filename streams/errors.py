"""One processing-error policy for every stage: a record that cannot be processed or stored goes
to the dead letter, is counted, and the stream goes on.

Before, one bad record stalled its partition: an agent that raised was restarted, its batch
delivered again, and it raised again, forever, with the good records of that batch. Now:

- A record whose bytes are not its topic's record (missing fields, a field of the wrong type,
  not JSON) arrives as :class:`Undecodable` (:class:`RecordSchema` decodes every typed topic)
  and is dead-lettered as ``json_schema``.
- A record whose processing raises (a pure step's ValueError, KeyError, …) is dead-lettered as
  ``processing_error`` (:meth:`DeadLetters.guard`); what the record had completed before the
  error stands, a state it had only begun to change in place is reloaded (``Batch.abandon``).
- Rows PostgreSQL refuses (:func:`storage.writer.is_data_error`: classes 22, 23, 54, or a value
  psycopg cannot send) are written again one by one (:func:`write_rows`), so the good ones are
  stored; each refused one is dead-lettered as ``storage_error``. Connection failures are not
  the rows' fault: the writer keeps retrying them, as before, and nothing is lost.

A dead letter is a :class:`Rejection` on ``readings.rejected`` (stored in ``rejections``) with
the message's exact bytes, ``origin`` = ``topic:partition:offset`` (and ``line`` = the item's
1-based index when one item of a message failed), the stage and the error in ``message``; it is
sent and confirmed before the offset is committed, like every output (streams/batch.py). Each
is counted in ``quantrac_processing_errors_total{stage, error}`` and logged with its coordinates.
"""

from __future__ import annotations

import base64
import json
import logging
import typing
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from types import TracebackType, UnionType
from typing import Any

import faust
from faust.exceptions import ValueDecodeError

from core.errors import RejectReason
from core.records import Channel, Rejection, flat_from_data
from storage.writer import Row, is_data_error

log = logging.getLogger(__name__)

MAX_ERROR_CHARS = 2000  # of an exception's text in a dead letter's message


@dataclass(frozen=True)
class Undecodable:
    """The value of an event whose bytes are not its topic's record; ``error`` says why."""

    error: str


def _check_for(tp: Any) -> Callable[[Any], bool]:
    """Is a decoded value of field type ``tp`` really one (Faust checks no types)?"""
    args = typing.get_args(tp)
    if typing.get_origin(tp) in (typing.Union, UnionType):
        checks = [_check_for(a) for a in args]
        return lambda v: any(c(v) for c in checks)
    if tp is type(None):
        return lambda v: v is None
    if tp is bool:
        return lambda v: isinstance(v, bool)
    if tp is int:
        return lambda v: isinstance(v, int) and not isinstance(v, bool)
    if tp is float:  # JSON has one number type: 12 is a float field's 12.0
        return lambda v: isinstance(v, int | float) and not isinstance(v, bool)
    if tp is str:
        return lambda v: isinstance(v, str)
    if tp is datetime:
        return lambda v: isinstance(v, datetime) and v.utcoffset() is not None
    origin = typing.get_origin(tp) or tp
    if isinstance(origin, type):
        return lambda v: isinstance(v, origin)
    return lambda v: True


def _shape_checker(model: type[faust.Record]) -> Callable[[Any], str | None]:
    hints = typing.get_type_hints(model)
    names = list(model._options.fieldpos.values())
    checks = [(name, _check_for(hints[name])) for name in names]

    def problem(value: Any) -> str | None:
        for name, ok in checks:
            v = getattr(value, name, None)
            if not ok(v):
                return f"{name} must be {hints[name]}, got {v!r:.200}"
        return None

    return problem


class RecordSchema(faust.Schema):
    """Decodes a typed topic's values without ever raising: a value that is not the record
    (Faust would log it, ack it and throw into the agent) arrives as :class:`Undecodable`, in
    order, so the agent dead-letters it and goes on."""

    def __init__(self, value_type: type[faust.Record]) -> None:
        super().__init__(value_type=value_type)
        self._problem = _shape_checker(value_type)
        self._name = value_type.__name__
        self._namespace = value_type._options.namespace
        self._from_data = flat_from_data(value_type)

    def loads_value(self, app: Any, message: Any, **kwargs: Any) -> Any:
        try:
            value = self._fast(message.value)
            if value is None:  # not this record's namespace, or not JSON: as Faust decides
                value = super().loads_value(app, message, **kwargs)
        except ValueDecodeError as exc:
            return Undecodable(f"not a {self._name}: {exc}")
        except (TypeError, ValueError) as exc:
            return Undecodable(f"not a {self._name}: {exc}")
        problem = self._problem(value)
        return Undecodable(f"not a {self._name}: {problem}") if problem else value

    def _fast(self, payload: Any) -> Any:
        """The record by ``flat_from_data`` (Faust's constructor cost ~8 µs a record), or None
        to leave the payload to Faust."""
        if not isinstance(payload, bytes | str):
            return None
        try:
            data = json.loads(payload)
        except ValueError:
            return None
        if not isinstance(data, dict):
            return None
        meta = data.get("__faust")
        if meta is not None and not (isinstance(meta, dict) and meta.get("ns") == self._namespace):
            return None
        return self._from_data(data)


def coordinates(event: Any) -> str:
    m = event.message
    return f"{m.topic}:{m.partition}:{m.offset}"


def _error_text(error: BaseException | str) -> str:
    text = error if isinstance(error, str) else f"{type(error).__name__}: {error}"
    return text[:MAX_ERROR_CHARS]


async def write_rows(
    write: Callable[[Sequence[Row]], Awaitable[Any]], rows: Sequence[Row]
) -> list[BaseException | None]:
    """Commit ``rows``; if the database refuses the batch for its data, commit them one by one.
    Per row: None (stored) or the error that refused it. Anything else propagates (connection
    failures never get here: the writer retries them until they pass)."""
    try:
        await write(rows)
        return [None] * len(rows)
    except Exception as exc:
        if not is_data_error(exc):
            raise
        log.warning("a batch of %d rows was refused (%s); writing them one by one", len(rows), exc)
    out: list[BaseException | None] = []
    for row in rows:
        try:
            await write([row])
            out.append(None)
        except Exception as exc:
            if not is_data_error(exc):
                raise
            out.append(exc)
    return out


class DeadLetters:
    """The policy, shared by every agent of one app: make the dead letter, count it, log it."""

    def __init__(self, topic: Any, counter: Any) -> None:
        self.topic = topic  # readings.rejected
        self._counter = counter  # Metrics.processing_errors

    def rejection(
        self,
        stage: str,
        event: Any,
        reason: RejectReason,
        error: BaseException | str,
        *,
        line: int | None = None,
        original: bytes | None = None,
        source_id: Any = None,
    ) -> Rejection:
        """The dead letter of ``event`` (or of its item ``line``), counted and logged."""
        m = event.message
        where = coordinates(event)
        text = _error_text(error)
        self._counter.labels(stage, reason.value).inc()
        log.warning("%s: dead-lettered %s%s (%s): %s", stage, where, _at(line), reason, text)
        if source_id is None:
            source_id = getattr(event.value, "source_id", None)
        return Rejection(
            reason=reason.value,
            message=f"{stage}: {text}",
            channel=Channel.KAFKA.value,
            received_at=datetime.fromtimestamp(m.timestamp, UTC) if m.timestamp else _now(),
            original_b64=base64.b64encode(m.value if original is None else original).decode(),
            source_id=source_id if isinstance(source_id, str) else None,
            origin=where,
            line=line,
        )

    def key(self, event: Any) -> str:
        return str(event.key or b"", "utf-8", "replace")

    def decoded(self, stage: str, batch: Any, events: Sequence[Any]) -> list[Any]:
        """The events whose value is their record; the others are dead-lettered in ``batch``."""
        good = []
        for event in events:
            if isinstance(event.value, Undecodable):
                rej = self.rejection(stage, event, RejectReason.JSON_SCHEMA, event.value.error)
                batch.emit(self.topic, self.key(event), rej)
            else:
                good.append(event)
        return good

    def guard(self, stage: str, batch: Any, event: Any, line: int | None = None) -> _Guard:
        """``with dead.guard(...):`` around one record's processing (see the module doc)."""
        return _Guard(self, stage, batch, event, line)

    async def persist(
        self,
        stage: str,
        events: Sequence[Any],
        writes: Sequence[tuple[Callable[[Sequence[Row]], Awaitable[Any]], Callable[[Any], Row]]],
        keep: Callable[[Any], bool],
        dead_letter: Callable[[Sequence[tuple[str, Rejection]]], Awaitable[None]],
    ) -> None:
        """A persist agent's batch: each table written (bad rows one by one), the refused
        records handed to ``dead_letter`` (which must confirm them) before the caller acks."""
        dead: list[tuple[str, Rejection]] = []
        todo = []
        for event in events:
            if isinstance(event.value, Undecodable):
                rej = self.rejection(stage, event, RejectReason.JSON_SCHEMA, event.value.error)
                dead.append((self.key(event), rej))
            elif keep(event.value):
                todo.append(event)
        for write, to_row in writes:
            built: list[tuple[Any, Row]] = []
            for event in todo:
                try:
                    built.append((event, to_row(event.value)))
                except Exception as exc:  # a value no row can be made of
                    reason = RejectReason.PROCESSING_ERROR
                    dead.append((self.key(event), self.rejection(stage, event, reason, exc)))
            errors = await write_rows(write, [row for _, row in built])
            for (event, _), error in zip(built, errors, strict=True):
                if error is not None:
                    reason = RejectReason.STORAGE_ERROR
                    dead.append((self.key(event), self.rejection(stage, event, reason, error)))
            # the next table gets only the records this one stored
            todo = [e for (e, _), error in zip(built, errors, strict=True) if error is None]
        if dead:
            await dead_letter(dead)


def _at(line: int | None) -> str:
    return "" if line is None else f" item {line}"


def _now() -> datetime:
    return datetime.now(UTC)


class _Guard:
    def __init__(
        self, dead: DeadLetters, stage: str, batch: Any, event: Any, line: int | None
    ) -> None:
        self.dead, self.stage, self.batch, self.event, self.line = dead, stage, batch, event, line

    def __enter__(self) -> None:
        self.batch.begin()

    def __exit__(
        self,
        kind: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool:
        if exc is None or not isinstance(exc, Exception):
            return False  # cancellation and exit pass through
        self.batch.abandon()
        reason = RejectReason.PROCESSING_ERROR
        log.debug("%s failed on %s", self.stage, coordinates(self.event), exc_info=exc)
        rej = self.dead.rejection(self.stage, self.event, reason, exc, line=self.line)
        self.batch.emit(self.dead.topic, self.dead.key(self.event), rej)
        return True  # the record is dead-lettered; the stream goes on
