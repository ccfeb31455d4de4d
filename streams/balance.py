"""Which worker takes which partition: by the load each partition carries, not by their count.

Every keyed topic is partitioned by source id (Kafka's default partitioner, murmur2), so a
partition's load is the readings its sources send, which the registry knows from their cadences.
The 71 sources hash to 8 partitions carrying 4.8 % to 18.6 % of the readings each; Faust's
assignor deals partitions out by count, so of two workers one got 53.7 % of the readings and the
pair ran at most 1 / 0.537 = 1.86 × one worker. Dealt by load, the heavier gets 50.2 %.

Everything here is pure: :func:`partition_loads` from a registry, :func:`spread` for the actives
and :func:`standbys` for their warm copies. ``streams/assignor.py`` puts them into Faust's
assignment protocol.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence, Set

from aiokafka.partitioner import DefaultPartitioner

from stations.registry import Registry

#: How much heavier than the best balance found from scratch a worker may be and still keep the
#: partitions it held (a share of the mean load): keeping warm state beats a 2 % better split.
STICKY_SLACK = 0.02
#: A partition no registered source hashes to still carries some work (ticks, a source added
#: later, a stray key): it counts as this share of the mean partition's load.
FLOOR = 0.01
_PARTITIONER = DefaultPartitioner()


def partition_of(source_id: str, partitions: int) -> int:
    """The partition Kafka's default partitioner sends ``source_id``'s messages to, as the
    gateway, the feeds and Faust all key them."""
    ps = list(range(partitions))
    return int(_PARTITIONER(source_id.encode(), ps, ps))


def partition_loads(registry: Registry, partitions: int) -> list[float]:
    """Readings a second each partition carries at the registry's cadences, each at least
    ``FLOOR`` of the mean."""
    loads = [0.0] * partitions
    for source in registry.sources:
        rate = sum(1 / source.interval_for(p.code) for p in source.parameters)
        loads[partition_of(source.id, partitions)] += rate
    floor = FLOOR * sum(loads) / partitions if any(loads) else 1.0
    return [max(w, floor) for w in loads]


def _total(loads: Sequence[float], parts: Set[int]) -> float:
    return sum(loads[p] for p in parts)


def _peak(loads: Sequence[float], plan: Mapping[str, set[int]]) -> float:
    return max((_total(loads, ps) for ps in plan.values()), default=0.0)


def _deal(loads: Sequence[float], plan: dict[str, set[int]], todo: Sequence[int]) -> None:
    """Heaviest partition first, each to the least loaded worker (ties: the first by name)."""
    for p in sorted(todo, key=lambda p: (-loads[p], p)):
        least = min(plan, key=lambda c: (_total(loads, plan[c]), c))
        plan[least].add(p)


def _improve(loads: Sequence[float], plan: dict[str, set[int]]) -> None:
    """Moves and swaps out of the heaviest worker while each lowers the pair's peak."""
    while True:
        heavy = max(plan, key=lambda c: (_total(loads, plan[c]), c))
        h = _total(loads, plan[heavy])
        best: tuple[float, str, int, int | None] | None = None
        for other in plan:
            if other == heavy:
                continue
            o = _total(loads, plan[other])
            for p in plan[heavy]:
                for q in [None, *plan[other]]:
                    d = loads[p] - (loads[q] if q is not None else 0.0)
                    peak = max(h - d, o + d)
                    if peak < h - 1e-12 and (best is None or peak < best[0]):
                        best = (peak, other, p, q)
        if best is None:
            return
        _, other, p, q = best
        plan[heavy].remove(p)
        plan[other].add(p)
        if q is not None:
            plan[other].remove(q)
            plan[heavy].add(q)


def _from_scratch(loads: Sequence[float], clients: Sequence[str]) -> dict[str, set[int]]:
    plan: dict[str, set[int]] = {c: set() for c in clients}
    _deal(loads, plan, range(len(loads)))
    _improve(loads, plan)
    return plan


def spread(loads: Sequence[float], held: Mapping[str, Set[int]]) -> dict[str, set[int]]:
    """Each partition to exactly one worker (``held``: each worker's actives before).

    Balanced by load: the heaviest worker carries at most ``STICKY_SLACK`` of the mean more than
    the best split found from scratch (dealt heaviest first, then moves and swaps out of the
    heaviest worker). Sticky: a worker keeps what it held, heaviest first, while it stays within
    that bound; the rest is dealt and improved the same way, and if that misses the bound the
    split from scratch is taken. The same input gives the same plan, and a plan
    given back as ``held`` comes back unchanged, so a rebalance moves nothing it need not.
    """
    clients = sorted(held)
    assert clients, "at least one worker"
    ideal = _from_scratch(loads, clients)
    bound = _peak(loads, ideal) + STICKY_SLACK * sum(loads) / len(clients)
    plan: dict[str, set[int]] = {c: set() for c in clients}
    taken: set[int] = set()
    for c in clients:  # a partition two workers claim (a zombie's) stays with the first
        mine = {p for p in held[c] if 0 <= p < len(loads)} - taken
        for p in sorted(mine, key=lambda p: (-loads[p], p)):
            if _total(loads, plan[c]) + loads[p] <= bound:
                plan[c].add(p)
                taken.add(p)
    _deal(loads, plan, [p for p in range(len(loads)) if p not in taken])
    _improve(loads, plan)
    return plan if _peak(loads, plan) <= bound else ideal


def standbys(
    loads: Sequence[float],
    actives: Mapping[str, Set[int]],
    held: Mapping[str, Set[int]],
    replicas: int,
) -> dict[str, set[int]]:
    """``replicas`` warm copies of each partition on workers other than its active one
    (at most one fewer than the workers). Each copy prefers a worker that already holds the
    partition's state (``held``: standbys before; a former active is warm too), then the worker
    with the least standby load."""
    clients = sorted(actives)
    replicas = min(replicas, len(clients) - 1)
    owner = {p: c for c, ps in actives.items() for p in ps}
    plan: dict[str, set[int]] = {c: set() for c in clients}
    for p in sorted(owner, key=lambda p: (-loads[p], p)):
        others = [c for c in clients if c != owner[p]]
        others.sort(key=lambda c: (p not in held.get(c, ()), _total(loads, plan[c]), c))
        for c in others[:replicas]:
            plan[c].add(p)
    return plan
