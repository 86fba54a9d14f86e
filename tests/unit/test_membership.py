"""Leadership by consumer group (projections.io.membership): the member's assignor learns
each assignment's generation, so that when two members claim the partition the newer claim
wins (aiokafka never tells the sticky assignor), and each membership has its own assignor."""

from __future__ import annotations

from types import SimpleNamespace

from aiokafka import TopicPartition
from aiokafka.coordinator.assignors.sticky.sticky_assignor import StickyAssignorUserDataV1

from projections.io.membership import Membership

TP = TopicPartition("sp.alerts", 0)


class _Consumer:
    def __init__(self, generation: int) -> None:
        self._coordinator = SimpleNamespace(generation=generation)
        self.paused: list[TopicPartition] = []

    def pause(self, *partitions: TopicPartition) -> None:
        self.paused += partitions


def _claim(m: Membership) -> tuple[list[int], int]:
    """What this member tells the group it holds, and as of which generation."""
    meta = m.assignor.metadata({TP.topic})
    data = StickyAssignorUserDataV1.decode(meta.user_data)
    [(_, partitions)] = data.previous_assignment or [(TP.topic, [])]
    return list(partitions), data.generation


async def test_the_assignor_claims_with_the_generation_of_the_assignment() -> None:
    holder, woken = Membership(pause=True), Membership()
    assert holder.assignor is not woken.assignor  # state of its own
    woken.consumer, holder.consumer = _Consumer(generation=3), _Consumer(generation=5)
    for m, generation in ((woken, 3), (holder, 5)):
        m.assignor.on_assignment(SimpleNamespace(partitions=lambda: [TP]))
        await m.on_partitions_assigned([TP])
        assert m.owned == {TP}
        assert _claim(m) == ([0], generation)
    assert holder.consumer.paused == [TP] and woken.consumer.paused == []  # type: ignore[attr-defined]


async def test_without_a_consumer_it_only_tracks_what_it_holds() -> None:
    m = Membership()
    await m.on_partitions_assigned([TP])
    await m.on_partitions_revoked([TP])  # eager rebalances revoke everything first
    assert m.owned == {TP}
