"""How a runner's batches are cut (streams/takes.py): a live feed's takes pass as they come;
while the agent is behind, takes are merged up to the batch size, never holding one for input
that does not come. The stream is a scripted stand-in for Faust's ``noack_take``: each take is
(seconds after the previous one was asked for, its events)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Sequence

from streams.takes import merged_takes

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
    within: float = WITHIN,
) -> list[tuple[list[int], float]]:
    async def go() -> list[tuple[list[int], float]]:
        it = merged_takes(Takes(script), size, within, behind)
        try:
            return await first(n, it)
        finally:
            await it.aclose()

    return asyncio.run(go())


def test_a_live_feed_takes_pass_as_they_come() -> None:
    script = [(0.0, [1, 2]), (0.01, [3]), (0.01, [4, 5])]
    assert [b for b, _ in run(3, script, size=100, behind=10)] == [[1, 2], [3], [4, 5]]


def test_takes_of_an_agent_behind_are_merged_up_to_the_batch_size() -> None:
    big = [list(range(i, i + 10)) for i in range(0, 60, 10)]  # six takes of 10: behind
    batches = run(2, [(0.0, t) for t in big], size=30, behind=10)
    assert [b for b, _ in batches] == [list(range(0, 30)), list(range(30, 60))]


def test_a_merged_batch_never_holds_more_than_the_batch_size() -> None:
    script = [(0.0, list(range(0, 20))), (0.0, list(range(20, 40)))]
    batches = run(2, script, size=30, behind=10)
    assert [b for b, _ in batches] == [list(range(0, 20)), list(range(20, 40))]


def test_a_full_batch_goes_at_once() -> None:
    # it does not wait for a next take (within is long here, so waiting would show)
    [(batch, at)] = run(1, [(0.0, list(range(10)))] * 3, size=30, behind=10, within=1.0)
    assert len(batch) == 30
    assert at < 0.5


def test_a_small_take_ends_the_merge() -> None:
    script = [(0.0, list(range(10))), (0.0, [10, 11]), (0.0, list(range(12, 22)))]
    batches = run(2, script, size=100, behind=10)
    assert [b for b, _ in batches] == [list(range(12)), list(range(12, 22))]


def test_a_merge_is_not_held_for_a_take_that_does_not_come() -> None:
    # a backlog's last take, then a quiet feed: the batch goes after ``within``, not at the
    # next reading (an hour here)
    [(batch, at)] = run(1, [(0.0, list(range(10)))], size=100, behind=10)
    assert batch == list(range(10))
    assert 2 * WITHIN <= at < 10 * WITHIN


def test_a_take_that_comes_while_a_batch_is_handled_is_the_next_batch() -> None:
    # the next take is awaited in the background: it is not lost when the merge gives up
    script = [(0.0, list(range(10))), (5 * WITHIN, [10, 11])]
    batches = run(2, script, size=100, behind=10)
    assert [b for b, _ in batches] == [list(range(10)), [10, 11]]


def test_behind_zero_is_faust_s_cut_and_the_stream_is_asked_as_configured() -> None:
    takes = Takes([(0.0, list(range(10))), (0.0, list(range(10, 20)))])

    async def go() -> list[tuple[list[int], float]]:
        it = merged_takes(takes, 500, WITHIN, 0)
        try:
            return await first(2, it)
        finally:
            await it.aclose()

    assert [b for b, _ in asyncio.run(go())] == [list(range(10)), list(range(10, 20))]
    assert takes.asked == (500, WITHIN)


def test_closing_the_batches_closes_the_take_waited_for() -> None:
    takes = Takes([(0.0, list(range(10)))])

    async def go() -> None:
        it = merged_takes(takes, 100, WITHIN, 10)
        await first(1, it)
        assert not takes.closed  # the next take is being waited for
        await it.aclose()
        await asyncio.sleep(0)  # the cancelled take runs its cleanup
        assert takes.closed

    asyncio.run(go())
