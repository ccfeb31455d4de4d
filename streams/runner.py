"""One runner owns the protocol of every stateful stage; a stage only declares itself.

A :class:`Stage` is a declaration: the topic it reads, how a message becomes items, the state
key of an item, the state table and its codec, and a pure step
``step(state, items, config) -> (state, outputs)`` (thresholds/steps.py, streams/validate.py).
:meth:`Runner.run` does the rest, for every stage the same way. For each batch of messages
(``stream_batch`` messages or ``stream_batch_seconds``, whichever comes first; while the agent
is behind, takes are merged up to ``stream_batch``: streams/takes.py), with the cyclic
garbage collector paused until the batch's records are gone (streams/collector.py):

1. **Decode.** Each message becomes its items (``Stage.decode``). A message that is not its
   topic's record becomes one dead letter with its exact bytes and coordinates
   (``topic:partition:offset``) and the stream goes on (streams/errors.py); so does a message
   its decoder raises on (``processing_error``).
2. **Group.** A message's items are grouped by state key (``Stage.key``; None: not this stage's
   item), in order. One key's messages all come from one partition, in offset order.
3. **Skip.** A group whose message was applied to that key's state before a restart (its offset
   at or below the offset stored with the state) is skipped: no sample counts twice
   (streams/batch.py).
4. **Step.** The step gets the key's state (loaded once per batch, or the live object kept from
   the previous one), the group's items and the stage's config; its new state is recorded with
   the message's offset, unless the stage's ``version`` of it says nothing durable changed. A
   step that raises dead-letters each item of the group (coordinates and the item's 1-based
   line when a message carries several), and the state it may have begun to change is loaded
   afresh: no input can stall a stream.
5. **Finish.** An optional ``Stage.finish`` sees the batch's outputs before they leave: the
   validate stage stores the readings there, so a reading is in the database before its raw
   offset is committed, and turns what the database refuses into dead letters.
6. **Count.** ``Stage.count`` labels each output for the stage's metrics (one ``inc`` per label
   per batch: a labels() lookup per record costs measurable CPU).
7. **Commit** (``Batch.commit``): every output is sent to its topic (``Runner.route``) and
   confirmed by the broker (one a finish stored already carries a header that spares its sink
   a second write); then the changed states go to their changelogs, sealed by a marker
   (a state no message of the batch changed is not written: its cost is its size, not its
   change, and a rule's or a stack's state holds days of windows);
   then the messages are acked, so their offsets can be committed. A crash at any point repeats
   outputs (downstream is idempotent) and never loses one.
"""

from __future__ import annotations

import contextlib
import functools
import logging
from collections import Counter
from collections.abc import Awaitable, Callable, Hashable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from core.errors import RejectReason
from core.records import Rejection
from streams import collector
from streams.batch import Batch, LiveStates
from streams.errors import DeadLetters, Undecodable
from streams.takes import merged_takes

log = logging.getLogger(__name__)

T = TypeVar("T")  # an item
S = TypeVar("S")  # a key's state


@dataclass(slots=True)
class Output:
    """A record a step produced, with the message and item it came from (for a dead letter).
    Never changed once made (not ``frozen``: a frozen dataclass's constructor costs three
    times as much, and the worker makes two or three of these per reading)."""

    event: Any  # None for a record a finish made of several messages' outputs
    line: int | None
    record: Any
    dead: bool = False  # a dead letter the runner made (counted as a processing error)
    stored: bool = False  # in the database already: sent with core.topics.STORED_HEADER


@dataclass(frozen=True)
class Stage(Generic[T, S]):
    """What a stage is: everything the runner needs and nothing of how it runs."""

    name: str  # the agent's name; the label of its metrics and dead letters
    table: Any  # the state table (Faust), co-partitioned with the input topic
    decode: Callable[[Any], Sequence[T] | Rejection | Undecodable]  # a message → its items
    key: Callable[[T], str | None]  # an item → its state key (None: not this stage's)
    load: Callable[[str, Any], S]  # (key, stored value or None) → state
    dump: Callable[[S], Any]
    step: Callable[[S, Sequence[T], Any], tuple[S, Sequence[Any]]]
    config: Any = None  # the step's third argument
    finish: Callable[[Batch, list[Output]], Awaitable[list[Output]]] | None = None
    route: Callable[[Output], tuple[Any, str, Any] | None] | None = None  # else the runner's
    count: Callable[[Any], Hashable | None] = field(default=lambda record: None)
    on_counts: Callable[[Counter[Hashable]], None] = field(default=lambda counts: None)
    # None: every step's state is logged. Else a state → a token that changes whenever the
    # state changes in a way a restart must see; a step that leaves it equal is not logged (its
    # message, delivered again after a crash, is applied again to the same state: its outputs
    # come again, and downstream is idempotent). ``id`` suits a state the step replaces, never
    # changes in place: the old object is alive during the step, so a new one has a new id.
    version: Callable[[Any], Hashable] | None = None


@dataclass(frozen=True)
class Link:
    """A stage of a chain: fed in-process, in the same batch, by the outputs of earlier stages.
    ``feeds``: (an earlier stage's name, its output record → this stage's items)."""

    stage: Stage[Any, Any]
    feeds: tuple[tuple[str, Callable[[Any], Sequence[Any]]], ...]


def typed(expand: Callable[[Any], Sequence[T]] = lambda v: [v]) -> Callable[[Any], Any]:
    """``Stage.decode`` for a typed topic (RecordSchema): the record's items, or the dead
    letter of a value that is not its record."""

    def decode(event: Any) -> Sequence[T] | Undecodable:
        value = event.value
        return value if isinstance(value, Undecodable) else expand(value)

    return decode


class Runner:
    """Runs stages on Faust streams (see the module docstring for the order of a batch)."""

    def __init__(
        self,
        live: LiveStates,
        dead: DeadLetters,
        route: Callable[[Output], tuple[Any, str, Any] | None],
        *,
        batch: int,
        within: float,
        behind: int,
    ) -> None:
        self.live = live  # the states committed by this process (streams/batch.py)
        self.dead = dead
        self.route = route  # an output → (topic, key, value to send), or None: not sent
        self.size, self.within = batch, within
        self.behind = behind  # this many waiting behind a take merge the next ones (takes.py)

    def agent(self, stage: Stage[Any, Any]) -> Callable[[Any], Awaitable[None]]:
        """The Faust agent function that runs ``stage``."""

        async def agent(stream: Any) -> None:
            await self.run(stage, stream)

        return agent

    async def run(self, stage: Stage[Any, Any], stream: Any) -> None:
        """A batch after another: a chain of one stage (:meth:`run_chain`)."""
        await self.run_chain(stage, (), stream)

    def apply(self, stage: Stage[Any, Any], batch: Batch, events: Sequence[Any]) -> list[Output]:
        """Steps 1–4 of a batch: its outputs, dead letters included, in input order."""
        outputs: list[Output] = []
        for event in events:
            try:
                items = stage.decode(event)
            except Exception as exc:  # e.g. no limits can be resolved for the record's date
                log.debug("%s could not take %s", stage.name, event.message, exc_info=exc)
                reason = RejectReason.PROCESSING_ERROR
                rej = self.dead.rejection(stage.name, event, reason, exc)
                outputs.append(Output(event, None, rej, dead=True))
                continue
            if isinstance(items, Rejection):  # a message its decoder refused, bytes and all
                outputs.append(Output(event, None, items))
                continue
            if isinstance(items, Undecodable):
                reason = RejectReason.JSON_SCHEMA
                rej = self.dead.rejection(stage.name, event, reason, items.error)
                outputs.append(Output(event, None, rej, dead=True))
                continue
            outputs += self._step(stage, batch, event, items)
        return outputs

    def _step(
        self, stage: Stage[Any, Any], batch: Batch, event: Any, items: Sequence[Any]
    ) -> list[Output]:
        """Steps 2–4 for one message's items: group by key, skip what was applied, step."""
        outputs: list[Output] = []
        numbered = len(items) > 1
        for key, group in _by_key(stage.key, items):
            batch.begin()  # before the slot is taken: a failed step gives it back (abandon)
            slot = batch.slot(
                stage.table, key, event, functools.partial(stage.load, key), stage.dump
            )
            if slot is None:
                continue  # applied before a restart; its outputs were confirmed then
            version = stage.version(slot.state) if stage.version is not None else None
            try:
                state, produced = stage.step(slot.state, [it for _, it in group], stage.config)
            except Exception as exc:
                batch.abandon()
                outputs += self._dead(stage.name, event, group, exc, numbered)
                continue
            if stage.version is None or stage.version(state) != version:
                batch.set(slot, event, state)
            outputs += [Output(event, None, r) for r in produced]
        return outputs

    # -- chains: several stages in one pass per message ------------------------------------------

    def chain_agent(
        self, head: Stage[Any, Any], links: Sequence[Link]
    ) -> Callable[[Any], Awaitable[None]]:
        """The Faust agent function that runs ``head`` and its ``links`` in one pass."""

        async def agent(stream: Any) -> None:
            await self.run_chain(head, links, stream)

        return agent

    async def run_chain(self, head: Stage[Any, Any], links: Sequence[Link], stream: Any) -> None:
        """Batches of ``head`` and its ``links``, each link fed in-process by earlier stages'
        outputs of the same batch, stage after stage: every state a message changes, in every
        stage, is keyed to that one input message and committed with it, so the skip on a
        re-delivered message is as exact as for one stage. Outputs still go to their topics
        (sinks, consoles)."""
        # closed on the way out, error or not: the take it awaits in the background stops too
        batches = merged_takes(stream, self.size, self.within, self.behind)
        async with contextlib.aclosing(batches):
            async for events in batches:
                with collector.paused():  # its records die with it (streams/collector.py)
                    await self._chain_batch(head, links, stream, events)

    async def _chain_batch(
        self, head: Stage[Any, Any], links: Sequence[Link], stream: Any, events: Sequence[Any]
    ) -> None:
        batch = Batch(self.live)
        done = await self.chain_steps(head, links, batch, events)
        for stage, outs in done.values():
            self._emit(stage, batch, outs)
        await batch.commit(stream, events)

    async def chain_steps(
        self, head: Stage[Any, Any], links: Sequence[Link], batch: Batch, events: Sequence[Any]
    ) -> dict[str, tuple[Stage[Any, Any], list[Output]]]:
        """Steps 1–5 of a batch for ``head`` and its ``links``: each stage's outputs, by name."""
        done: dict[str, tuple[Stage[Any, Any], list[Output]]] = {}
        outputs = self.apply(head, batch, events)
        if head.finish is not None:
            outputs = await head.finish(batch, outputs)
        done[head.name] = (head, outputs)
        for link in links:
            outputs = self.apply_fed(link, batch, events, done)
            if link.stage.finish is not None:
                outputs = await link.stage.finish(batch, outputs)
            done[link.stage.name] = (link.stage, outputs)
        return done

    def apply_fed(
        self,
        link: Link,
        batch: Batch,
        events: Sequence[Any],
        done: Mapping[str, tuple[Stage[Any, Any], list[Output]]],
    ) -> list[Output]:
        """A link's steps over the batch, message by message, its items taken from the earlier
        stages' outputs of that message (a take that raises dead-letters the record's message)."""
        stage = link.stage
        per_event: dict[int, list[Any]] = {}
        outputs: list[Output] = []
        for upstream, take in link.feeds:
            for out in done[upstream][1]:
                if out.dead or out.event is None:
                    continue
                try:
                    items = take(out.record)
                except Exception as exc:
                    reason = RejectReason.PROCESSING_ERROR
                    rej = self.dead.rejection(stage.name, out.event, reason, exc)
                    outputs.append(Output(out.event, None, rej, dead=True))
                    continue
                per_event.setdefault(id(out.event), []).extend(items)
        for event in events:
            fed = per_event.get(id(event))
            if fed:
                outputs += self._step(stage, batch, event, fed)
        return outputs

    def _emit(self, stage: Stage[Any, Any], batch: Batch, outputs: list[Output]) -> None:
        counts: Counter[Hashable] = Counter()
        for out in outputs:
            label = None if out.dead else stage.count(out.record)
            if label is not None:
                counts[label] += 1
            routed = (stage.route or self.route)(out)
            if routed is not None:
                batch.emit(*routed, stored=out.stored)
        stage.on_counts(counts)

    def _dead(
        self, stage: str, event: Any, group: list[tuple[int, Any]], exc: Exception, numbered: bool
    ) -> list[Output]:
        log.debug("%s failed on %s", stage, event.message, exc_info=exc)
        reason = RejectReason.PROCESSING_ERROR
        out = []
        for index, item in group:
            line = index + 1 if numbered else None
            source_id = getattr(item, "source_id", None)
            rej = self.dead.rejection(stage, event, reason, exc, line=line, source_id=source_id)
            out.append(Output(event, line, rej, dead=True))
        return out


def _by_key(
    key: Callable[[T], str | None], items: Sequence[T]
) -> list[tuple[str, list[tuple[int, T]]]]:
    groups: dict[str, list[tuple[int, T]]] = {}
    for index, item in enumerate(items):
        k = key(item)
        if k is not None:
            groups.setdefault(k, []).append((index, item))
    return list(groups.items())
