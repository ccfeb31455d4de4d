"""streams/batch.py: which events a restored state has already applied (pure, fake table)."""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass, field
from typing import Any

import pytest
from faust.serializers import codecs

from core.topics import STORED_HEADER
from streams.batch import MARKER_KEY, PACK_FROM, Batch, Packed, stored_value


@dataclass
class FakeTable:
    name: str = "t"
    data: dict[str, Any] = field(default_factory=dict)

    def get(self, key: str) -> Any:
        return self.data.get(key)


@dataclass
class Message:
    offset: int
    partition: int = 0


@dataclass
class Event:
    message: Message


def slot_state(table: FakeTable, key: str, offsets: list[int]) -> list[bool]:
    """For each event offset in one batch: was it applied (True) or skipped as done?"""
    batch, applied = Batch(), []
    for offset in offsets:
        event = Event(Message(offset))
        slot = batch.slot(table, key, event, lambda s: s or [], lambda s: s)
        applied.append(slot is not None)
        if slot is not None:
            batch.set(slot, event, [*slot.state, offset])
    return applied


@pytest.mark.parametrize(
    ("stored_offset", "offsets", "applied"),
    [
        (None, [0, 1, 2], [True, True, True]),  # nothing stored: everything is new
        (5, [4, 5, 6, 7], [False, False, True, True]),  # re-delivered up to the stored offset
        # one event carrying several items for the key (a QcBatch): all of them are applied
        (5, [6, 6, 6, 7], [True, True, True, True]),
        (6, [6, 6, 7], [False, False, True]),  # ... or all skipped
    ],
)
def test_events_up_to_the_stored_offset_are_skipped(
    stored_offset: int | None, offsets: list[int], applied: list[bool]
) -> None:
    table = FakeTable()
    if stored_offset is not None:
        table.data["k"] = {"o": stored_offset, "s": []}
    assert slot_state(table, "k", offsets) == applied


class Producer:
    """Records what is sent, each confirmed at once."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, int | None, Any, Any]] = []
        self.headers: list[Any] = []

    async def send(
        self, topic: str, key: Any, value: Any, partition: int | None, headers: Any, **_: Any
    ) -> asyncio.Future[None]:
        self.sent.append((topic, partition, key, value))
        self.headers.append(headers)
        done = asyncio.get_running_loop().create_future()
        done.set_result(None)
        return done

    async def flush(self) -> None:
        return None


@dataclass
class App:
    producer: Producer = field(default_factory=Producer)


@dataclass
class Topic:
    """A changelog topic: serialising is the identity here."""

    name: str
    app: App

    def get_topic_name(self) -> str:
        return self.name

    def prepare_headers(self, headers: Any) -> Any:
        return {} if headers is None else headers

    def prepare_key(self, key: Any, serializer: Any, schema: Any, headers: Any) -> Any:
        return key, headers

    def prepare_value(self, value: Any, serializer: Any, schema: Any, headers: Any) -> Any:
        return value, headers


@dataclass(eq=False)
class LoggedTable(FakeTable):
    """A table whose changelog is what its producer sent to its changelog topic."""

    __hash__ = object.__hash__  # by identity, as Faust's tables are

    app: App = field(default_factory=App)
    key_serializer: Any = None
    value_serializer: Any = None

    @property
    def changelog_topic(self) -> Topic:
        return Topic(f"{self.name}-changelog", self.app)

    @property
    def changelog(self) -> list[tuple[int | None, Any, Any]]:
        name = self.changelog_topic.name
        return [(p, k, v) for t, p, k, v in self.app.producer.sent if t == name]


class Stream:
    async def ack(self, event: Event) -> None:
        return None


class Counted:
    """load/dump for a list state, counting the loads."""

    def __init__(self) -> None:
        self.loads = 0

    def load(self, stored: Any) -> list[int]:
        self.loads += 1
        return list(stored or [])

    @staticmethod
    def dump(state: list[int]) -> list[int]:
        return list(state)


async def _apply(live: dict[Any, Any], table: LoggedTable, codec: Counted, offset: int) -> Any:
    batch, event = Batch(live), Event(Message(offset))
    slot = batch.slot(table, "k", event, codec.load, codec.dump)
    assert slot is not None
    slot.state.append(offset)
    batch.set(slot, event, slot.state)
    await batch.commit(Stream(), [event])
    return slot.state


async def test_a_committed_state_object_is_taken_by_the_next_batch_without_loading() -> None:
    live: dict[Any, Any] = {}
    table, codec = LoggedTable(), Counted()
    first = await _apply(live, table, codec, 0)
    second = await _apply(live, table, codec, 1)
    assert second is first and codec.loads == 1
    assert stored_value(table, "k") == {"o": 1, "s": [0, 1]}
    logged = [v for _, k, v in table.changelog if k != MARKER_KEY]
    assert [json.loads(v) for v in logged] == [{"o": 0, "s": [0]}, {"o": 1, "s": [0, 1]}]


async def test_a_committed_value_is_held_as_the_bytes_its_changelog_record_carries() -> None:
    """Held encoded (a dump's many small objects cost several times their bytes); read back
    the same whether committed here or restored decoded from the changelog."""
    live: dict[Any, Any] = {}
    table, codec = LoggedTable(), Counted()
    await _apply(live, table, codec, 0)
    held = table.data["k"]
    assert isinstance(held, bytes)
    assert [v for _, k, v in table.changelog if k != MARKER_KEY] == [held]
    assert held == codecs.dumps("json", {"o": 0, "s": [0]})  # as the table's codec writes it
    table.data["k"] = {"o": 0, "s": [0]}  # the same value, restored by Faust
    assert stored_value(table, "k") == json.loads(held)


async def test_a_large_committed_value_is_held_packed_and_logged_plain() -> None:
    """Values of PACK_FROM bytes or more are held zlib-compressed (a rule's window records: 15 kB
    of JSON, 2 kB packed); the changelog record stays the table codec's JSON, and a batch that
    finds no live object (one before it failed) loads the state from the packed value."""
    live: dict[Any, Any] = {}
    table, codec = LoggedTable(), Counted()
    batch, event = Batch(live), Event(Message(0))
    slot = batch.slot(table, "k", event, codec.load, codec.dump)
    assert slot is not None
    slot.state.extend([20261207] * PACK_FROM)  # repetitive, as window records are
    batch.set(slot, event, slot.state)
    await batch.commit(Stream(), [event])
    held = table.data["k"]
    plain = codecs.dumps("json", {"o": 0, "s": [20261207] * PACK_FROM})
    assert isinstance(held, Packed) and len(held) < len(plain) / 20
    assert [v for _, k, v in table.changelog if k != MARKER_KEY] == [plain]
    assert stored_value(table, "k") == json.loads(plain)
    live.clear()  # the live object is gone: the next batch decodes the packed value
    assert await _apply(live, table, codec, 1) == [*[20261207] * PACK_FROM, 1]
    assert codec.loads == 2


async def test_a_replaced_table_value_is_loaded_again() -> None:
    """A restore or a rebalance writes the table value: the kept object is stale."""
    live: dict[Any, Any] = {}
    table, codec = LoggedTable(), Counted()
    await _apply(live, table, codec, 0)
    table.data["k"] = {"o": 5, "s": [7]}  # restored from the changelog
    assert await _apply(live, table, codec, 6) == [7, 6] and codec.loads == 2


async def test_a_batch_that_never_commits_leaves_no_state_object_behind() -> None:
    live: dict[Any, Any] = {}
    table, codec = LoggedTable(), Counted()
    await _apply(live, table, codec, 0)
    failed, event = Batch(live), Event(Message(1))
    slot = failed.slot(table, "k", event, codec.load, codec.dump)
    assert slot is not None
    slot.state.append(99)  # changed, then the batch fails before commit()
    assert await _apply(live, table, codec, 1) == [0, 1] and codec.loads == 2


async def test_a_state_no_event_changed_is_not_logged_and_stays_live() -> None:
    """A slot taken but never ``set`` (the stage's version said nothing durable changed) writes
    no changelog record and no marker; its object is still taken by the next batch."""
    live: dict[Any, Any] = {}
    table, codec = LoggedTable(), Counted()
    first = await _apply(live, table, codec, 0)
    sent = len(table.app.producer.sent)
    batch, event = Batch(live), Event(Message(1))
    slot = batch.slot(table, "k", event, codec.load, codec.dump)
    assert slot is not None and slot.state is first
    await batch.commit(Stream(), [event])
    assert len(table.app.producer.sent) == sent  # nothing logged, not even a marker
    assert stored_value(table, "k") == {"o": 0, "s": [0]}  # message 1 not recorded as applied
    assert await _apply(live, table, codec, 2) is first and codec.loads == 1


async def test_a_record_stored_early_is_sent_with_the_stored_header() -> None:
    """``emit(stored=True)``: the record is in the database already; its sink skips it
    (streams/persist.py)."""
    app = App()
    out = Topic("averages", app)
    batch = Batch({})
    batch.emit(out, "S1", "final mean", stored=True)
    batch.emit(out, "S1", "not stored")
    await batch.commit(Stream(), [])
    assert app.producer.headers == [{STORED_HEADER: b"1"}, {}]
