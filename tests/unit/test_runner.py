"""The runner's protocol without a broker (streams/runner.py): decode, group, skip, step, dead
letters. The broker-facing half (send, changelog, ack) is streams/batch.py's, exercised by the
pipeline and fault tests."""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import gc
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import Any

from core.records import Rejection
from streams.batch import Batch
from streams.errors import DeadLetters, Undecodable
from streams.runner import Output, Runner, Stage, typed


@dataclass
class Message:
    topic: str
    partition: int
    offset: int
    value: bytes
    timestamp: float = 1_700_000_000.0


@dataclass
class Event:
    key: bytes
    value: Any
    message: Message


class Table:
    def __init__(self, stored: dict[str, Any] | None = None) -> None:
        self.name = "t"
        self.stored = stored or {}

    def get(self, key: str) -> Any:
        return self.stored.get(key)


class Counter:
    def __init__(self) -> None:
        self.seen: list[tuple[str, ...]] = []

    def labels(self, *labels: str) -> Counter:
        self.seen.append(labels)
        return self

    def inc(self, n: int = 1) -> None:
        pass


def event(offset: int, value: Any, key: str = "S1") -> Event:
    return Event(key.encode(), value, Message("in", 0, offset, b"raw-bytes"))


def summing(state: int, items: Sequence[tuple[str, int]], config: Any) -> tuple[int, list[Any]]:
    for _, x in items:
        if x < 0:
            raise ValueError(f"negative: {x}")
        state += x
    return state, [("sum", state)]


def stage(table: Table) -> Stage[tuple[str, int], int]:
    return Stage(
        name="summing",
        table=table,
        decode=typed(lambda v: v),
        key=lambda item: item[0],
        load=lambda key, d: d or 0,
        dump=lambda s: s,
        step=summing,
    )


def runner() -> tuple[Runner, Counter]:
    errors = Counter()
    # behind=0: each take is a batch, as Faust cuts it (merging: tests/unit/test_takes.py)
    dead = DeadLetters("dead", errors)
    return Runner({}, dead, lambda o: ("t", "k", o), batch=10, within=1, behind=0), errors


def test_items_are_grouped_by_key_and_stepped_once_per_message() -> None:
    r, _ = runner()
    batch = Batch({})
    outs = r.apply(stage(Table()), batch, [event(5, [("a", 1), ("b", 2), ("a", 3)])])
    assert [o.record for o in outs] == [("sum", 4), ("sum", 2)]
    states = {k[1]: s.state for k, s in batch._slots.items()}
    assert states == {"a": 4, "b": 2}


def test_a_message_applied_before_a_restart_is_skipped() -> None:
    # the stored state remembers offset 7: message 7 is done, message 8 is new
    table = Table({"a": {"o": 7, "s": 10}})
    r, _ = runner()
    outs = r.apply(stage(table), Batch({}), [event(7, [("a", 1)]), event(8, [("a", 5)])])
    assert [o.record for o in outs] == [("sum", 15)]


def test_a_state_the_step_left_as_it_was_is_not_recorded() -> None:
    """``Stage.version``: a step that leaves the token equal records nothing for the key; one
    that changes it records the state with its message's offset."""

    def capped(state: int, items: Sequence[tuple[str, int]], config: Any) -> tuple[int, list[Any]]:
        total = state + sum(x for _, x in items)
        return (state if total > 10 else total), [("seen", total)]

    s = dataclasses.replace(stage(Table()), step=capped, version=lambda state: state)
    r, _ = runner()
    batch = Batch({})
    outs = r.apply(s, batch, [event(1, [("a", 4)]), event(2, [("a", 20)]), event(3, [("b", 99)])])
    assert [o.record for o in outs] == [("seen", 4), ("seen", 24), ("seen", 99)]
    slots = {k[1]: (s.state, s.offset, s.dirty) for k, s in batch._slots.items()}
    assert slots == {"a": (4, 1, True), "b": (0, -1, False)}


def test_a_step_that_raises_dead_letters_each_item_with_its_line_and_the_stream_goes_on() -> None:
    r, errors = runner()
    batch = Batch({})
    events = [event(1, [("a", 1), ("a", -2), ("b", 3)]), event(2, [("a", 4)])]
    outs = r.apply(stage(Table()), batch, events)
    dead = [o for o in outs if o.dead]
    assert [o.line for o in dead] == [1, 2]  # both items of key a in message 1, 1-based
    rej = dead[0].record
    assert isinstance(rej, Rejection)
    assert rej.reason == "processing_error" and rej.origin == "in:0:1"
    assert "negative: -2" in rej.message and rej.message.startswith("summing: ")
    assert base64.b64decode(rej.original_b64) == b"raw-bytes"
    # key a's state was not advanced by the failed group; message 2 still applies to it
    assert [o.record for o in outs if not o.dead] == [("sum", 3), ("sum", 4)]
    assert errors.seen == [("summing", "processing_error")] * 2


def test_a_state_a_failed_step_changed_in_place_is_loaded_afresh() -> None:
    """A step may change a mutable state before it raises: the next message, and the next
    batch, see the state as stored, never the half-changed object. (The slot was once taken
    before ``Batch.begin``, which forgot it: the half-changed list was stepped on and kept.)"""

    def appending(
        state: list[int], items: Sequence[tuple[str, int]], config: Any
    ) -> tuple[list[int], list[Any]]:
        for _, x in items:
            state.append(x)
            if x < 0:
                raise ValueError(f"negative: {x}")
        return state, [list(state)]

    table = Table({"a": {"o": 0, "s": [7]}})
    s: Stage[tuple[str, int], list[int]] = Stage(
        name="appending",
        table=table,
        decode=typed(lambda v: v),
        key=lambda item: item[0],
        load=lambda key, d: list(d or []),
        dump=list,
        step=appending,
    )
    r, _ = runner()
    batch = Batch({})
    outs = r.apply(s, batch, [event(1, [("a", -1)]), event(2, [("a", 2)])])
    assert [o.record for o in outs if not o.dead] == [[7, 2]]
    assert batch.state(table, "a") == [7, 2]
    live: dict[Any, Any] = {}
    failed = Batch(live)
    r.apply(s, failed, [event(3, [("a", -3)])])
    assert ("t", "a") not in failed._slots  # nothing of it is left to commit or keep live


def test_an_undecodable_value_is_one_dead_letter_with_its_coordinates() -> None:
    r, errors = runner()
    outs = r.apply(stage(Table()), Batch({}), [event(3, Undecodable("not a Thing: x"))])
    assert len(outs) == 1 and outs[0].dead
    assert outs[0].record.reason == "json_schema" and outs[0].record.origin == "in:0:3"
    assert errors.seen == [("summing", "json_schema")]


def test_a_decoder_rejection_passes_through_uncounted_by_the_runner() -> None:
    rej = Rejection(
        reason="bad_json",
        message="m",
        channel="kafka",
        received_at=None,
        original_b64="",
    )
    s = Stage(
        name="x",
        table=Table(),
        decode=lambda e: rej,
        key=lambda i: "k",
        load=lambda k, d: 0,
        dump=lambda s: s,
        step=summing,
    )
    r, errors = runner()
    outs = r.apply(s, Batch({}), [event(1, b"{")])
    assert outs == [Output(outs[0].event, None, rej)] and not outs[0].dead
    assert errors.seen == []


def test_a_decoder_that_raises_dead_letters_the_message_and_the_stream_goes_on() -> None:
    def decode(e: Any) -> Any:
        if e.message.offset == 1:
            raise KeyError("no limits for 1999-01-01")
        return e.value

    s = Stage(
        name="x",
        table=Table(),
        decode=decode,
        key=lambda i: i[0],
        load=lambda k, d: 0,
        dump=lambda s: s,
        step=summing,
    )
    r, errors = runner()
    outs = r.apply(s, Batch({}), [event(1, [("a", 1)]), event(2, [("a", 2)])])
    assert [o.dead for o in outs] == [True, False]
    assert outs[0].record.reason == "processing_error" and "1999-01-01" in outs[0].record.message
    assert outs[1].record == ("sum", 2)
    assert errors.seen == [("x", "processing_error")]


class Stream:
    """What the runner reads of a Faust stream: batches of events, and acks."""

    def __init__(self, batches: Sequence[Sequence[Any]]) -> None:
        self.batches: Sequence[Sequence[Any]] = batches
        self.acked: list[Any] = []

    async def noack_take(self, n: int, within: float) -> AsyncIterator[Sequence[Any]]:
        for b in self.batches:
            yield b

    async def ack(self, e: Any) -> None:
        self.acked.append(e)


def test_the_runner_steps_a_batch_with_the_collector_paused() -> None:
    seen: list[bool] = []

    def step(state: int, items: Sequence[Any], config: Any) -> tuple[int, list[Any]]:
        seen.append(gc.isenabled())
        return state, []

    stage = Stage(
        name="s",
        table=Table(),
        decode=typed(lambda v: v),
        key=lambda i: i[0],
        load=lambda k, d: 0,
        dump=lambda s: s,
        step=step,
        version=lambda s: 0,  # nothing durable changes: no changelog to write
    )
    stream = Stream([[event(1, [("a", 1)])], [event(2, [("a", 2)])]])
    r, _ = runner()
    asyncio.run(r.run(stage, stream))
    assert seen == [False, False]
    assert len(stream.acked) == 2 and gc.isenabled()
