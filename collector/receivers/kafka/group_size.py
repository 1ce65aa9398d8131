"""How many members the consumer group has, from its live assignment.

Kafka tells only the group leader who the members are. :class:`GroupSizeAssignor` is aiokafka's round-robin
assignor (same protocol name, same partitions) whose leader also writes the member count into each member's
assignment ``user_data``; every member reads it back in ``on_assignment``. So after each rebalance every
member knows the group's size (a stage that shares a budget across the group divides by it). A leader that
does not write it (another client) leaves the last size known; before the first assignment it is None.
"""

from __future__ import annotations

from collections.abc import Mapping

from aiokafka.cluster import ClusterMetadata
from aiokafka.coordinator.assignors.roundrobin import RoundRobinPartitionAssignor
from aiokafka.coordinator.protocol import ConsumerProtocolMemberAssignment, ConsumerProtocolMemberMetadata

_PREFIX = b"tracetriage.members="


class GroupSizeAssignor(RoundRobinPartitionAssignor):  # type: ignore[misc]
    """One instance per consumer (aiokafka calls the methods on the object it is given)."""

    def __init__(self) -> None:
        self.members: int | None = None

    def assign(
        self, cluster: ClusterMetadata, members: Mapping[str, ConsumerProtocolMemberMetadata],
    ) -> dict[str, ConsumerProtocolMemberAssignment]:
        out = RoundRobinPartitionAssignor.assign(cluster, members)
        data = _PREFIX + str(len(members)).encode()
        return {m: ConsumerProtocolMemberAssignment(a.version, a.assignment, data) for m, a in out.items()}

    def on_assignment(self, assignment: ConsumerProtocolMemberAssignment) -> None:
        data = bytes(assignment.user_data or b"")
        text = data[len(_PREFIX):]
        if data.startswith(_PREFIX) and text.isdigit():
            self.members = max(1, int(text))
