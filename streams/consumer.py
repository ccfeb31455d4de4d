"""A Faust consumer that delivers each partition's messages once, in order, from its committed
offset after every rebalance, and never commits past a message no agent has acknowledged.

Faust 0.15 with aiokafka loses messages around a rebalance in four ways; each is handled here
and tested in tests/unit/test_consumer.py (and on the real broker in
tests/integration/test_consumer_seek.py):

1. Seek to nowhere. Faust drops what its streams take while flow is suspended, expecting its
   seek to committed offsets to fetch it again, but aiokafka's ``seek_to_committed`` leaves a
   partition with no committed offset, or offset 0, where it is (``if offset and offset >
   0``): a day of readings lost after a SIGKILL before the first commit.
   :func:`seek_to_committed_or_beginning` seeks such partitions to their beginning, where
   ``auto_offset_reset="earliest"`` started them.
2. Delivery from the wrong place. Table recovery resumes the stream partitions while flow is
   already active and only then seeks them to their committed offsets, so records fetched from
   wherever aiokafka stood are delivered before and during that seek. Faust's generation and
   flow checks do not see a seek, and its read offset then drops the re-fetched head as read.
   Seen in about one restart in ten (tests/integration/test_faults.py): averages:1 was sought
   to its beginning, delivered 19..301 from a fetch made before, and dropped the re-fetched
   0..18; 17 and 18 were never processed. :meth:`GuardedConsumer.getmany` delivers nothing of
   a partition between its assignment and its seek, and after it only the offset due next; a
   record past it seeks the partition back. The seek is made again in the event loop once the
   thread's seek returns, since records from the new position can arrive before it does and
   be dropped as unsought (a partition that then never delivered again, once in 10 runs).
3. Acks of skipped events. A stream acks what it skips: an event fetched in an earlier
   generation, or taken while flow is suspended for a rebalance, which the revocation then
   commits unprocessed. :meth:`GuardedConsumer.ack` ignores acks of either kind; the events are
   delivered again from the committed offset after the rebalance.
4. The commit past a hole. ``Consumer._new_offset`` commits the first run of consecutive acked
   offsets even when the offset right after the committed one is *not* acked (its head check is
   ``min(acked) - committed > 1``), which turns any skip into a loss. The guard commits only a
   run that starts at the committed offset. A backstop stays for a cause not found yet: when a
   partition's head stays unacked for ``STALL_S`` while later offsets are acked, it is sought
   back and delivered again, counted in ``quantrac_consumer_reseeks_total``.

One change is for speed, not loss: :meth:`GuardedConsumer._drain_messages` delivers the messages
of one fetch in one task, raced once against a suspension of flow, where Faust races every
message's delivery (four tasks and an ``asyncio.wait`` each).

Re-delivery is safe: streams/batch.py skips what a key's state already applied, which is exact
because delivery from the committed offset is in order; writes downstream are idempotent.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Mapping, Sequence, Set
from typing import Any, cast

from aiokafka import AIOKafkaConsumer
from faust.transport.consumer import CONSUMER_FETCHING
from faust.transport.drivers.aiokafka import Consumer
from faust.types import TP, Message
from mode import Service, ServiceT

log = logging.getLogger(__name__)

STALL_S = 5.0  # > broker_commit_interval: a head acked late is not a stall
JUMP_RETRIES = 3  # seeks back for one jump before the skipped offsets count as gone from the log
YIELD_EVERY = 100  # messages delivered between two yields to the event loop (Faust's own figure)


async def seek_to_committed_or_beginning(
    consumer: AIOKafkaConsumer, leave: frozenset[str] = frozenset()
) -> tuple[dict[Any, int | None], dict[Any, int]]:
    """Seek every assigned partition to its committed offset, and one without a commit (or at
    offset 0, which aiokafka leaves alone too) to its beginning, except partitions of the
    topics in ``leave``; return the committed offsets and the offset each partition sought now
    stands at."""
    committed: dict[Any, int | None] = await consumer.seek_to_committed()
    sought = {tp: offset for tp, offset in committed.items() if tp.topic not in leave}
    fresh = [tp for tp, offset in sought.items() if not offset]
    if fresh:
        await consumer.seek_to_beginning(*fresh)
    starts = {tp: offset or await consumer.position(tp) for tp, offset in sought.items()}
    return committed, starts


class GuardedConsumer(Consumer):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._stalled_since: dict[TP, float] = {}
        self._next_offset: dict[TP, int] = {}  # stream partition -> the offset due next
        self._unsought: set[TP] = set()  # assigned stream partitions not yet sought
        self._jumps: dict[TP, tuple[int, int, int]] = {}  # tp -> (expected, got, times)

    async def _drain_messages(self, fetcher: ServiceT) -> None:
        """Faust's fetch loop (``Consumer._drain_messages``, faust-streaming 0.15.3), delivering
        each fetch's messages in one task raced once against a suspension of flow.

        Faust races each message's delivery against ``suspend_flow`` with
        ``Service.wait_first``: four tasks and an ``asyncio.wait`` per message. Delivering a
        fetch at once took a worker's CPU a reading from 75 to 63 µs on a 600 k replay (the two
        versions side by side, 2026-12-06). A suspension (a rebalance) still
        cancels the delivery where it stands. What the fetch held after that point is not
        delivered and its read offsets stay where they were; the rebalance seeks every
        partition to its committed offset, and it comes again from there. (Faust marked such
        messages read and relied on the same seek.)"""
        consumer_stopped = cast(Service, self)._stopped.is_set
        fetcher_stopped = cast(Service, fetcher)._stopped.is_set
        try:
            while not (consumer_stopped() or fetcher_stopped()):
                self.diag.set_flag(CONSUMER_FETCHING)
                fetch = self.getmany(timeout=1.0)
                await self.sleep(0)  # getmany can return at once, again and again
                if not self.should_stop:
                    fetched = [pair async for pair in fetch]
                    if fetched and not self.suspend_flow.is_set():
                        await self.wait_first(self._deliver(fetched), self.suspend_flow.wait())
                self.diag.unset_flag(CONSUMER_FETCHING)
        except self.consumer_stopped_errors:
            if self.transport.app.should_stop:
                self.log.info("Broker stopped consumer, shutting down...")
                return
            raise
        except asyncio.CancelledError:
            if self.transport.app.should_stop:
                self.log.info("Consumer shutting down for user cancel.")
                return
            raise
        except Exception as exc:
            self.log.exception("Drain messages raised: %r", exc)
            raise
        finally:
            self.diag.unset_flag(CONSUMER_FETCHING)

    async def _deliver(self, fetched: Sequence[tuple[TP, Message]]) -> None:
        """Faust's per-message step: skip what was read already, mark a gap in the offsets,
        commit every ``broker_commit_every`` acks, hand the message to its streams; stop at a
        suspension of flow."""
        callback, read_offset = self.callback, self._read_offset
        commit_every = self._commit_every
        acks_enabled_for = self.app.topics.acks_enabled_for
        suspended = self.suspend_flow.is_set
        for i, (tp, message) in enumerate(fetched, 1):
            if i % YIELD_EVERY == 0:
                await asyncio.sleep(0)
            if suspended():
                return
            offset, r_offset = message.offset, read_offset[tp]
            if r_offset is not None and offset < r_offset:
                continue  # read already
            if r_offset and offset - r_offset > 1 and acks_enabled_for(message.topic):
                await self._add_gap(tp, r_offset + 1, offset)
            if commit_every is not None and self._n_acked >= commit_every:
                self._n_acked = 0
                await self.commit()
            await callback(message)
            read_offset[tp] = offset

    async def seek_to_committed(self) -> Mapping[TP, int]:
        # aiokafka runs in Faust's consumer thread: call it there, as Faust's own method does.
        # Changelog partitions are left alone: table recovery positions them itself.
        thread: Any = self._thread
        changelogs = frozenset(self.app.tables.changelog_topics)
        committed, starts = await thread.call_thread(
            seek_to_committed_or_beginning, thread._ensure_consumer(), changelogs
        )
        # Records the thread fetched from the new positions reached this loop before the call
        # returned, and were dropped as unsought: seek again, here, where expectations and
        # position change in one step.
        for tp, offset in starts.items():
            await self.seek(tp, offset)
        return cast(Mapping[TP, int], committed)

    async def seek(self, partition: TP, offset: int) -> None:
        self._next_offset[partition] = offset
        self._unsought.discard(partition)
        await super().seek(partition, offset)

    async def on_partitions_assigned(self, assigned: Set[TP], generation_id: int = 0) -> None:
        changelogs = self.app.tables.changelog_topics
        self._unsought.update(tp for tp in assigned if tp.topic not in changelogs)
        await super().on_partitions_assigned(assigned, generation_id)

    async def on_partitions_revoked(self, revoked: Set[TP]) -> None:
        for tp in revoked:
            self._unsought.discard(tp)
            self._next_offset.pop(tp, None)
            self._jumps.pop(tp, None)
            self._stalled_since.pop(tp, None)
        await super().on_partitions_revoked(revoked)

    async def getmany(self, timeout: float) -> AsyncIterator[tuple[TP, Message]]:
        """Faust's fetch, delivering each stream partition's offsets in sequence from where it
        was last sought, and nothing of a partition assigned but not yet sought.

        After a rebalance, table recovery resumes the stream partitions while flow is active
        and only then seeks them to their committed offsets, so records fetched from wherever
        aiokafka stood arrive before and during that seek; Faust's generation and flow checks
        do not see a seek, and its read offset then drops the re-fetched head as already read.
        A record past the expected offset seeks its partition back there and is dropped with
        the rest of its batch; one below it was delivered already."""
        sought: set[TP] = set()
        async for tp, message in super().getmany(timeout):
            if tp in sought or tp in self._unsought:
                continue
            expected = self._next_offset.get(tp)
            offset = message.offset
            if expected is None:  # not a stream partition: table recovery checks its own
                yield tp, message
            elif offset == expected or self._gone(tp, expected, offset):
                self._next_offset[tp] = offset + 1
                yield tp, message
            elif offset > expected:
                log.info(  # expected after a rebalance now and then: nothing is lost
                    "%s:%s fetched offset %s while %s was due: seeking back to it",
                    tp.topic,
                    tp.partition,
                    offset,
                    expected,
                )
                sought.add(tp)
                await self.seek(tp, expected)

    def _gone(self, tp: TP, expected: int, offset: int) -> bool:
        """Count a jump from ``expected`` to ``offset``; once the same jump has come back
        JUMP_RETRIES times after seeking back, the offsets between are not in the log
        (retention deleted them, or compaction, or transaction markers): mark them a gap, so
        commits go past them, and go on."""
        if offset < expected:
            return False
        last = self._jumps.get(tp)
        times = last[2] + 1 if last is not None and last[:2] == (expected, offset) else 1
        self._jumps[tp] = (expected, offset, times)
        if times <= JUMP_RETRIES:
            return False
        log.error(
            "%s:%s offsets %s..%s are not in the log: going on from %s",
            tp.topic,
            tp.partition,
            expected,
            offset - 1,
            offset,
        )
        del self._jumps[tp]
        self._gap[tp].addi(expected, offset)
        self._gap[tp].merge_overlaps()
        return True

    def ack(self, message: Message) -> bool:
        app = self.app
        if (
            message.generation_id not in (None, app.consumer_generation_id)
            or not app.flow_control.is_active()
        ):
            # Faust's streams ack what they skip: an event fetched before a rebalance, or taken
            # while flow is suspended for one, whose revocation would then commit it unprocessed.
            # Not this generation's to commit: it is delivered again from the committed offset
            # after the rebalance (and skipped as applied if an agent did finish it).
            message.acked = True
            self._unacked_messages.discard(message)
            return False
        return bool(super().ack(message))

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
            # the bookkeeping too: if this fires, it shows which path lost the head
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
