"""The worker's chain offline: CPU per reading of the fused stages, without broker or database.

``python -m bench.chain`` (``make bench-chain``) runs validate → average → correct_o2 → check,
VN_AQI and water classification (streams/stages.py: ``chain``) over a simulated replay of every
registered series, batch by batch as the worker cuts a backlog: steps 1–5 of the runner's
order (streams/runner.py), with the cyclic collector paused per batch as the worker pauses it.
What it leaves out is the broker's and the database's half: the storage stubs accept every row,
and the commit is its state half only (``Batch.keep_states``: the changed states dumped into
their tables, the objects kept live); nothing is sent.

It is for comparing two versions of the code, not a target (``make bench`` holds those). The
whole-pipeline replays differ by ±15–30 % between runs on the bench's shared vCPUs (the same code
measured 63–85 µs a reading on one evening); this one is one process doing the same work, so
run each version a few times, interleaved, and compare the minimum:

    for root in ../base .; do (cd $root && .venv/bin/python -m bench.chain --repeat 3); done

The outputs are counted by stage and kind: a change that is meant to be only faster must leave
them equal.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, fields
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any

from prometheus_client import CollectorRegistry

from core.metrics import Metrics
from core.records import raw_batches
from core.settings import Settings
from stations.registry import load_registry
from stations.sim_registry import series_for
from stations.simulator import readings
from streams import stages
from streams.batch import Batch, LiveStates
from streams.errors import DeadLetters
from streams.runner import Runner
from streams.topology import Tables

SEED = 11
END = datetime(2026, 12, 1, tzinfo=UTC)  # a fixed replay: the same readings every run


class Table:
    """What the runner reads and writes of a Faust table."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.data: dict[str, Any] = {}

    def get(self, key: str) -> Any:
        return self.data.get(key)


@dataclass(frozen=True)
class Run:
    readings: int
    messages: int
    cpu_s: float
    outputs: Counter[tuple[str, str]]  # (stage, record type) → count

    @property
    def us_per_reading(self) -> float:
        return 1e6 * self.cpu_s / self.readings


class Chain:
    """The fused chain wired as ``streams.app`` wires it, on in-memory tables."""

    def __init__(self, batch: int) -> None:
        settings = Settings(
            kafka_url="kafka://127.0.0.1:9", database_url="postgresql://x@127.0.0.1/x"
        )
        registry = load_registry()
        metrics = Metrics(CollectorRegistry())
        self.tables = Tables(**{f.name: Table(f.name) for f in fields(Tables)})
        dead = DeadLetters(SimpleNamespace(name="readings.rejected"), metrics.processing_errors)
        wiring = stages.Wiring.build(
            settings,
            metrics,
            registry,
            tables=self.tables,
            dead=dead,
            write_readings=_stored,
            store_early=_stored_early,
            relabel=_no_relabel,
            topics=None,  # type: ignore[arg-type]  # nothing is routed: nothing is sent
        )
        self.head, self.links = stages.chain(wiring)
        self.runner = Runner({}, dead, lambda out: None, batch=batch, within=1.0, behind=0)
        self.live: LiveStates = {}
        self.series = series_for(registry)

    async def batch(self, events: Sequence[Any], outputs: Counter[tuple[str, str]]) -> None:
        """One batch as the worker runs it (``Runner._chain_batch``), less the sends."""
        batch = Batch(self.live)
        done = await self.runner.chain_steps(self.head, self.links, batch, events)
        for name, (_, outs) in done.items():
            outputs.update((name, type(o.record).__name__) for o in outs)
        batch.keep_states()


async def _stored(rows: Sequence[Any]) -> None:
    return None


async def _stored_early(sink: str, records: Sequence[Any]) -> set[int]:
    return set()


async def _no_relabel(request: Any) -> list[tuple[datetime, float]]:
    return []


def events_of(chain: Chain, hours: float) -> tuple[int, list[Any]]:
    """The replay's readings.raw messages as the worker's events (one per source and
    measurement time, as stations deliver them): the number of readings, and the events."""
    rs = list(readings(chain.series, END - timedelta(hours=hours), END, SEED))
    at = END.timestamp()
    events = []
    for offset, b in enumerate(raw_batches(rs)):
        value = b.dumps(serializer="json")
        message = SimpleNamespace(
            topic="readings.raw", partition=0, offset=offset, timestamp=at, value=value
        )
        events.append(SimpleNamespace(key=b.source_id.encode(), value=value, message=message))
    return len(rs), events


def run(hours: float, batch: int) -> Run:
    """One replay of ``hours`` through a fresh chain, ``batch`` messages a batch."""
    chain = Chain(batch)
    n, events = events_of(chain, hours)
    outputs: Counter[tuple[str, str]] = Counter()

    async def replay() -> float:
        gc.collect()
        gc.freeze()  # as the worker does once started (streams/worker.py: tune_gc)
        t0 = time.process_time()
        for i in range(0, len(events), batch):
            gc.disable()
            try:
                await chain.batch(events[i : i + batch], outputs)
            finally:
                gc.enable()
        return time.process_time() - t0

    try:
        cpu = asyncio.run(replay())
    finally:
        gc.unfreeze()
    return Run(n, len(events), cpu, outputs)


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    p.add_argument("--hours", type=float, default=12.0, help="replay length (event time)")
    p.add_argument("--batch", type=int, default=5000, help="messages a batch (stream_batch)")
    p.add_argument("--repeat", type=int, default=1)
    args = p.parse_args(argv)
    runs = [run(args.hours, args.batch) for _ in range(args.repeat)]
    for r in runs:
        print(
            f"{r.readings:,} readings in {r.messages:,} messages: {r.cpu_s:.2f} CPU s, "
            f"{r.us_per_reading:.1f} µs a reading"
        )
    print(f"min {min(r.us_per_reading for r in runs):.1f} µs a reading")
    for (stage, kind), count in sorted(runs[0].outputs.items()):
        print(f"  {stage:<20} {kind:<18} {count:>9,}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
