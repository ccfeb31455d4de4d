"""streams/consumer.py: the offset a worker may commit (pure bookkeeping, no broker).

The consumer's commit bookkeeping is set by hand on a GuardedConsumer that was never started:
``_committed_offset`` (what Kafka holds: the next offset to read), ``_acked`` (offsets acked
since) and ``_gap`` (offsets known not to exist).
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import AsyncIterator
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any, cast

import pytest
from faust.transport.drivers import aiokafka as driver
from faust.types import TP
from intervaltree import IntervalTree

from streams import consumer as guarded
from streams.consumer import GuardedConsumer

TOPIC = TP("readings.valid", 2)


def bookkeeping(committed: int | None, acked: list[int]) -> GuardedConsumer:
    c = GuardedConsumer.__new__(GuardedConsumer)
    c._committed_offset = defaultdict(lambda: None, {TOPIC: committed})
    c._acked = defaultdict(list, {TOPIC: list(acked)})
    c._acked_index = defaultdict(set, {TOPIC: set(acked)})
    c._gap = defaultdict(IntervalTree)
    c._read_offset = defaultdict(lambda: None)
    c._stalled_since = {}
    c._next_offset = {}
    c._unsought = set()
    c._jumps = {}
    return c


@pytest.mark.parametrize(
    ("committed", "acked", "commit"),
    [
        (5, [5, 6, 7], 8),  # the head is acked: commit the run
        (5, [5, 6, 8], 7),  # ... up to the first hole
        (5, [6, 7, 8], None),  # offset 5 never acked: Faust alone would commit 9 (message lost)
        (5, [7, 8], None),
        (5, [], None),
    ],
)
def test_commits_never_pass_an_unacked_offset(
    committed: int, acked: list[int], commit: int | None
) -> None:
    assert bookkeeping(committed, acked)._new_offset(TOPIC) == commit


def test_an_offset_known_not_to_exist_counts_as_acked() -> None:
    c = bookkeeping(5, [6, 7])
    c._gap[TOPIC].addi(5, 6)  # offset 5 is a gap (e.g. a transaction marker)
    assert c._new_offset(TOPIC) == 8


@dataclass(eq=False)
class Delivered:
    offset: int
    generation_id: int
    tp: TP = TOPIC
    topic: str = TOPIC.topic
    acked: bool = False


def acking(c: GuardedConsumer, flow_active: bool = True) -> GuardedConsumer:
    """``c`` in generation 2, its flow active or suspended (a rebalance under way)."""
    c.app = cast(
        Any,
        SimpleNamespace(
            consumer_generation_id=2,
            topics=SimpleNamespace(acks_enabled_for=lambda topic: True),
            flow_control=SimpleNamespace(is_active=lambda: flow_active),
        ),
    )
    c._unacked_messages = set()
    c._waiting_for_ack = None
    return c


def test_an_ack_while_flow_is_suspended_commits_nothing() -> None:
    # A rebalance suspended flow; a stream then took offset 5 and skipped it, acking it: the
    # revocation would commit 6 with offset 5 never processed.
    c = acking(bookkeeping(5, []), flow_active=False)
    skipped: Any = Delivered(5, generation_id=2)
    c._unacked_messages.add(skipped)
    assert not c.ack(skipped)
    assert skipped.acked and not c._unacked_messages  # the revocation does not wait for it
    assert c._new_offset(TOPIC) is None


def test_an_ack_from_an_earlier_generation_commits_nothing() -> None:
    # A stream skips (and acks) an event fetched before the rebalance; the new generation sought
    # back to the committed offset 5, and offset 7 is yet to be delivered again.
    c = acking(bookkeeping(5, []))
    stale: Any = Delivered(7, generation_id=1)
    current: Any = Delivered(5, generation_id=2)
    c._unacked_messages |= {stale, current}
    assert not c.ack(stale)
    assert stale.acked and not c._unacked_messages - {current}  # nothing waits for it
    assert c.ack(current)
    assert c._acked[TOPIC] == [5]
    assert c._new_offset(TOPIC) == 6


async def test_a_head_unacked_too_long_is_sought_back(monkeypatch: pytest.MonkeyPatch) -> None:
    sought: list[tuple[TP, int]] = []

    async def seek(partition: TP, offset: int) -> None:
        sought.append((partition, offset))

    c = bookkeeping(5, [6, 7])
    monkeypatch.setattr(c, "seek", seek)
    assert c._new_offset(TOPIC) is None
    assert await c.reseek_stalled() == []  # not yet: a late ack is not a stall
    c._stalled_since[TOPIC] -= guarded.STALL_S
    assert await c.reseek_stalled() == [TOPIC]
    assert sought == [(TOPIC, 5)]
    c._acked[TOPIC].insert(0, 5)
    c._acked_index[TOPIC].add(5)
    assert c._new_offset(TOPIC) == 8  # delivered again and acked: commits resume


# --- delivery in sequence from the last seek (GuardedConsumer.getmany) ---------------------


class Fetches:
    """Stands in for Faust's fetch (the parent ``getmany``) and ``seek``: each call of
    ``getmany`` yields the next batch of offsets; seeks are recorded."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, *batches: list[int]) -> None:
        self.batches = list(batches)
        self.sought: list[tuple[TP, int]] = []
        fetches = self

        async def getmany(self: Any, timeout: float) -> AsyncIterator[tuple[TP, Any]]:
            for offset in fetches.batches.pop(0):
                yield TOPIC, SimpleNamespace(offset=offset)

        async def seek(self: Any, partition: TP, offset: int) -> None:
            fetches.sought.append((partition, offset))

        monkeypatch.setattr(driver.Consumer, "getmany", getmany)
        monkeypatch.setattr(driver.Consumer, "seek", seek)

    async def delivered(self, c: GuardedConsumer) -> list[int]:
        return [m.offset async for _, m in c.getmany(timeout=1.0)]


async def test_a_batch_fetched_before_a_seek_is_not_delivered_after_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The restart race: committed (and sought to) 3, but a batch from position 27 arrives first.
    # Faust alone would deliver 27..29, then drop the re-fetched 3.. as already read.
    c = bookkeeping(3, [])
    c._next_offset[TOPIC] = 3
    fetches = Fetches(monkeypatch, [27, 28, 29], [3, 4, 5])
    assert await fetches.delivered(c) == []
    assert fetches.sought == [(TOPIC, 3)]  # once for the whole stale batch
    assert await fetches.delivered(c) == [3, 4, 5]
    assert c._next_offset[TOPIC] == 6


async def test_nothing_is_delivered_between_an_assignment_and_its_seek(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Table recovery resumes stream partitions before it seeks them to their committed offsets.
    c = bookkeeping(None, [])
    c._unsought.add(TOPIC)
    fetches = Fetches(monkeypatch, [27, 28], [3, 4])
    assert await fetches.delivered(c) == []
    await c.seek(TOPIC, 3)  # what perform_seek does, through seek_to_committed
    assert await fetches.delivered(c) == [3, 4]


async def test_the_seek_to_committed_offsets_is_repeated_where_records_are_delivered(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The thread seeks, then records from the new position can reach the main loop before the
    # call returns, and are dropped as unsought: the seek is made again after it, in this loop.
    # (Seen as a partition that never delivered again after a restart.)
    fetches = Fetches(monkeypatch)
    c = bookkeeping(None, [])
    c._unsought.add(TOPIC)

    async def call_thread(fun: Any, *args: Any) -> Any:
        return {TOPIC: 308}, {TOPIC: 308}

    c._thread = cast(Any, SimpleNamespace(call_thread=call_thread, _ensure_consumer=lambda: None))
    c.app = cast(Any, SimpleNamespace(tables=SimpleNamespace(changelog_topics=set())))
    assert await c.seek_to_committed() == {TOPIC: 308}
    assert fetches.sought == [(TOPIC, 308)]
    assert c._next_offset == {TOPIC: 308} and not c._unsought


async def test_offsets_already_delivered_are_dropped_without_a_seek(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    c = bookkeeping(3, [])
    c._next_offset[TOPIC] = 5
    fetches = Fetches(monkeypatch, [3, 4, 5, 6])
    assert await fetches.delivered(c) == [5, 6]
    assert fetches.sought == []


async def test_a_partition_without_a_commit_is_delivered_from_its_beginning(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # As seen after a SIGKILL before the first commit of averages:1: sought to its beginning,
    # but a batch from position 19 arrived first; 0..18 would then be dropped as read.
    c = bookkeeping(None, [])
    c._next_offset[TOPIC] = 0
    fetches = Fetches(monkeypatch, [19, 20], [0, 1])
    assert await fetches.delivered(c) == []
    assert fetches.sought == [(TOPIC, 0)]
    assert await fetches.delivered(c) == [0, 1]


async def test_a_partition_never_sought_is_not_checked(monkeypatch: pytest.MonkeyPatch) -> None:
    c = bookkeeping(None, [])  # e.g. a changelog, which table recovery positions itself
    fetches = Fetches(monkeypatch, [4, 9, 2])
    assert await fetches.delivered(c) == [4, 9, 2]
    assert TOPIC not in c._next_offset


async def test_a_jump_that_comes_back_after_every_seek_is_a_gap_in_the_log(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Retention deleted offsets 3..9 while the group was away: every seek back to 3 lands on 10.
    c = bookkeeping(3, [])
    c._next_offset[TOPIC] = 3
    retries = guarded.JUMP_RETRIES
    fetches = Fetches(monkeypatch, *([[10, 11]] * (retries + 1)))
    for _ in range(retries):
        assert await fetches.delivered(c) == []
    assert await fetches.delivered(c) == [10, 11]
    assert fetches.sought == [(TOPIC, 3)] * retries
    c._acked[TOPIC] += [10, 11]
    assert c._new_offset(TOPIC) == 12  # the missing offsets do not hold commits back


# --- one task per fetch (GuardedConsumer._drain_messages, _deliver) -------------------------


class Streams:
    """Stands in for the conductor's callback: records what it is handed; ``hold`` makes it
    wait at an offset (a stream's full buffer), ``suspend_after`` starts a rebalance (Faust's
    ``stop_flow``) once an offset is delivered."""

    def __init__(self, c: GuardedConsumer, hold: int | None = None, suspend_after: int = -1):
        self.c, self.hold, self.suspend_after = c, hold, suspend_after
        self.got: list[int] = []
        self.held = asyncio.Event()
        self.cancelled: list[int] = []
        c.callback = self

    async def __call__(self, message: Any) -> None:
        if message.offset == self.hold:
            self.held.set()
            try:
                await asyncio.Event().wait()
            except asyncio.CancelledError:
                self.cancelled.append(message.offset)
                raise
        self.got.append(message.offset)
        if message.offset == self.suspend_after:
            self.c.stop_flow()


def draining(c: GuardedConsumer, gaps: list[tuple[int, int]] | None = None) -> GuardedConsumer:
    """``c`` as a Service in this loop: flow active, commits by interval only."""
    c._stopped, c._crashed = cast(Any, asyncio.Event()), cast(Any, asyncio.Event())
    c._loop = asyncio.get_running_loop()
    c.suspend_flow, c.can_resume_flow = asyncio.Event(), asyncio.Event()
    c.flow_active = True
    c._commit_every = None
    c.diag = cast(Any, SimpleNamespace(set_flag=lambda flag: None, unset_flag=lambda flag: None))
    c.app = cast(Any, SimpleNamespace(topics=SimpleNamespace(acks_enabled_for=lambda t: True)))

    async def add_gap(tp: TP, start: int, end: int) -> None:
        assert gaps is not None
        gaps.append((start, end))

    c._add_gap = add_gap  # type: ignore[method-assign,assignment]
    return c


def fetched(*offsets: int) -> list[tuple[TP, Any]]:
    return [(TOPIC, SimpleNamespace(offset=o, topic=TOPIC.topic)) for o in offsets]


async def test_a_fetch_is_delivered_in_order_and_marked_read() -> None:
    c = draining(bookkeeping(5, []))
    streams = Streams(c)
    await c._deliver(fetched(*range(5, 5 + 2 * guarded.YIELD_EVERY + 3)))
    assert streams.got == list(range(5, 5 + 2 * guarded.YIELD_EVERY + 3))
    assert c._read_offset[TOPIC] == 4 + 2 * guarded.YIELD_EVERY + 3


async def test_an_offset_below_the_read_offset_is_not_delivered_again() -> None:
    c = draining(bookkeeping(5, []))
    c._read_offset[TOPIC] = 6
    streams = Streams(c)
    await c._deliver(fetched(5, 6, 7))
    assert streams.got == [6, 7]  # Faust's rule: the read offset itself may come again


async def test_offsets_missing_from_a_fetch_are_a_gap_for_the_commits() -> None:
    gaps: list[tuple[int, int]] = []
    c = draining(bookkeeping(5, []), gaps)
    c._read_offset[TOPIC] = 5
    Streams(c)
    await c._deliver(fetched(6, 9))
    assert gaps == [(7, 9)]


async def test_a_rebalance_stops_a_fetch_where_it_stands() -> None:
    # Offsets 7 and 8 are neither delivered nor marked read: the rebalance seeks the partition
    # to its committed offset and they come again from there.
    c = draining(bookkeeping(5, []))
    streams = Streams(c, suspend_after=6)
    await c._deliver(fetched(5, 6, 7, 8))
    assert streams.got == [5, 6]
    assert c._read_offset[TOPIC] == 6


async def test_a_rebalance_cancels_a_delivery_that_waits_and_the_loop_goes_on(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # A stream's full buffer holds offset 6; the rebalance must not wait for it.
    c = draining(bookkeeping(5, []))
    streams = Streams(c, hold=6)
    fetches = Fetches(monkeypatch, [5, 6, 7], *([[]] * 1000))
    c._next_offset[TOPIC] = 5
    fetcher = SimpleNamespace(_stopped=asyncio.Event())
    drain = asyncio.create_task(c._drain_messages(cast(Any, fetcher)))
    await asyncio.wait_for(streams.held.wait(), 1.0)
    c.stop_flow()
    for _ in range(10):
        await asyncio.sleep(0)
    assert streams.cancelled == [6] and streams.got == [5]
    assert c._read_offset[TOPIC] == 5
    assert len(fetches.batches) < 1000  # the loop went on to the next fetches
    fetcher._stopped.set()
    await asyncio.wait_for(drain, 1.0)
