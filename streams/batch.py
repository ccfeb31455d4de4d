"""Exactly-once state, at-least-once output: how every stateful agent handles a batch of events.

Faust tables log state changes to changelog topics independently of the consumer offsets, so
after a crash a restarted worker restores state that may already include events whose offsets
were never committed; those events are then delivered again. Two rules make that harmless:

1. Output first, state second. A batch's records are sent and *acknowledged by the broker*
   before its state changes are logged, and its events are acked (offsets committed) last. A
   crash can lose a state change but never an output.
2. Each table value remembers the offset of the last event applied to it (``{"o": offset,
   "s": state}``; one key's events all come from one partition, in order). A re-delivered event
   at or below that offset is skipped, so no sample is counted twice. (One event may carry
   several items for a key, as a ``QcBatch`` does: they are all applied, or all skipped.)

Downstream consumers are idempotent (primary keys, revisions, violation sequence numbers), so an
output sent twice after a crash changes nothing.

Loading a state from its table value costs as much as dumping it, once per key per batch. A
``LiveStates`` shared by the agents keeps the object behind each value this process committed;
the next batch takes it instead of loading, if the table still holds that very value (a restore
or rebalance replaces it, and the state is loaded again). A batch takes the object out while it
changes it, so a batch that fails leaves nothing half-applied behind.

A value this process committed is held in its table encoded, as the bytes its changelog record
carries: it is only read again when the live object is gone, and a dump of thousands of small
lists and numbers, renewed every batch beside the live object, cost several times its encoded
size and left the worker's heap fragmented (its resident memory grew with the hours a replay
covered; 2026-12-07). Those of ``PACK_FROM`` bytes or more are held compressed (:class:`Packed`):
a rule's 72 hours of window records are 15 kB of JSON and 2 kB packed, and the bytes held fell
from 7.4 to 1.6 MiB at 83 h of replay, for about 1 µs of CPU a reading. A value restored from
the changelog is held decoded, as Faust restores it; :func:`stored_value` reads all three.
"""

from __future__ import annotations

import asyncio
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from faust.serializers import codecs

from core.topics import STORED_HEADER

MARKER_KEY = "__quantrac_marker__"  # never read as state
MARKER_VALUE = {"o": -1, "s": None}

# (table name, key) -> (the table value committed, its offset, the state object it was dumped
# from)
LiveStates = dict[tuple[str, str], tuple[Any, int, Any]]
CODEC = "json"  # the tables' value serializer (Faust's default): what their changelogs carry
PACK_FROM = 512  # bytes: smaller values gain little, and pymalloc holds them compactly anyway


class Packed(bytes):
    """A committed table value held zlib-compressed in memory (its changelog record is not)."""

    @classmethod
    def of(cls, value: bytes) -> bytes:
        return cls(zlib.compress(value, 1)) if len(value) >= PACK_FROM else value


def stored_value(table: Any, key: str) -> dict[str, Any] | None:
    """``table``'s value for ``key``, ``{"o": offset, "s": state dump}``, however it is held."""
    value = table.get(key)
    if isinstance(value, Packed):
        return codecs.loads(CODEC, zlib.decompress(value))
    return codecs.loads(CODEC, value) if isinstance(value, bytes) else value


@dataclass
class _Slot:
    table: Any
    key: str
    state: Any
    offset: int  # of the last event applied, stored with the state at commit
    applied: int  # the stored offset when the batch began: events up to it are done
    stored: Any  # the table value when the batch began
    partition: int
    dump: Callable[[Any], Any]
    dirty: bool = False


class Batch:
    """Collects one batch's state changes and outputs; ``commit`` applies them in order."""

    def __init__(self, live: LiveStates | None = None) -> None:
        self._slots: dict[tuple[str, str], _Slot] = {}
        self._out: list[tuple[Any, str, Any, dict[str, bytes] | None]] = []
        self._live: LiveStates = {} if live is None else live
        self._touched: list[_Slot] = []  # slots taken since begin(): see abandon()

    def slot(
        self,
        table: Any,
        key: str,
        event: Any,
        load: Callable[[Any], Any],
        dump: Callable[[Any], Any],
    ) -> _Slot | None:
        """The key's state slot for ``event`` (``slot.state`` is ``load(stored or None)``),
        or None when the event was already applied before a restart: skip it."""
        ident = (table.name, key)
        slot = self._slots.get(ident)
        if slot is None:
            stored = table.get(key)
            live = self._live.pop(ident, None)
            if live is not None and live[0] is stored:
                offset, state = live[1], live[2]
            else:
                value = stored_value(table, key)
                offset = value["o"] if value else -1
                state = load(value["s"] if value else None)
            slot = _Slot(
                table=table,
                key=key,
                state=state,
                offset=offset,
                applied=offset,
                stored=stored,
                partition=event.message.partition,
                dump=dump,
            )
            self._slots[ident] = slot
        if event.message.offset <= slot.applied:
            return None
        self._touched.append(slot)
        return slot

    def state(self, table: Any, key: str) -> Any:
        """The key's state as this batch has left it so far (it must have a slot)."""
        return self._slots[(table.name, key)].state

    def begin(self) -> None:
        """One event's processing starts (streams/errors.py guards it)."""
        self._touched.clear()

    def abandon(self) -> None:
        """That event failed: forget the states it took and had not yet ``set``, so one it
        changed in place before raising is loaded afresh. A state an earlier event of the batch
        had set stays, with that event's offset and outputs."""
        for slot in self._touched:
            if not slot.dirty:
                self._slots.pop((slot.table.name, slot.key), None)
        self._touched.clear()

    def set(self, slot: _Slot, event: Any, state: Any) -> None:
        """Record that ``state`` is the slot's state after applying ``event``."""
        slot.state = state
        slot.offset = event.message.offset
        slot.dirty = True

    def emit(self, topic: Any, key: str, value: Any, stored: bool = False) -> None:
        """Send ``value`` at commit; ``stored``: it is in the database already (the header
        tells its sink not to write it again)."""
        self._out.append((topic, key, value, _STORED if stored else None))

    async def commit(self, stream: Any, events: Sequence[Any]) -> None:
        """Send and confirm the outputs, then log the state changes, then ack the events."""
        if self._out:
            # A failure raises here, before any state is logged.
            await _produce(
                [(t, key, value, None, None, None, headers) for t, key, value, headers in self._out]
            )
        changed = self.keep_states()
        if changed:
            # The changelog partition is the source event's: the table is co-partitioned
            # with the topic keyed by source id (Faust's table[key] = v would use the
            # *current* event's partition, which in a batch is another event's).
            await _produce(
                [_changelog(slot.table, slot.partition, slot.key, v, "raw") for slot, v in changed]
            )
            await self._seal([slot for slot, _ in changed])
        for event in events:
            await stream.ack(event)

    def keep_states(self) -> list[tuple[_Slot, Any]]:
        """The state half of ``commit`` before its sends: each changed state's value (offset
        and dump, encoded) into its table, every state object kept live for the next batch.
        Returns the changed slots with their encoded values, for the changelogs."""
        changed: list[tuple[_Slot, bytes]] = []
        for slot in self._slots.values():
            ident = (slot.table.name, slot.key)
            if not slot.dirty:  # unchanged (or changed only in what is not logged): kept live
                self._live[ident] = (slot.stored, slot.applied, slot.state)
                continue
            value = codecs.dumps(CODEC, {"o": slot.offset, "s": slot.dump(slot.state)})
            held = Packed.of(value)
            slot.table.data[slot.key] = held
            self._live[ident] = (held, slot.offset, slot.state)
            changed.append((slot, value))
        return changed

    @staticmethod
    async def _seal(changed: Sequence[_Slot]) -> None:
        """Make the state changes durable and restorable before the events are acked.

        A restarting worker restores a table up to the changelog's end offset. Tansu reports
        the end of a partition as the start of its last produce batch + 1, so a restore would
        miss the tail of a multi-record last batch. After the state records are flushed, one
        marker record per changelog partition, alone in its batch, makes the reported end the
        true end. (Apache Kafka needs no marker; it costs one small record per batch.)
        """
        await _produce(
            [
                _changelog(table, partition, MARKER_KEY, MARKER_VALUE)
                for table, partition in {(s.table, s.partition) for s in changed}
            ]
        )


def _changelog(
    table: Any, partition: int, key: str, value: Any, value_serializer: str | None = None
) -> _Record:
    """A record of ``table``'s changelog, serialised as the table does (``"raw"``: ``value``
    is encoded already)."""
    return (
        table.changelog_topic,
        key,
        value,
        partition,
        table.key_serializer,
        value_serializer or table.value_serializer,
        None,
    )


# (topic, key, value, partition or None, key serializer, value serializer, headers or None)
_Record = tuple[Any, Any, Any, int | None, Any, Any, dict[str, bytes] | None]
_STORED = {STORED_HEADER: b"1"}


async def _produce(records: Sequence[_Record]) -> None:
    """Send (topic, key, value, partition, key serializer, value serializer, headers) records
    and wait until the broker has confirmed every one; raise if it refused any.

    Straight to the producer, serialised as the topic would: Faust's ``send_soon`` goes
    through its buffer, a FutureMessage, its sensors and a ``wait_for`` per record on flush,
    which cost more than the send itself. A partition of None is the producer's partitioner
    on the key, as for ``send_soon``."""
    if not records:
        return
    producer = records[0][0].app.producer
    confirmations = []
    for topic, key, value, partition, key_serializer, value_serializer, extra in records:
        headers = topic.prepare_headers(None if extra is None else dict(extra))
        key_bytes, headers = topic.prepare_key(key, key_serializer, None, headers)
        value_bytes, headers = topic.prepare_value(value, value_serializer, None, headers)
        confirmations.append(
            await producer.send(
                topic.get_topic_name(),
                key_bytes,
                value_bytes,
                partition=partition,
                timestamp=None,
                headers=headers,
            )
        )
    await producer.flush()
    await asyncio.gather(*confirmations)
