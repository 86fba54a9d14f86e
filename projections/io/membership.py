"""Leadership by consumer group: the member of a group holding partition 0 of a
single-partition topic leads (the orchestrator on the commands topic, the monitor on the
alerts topic). :class:`Membership` tracks what this member holds.

A revocation alone changes nothing: with the eager protocol every rebalance (a standby
joining, say) revokes everything first, and the sticky assignor hands the partition back to
its holder; stepping down on each revocation would start a new term for nothing. Meanwhile
the leader keeps writing; should another member really take over, its ``init_transactions``
(a ``transactional_id`` shared by the members) fences the old one, whose next commit fails,
which makes it step down.
"""

from __future__ import annotations

from aiokafka import ConsumerRebalanceListener, TopicPartition


class Membership(ConsumerRebalanceListener):  # type: ignore[misc]
    """Which partitions this member holds, as of the last completed rebalance (see the
    module docstring). ``pause``: stop fetching what is assigned (membership only)."""

    def __init__(self, *, pause: bool = False) -> None:
        self.owned: frozenset[TopicPartition] = frozenset()
        self._pause = pause
        self.consumer: object | None = None

    async def on_partitions_revoked(self, revoked: list[TopicPartition]) -> None:
        return None

    async def on_partitions_assigned(self, assigned: list[TopicPartition]) -> None:
        self.owned = frozenset(assigned)
        if self._pause and self.consumer is not None and assigned:
            self.consumer.pause(*assigned)  # type: ignore[attr-defined]


__all__ = ["Membership"]
