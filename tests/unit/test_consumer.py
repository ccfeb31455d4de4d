"""streams/consumer.py: the offset a worker may commit (pure bookkeeping, no broker).

The consumer's commit bookkeeping is set by hand on a GuardedConsumer that was never started:
``_committed_offset`` (what Kafka holds: the next offset to read), ``_acked`` (offsets acked
since) and ``_gap`` (offsets known not to exist).
"""

from __future__ import annotations

from collections import defaultdict
from types import SimpleNamespace

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


class FakeThread:
    """The consumer thread's side of a seek to committed offsets: what the broker returned."""

    def __init__(self, committed: dict[TP, int | None]) -> None:
        self.committed = committed
        self.sought: list[tuple[TP, int]] = []

    async def call_thread(self, fn: object, *args: object) -> dict[TP, int | None]:
        return dict(self.committed)

    def _ensure_consumer(self) -> None:
        return None

    def seek(self, tp: TP, offset: int) -> None:
        self.sought.append((tp, offset))


@pytest.mark.parametrize(
    ("ours", "broker", "result", "sought"),
    [
        (27, 3, 27, [(TOPIC, 27)]),  # a stale read behind our own commit: keep ours
        (None, 3, 3, []),  # nothing committed by this process yet: the broker's
        (3, 27, 27, []),  # the broker is ahead (as it is after a restart): the broker's
        (27, None, 27, [(TOPIC, 27)]),
    ],
)
async def test_a_seek_to_committed_offsets_never_goes_behind_our_own_commit(
    ours: int | None, broker: int | None, result: int, sought: list[tuple[TP, int]]
) -> None:
    c = bookkeeping(ours, [])
    thread = FakeThread({TOPIC: broker})
    c._thread = thread  # type: ignore[assignment]
    c.app = SimpleNamespace(tables=SimpleNamespace(changelog_topics=set()))  # type: ignore[assignment]
    assert await c.seek_to_committed() == {TOPIC: result}
    assert thread.sought == sought
