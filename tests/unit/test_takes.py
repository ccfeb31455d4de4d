"""How a runner's batches are cut (streams/takes.py): a live feed's takes pass as they come;
while messages wait behind a take (the consumer's lag), takes are merged up to the batch size,
never holding one for input that does not come. The stream is a scripted stand-in for Faust's
``noack_take``: each take is (seconds after the previous one was asked for, its events); the
events are the offsets 0, 1, 2… of one partition whose end is ``end`` (the lag of a take is
``end`` minus the offset after its newest event)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import Any

from streams.takes import PATIENCE, consumer_lag, merged_takes

WITHIN = 0.05


class Takes:
    def __init__(self, script: Sequence[tuple[float, list[int]]]) -> None:
        self.script = script
        self.closed = False
        self.asked: tuple[int, float] | None = None

    async def noack_take(self, size: int, within: float) -> AsyncIterator[list[int]]:
        self.asked = (size, within)
        try:
            for delay, events in self.script:
                await asyncio.sleep(delay)
                yield events
            await asyncio.sleep(3600)  # a quiet feed: no take comes again
        finally:
            self.closed = True


async def first(n: int, it: AsyncIterator[list[int]]) -> list[tuple[list[int], float]]:
    """The first ``n`` batches, each with the seconds since the start when it came."""
    t0, out = time.monotonic(), []

    async def collect() -> None:
        async for batch in it:
            out.append((batch, time.monotonic() - t0))
            if len(out) == n:
                return

    await asyncio.wait_for(collect(), timeout=5)  # a batch held for good fails, not hangs
    return out


def run(
    n: int,
    script: Sequence[tuple[float, list[int]]],
    size: int,
    behind: int,
    end: int = 0,
    within: float = WITHIN,
) -> list[tuple[list[int], float]]:
    def lag(events: Sequence[int]) -> int:
        return max(0, end - max(events) - 1)

    async def go() -> list[tuple[list[int], float]]:
        it = merged_takes(Takes(script), size, within, behind, lag)
        try:
            return await first(n, it)
        finally:
            await it.aclose()

    return asyncio.run(go())


def tens(start: int, stop: int) -> list[tuple[float, list[int]]]:
    """Takes of ten offsets each, one right after the other."""
    return [(0.0, list(range(i, i + 10))) for i in range(start, stop, 10)]


def test_a_live_feed_takes_pass_as_they_come() -> None:
    script = [(0.0, [0, 1]), (0.01, [2]), (0.01, [3, 4])]
    assert [b for b, _ in run(3, script, size=100, behind=10, end=5)] == [[0, 1], [2], [3, 4]]


def test_takes_are_merged_while_messages_wait_up_to_the_batch_size() -> None:
    batches = run(2, tens(0, 60), size=30, behind=10, end=60)
    assert [b for b, _ in batches] == [list(range(0, 30)), list(range(30, 60))]


def test_a_merged_batch_never_holds_more_than_the_batch_size() -> None:
    script = [(0.0, list(range(0, 20))), (0.0, list(range(20, 40)))]
    batches = run(2, script, size=30, behind=10, end=40)
    assert [b for b, _ in batches] == [list(range(0, 20)), list(range(20, 40))]


def test_a_full_batch_goes_at_once() -> None:
    # it does not wait for a next take (within is long here, so waiting would show)
    [(batch, at)] = run(1, tens(0, 30), size=30, behind=10, end=1000, within=1.0)
    assert len(batch) == 30
    assert at < 0.5


def test_the_merge_ends_when_fewer_than_behind_wait() -> None:
    # after 0..19 two messages wait: fewer than 5, the batch goes; 20 and 21 are the next one
    script = [(0.0, list(range(10))), (0.0, list(range(10, 20))), (0.0, [20, 21])]
    batches = run(2, script, size=100, behind=5, end=22)
    assert [b for b, _ in batches] == [list(range(20)), [20, 21]]


def test_small_takes_of_a_backlog_are_merged_too() -> None:
    # a backlog's takes shrink while the consumer fetches more: a small one is not a batch
    script = [(0.0, list(range(20))), (0.0, [20, 21]), (0.0, list(range(22, 42)))]
    [(batch, _)] = run(1, script, size=100, behind=10, end=42)
    assert batch == list(range(42))


def test_a_merge_is_not_held_for_messages_that_do_not_come() -> None:
    # the broker said 90 more wait, the fetch brings none: the batch goes after the patience
    [(batch, at)] = run(1, [(0.0, list(range(10)))], size=100, behind=10, end=100)
    assert batch == list(range(10))
    assert PATIENCE * WITHIN <= at < 2 * PATIENCE * WITHIN


def test_a_take_that_comes_while_a_batch_is_handled_is_the_next_batch() -> None:
    # the next take is awaited in the background: it is not lost when the merge gives up
    script = [(0.0, list(range(10))), (2 * PATIENCE * WITHIN, [10, 11])]
    batches = run(2, script, size=100, behind=10, end=100)
    assert [b for b, _ in batches] == [list(range(10)), [10, 11]]


def test_behind_zero_is_faust_s_cut_and_the_stream_is_asked_as_configured() -> None:
    takes = Takes([(0.0, list(range(10))), (0.0, list(range(10, 20)))])

    async def go() -> list[tuple[list[int], float]]:
        it = merged_takes(takes, 500, WITHIN, 0, lambda events: 1000)
        try:
            return await first(2, it)
        finally:
            await it.aclose()

    assert [b for b, _ in asyncio.run(go())] == [list(range(10)), list(range(10, 20))]
    assert takes.asked == (500, WITHIN)


def test_closing_the_batches_closes_the_take_waited_for() -> None:
    takes = Takes([(0.0, list(range(10)))])

    async def go() -> None:
        it = merged_takes(takes, 100, WITHIN, 10, lambda events: 1000)
        await first(1, it)
        assert not takes.closed  # the next take is being waited for
        await it.aclose()
        await asyncio.sleep(0)  # the cancelled take runs its cleanup
        assert takes.closed

    asyncio.run(go())


# -- the consumer's lag ------------------------------------------------------------------------


@dataclass
class Message:
    tp: str
    offset: int


@dataclass
class Event:
    message: Message


class Consumer:
    """aiokafka's highwater: None before a fetch, an AssertionError once revoked."""

    def __init__(self, ends: dict[str, int | None]) -> None:
        self.ends = ends

    def highwater(self, tp: str) -> int | None:
        assert tp in self.ends, "Partition is not assigned"
        return self.ends[tp]


class Stream:
    def __init__(self, consumer: Consumer) -> None:
        self.app: Any = type("App", (), {"consumer": consumer})()


def test_the_lag_is_what_waits_after_each_partition_s_newest_event() -> None:
    events = [Event(Message(tp, o)) for tp, o in [("a", 3), ("b", 10), ("a", 7), ("c", 1)]]
    ends: dict[str, int | None] = {"a": 20, "b": 11, "c": None}  # c: not fetched yet
    assert consumer_lag(Stream(Consumer(ends)))(events) == (20 - 8) + (11 - 11)
    del ends["a"]  # revoked by a rebalance since the take
    assert consumer_lag(Stream(Consumer(ends)))(events) == 0
