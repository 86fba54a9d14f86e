"""Several monitors, one publishing: a standby takes over when the publisher dies.

Leadership is the consumer group ``<prefix>.monitor`` on the single-partition alerts topic:
the member holding partition 0 publishes (:class:`projections.io.membership.Membership`;
the partition is paused, membership is all it is for). The publisher writes each
evaluation's transitions in one Kafka transaction with the ``transactional_id``
``<prefix>.monitor``: a new publisher's ``init_transactions`` fences the old one, whose next
publish fails, so two monitors never both publish a transition (and readers read committed
records only). A standby evaluates nothing; when it takes over it reads the alerts topic
back first (:func:`control_plane.monitor.messages.restore`), so nothing fires twice.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

from aiokafka import TopicPartition

from control_plane.monitor.settings import MonitorSettings
from events.topics import Topics
from projections.io.kafka import make_consumer, started
from projections.io.membership import Membership


def group_id(topics: Topics) -> str:
    """The monitors' consumer group (and their producers' ``transactional_id``)."""
    return f"{topics.prefix}.monitor"


class Leadership:
    """This monitor's membership of the monitors' group (see the module docstring)."""

    def __init__(self, membership: Membership, partition: TopicPartition):
        assert membership.consumer is not None, "the membership's consumer is set first"
        self._membership, self._consumer, self._tp = membership, membership.consumer, partition

    async def holds(self) -> bool:
        """Whether this monitor publishes now (and a poll that keeps it in the group)."""
        await self._consumer.getmany(timeout_ms=0)
        return self._tp in self._membership.owned

    def lost(self) -> None:
        """Another monitor fenced this one: what this member was assigned is stale (a
        member that woke past its session still holds its old assignment until it has
        rejoined), so it does not publish before the group assigns it the partition again."""
        self._membership.owned = frozenset()

    async def wait(self, stop: asyncio.Event, *, every: float = 0.5) -> bool:
        """Until this monitor publishes (True) or ``stop`` is set (False)."""
        while not stop.is_set():
            if await self.holds():
                return True
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(every):
                    await stop.wait()
        return False


@contextlib.asynccontextmanager
async def joined(settings: MonitorSettings, topics: Topics) -> AsyncIterator[Leadership]:
    """Membership of the monitors' group for as long as the block runs."""
    membership = Membership(pause=True)
    consumer = make_consumer(
        settings.kafka_access,
        group_id=group_id(topics),
        auto_offset_reset="latest",
        session_timeout_ms=settings.monitor_session_timeout_ms,
        heartbeat_interval_ms=max(100, settings.monitor_session_timeout_ms // 5),
        # a monitor joining must not take the partition from the publisher
        partition_assignment_strategy=(membership.assignor,),
        # a standby polls every half second, the publisher every evaluation
        max_poll_interval_ms=max(300_000, int(settings.monitor_interval * 4000)),
    )
    membership.consumer = consumer
    net = settings.monitor_kafka_timeout
    async with started(consumer, kafka_timeout=net, what="monitors' group member"):
        consumer.subscribe([topics.alerts], listener=membership)
        yield Leadership(membership, TopicPartition(topics.alerts, 0))


__all__ = ["Leadership", "group_id", "joined"]
