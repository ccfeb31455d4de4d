"""How an agent's messages are cut into batches: short when the feed is live, long when behind.

Faust's ``noack_take(size, within)`` returns what its stream delivered within ``within``
seconds after the previous batch was done (or ``size`` messages). While a batch is handled
nothing is delivered (the drainer waits for it), so on a backlog each take holds what Faust
hands over in ``within`` seconds: about a thousand messages at 0.05 s on the bench machine,
whatever ``size`` says. Every batch writes each state it changed once (streams/batch.py), and
a rule's or a stack's state holds days of windows, so small batches on a backlog cost most of
their time writing state.

``merged_takes`` keeps the live path as it is and merges takes while the agent is behind: a
take of ``behind`` messages or more (a live feed's take holds a handful) is held, and the next
take is added to it while one comes within ``2 × within`` seconds (Faust cuts a take
``within`` after it is asked for), up to ``size`` messages. The next take is waited for in the
background, so a batch is never held longer than that for input that may not come.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator
from typing import Any


async def merged_takes(
    stream: Any, size: int, within: float, behind: int
) -> AsyncGenerator[list[Any], None]:
    """Batches of ``stream``'s events (unacked: the caller acks them). ``behind`` ≤ 0: every
    take is a batch, as Faust cuts it. When the stream ends, a batch being merged is dropped
    unacked: its messages are delivered again to whoever takes the partitions next."""
    takes = stream.noack_take(size, within=within).__aiter__()
    batch: list[Any] = []
    nxt: asyncio.Future[Any] | None = None
    try:
        while True:
            if nxt is None:
                nxt = asyncio.ensure_future(takes.__anext__())
            if batch:
                # a take is cut ``within`` after it is asked for: give it that and as long again
                done, _ = await asyncio.wait({nxt}, timeout=2 * within)
                if not done:  # nothing more came in time: the agent has caught up
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
            if behind <= 0 or len(events) < behind or len(batch) >= size:
                yield batch
                batch = []
    finally:
        if nxt is not None:
            nxt.cancel()
