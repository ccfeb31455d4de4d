"""streams/persist.store_early: a stage's records written before they are sent (fake writers:
which rows go to which table, in which order; the database is the sinks' tests')."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

import psycopg

from core.records import ViolationEvent
from storage import rows
from storage.writer import Row
from streams.persist import store_early

T = datetime(2026, 3, 2, 1, tzinfo=UTC)


def event(violation_id: str, seq: int) -> ViolationEvent:
    return ViolationEvent(
        violation_id=violation_id,
        event="opened" if seq == 0 else "updated",
        seq=seq,
        source_id="HD-NT-01",
        parameter="COD",
        rule_id="r1",
        period="1h",
        started_at=T,
        at=T,
        value=230.0,
        limit=148.5,
        ratio=1.55,
        severity="major",
    )


class Table:
    """A writer that records the rows it stored and refuses the ids in ``refuse``."""

    def __init__(self, refuse: frozenset[str] = frozenset()) -> None:
        self.rows: list[Row] = []
        self.refuse = refuse

    async def __call__(self, rows: Sequence[Row]) -> int:
        if any(r[0] in self.refuse for r in rows):
            raise psycopg.errors.DataError("refused")  # a data error: rows go one by one
        self.rows += rows
        return len(rows)


async def test_events_then_the_violations_of_the_events_stored() -> None:
    events_table, violations_table = Table(refuse=frozenset({"v-bad"})), Table()
    writes = [(events_table, rows.event_row), (violations_table, rows.violation_row)]
    records = [event("v-1", 0), event("v-bad", 0), event("v-1", 1)]
    done = await store_early(writes, records)
    assert [(r[0], r[1]) for r in events_table.rows] == [("v-1", 0), ("v-1", 1)]
    # stored in every table: sent with the header that spares the sink a second write
    assert done == {id(records[0]), id(records[2])}
    # the refused event's violation is not written here: persist_violations dead-letters it
    # when it reads the event from its topic
    assert [r[0] for r in violations_table.rows] == ["v-1", "v-1"]


async def test_nothing_to_store_writes_nothing() -> None:
    events_table, violations_table = Table(), Table()
    await store_early([(events_table, rows.event_row), (violations_table, rows.violation_row)], [])
    assert events_table.rows == [] and violations_table.rows == []


async def test_a_record_no_row_can_be_made_of_is_left_to_the_sink() -> None:
    table = Table()

    def row(e: ViolationEvent) -> Row:
        if e.seq == 1:
            raise ValueError("no row")
        return rows.event_row(e)

    records = [event("v-1", 0), event("v-1", 1), event("v-1", 2)]
    done = await store_early([(table, row)], records)
    assert [r[1] for r in table.rows] == [0, 2]
    assert done == {id(records[0]), id(records[2])}  # the sink writes (or dead-letters) the other
