"""Partitions dealt to workers by load (streams/balance.py, streams/assignor.py): the registry's
partitions are uneven, so a count-balanced split caps what a second worker adds."""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from typing import Any

import faust
import pytest
from aiokafka.coordinator.protocol import ConsumerProtocolMemberMetadata
from faust.assignor.client_assignment import ClientAssignment, ClientMetadata

from stations.registry import load_registry
from streams.assignor import LoadAwareAssignor
from streams.balance import (
    FLOOR,
    STICKY_SLACK,
    partition_loads,
    partition_of,
    spread,
    standbys,
)

LOADS = partition_loads(load_registry(), 8)


def shares(loads: Sequence[float], plan: Mapping[str, set[int]]) -> dict[str, float]:
    total = sum(loads)
    return {c: sum(loads[p] for p in ps) / total for c, ps in plan.items()}


def best_peak_share(loads: Sequence[float], n: int) -> float:
    """The lowest possible heaviest share over every way to split the partitions in ``n``."""
    best = 1.0
    for owners in itertools.product(range(n), repeat=len(loads)):
        per = [0.0] * n
        for p, c in enumerate(owners):
            per[c] += loads[p]
        best = min(best, max(per) / sum(loads))
    return best


def assert_partition(plan: Mapping[str, set[int]], n: int) -> None:
    every = sorted(p for ps in plan.values() for p in ps)
    assert every == list(range(n)), "each partition to exactly one worker"


def test_partition_of_is_kafkas_default_partitioner() -> None:
    # murmur2 of the key, positive, modulo the partitions: what the gateway's producer does
    from aiokafka.partitioner import murmur2

    for key in ("KK_TP_01", "NT_HD_03", "x"):
        assert partition_of(key, 8) == (murmur2(key.encode()) & 0x7FFFFFFF) % 8


def test_loads_are_the_registrys_readings_per_second() -> None:
    registry = load_registry()
    rate = sum(1 / s.interval_for(p.code) for s in registry.sources for p in s.parameters)
    assert sum(LOADS) == pytest.approx(rate)
    assert all(w > 0 for w in LOADS)
    # the unevenness this module exists for: 4.8 % to 18.6 % of the readings
    assert max(LOADS) / sum(LOADS) > 2.5 * min(LOADS) / sum(LOADS)


def test_an_empty_partition_still_counts_a_little() -> None:
    registry = load_registry()
    loads = partition_loads(registry, 512)  # more partitions than sources: most are empty
    mean = sum(loads) / len(loads)
    assert min(loads) == pytest.approx(FLOOR * mean, rel=0.02)


def test_two_fresh_workers_split_the_registry_as_evenly_as_it_can_be_split() -> None:
    plan = spread(LOADS, {"w1": set(), "w2": set()})
    assert_partition(plan, 8)
    assert max(shares(LOADS, plan).values()) == pytest.approx(best_peak_share(LOADS, 2))
    # Faust's count-balanced even/odd split gives the busier worker 53.7 %
    even_odd = {"w1": {0, 2, 4, 6}, "w2": {1, 3, 5, 7}}
    assert max(shares(LOADS, even_odd).values()) > 0.53
    assert max(shares(LOADS, plan).values()) < 0.505


@pytest.mark.parametrize("n", [3, 4])
def test_more_workers_are_within_the_slack_of_the_best_split(n: int) -> None:
    plan = spread(LOADS, {f"w{i}": set() for i in range(n)})
    assert_partition(plan, 8)
    peak = max(shares(LOADS, plan).values())
    assert peak <= best_peak_share(LOADS, n) + STICKY_SLACK / n + 1e-9


def test_a_plan_given_back_comes_back_unchanged() -> None:
    for n in (1, 2, 3):
        first = spread(LOADS, {f"w{i}": set() for i in range(n)})
        assert spread(LOADS, first) == first


def test_a_joining_worker_takes_load_from_the_running_one_which_keeps_the_rest() -> None:
    plan = spread(LOADS, {"old": set(range(8)), "new": set()})
    assert_partition(plan, 8)
    assert plan["new"], "the new worker gets work"
    peak = max(shares(LOADS, plan).values())
    assert peak <= best_peak_share(LOADS, 2) + STICKY_SLACK / 2 + 1e-9
    # only what the newcomer needs moved: the running worker kept the heaviest partitions
    assert max(LOADS[p] for p in plan["old"]) == max(LOADS)


def test_a_leaving_worker_s_partitions_go_to_the_others() -> None:
    two = spread(LOADS, {"a": set(), "b": set()})
    one = spread(LOADS, {"a": two["a"]})
    assert one == {"a": set(range(8))}


def test_a_partition_two_workers_claim_goes_to_one() -> None:
    plan = spread(LOADS, {"a": {0, 1, 2, 4}, "b": {0, 3, 5, 6, 7}})
    assert_partition(plan, 8)


def test_partitions_out_of_range_are_ignored() -> None:
    plan = spread(LOADS, {"a": {0, 99}, "b": set()})
    assert_partition(plan, 8)


def test_standbys_are_on_another_worker_and_prefer_warm_state() -> None:
    actives = spread(LOADS, {"a": set(), "b": set(), "c": set()})
    owner = {p: c for c, ps in actives.items() for p in ps}
    copies = standbys(LOADS, actives, {}, replicas=1)
    for c, ps in copies.items():
        assert not ps & actives[c], "a standby is never the active itself"
    assert sorted(p for ps in copies.values() for p in ps) == list(range(8))
    # a worker that held partition 0 before keeps its copy, if it is not its owner now
    warm_holder = next(c for c in sorted(actives) if c != owner[0])
    again = standbys(LOADS, actives, {warm_holder: {0}}, replicas=1)
    assert 0 in again[warm_holder]


def test_standbys_never_exceed_the_other_workers() -> None:
    actives = spread(LOADS, {"a": set(), "b": set()})
    copies = standbys(LOADS, actives, {}, replicas=3)
    assert copies == {"a": actives["b"], "b": actives["a"]}
    assert standbys(LOADS, {"a": set(range(8))}, {}, replicas=1) == {"a": set()}


class Cluster:
    """What the assignor reads of aiokafka's ClusterMetadata: each topic's partitions."""

    def __init__(self, partitions: Mapping[str, int]) -> None:
        self.partitions = partitions

    def partitions_for_topic(self, topic: str) -> set[int]:
        return set(range(self.partitions[topic]))


def member(topics: Sequence[str], actives: Mapping[str, list[int]] | None = None) -> Any:
    meta = ClientMetadata(
        assignment=ClientAssignment(actives=dict(actives or {}), standbys={}),
        url="http://w:6066",
        changelog_distribution={},
    )
    return ConsumerProtocolMemberMetadata(4, list(topics), meta.dumps())


def assign(loads: Sequence[float], members: Mapping[str, Any], cluster: Cluster) -> dict:
    app = faust.App("balance-test", broker="kafka://127.0.0.1:1")
    assignor = LoadAwareAssignor.for_loads(loads, "t.readings.raw")(app, replicas=1)
    out = assignor.assign(cluster, dict(members))
    decoded = {}
    for m, a in out.items():
        meta = ClientMetadata.loads(assignor._decompress(a.user_data))
        decoded[m] = meta.assignment
    return decoded


def test_faust_assigns_the_keyed_group_by_load_and_other_groups_by_count() -> None:
    keyed = ["t.readings.raw", "t.readings.valid", "t.quantrac-windows-changelog"]
    cluster = Cluster({**{t: 8 for t in keyed}, "t.ticks.one": 1})
    members = {m: member([*keyed, "t.ticks.one"]) for m in ("m1", "m2")}
    out = assign(LOADS, members, cluster)
    actives = {m: set(a.actives["t.readings.raw"]) for m, a in out.items()}
    assert_partition(actives, 8)
    assert max(shares(LOADS, actives).values()) < 0.505
    for m, a in out.items():  # co-partitioned: every keyed topic the same partitions
        assert all(set(a.actives[t]) == actives[m] for t in keyed)
        other = "m2" if m == "m1" else "m1"
        assert set(a.standbys["t.readings.raw"]) == actives[other]
    assert sorted(p for a in out.values() for p in a.actives["t.ticks.one"]) == [0]
    # a second rebalance with what each got: nothing moves
    again = assign(
        LOADS, {m: member([*keyed, "t.ticks.one"], out[m].actives) for m in out}, cluster
    )
    assert {m: set(a.actives["t.readings.raw"]) for m, a in again.items()} == actives


def test_without_loads_faust_s_count_balanced_assignment_stands() -> None:
    keyed = ["t.readings.raw"]
    out = assign((), {m: member(keyed) for m in ("m1", "m2")}, Cluster({"t.readings.raw": 8}))
    assert sorted(len(a.actives["t.readings.raw"]) for a in out.values()) == [4, 4]


def test_for_loads_binds_the_loads_and_the_report() -> None:
    seen: list[tuple[list[int], float]] = []

    def hear(partitions: list[int], share: float) -> None:
        seen.append((partitions, share))

    bound = LoadAwareAssignor.for_loads([1.0, 2.0], "t.readings.raw", hear)
    app = faust.App("balance-test", broker="kafka://127.0.0.1:1")
    instance = bound(app, replicas=1)  # as Faust builds it
    assert isinstance(instance, LoadAwareAssignor)
    assert (instance.loads, instance.keyed_topic, instance.replicas) == (
        (1.0, 2.0),
        "t.readings.raw",
        1,
    )
    assert instance.on_assigned is hear
    assert LoadAwareAssignor(app).loads == ()
