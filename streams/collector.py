"""The cyclic garbage collector, paused while a batch is processed.

A batch makes hundreds of thousands of objects (records, outputs, rows, dumped states) that all
live until it ends and then go by reference counting; none is part of a cycle. Collecting the
young generation while they live only traverses them and promotes them: over a 30-h replay
the collector ran 214 times during batches, took 1.9 of the worker's 46 CPU seconds and freed
nothing. Paused for the batch, it runs after it, when only what the batch keeps is young.
Cycles made meanwhile are collected then; the thresholds (streams/worker.py) are unchanged.

Several agents' batches interleave on the event loop: the collector resumes when the last
batch that paused it ends. A batch that waits (it stores through a database outage, however
long) lets it run again after ``LONGEST_PAUSE_S``: the other agents, the web server and the
retries go on meanwhile, and their cycles are collected.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
from collections.abc import Iterator

LONGEST_PAUSE_S = 10.0  # a replay batch of 5,000 messages takes 2-5 s here

_paused = 0  # batches running with the collector paused
_resume = False  # whether the collector was on when the first of them paused it
_deadline: asyncio.TimerHandle | None = None  # resumes it when a pause outlasts its bound


@contextlib.contextmanager
def paused(longest_s: float = LONGEST_PAUSE_S) -> Iterator[None]:
    """No automatic collection inside the block (nor in other blocks it overlaps), for at
    most ``longest_s`` when an event loop runs (else the block cannot wait)."""
    global _paused, _resume, _deadline
    if _paused == 0:
        _resume = gc.isenabled()
        gc.disable()
        with contextlib.suppress(RuntimeError):  # no running loop: no deadline
            _deadline = asyncio.get_running_loop().call_later(longest_s, _overdue)
    _paused += 1
    try:
        yield
    finally:
        _paused -= 1
        if _paused == 0:
            if _deadline is not None:
                _deadline.cancel()
                _deadline = None
            if _resume:
                gc.enable()


def _overdue() -> None:
    """The pause outlasted its bound: collect again, though its batches have not ended."""
    global _deadline
    _deadline = None
    if _resume:
        gc.enable()
