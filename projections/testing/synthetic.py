"""Deterministic generator of *valid* control-log histories, for tests, benchmarks and demos.

``generate_history(n, seed=s)`` always returns the same ``n`` events for the same arguments
(it uses its own ``random.Random(seed)``, never the global one, and never iterates a hash-ordered
collection). The generator keeps its own fold state (through :func:`projections.fold.apply`)
and only ever chooses events that are legal in that state, as a well-behaved orchestrator
would: folding any prefix of a generated history yields no finding.

The history starts with ``LeaderElected(epoch=1)`` and exercises every control event type:
instances come, are suspected, recover, fail or leave (their streams are reassigned or
unassigned right after, as the orchestrator does), get quarantined, drained and resized;
streams are registered, assigned within capacity, started, failed (sometimes parked),
migrated make-before-break (completed or aborted) and deregistered; rebalances, commands,
consistency checks, maintenance mode and new leader terms happen now and then.
"""

from __future__ import annotations

import bisect
import itertools
import random
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from ipaddress import IPv4Address
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
    PlannedMigration,
    StreamAssignment,
)

SOURCE = "streamplane/orchestrator"
START = datetime(2026, 1, 1, tzinfo=UTC)
#: attempts at finding a random instance with room before giving up on this step
_TRIES = 8


class _Bag:
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


class _Generator:
    """Holds the fold state plus indexes that make choosing a legal event O(1)."""

    def __init__(self, rng: random.Random, instances: int, streams: int, start: datetime):
        self.rng = rng
        self.target_instances = max(1, instances)
        self.target_streams = max(0, streams)
        self.now = start
        self.state = ClusterState()
        self.out: list[ControlEvent] = []
        self.serial = 0  # for new server/stream ids
        self.live = _Bag()  # instances not failed/left
        self.gone = _Bag()  # failed/left server ids (may register a new incarnation)
        self.draining = _Bag()
        self.all_streams = _Bag()
        self.buckets = {s.value: _Bag() for s in AssignmentStatus}
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

    def emit(self, cls: type[ControlEvent], **fields: Any) -> ControlEvent:
        seq = self.state.seq + 1
        epoch = fields.pop("epoch", self.state.epoch)
        self.now += timedelta(microseconds=1 + int(self.rng.random() * 20_000))
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

    def _live_instance(self, *statuses: InstanceStatus) -> EnhancedInstance | None:
        for _ in range(_TRIES):
            server_id = self.live.choice(self.rng)
            if server_id is None:
                return None
            inst = self.state.instances[server_id]
            if not statuses or inst.status in statuses:
                return inst
        return None

    def _target(self, weight: int, exclude: str | None = None) -> EnhancedInstance | None:
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

    def _stream_in(self, bucket: str) -> str | None:
        return self.buckets[bucket].choice(self.rng)

    # --- instances --------------------------------------------------------------------

    def register_instance(self) -> bool:
        server_id = self.gone.choice(self.rng) if self.rng.random() < 0.9 else None
        if server_id is None or self.state.held.get(server_id):
            self.serial += 1
            server_id = f"w{self.serial}"
        seq = self.state.seq + 1
        self.emit(
            ev.InstanceRegistered,
            server_id=server_id,
            incarnation=f"{server_id}.{seq}",
            ip=IPv4Address(0x0A000000 + self.rng.randrange(1, 1 << 16)),
            port=self.rng.randint(1024, 65535),
            max_streams=self.rng.randint(self.capacity_mean // 2, self.capacity_mean * 3 // 2),
            zone=f"z{self.rng.randint(1, 3)}",
        )
        return True

    def remove_instance(self) -> bool:
        """Fail or deregister a live instance, then move its streams off it at once."""
        if len(self.live) < 2:
            return False
        inst = self._live_instance()
        if inst is None:
            return False
        failed = self.rng.random() < 0.6
        cls: type[ControlEvent] = ev.InstanceFailed if failed else ev.InstanceDeregistered
        reason = ev.Reasons.INSTANCE_FAILED if failed else ev.Reasons.INSTANCE_LEFT
        self.emit(cls, server_id=inst.server_id, incarnation=inst.incarnation, reason=reason)
        self._evacuate(inst.server_id, reason)
        return True

    def _evacuate(self, server_id: str, reason: str) -> None:
        held = self.state.held.get(server_id)
        for stream_id in sorted(held) if held is not None else ():
            m = self.state.streams[stream_id].migration_state
            if m is not None:
                self.emit(
                    ev.MigrationAborted,
                    stream_id=stream_id,
                    migration_id=m.migration_id,
                    reason=reason,
                )
                if m.to_server == server_id:
                    continue  # the (live) source keeps it
            stream = self.state.streams[stream_id]
            target = self._target(stream.weight, exclude=server_id)
            if target is not None:
                self.emit(
                    ev.StreamAssigned,
                    stream_id=stream_id,
                    server_id=target.server_id,
                    incarnation=target.incarnation,
                    reason=reason,
                )
            else:
                self.emit(
                    ev.StreamUnassigned,
                    stream_id=stream_id,
                    server_id=server_id,
                    reason=ev.Reasons.NO_CAPACITY,
                )

    def suspect(self) -> bool:
        inst = self._live_instance(InstanceStatus.ACTIVE)
        if inst is None:
            return False
        self.emit(
            ev.InstanceSuspected,
            server_id=inst.server_id,
            incarnation=inst.incarnation,
            last_heartbeat=inst.last_heartbeat,
        )
        return True

    def recover(self) -> bool:
        inst = self._live_instance(InstanceStatus.SUSPECTED, InstanceStatus.QUARANTINED)
        if inst is None:
            return False
        self.emit(ev.InstanceRecovered, server_id=inst.server_id, incarnation=inst.incarnation)
        return True

    def quarantine(self) -> bool:
        inst = self._live_instance(InstanceStatus.ACTIVE, InstanceStatus.SUSPECTED)
        if inst is None or self.state.held.get(inst.server_id):
            return False
        until = self.now + timedelta(minutes=self.rng.randint(1, 30))
        self.emit(ev.InstanceQuarantined, server_id=inst.server_id, until=until)
        return True

    def drain(self) -> bool:
        inst = self._live_instance(InstanceStatus.ACTIVE)
        if inst is None or inst.draining or len(self.draining) * 4 >= len(self.live):
            return False
        self.emit(ev.InstanceDraining, server_id=inst.server_id, reason=ev.Reasons.OPERATOR)
        return True

    def drain_progress(self) -> bool:
        """Move one stream off a draining instance; when it is empty, report or undrain it."""
        server_id = self.draining.choice(self.rng)
        if server_id is None:
            return False
        inst = self.state.instances[server_id]
        if inst.status in GONE_STATUSES:
            self.emit(ev.InstanceUndrained, server_id=server_id, reason=ev.Reasons.OPERATOR)
            return True
        if inst.load == 0:
            self.emit(ev.InstanceDrained, server_id=server_id)
            if self.rng.random() < 0.5:
                self.emit(ev.InstanceUndrained, server_id=server_id, reason=ev.Reasons.OPERATOR)
            else:
                self.emit(
                    ev.InstanceDeregistered,
                    server_id=server_id,
                    incarnation=inst.incarnation,
                    reason=ev.Reasons.DRAIN,
                )
            return True
        held = self.state.held.get(server_id)
        for stream_id in sorted(held) if held is not None else ():
            if self.stream_bucket.get(stream_id) == "running":
                return self._migrate(stream_id, ev.Reasons.DRAIN)
        return False

    def resize(self) -> bool:
        inst = self._live_instance()
        if inst is None:
            return False
        wanted = self.rng.randint(self.capacity_mean // 2, self.capacity_mean * 3 // 2)
        self.emit(
            ev.InstanceCapacityChanged,
            server_id=inst.server_id,
            max_streams=max(inst.load, wanted),
            reason=ev.Reasons.OPERATOR,
        )
        return True

    def sample(self) -> bool:
        inst = self._live_instance()
        if inst is None:
            return False
        metrics = self.metrics[int(self.rng.random() * len(self.metrics))]
        self.emit(ev.PerformanceSampled, server_id=inst.server_id, metrics=metrics)
        return True

    # --- streams ----------------------------------------------------------------------

    def register_stream(self) -> bool:
        if len(self.all_streams) >= self.target_streams * 6 // 5 + 1:
            return False
        self.serial += 1
        r = self.rng.random()
        params = {"url": f"rtsp://cam-{self.serial}/live"} if r < 0.3 else {}
        self.emit(
            ev.StreamRegistered,
            stream_id=f"s{self.serial}",
            weight=1 if r < 0.8 else (2 if r < 0.95 else 3),
            priority=self.rng.choice((0, 0, 0, 10, -10)),
            params=params,
        )
        return True

    def deregister_stream(self) -> bool:
        parked = self.rng.random() < 0.5
        stream_id = self._stream_in("failed") if parked else self.all_streams.choice(self.rng)
        if stream_id is None:
            return False
        self.emit(ev.StreamDeregistered, stream_id=stream_id, reason=ev.Reasons.OPERATOR)
        return True

    def assign(self) -> bool:
        stream_id = self._stream_in("unassigned")
        if stream_id is None:
            return False
        stream = self.state.streams[stream_id]
        target = self._target(stream.weight)
        if target is None:
            return False
        new = stream.failure_count == 0 and stream.assigned_at is None
        self.emit(
            ev.StreamAssigned,
            stream_id=stream_id,
            server_id=target.server_id,
            incarnation=target.incarnation,
            reason=ev.Reasons.NEW_STREAM if new else ev.Reasons.CAPACITY_RETURNED,
        )
        return True

    def _assigned_on_active(self) -> tuple[str, EnhancedInstance] | None:
        stream_id = self._stream_in("assigned")
        if stream_id is None:
            return None
        server_id = self.state.streams[stream_id].server_id
        inst = self.state.instances.get(server_id) if server_id is not None else None
        if inst is None or inst.status is not InstanceStatus.ACTIVE:
            return None
        return stream_id, inst

    def start(self) -> bool:
        found = self._assigned_on_active()
        if found is None:
            return False
        stream_id, inst = found
        self.emit(
            ev.StreamStarted,
            stream_id=stream_id,
            server_id=inst.server_id,
            incarnation=inst.incarnation,
        )
        return True

    def fail_stream(self) -> bool:
        found = self._assigned_on_active()
        if found is None:
            return False
        stream_id, inst = found
        stream = self.state.streams[stream_id]
        parked = stream.failure_count >= 2 and self.rng.random() < 0.5
        self.emit(
            ev.StreamFailed,
            stream_id=stream_id,
            server_id=inst.server_id,
            error=f"start failed on {inst.server_id}",
            parked=parked,
            reason=ev.Reasons.POISON if parked else ev.Reasons.START_FAILED,
        )
        return True

    # --- migrations and rebalancing ---------------------------------------------------

    def migrate(self) -> bool:
        stream_id = self._stream_in("running")
        return stream_id is not None and self._migrate(stream_id, ev.Reasons.REBALANCE)

    def _migrate(self, stream_id: str, reason: str) -> bool:
        stream = self.state.streams[stream_id]
        target = self._target(stream.weight, exclude=stream.server_id)
        if target is None or stream.server_id is None:
            return False
        self._start_migration(stream, target, reason, None)
        return True

    def _start_migration(
        self, stream: StreamAssignment, target: EnhancedInstance, reason: str, plan: str | None
    ) -> None:
        self.emit(
            ev.MigrationStarted,
            stream_id=stream.stream_id,
            migration_id=f"m{self.state.seq + 1}",
            from_server=stream.server_id,
            to_server=target.server_id,
            to_incarnation=target.incarnation,
            deadline=self.now + timedelta(seconds=30),
            reason=reason,
            plan_id=plan,
        )

    def end_migration(self) -> bool:
        stream_id = self._stream_in("migrating")
        if stream_id is None:
            return False
        m = self.state.streams[stream_id].migration_state
        assert m is not None  # the "migrating" bucket holds only streams with a migration
        if self.rng.random() < 0.85:
            self.emit(ev.MigrationCompleted, stream_id=stream_id, migration_id=m.migration_id)
        else:
            self.emit(
                ev.MigrationAborted,
                stream_id=stream_id,
                migration_id=m.migration_id,
                reason=ev.Reasons.TIMEOUT,
            )
        return True

    def rebalance(self) -> bool:
        """Plan a rebalance, or carry the current plan on one move at a time, then close it."""
        plan = self.state.rebalance
        if plan is None:
            return self._plan()
        for move in plan.moves:
            if move.stream_id not in plan.started and self._planned_move(move, plan.plan_id):
                return True
        self.emit(
            ev.RebalanceCompleted,
            plan_id=plan.plan_id,
            completed=plan.completed,
            aborted=len(plan.moves) - plan.completed,
        )
        return True

    def _planned_move(self, move: PlannedMigration, plan_id: str) -> bool:
        stream = self.state.streams.get(move.stream_id)
        target = self.state.instances.get(move.to_server)
        if (
            stream is None
            or target is None
            or not stream.can_migrate()
            or stream.server_id != move.from_server
            or target.status is not InstanceStatus.ACTIVE
            or target.draining
            or target.load + stream.weight > target.max_streams
        ):
            return False
        self._start_migration(stream, target, ev.Reasons.REBALANCE, plan_id)
        return True

    def _plan(self) -> bool:
        moves: dict[str, ev.PlannedMove] = {}
        for _ in range(self.rng.randint(0, 4)):
            stream_id = self._stream_in("running")
            stream = self.state.streams.get(stream_id) if stream_id else None
            target = self._target(1)
            if stream and stream.server_id and target and target.server_id != stream.server_id:
                moves[stream.stream_id] = ev.PlannedMove(
                    stream_id=stream.stream_id,
                    from_server=stream.server_id,
                    to_server=target.server_id,
                    gain=self.rng.randint(0, 100) / 100,
                )
        self.emit(
            ev.RebalancePlanned,
            plan_id=f"p{self.state.seq + 1}",
            dry_run=self.rng.random() < 0.3,
            moves=tuple(moves.values()),
            score_before=0.5,
            score_after=0.5 + len(moves) / 10,
        )
        return True

    # --- leadership, commands, consistency, maintenance --------------------------------

    def elect(self) -> bool:
        epoch = self.state.epoch + 1
        self.emit(ev.LeaderElected, epoch=epoch, leader_id=f"orch-{'ab'[epoch % 2]}")
        return True

    def command(self) -> bool:
        command_id = f"c{self.state.seq + 1}"
        kind = self.rng.choice(("RegisterStream", "DrainInstance", "RequestRebalance"))
        if self.rng.random() < 0.7:
            self.emit(
                ev.CommandCompleted,
                command_id=command_id,
                command_type=kind,
                causationid=command_id,
            )
        else:
            self.emit(
                ev.CommandRejected,
                command_id=command_id,
                command_type=kind,
                reason="invalid_argument",
                detail="synthetic",
                causationid=command_id,
            )
        return True

    def consistency(self) -> bool:
        check_id = f"k{self.state.seq + 1}"
        kind = self.rng.choice(("orphaned", "counter_mismatch", "projection_drift"))
        self.emit(ev.ConsistencyDivergenceFound, check_id=check_id, kind=kind, detail="synthetic")
        self.emit(
            ev.ConsistencyDivergenceRepaired,
            check_id=check_id,
            kind=kind,
            action="rebuild_projection",
        )
        return True

    def maintenance(self) -> bool:
        if self.state.maintenance:
            self.emit(ev.MaintenanceModeLeft, reason=ev.Reasons.OPERATOR)
        else:
            self.emit(ev.MaintenanceModeEntered, reason=ev.Reasons.MASS_FAILURE)
        return True

    # --- driver -----------------------------------------------------------------------

    def step(self) -> None:
        """Emit one legal event (a failure emits its reassignments right after it)."""
        rng = self.rng
        if len(self.live) < self.target_instances and rng.random() < 0.3:
            self.register_instance()
            return
        if len(self.all_streams) < self.target_streams and rng.random() < 0.3:
            self.register_stream()
            return
        for _ in range(3):
            action = _ACTIONS[bisect.bisect(_CUM_WEIGHTS, rng.random() * _CUM_WEIGHTS[-1])]
            if action(self):
                return
        if not self.sample():
            self.register_instance()


_WEIGHTED: tuple[tuple[Callable[[_Generator], bool], float], ...] = (
    (_Generator.assign, 25),
    (_Generator.start, 25),
    (_Generator.sample, 8),
    (_Generator.migrate, 4),
    (_Generator.end_migration, 5),
    (_Generator.fail_stream, 2),
    (_Generator.register_stream, 2),
    (_Generator.deregister_stream, 2),
    (_Generator.register_instance, 0.3),
    (_Generator.remove_instance, 0.5),
    (_Generator.suspect, 1.5),
    (_Generator.recover, 3),
    (_Generator.quarantine, 3),
    (_Generator.drain, 0.3),
    (_Generator.drain_progress, 3),
    (_Generator.resize, 0.5),
    (_Generator.rebalance, 1),
    (_Generator.command, 2),
    (_Generator.consistency, 0.3),
    (_Generator.maintenance, 0.2),
    (_Generator.elect, 0.05),
)
_ACTIONS = [action for action, _ in _WEIGHTED]
_CUM_WEIGHTS = list(itertools.accumulate(weight for _, weight in _WEIGHTED))


def iter_history(
    n_events: int,
    *,
    seed: int = 0,
    instances: int = 10,
    streams: int = 100,
    start: datetime = START,
) -> Iterator[ControlEvent]:
    """Lazily yield ``n_events`` valid control events (seq 1..n, gapless), deterministically.

    ``instances`` and ``streams`` are the sizes the cluster hovers around; ``start`` is the
    time of the first event (later ones follow within 20 ms each).
    """
    gen = _Generator(random.Random(seed), instances, streams, start)
    gen.emit(ev.LeaderElected, epoch=1, leader_id="orch-b")
    emitted = 0
    while True:
        for event in gen.out:
            if emitted == n_events:
                return
            emitted += 1
            yield event
        gen.out.clear()
        gen.step()


def generate_history(
    n_events: int,
    *,
    seed: int = 0,
    instances: int = 10,
    streams: int = 100,
    start: datetime = START,
) -> list[ControlEvent]:
    """The list form of :func:`iter_history` (same arguments, same events)."""
    return list(
        iter_history(n_events, seed=seed, instances=instances, streams=streams, start=start)
    )
