"""Faust's partition assignor, dealing the keyed topics' partitions by load (streams/balance.py).

Faust assigns each group of co-partitioned topics with a ``CopartitionedAssignor`` that balances
partition counts. :class:`LoadAwareAssignor` swaps in :class:`WeightedCopartitionedAssignor` for
the groups with as many partitions as the loads it was given (the keyed topics and their
tables' changelogs, which must stay together); any other group is assigned as Faust does.
Everything else (the protocol, the metadata members exchange, the changelog distribution) is
Faust's own.

``_perform_assignment`` follows faust-streaming 0.15's (``faust/assignor/partition_assignor.py``)
line for line except where it builds the co-partitioned assignor; pyproject pins faust-streaming
below 0.16 for this reason.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, MutableMapping, Sequence
from typing import Any, cast

from faust.assignor.client_assignment import ClientAssignment, CopartitionedAssignment
from faust.assignor.cluster_assignment import ClusterAssignment
from faust.assignor.copartitioned_assignor import CopartitionedAssignor
from faust.assignor.partition_assignor import (
    ClientAssignmentMapping,
    MemberAssignmentMapping,
    MemberMetadataMapping,
    PartitionAssignor,
)

from streams.balance import spread, standbys

log = logging.getLogger(__name__)


class WeightedCopartitionedAssignor(CopartitionedAssignor):
    """One co-partitioned group's actives dealt by load, and ``replicas`` standbys each."""

    def __init__(
        self,
        loads: Sequence[float],
        topics: set[str],
        cluster_asgn: MutableMapping[str, CopartitionedAssignment],
        num_partitions: int,
        replicas: int,
    ) -> None:
        super().__init__(topics, cluster_asgn, num_partitions, replicas)
        self.loads = loads

    def get_assignment(self) -> dict[str, CopartitionedAssignment]:
        before = self._client_assignments
        actives = spread(self.loads, {c: set(a.actives) for c, a in before.items()})
        warm = {c: set(a.actives) | set(a.standbys) for c, a in before.items()}
        copies = standbys(self.loads, actives, warm, self.replicas)
        return {
            c: CopartitionedAssignment(actives=actives[c], standbys=copies[c], topics=self.topics)
            for c in before
        }


class LoadAwareAssignor(PartitionAssignor):
    """Faust's assignor with the keyed topics dealt by ``loads`` (one per partition; empty:
    Faust's count-balanced assignment throughout). ``on_assigned`` hears this worker's active
    partitions of ``keyed_topic`` and their share of the load after each rebalance."""

    def __init__(
        self,
        app: Any,
        replicas: int = 0,
        loads: Sequence[float] = (),
        keyed_topic: str = "",
        on_assigned: Callable[[list[int], float], None] | None = None,
    ) -> None:
        super().__init__(app, replicas=replicas)
        self.loads = tuple(loads)
        self.keyed_topic = keyed_topic
        self.on_assigned = on_assigned

    @classmethod
    def for_loads(
        cls,
        loads: Sequence[float],
        keyed_topic: str = "",
        on_assigned: Callable[[list[int], float], None] | None = None,
    ) -> type[LoadAwareAssignor]:
        """This class bound to these arguments: Faust builds its assignor from a class, with
        only the app and the standby replicas."""

        class Bound(cls):  # type: ignore[valid-type,misc]  # a subclass of a runtime class
            def __init__(self, app: Any, replicas: int = 0) -> None:
                super().__init__(app, replicas, loads, keyed_topic, on_assigned)

        return cast(type[LoadAwareAssignor], Bound)

    def on_assignment(self, assignment: Any) -> None:
        super().on_assignment(assignment)
        if not self.loads or not self.keyed_topic:
            return
        mine = sorted(self._assignment.actives.get(self.keyed_topic, ()))
        share = sum(self.loads[p] for p in mine if p < len(self.loads)) / sum(self.loads)
        log.info(
            "active for %s partitions %s: %.1f %% of the registry's readings",
            self.keyed_topic,
            mine,
            100 * share,
        )
        if self.on_assigned is not None:
            self.on_assigned(mine, share)

    def copartitioned_assignor(
        self,
        topics: set[str],
        assignments: MutableMapping[str, CopartitionedAssignment],
        num_partitions: int,
    ) -> CopartitionedAssignor:
        if num_partitions == len(self.loads):
            return WeightedCopartitionedAssignor(
                self.loads, topics, assignments, num_partitions, self.replicas
            )
        return CopartitionedAssignor(topics, assignments, num_partitions, self.replicas)

    def _perform_assignment(
        self, cluster: Any, member_metadata: MemberMetadataMapping
    ) -> MemberAssignmentMapping:
        cluster_assgn = ClusterAssignment()
        clients_metadata = {
            member_id: self._get_client_metadata(metadata)
            for member_id, metadata in member_metadata.items()
        }
        subscriptions = {
            member_id: cast(list[str], metadata.subscription)
            for member_id, metadata in member_metadata.items()
        }
        for member_id in member_metadata:
            cluster_assgn.add_client(
                member_id, subscriptions[member_id], clients_metadata[member_id]
            )
        topics = cluster_assgn.topics()
        copartitioned_groups = self._get_copartitioned_groups(topics, cluster, subscriptions)
        self._update_member_urls(clients_metadata)
        assignments: ClientAssignmentMapping = {
            member_id: ClientAssignment(actives={}, standbys={}) for member_id in member_metadata
        }
        topic_to_group_id = {}
        partitions_by_topic = {}
        for group_id, (num_partitions, topic_groups) in enumerate(
            sorted(copartitioned_groups.items())
        ):
            for group in topic_groups:
                for topic in group:
                    topic_to_group_id[topic] = group_id
                    partitions_by_topic[topic] = num_partitions
                assert len(group) > 0 and num_partitions > 0
                assignor = self.copartitioned_assignor(
                    group, cluster_assgn.copartitioned_assignments(group), num_partitions
                )
                for client, copart_assn in assignor.get_assignment().items():
                    assignments[client].add_copartitioned_assignment(copart_assn)
        assignments = self._global_table_standby_assignments(assignments, partitions_by_topic)
        changelog_distribution = self._get_changelog_distribution(assignments)
        external_topic_distribution = self._get_external_topic_distribution(assignments)
        return cast(
            MemberAssignmentMapping,
            self._protocol_assignments(
                assignments, changelog_distribution, external_topic_distribution, topic_to_group_id
            ),
        )
