"""The synthetic history generator's memory: the fold state it keeps and the indexes that
make choosing a legal event O(1) (:class:`Generator`), and how it emits an event (:meth:`emit`:
folded at once with :func:`projections.fold.apply`; one that makes a finding is a bug of the
generator, never of the input). The events themselves are chosen by the functions of
:mod:`~projections.testing.synthetic.instances`, ``.streams`` and ``.cluster``."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from typing import Any

from events import control as ev
from events.base import ControlEvent
from events.heartbeat import PerformanceMetrics
from projections.fold import apply
from projections.fold.state import (
    GONE_STATUSES,
    AssignmentStatus,
    ClusterState,
    EnhancedInstance,
    InstanceStatus,
)

SOURCE = "streamplane/orchestrator"
START = datetime(2026, 1, 1, tzinfo=UTC)
#: attempts at finding a random instance with room before giving up on this step
_TRIES = 8


class Bag:
    """A set of ids with O(1) add, discard and uniform choice, in a deterministic order."""

    __slots__ = ("_items", "_pos")

    def __init__(self) -> None:
        self._items: list[str] = []
        self._pos: dict[str, int] = {}

    def __len__(self) -> int:
        return len(self._items)

    def add(self, item: str) -> None:
        if item not in self._pos:
            self._pos[item] = len(self._items)
            self._items.append(item)

    def discard(self, item: str) -> None:
        i = self._pos.pop(item, None)
        if i is None:
            return
        last = self._items.pop()
        if i < len(self._items):
            self._items[i] = last
            self._pos[last] = i

    def choice(self, rng: random.Random) -> str | None:
        items = self._items
        # int(random() * n) is several times faster than randrange and as deterministic
        return items[int(rng.random() * len(items))] if items else None


#: instance events that change whether an instance is live, gone or draining
_INSTANCE_CHANGES = (
    ev.InstanceRegistered,
    ev.InstanceFailed,
    ev.InstanceDeregistered,
    ev.InstanceDraining,
    ev.InstanceUndrained,
)


def _stream_bucket(status: AssignmentStatus) -> str:
    return status.value  # unassigned, assigned, running, migrating, failed


class Generator:
    """Holds the fold state plus indexes that make choosing a legal event O(1)."""

    def __init__(self, rng: random.Random, instances: int, streams: int, start: datetime):
        self.rng = rng
        self.target_instances = max(1, instances)
        self.target_streams = max(0, streams)
        self.now = start
        self.state = ClusterState()
        self.out: list[ControlEvent] = []
        self.serial = 0  # for new server/stream ids
        self.live = Bag()  # instances not failed/left
        self.gone = Bag()  # failed/left server ids (may register a new incarnation)
        self.draining = Bag()
        self.all_streams = Bag()
        self.buckets = {s.value: Bag() for s in AssignmentStatus}
        self.stream_bucket: dict[str, str] = {}
        # samples are a third of all events: draw them from a pool rather than build each one
        self.metrics = [
            PerformanceMetrics(
                cpu_percent=rng.randint(0, 1000) / 10,
                memory_mb=float(rng.randint(100, 4000)),
                avg_latency_ms=rng.randint(1, 500) / 10,
                error_rate=rng.randint(0, 50) / 1000,
            )
            for _ in range(64)
        ]
        # mean stream weight is 1.25: size capacities so that live capacity exceeds demand
        self.capacity_mean = max(1, round(1.5 * 1.25 * self.target_streams / self.target_instances))

    # --- emitting ---------------------------------------------------------------------

    def emit(
        self, cls: type[ControlEvent], *, right_after: bool = False, **fields: Any
    ) -> ControlEvent:
        """Fold and keep the next event, up to 20 ms after the one before; ``right_after``:
        1 us after it (the same orchestrator cycle), without drawing on the random source, so
        that the random choices after it stay what they were without this event."""
        seq = self.state.seq + 1
        epoch = fields.pop("epoch", self.state.epoch)
        step = 1 if right_after else 1 + int(self.rng.random() * 20_000)
        self.now += timedelta(microseconds=step)
        event = cls(id=f"e{seq}", source=SOURCE, time=self.now, seq=seq, epoch=epoch, **fields)
        found = self.state.finding_count
        self.state = apply(self.state, event)
        if self.state.finding_count != found:  # a bug in this generator, never in the input
            raise AssertionError(f"synthetic event {event!r} produced {self.state.findings[-1]}")
        self.out.append(event)
        stream_id = getattr(event, "stream_id", None)
        if isinstance(stream_id, str):
            self._reindex_stream(stream_id)
        if isinstance(event, _INSTANCE_CHANGES):
            self._reindex_instance(event.server_id)
        return event

    def _reindex_stream(self, stream_id: str) -> None:
        old = self.stream_bucket.pop(stream_id, None)
        if old is not None:
            self.buckets[old].discard(stream_id)
        stream = self.state.streams.get(stream_id)
        if stream is None:
            self.all_streams.discard(stream_id)
        else:
            self.all_streams.add(stream_id)
            bucket = _stream_bucket(stream.status)
            self.buckets[bucket].add(stream_id)
            self.stream_bucket[stream_id] = bucket

    def _reindex_instance(self, server_id: str) -> None:
        inst = self.state.instances[server_id]
        gone = inst.status in GONE_STATUSES
        (self.gone if gone else self.live).add(server_id)
        (self.live if gone else self.gone).discard(server_id)
        (self.draining.add if inst.draining else self.draining.discard)(server_id)

    # --- lookups ----------------------------------------------------------------------

    def live_instance(self, *statuses: InstanceStatus) -> EnhancedInstance | None:
        for _ in range(_TRIES):
            server_id = self.live.choice(self.rng)
            if server_id is None:
                return None
            inst = self.state.instances[server_id]
            if not statuses or inst.status in statuses:
                return inst
        return None

    def target(self, weight: int, exclude: str | None = None) -> EnhancedInstance | None:
        """A random active, non-draining instance with room for ``weight``."""
        for _ in range(_TRIES):
            server_id = self.live.choice(self.rng)
            if server_id is None:
                return None
            inst = self.state.instances[server_id]
            if (
                server_id != exclude
                and inst.status is InstanceStatus.ACTIVE
                and not inst.draining
                and inst.load + weight <= inst.max_streams
            ):
                return inst
        return None

    def stream_in(self, bucket: str) -> str | None:
        return self.buckets[bucket].choice(self.rng)

    # --- instances --------------------------------------------------------------------
