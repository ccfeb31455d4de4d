"""streams/consumer.py: the offset a worker may commit (pure bookkeeping, no broker).

The consumer's commit bookkeeping is set by hand on a GuardedConsumer that was never started:
``_committed_offset`` (what Kafka holds: the next offset to read), ``_acked`` (offsets acked
since) and ``_gap`` (offsets known not to exist).
"""

from __future__ import annotations

from collections import defaultdict

import pytest
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
