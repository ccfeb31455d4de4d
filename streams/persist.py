"""The sinks: batches of records written to PostgreSQL, acked only after the commit.

``noack_take`` leaves acking to us; Faust's ``take`` would ack in a ``finally``, so a shutdown in
the middle of a failed write would commit offsets of unwritten rows. A record the database
refuses is dead-lettered (and the dead letter confirmed) before the ack (streams/errors.py).
A record that carries ``STORED_HEADER`` was stored before it was sent (``store_early``) and is
acked without a write.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from core.metrics import Metrics
from core.records import Rejection
from core.settings import Settings
from core.topics import STORED_HEADER
from storage import rows as to_row
from storage import writer as tables
from storage.writer import BatchWriter, Row, TableSpec
from streams.db import Database
from streams.errors import DeadLetters, write_rows

Write = Callable[[Sequence[Row]], Awaitable[Any]]

log = logging.getLogger(__name__)


class Writers:
    """One idempotent batch writer per table, created on first use (the pool opens lazily)."""

    def __init__(self, db: Database, settings: Settings, metrics: Metrics) -> None:
        self._db, self._settings, self._metrics = db, settings, metrics
        self._writers: dict[str, BatchWriter] = {}

    def __call__(self, spec: TableSpec) -> Write:
        async def write(rows: Sequence[Row]) -> int:
            writer = self._writers.get(spec.table)
            if writer is None:
                writer = self._writers[spec.table] = BatchWriter(
                    await self._db.pool(),
                    spec,
                    retry_max_s=self._settings.db_retry_max_s,
                    on_write=self._metrics.on_db_write,
                    on_error=self._metrics.on_db_error,
                )
            return await writer.write(rows)

        return write


@dataclass(frozen=True)
class Sink:
    """A persist agent: the tables its topic's records go to, in order."""

    name: str
    topic: str  # an attribute of streams.topology.Topics
    writes: tuple[tuple[TableSpec, Callable[[Any], Row]], ...]
    keep: Callable[[Any], bool] = field(default=lambda record: True)


SINKS = (
    # Running-hour averages (final=False) feed early warnings only; they are not stored.
    Sink(
        "persist_averages", "averages", ((tables.AVERAGES, to_row.average_row),), lambda a: a.final
    ),
    Sink("persist_aqi", "aqi", ((tables.AQI, to_row.aqi_row),)),
    Sink(
        "persist_water_quality", "water", ((tables.WATER_QUALITY_DAYS, to_row.water_quality_row),)
    ),
    Sink(
        "persist_violations",
        "violations",
        ((tables.VIOLATION_EVENTS, to_row.event_row), (tables.VIOLATIONS, to_row.violation_row)),
    ),
    Sink("persist_rejections", "rejected", ((tables.REJECTIONS, to_row.rejection_row),)),
)


def sink_agent(
    sink: Sink, writers: Writers, dead: DeadLetters, settings: Settings
) -> Callable[[Any], Awaitable[None]]:
    """The Faust agent function of ``sink``: write each batch, then ack its events."""
    writes = [(writers(spec), row) for spec, row in sink.writes]
    store_rejections = writers(tables.REJECTIONS)

    async def to_dead_letter(dead_letters: Sequence[tuple[str, Rejection]]) -> None:
        if sink.topic == "rejected":
            # the dead letters of the dead-letter sink itself: back onto its topic would loop;
            # their fields are safe to store
            await store_rejections([to_row.rejection_row(r) for _, r in dead_letters])
            return
        pending = [await dead.topic.send(key=k, value=r) for k, r in dead_letters]
        await asyncio.gather(*pending)  # confirmed before the events are acked

    async def agent(stream: Any) -> None:
        rows, wait = settings.persist_batch_rows, settings.persist_batch_seconds
        async for events in stream.noack_take(rows, within=wait):
            # what the stage that made it stored already (store_early) is acked unwritten
            todo = [e for e in events if STORED_HEADER not in e.headers]
            if todo:
                await dead.persist(sink.name, todo, writes, sink.keep, to_dead_letter)
            for event in events:
                await stream.ack(event)

    return agent


async def store_early(
    writes: Sequence[tuple[Write, Callable[[Any], Row]]], records: Sequence[Any]
) -> set[int]:
    """Records stored by the stage that made them, before they are sent, into each table of
    ``writes`` in order (a table gets only the records the one before it stored): a final
    average, then the violation it causes, are in the database in the batch that judged them,
    without waiting for a hop through their topic. Returns the ``id`` of each record stored
    in every table: those are sent with the ``STORED_HEADER``, and the topic's sink
    (``SINKS``) acks them without writing them again. A record no row can be made of, or the
    database refuses, is left to that sink, which dead-letters it with its topic coordinates
    and bytes. Every write is idempotent anyway (averages by revision, events by id and seq,
    a violation's row by its newest seq): a record stored here and by its sink is stored
    once."""
    todo = list(records)
    for write, make_row in writes:
        built: list[tuple[Any, Row]] = []
        for record in todo:
            try:
                built.append((record, make_row(record)))
            except Exception as exc:  # the sink makes the dead letter
                log.debug("%r left to its sink: %r", record, exc)
        refused = await write_rows(write, [row for _, row in built])
        todo = [r for (r, _), error in zip(built, refused, strict=True) if error is None]
    return {id(r) for r in todo}
