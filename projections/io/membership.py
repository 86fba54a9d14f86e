"""Leadership by consumer group: the member of a group holding partition 0 of a
single-partition topic leads (the orchestrator on the commands topic, the monitor on the
alerts topic). :class:`Membership` tracks what this member holds.

A revocation alone changes nothing: with the eager protocol every rebalance (a standby
joining, say) revokes everything first, and the sticky assignor hands the partition back to
its holder; stepping down on each revocation would start a new term for nothing. Meanwhile
the leader keeps writing; should another member really take over, its ``init_transactions``
(a ``transactional_id`` shared by the members) fences the old one, whose next commit fails,
which makes it step down.

**The sticky assignor's generation.** aiokafka 0.14 never tells the sticky assignor the
generation of an assignment (``on_generation_assignment`` is not called), so every member
claims its last partitions with the same generation. A member that wakes from a pause past
its session then claims the partition as strongly as the one that took over meanwhile, and
may get it back: a needless new term. :class:`Membership` tells its assignor (a subclass of
its own, so that its state is this consumer's) each generation, and the newer claim wins
(Kafka's KIP-341 rule).
"""

from __future__ import annotations

from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener, TopicPartition
from aiokafka.coordinator.assignors.sticky.sticky_assignor import StickyPartitionAssignor


def _new_sticky() -> type[StickyPartitionAssignor]:
    """A sticky assignor class of its own (its state is class attributes)."""

    class Sticky(StickyPartitionAssignor):  # type: ignore[misc]
        pass

    return Sticky


class Membership(ConsumerRebalanceListener):  # type: ignore[misc]
    """Which partitions this member holds, as of the last completed rebalance (see the
    module docstring). Give the consumer ``partition_assignment_strategy=(m.assignor,)``
    and set :attr:`consumer`. ``pause``: stop fetching what is assigned (membership only)."""

    def __init__(self, *, pause: bool = False) -> None:
        self.owned: frozenset[TopicPartition] = frozenset()
        self.assignor = _new_sticky()
        self.consumer: AIOKafkaConsumer | None = None
        self._pause = pause

    async def on_partitions_revoked(self, revoked: list[TopicPartition]) -> None:
        return None

    async def on_partitions_assigned(self, assigned: list[TopicPartition]) -> None:
        self.owned = frozenset(assigned)
        consumer = self.consumer
        if consumer is None:
            return
        generation = getattr(getattr(consumer, "_coordinator", None), "generation", None)
        if isinstance(generation, int) and generation > 0:
            self.assignor.on_generation_assignment(generation)
        if self._pause and assigned:
            consumer.pause(*assigned)


__all__ = ["Membership"]
