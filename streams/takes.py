"""How an agent's messages are cut into batches: short when the feed is live, long when behind.

Faust's ``noack_take(size, within)`` returns what its stream delivered within ``within``
seconds after the previous batch was done (or ``size`` messages). While a batch is handled
nothing is delivered (the drainer waits for it), so on a backlog each take holds what Faust
hands over in ``within`` seconds: about a thousand messages at 0.05 s on the bench machine,
whatever ``size`` says. Every batch writes each state it changed once (streams/batch.py), and
a rule's or a stack's state holds days of windows, so small batches on a backlog cost most of
their time writing state.

``merged_takes`` keeps the live path as it is and merges takes while the agent is behind,
which the consumer knows: while ``behind`` messages or more wait in the partitions of the
latest take (its lag, from the broker's end offsets of the last fetch), the next take is added
to the batch, up to ``size`` messages. A live feed's lag is a handful of messages, and its
takes pass as they come.

The lag, not a take's size, says whether the agent is behind: on a backlog the takes shrink
as the consumer's prefetched messages run out and the next fetch is under way (1,170, 766,
331, 61 on the bench machine), then grow again. Judged by their size, merges ended at each
dip, and the dip's small take became a batch of its own: one of 227 messages wrote 1,366
states, against about 1,600 for one of 5,000.

The next take is waited for in the background, for at most ``PATIENCE × within`` seconds, so a
batch is never held for input that does not come (an end offset the broker reported but the
fetch never delivers).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, Callable, Sequence
from typing import Any

#: how many ``within`` a merge waits for the next take while messages wait: a take is cut
#: ``within`` after it is asked for, and a fetch from the broker can take longer than that
PATIENCE = 10

#: events → how many messages wait behind the newest of them, in their partitions
Lag = Callable[[Sequence[Any]], int]


def consumer_lag(stream: Any) -> Lag:
    """The lag of the partitions a take's events came from: the end offset the broker gave in
    the consumer's last fetch of each, minus the offset after the take's newest event there.
    A partition without an end offset yet, or no longer assigned (a rebalance), counts 0."""

    def lag(events: Sequence[Any]) -> int:
        newest: dict[Any, int] = {}
        for event in events:
            newest[event.message.tp] = event.message.offset
        consumer = stream.app.consumer
        waiting = 0
        for tp, offset in newest.items():
            try:
                end = consumer.highwater(tp)
            except Exception:  # revoked (aiokafka asserts it is assigned), or stopping:
                continue  # not behind there, which only means the batch goes as Faust cut it
            if end is not None:
                waiting += max(0, end - offset - 1)
        return waiting

    return lag


async def merged_takes(
    stream: Any, size: int, within: float, behind: int, lag: Lag | None = None
) -> AsyncGenerator[list[Any], None]:
    """Batches of ``stream``'s events (unacked: the caller acks them). ``behind`` ≤ 0: every
    take is a batch, as Faust cuts it. ``lag``: the stream's consumer lag by default. When
    the stream ends, a batch being merged is dropped unacked: its messages are delivered again
    to whoever takes the partitions next."""
    takes = stream.noack_take(size, within=within).__aiter__()
    waiting = lag or consumer_lag(stream)
    batch: list[Any] = []
    nxt: asyncio.Future[Any] | None = None
    try:
        while True:
            if nxt is None:
                nxt = asyncio.ensure_future(takes.__anext__())
            if batch:
                done, _ = await asyncio.wait({nxt}, timeout=PATIENCE * within)
                if not done:  # the messages said to wait did not come: do not hold the batch
                    yield batch
                    batch = []
                    continue
            try:
                events = await nxt
            except StopAsyncIteration:
                return
            nxt = None
            if len(batch) + len(events) > size:  # never more than ``size`` in one batch
                yield batch
                batch = []
            batch += events
            if behind <= 0 or len(batch) >= size or waiting(events) < behind:
                yield batch
                batch = []
    finally:
        if nxt is not None:
            nxt.cancel()
