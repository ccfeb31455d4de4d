"""A Faust consumer that never commits past a message no agent has acknowledged.

Faust 0.15 (``faust.transport.consumer.Consumer._new_offset``) commits the first run of
consecutive acked offsets even when the offset right after the committed one is *not* acked
(its head check is ``min(acked) - committed > 1``). Normally harmless, since agents ack in
order; but a restarted worker can skip the first message of a partition in the stream's
flow-control/generation check without fetching it again, and Faust then commits past it: that
message is lost to its stage (seen in tests/integration/test_faults.py as samples missing from
an hourly average after a SIGKILL).

:class:`GuardedConsumer` commits only a run that starts at the committed offset, and when a
partition's head has stayed unacked for ``STALL_S`` while later offsets are acked, it seeks the
partition back to its committed offset so the head is delivered again. Re-delivery is safe
here: every stateful agent skips events its state already applied (streams/batch.py), the
averager skips readings by position, and every write is idempotent.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from faust.transport.drivers.aiokafka import Consumer
from faust.types import TP

log = logging.getLogger(__name__)

STALL_S = 5.0  # > broker_commit_interval: a head acked late is not a stall


class GuardedConsumer(Consumer):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._stalled_since: dict[TP, float] = {}

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
            log.warning(
                "%s:%s offset %s was never acked while later ones were: seeking back to it",
                tp.topic,
                tp.partition,
                committed,
            )
            await self.seek(tp, committed)
            self._stalled_since.pop(tp, None)
        return stalled
