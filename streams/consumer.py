"""A Faust consumer that never skips, or commits past, a message no agent has acknowledged.

1. The skip (fixed here). After a rebalance Faust drops what its streams take from the queue
   while flow is suspended, expecting its seek to committed offsets to fetch it again. aiokafka's
   ``seek_to_committed`` leaves a partition with no committed offset, or offset 0, where it is
   (``if offset and offset > 0``), so the first messages of a partition that a fresh group, or a
   worker killed before its first commit, fetched during recovery were never delivered (seen as
   a lost day of readings after a SIGKILL in tests/integration/test_pipeline.py).
   :func:`seek_to_committed_or_beginning` seeks such partitions to their beginning, where
   ``auto_offset_reset="earliest"`` started them; tests/integration/test_consumer_seek.py shows
   both behaviours on the real broker.
2. The commit (guarded here). Faust 0.15 (``faust.transport.consumer.Consumer._new_offset``)
   commits the first run of consecutive acked offsets even when the offset right after the
   committed one is *not* acked (its head check is ``min(acked) - committed > 1``), which turns
   any skip into a loss. :class:`GuardedConsumer` commits only a run that starts at the
   committed offset; when a partition's head stays unacked for ``STALL_S`` while later offsets
   are acked, it seeks the partition back so the head is delivered again and counts it in
   ``quantrac_consumer_reseeks_total``. Re-delivery is safe (streams/batch.py skips what a
   key's state already applied; writes are idempotent), but it is a backstop, not a cure: an
   item of the head whose key a *later* event already updated is skipped as applied.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from typing import Any

from aiokafka import AIOKafkaConsumer
from faust.transport.drivers.aiokafka import Consumer
from faust.types import TP

log = logging.getLogger(__name__)

STALL_S = 5.0  # > broker_commit_interval: a head acked late is not a stall


async def seek_to_committed_or_beginning(
    consumer: AIOKafkaConsumer, leave: frozenset[str] = frozenset()
) -> dict[Any, int | None]:
    """Seek every assigned partition to its committed offset, and one without a commit (or at
    offset 0, which aiokafka leaves alone too) to its beginning, except partitions of the
    topics in ``leave``; return the committed offsets."""
    committed: dict[Any, int | None] = await consumer.seek_to_committed()
    fresh = [tp for tp, offset in committed.items() if not offset and tp.topic not in leave]
    if fresh:
        await consumer.seek_to_beginning(*fresh)
    return committed


class GuardedConsumer(Consumer):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._stalled_since: dict[TP, float] = {}

    async def seek_to_committed(self) -> Mapping[TP, int]:
        # aiokafka runs in Faust's consumer thread: call it there, as Faust's own method does.
        # Changelog partitions are left alone: table recovery positions them itself.
        thread: Any = self._thread
        committed: Mapping[TP, int] = await thread.call_thread(
            seek_to_committed_or_beginning,
            thread._ensure_consumer(),
            frozenset(self.app.tables.changelog_topics),
        )
        return committed

    def _head_unacked(self, tp: TP) -> bool:
        committed = self._committed_offset[tp]
        acked = self._acked[tp]
        if committed is None or not acked or min(acked) <= committed:
            return False
        return not self._gap[tp].overlaps(committed)  # a known gap counts as acked

    def _new_offset(self, tp: TP) -> int | None:
        if self._head_unacked(tp):
            self._stalled_since.setdefault(tp, time.monotonic())
            return None
        self._stalled_since.pop(tp, None)
        return super()._new_offset(tp)

    async def reseek_stalled(self) -> list[TP]:
        """Seek every partition whose head has stayed unacked too long back to its committed
        offset; return them."""
        now = time.monotonic()
        stalled = [
            tp
            for tp, since in list(self._stalled_since.items())
            if now - since >= STALL_S and self._head_unacked(tp)
        ]
        for tp in stalled:
            committed = self._committed_offset[tp]
            assert committed is not None
            # the bookkeeping too: which of Faust's paths lost the head is still open
            # (docs/architecture.md, "Open defect")
            log.warning(
                "%s:%s offset %s was never acked while later ones were: seeking back to it "
                "(acked %s..%s, %d offsets; read offset %s)",
                tp.topic,
                tp.partition,
                committed,
                min(self._acked[tp]),
                max(self._acked[tp]),
                len(self._acked[tp]),
                self._read_offset.get(tp),
            )
            await self.seek(tp, committed)
            self._stalled_since.pop(tp, None)
        return stalled
