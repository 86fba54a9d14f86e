"""One pure transition per control event type (used only by :mod:`projections.fold`).

A transition returns the next state or raises :class:`Rejected`; the fold turns that into
a finding and leaves the state as it was (never a half-applied change). Internally each
transition writes into a :class:`Draft` so that one event copies the ClusterState once.

**Every transition checks before it writes**: it raises :class:`Rejected` before its first
write to the draft, never after. The in-place fold (:mod:`projections.fold.transient`) writes
straight into its maps and relies on that; ``tests/unit/test_transient_fold.py`` holds every
transition to it on generated and corrupted histories.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import immutables

from events import control as ev
from events.base import ControlEvent
from projections.fold.state import (
    GONE_STATUSES,
    AssignmentStatus,
    ClusterState,
    EnhancedInstance,
    FindingKind,
    InstanceStatus,
    MigrationState,
    PlannedMigration,
    RebalanceProgress,
    StreamAssignment,
    replace,
    replacer,
)

_V = TypeVar("_V")
_E = TypeVar("_E", bound=ControlEvent)

#: earlier incarnations remembered per server, so their late heartbeats are known as stale
PAST_KEPT = 8
#: commands remembered for idempotency (oldest dropped past twice this many)
COMMAND_WINDOW = 10_000


class Rejected(Exception):
    """The event would break an invariant; it has no effect."""

    def __init__(self, kind: FindingKind, detail: str):
        super().__init__(detail)
        self.kind = kind
        self.detail = detail


# --- the draft of one transition ------------------------------------------------------


class Draft:
    """The changes one event makes, gathered before the next state is built, once.

    A transition reads the state through the draft (``d.instances.get``, ``sid in
    d.streams``, ``d.held.get``) and writes only through its ``put_*``/``drop_*`` methods.
    This draft rebinds persistent maps (the old state is never touched) and :meth:`finish`
    copies the ClusterState a single time; copying its ~20 fields for every small step used
    to be most of the fold's cost. A transition that raises :class:`Rejected` leaves no
    trace: the draft is simply dropped. :class:`projections.fold.transient.TransientDraft` has
    the same interface over in-place map mutations, for whole batches. Private to the fold.
    """

    __slots__ = ("base", "changes", "held", "in_flight", "instances", "streams", "unplaced")

    def __init__(self, base: ClusterState) -> None:
        self.base = base
        self.instances = base.instances
        self.streams = base.streams
        self.in_flight = base.in_flight
        self.unplaced = base.unplaced
        self.held = base.held
        #: the other ClusterState fields this event sets (each at most once)
        self.changes: dict[str, Any] = {}

    def put_instance(self, inst: EnhancedInstance) -> None:
        self.instances = self.instances.set(inst.server_id, inst)

    def update_instance(self, inst: EnhancedInstance, **changes: Any) -> EnhancedInstance:
        """Store ``inst`` with ``changes`` (a changed copy); returns what was stored."""
        new = _replace_instance(inst, **changes)
        self.instances = self.instances.set(new.server_id, new)
        return new

    def update_stream(self, stream: StreamAssignment, **changes: Any) -> StreamAssignment:
        """Store ``stream`` with ``changes`` (a changed copy); returns what was stored."""
        new = _replace_stream(stream, **changes)
        self.put_stream(new)
        return new

    def put_stream(self, stream: StreamAssignment) -> None:
        """Store ``stream`` and keep the ``in_flight`` and ``unplaced`` indexes in step."""
        sid = stream.stream_id
        m = stream.migration_state
        if m is not None:
            self.in_flight = self.in_flight.set(sid, m.migration_id)
        elif sid in self.in_flight:
            self.in_flight = self.in_flight.delete(sid)
        if stream.status is AssignmentStatus.UNASSIGNED:
            self.unplaced = self.unplaced.set(sid, True)
        elif sid in self.unplaced:
            self.unplaced = self.unplaced.delete(sid)
        self.streams = self.streams.set(sid, stream)

    def drop_stream(self, sid: str) -> None:
        """Forget stream ``sid`` (it exists) and its index entries."""
        self.streams = self.streams.delete(sid)
        if sid in self.in_flight:
            self.in_flight = self.in_flight.delete(sid)
        if sid in self.unplaced:
            self.unplaced = self.unplaced.delete(sid)

    def put_held(self, server_id: str, held: immutables.Map[str, bool]) -> None:
        """What ``server_id`` must run; an empty map removes the entry (it exists then)."""
        self.held = self.held.set(server_id, held) if held else self.held.delete(server_id)

    def finish(self, **extra: Any) -> ClusterState:
        """The next state: the base with the draft's maps, ``changes`` and ``extra``."""
        return _replace_state(
            self.base,
            instances=self.instances,
            streams=self.streams,
            in_flight=self.in_flight,
            unplaced=self.unplaced,
            held=self.held,
            **self.changes,
            **extra,
        )


_replace_state: Callable[..., ClusterState] = replacer(ClusterState)
_replace_instance: Callable[..., EnhancedInstance] = replacer(EnhancedInstance)
_replace_stream: Callable[..., StreamAssignment] = replacer(StreamAssignment)
Transition = Callable[[Draft, Any], None]
_EMPTY: immutables.Map[str, bool] = immutables.Map()


def _instance(d: Draft, server_id: str, incarnation: str | None = None) -> EnhancedInstance:
    inst = d.instances.get(server_id)
    if inst is None:
        raise Rejected(FindingKind.UNKNOWN_INSTANCE, f"unknown instance {server_id!r}")
    if incarnation is not None and inst.incarnation != incarnation:
        raise Rejected(
            FindingKind.UNKNOWN_INSTANCE,
            f"{server_id!r} is incarnation {inst.incarnation!r}, not {incarnation!r}",
        )
    return inst


def _stream(d: Draft, stream_id: str) -> StreamAssignment:
    stream = d.streams.get(stream_id)
    if stream is None:
        raise Rejected(FindingKind.UNKNOWN_STREAM, f"unknown stream {stream_id!r}")
    return stream


def _check_room(inst: EnhancedInstance, load: int, stream: StreamAssignment) -> None:
    """``inst``, holding ``load``, has room for ``stream``, or the transition is rejected."""
    if load + stream.weight > inst.max_streams:
        raise Rejected(
            FindingKind.CAPACITY_EXCEEDED,
            f"{inst.server_id!r} holds {load}/{inst.max_streams}; "
            f"{stream.stream_id!r} weighs {stream.weight}",
        )


def _hold(d: Draft, server_id: str, stream: StreamAssignment, *, owner: bool) -> None:
    """``server_id`` takes ``stream`` on (as owner or as a migration target): check capacity."""
    inst = _instance(d, server_id)
    _check_room(inst, inst.load, stream)
    inst = d.update_instance(
        inst,
        load=inst.load + stream.weight,
        current_streams=inst.current_streams + (1 if owner else 0),
    )
    d.put_held(server_id, d.held.get(server_id, _EMPTY).set(stream.stream_id, True))


def _release(d: Draft, server_id: str, stream: StreamAssignment, *, owner: bool) -> None:
    inst = d.instances.get(server_id)
    if inst is None:
        return
    inst = d.update_instance(
        inst,
        load=max(0, inst.load - stream.weight),
        current_streams=max(0, inst.current_streams - (1 if owner else 0)),
    )
    held = d.held.get(server_id)
    if held is not None and stream.stream_id in held:
        d.put_held(server_id, held.delete(stream.stream_id))


def _release_all(d: Draft, stream: StreamAssignment) -> None:
    """Drop the owner's and any migration target's hold on ``stream``."""
    if stream.server_id is not None:
        _release(d, stream.server_id, stream, owner=True)
    if stream.migration_state is not None:
        _release(d, stream.migration_state.to_server, stream, owner=False)


def _owner_alive(d: Draft, stream: StreamAssignment) -> bool:
    if stream.server_id is None:
        return False
    owner = d.instances.get(stream.server_id)
    return (
        owner is not None
        and owner.incarnation == stream.incarnation
        and owner.status not in GONE_STATUSES
    )


def _rebalance(d: Draft) -> RebalanceProgress | None:
    plan: RebalanceProgress | None = d.changes.get("rebalance", d.base.rebalance)
    return plan


# --- leadership and instances -----------------------------------------------------------


def _leader_elected(d: Draft, e: ev.LeaderElected) -> None:
    d.changes.update(epoch=e.epoch, leader_id=e.leader_id)


def _instance_registered(d: Draft, e: ev.InstanceRegistered) -> None:
    old = d.instances.get(e.server_id)
    if old is not None and old.incarnation == e.incarnation:
        raise Rejected(
            FindingKind.INVALID_TRANSITION, f"{e.server_id!r}/{e.incarnation!r} already registered"
        )
    if old is not None and old.status not in GONE_STATUSES:
        raise Rejected(
            FindingKind.INVALID_TRANSITION,
            f"{e.server_id!r}: incarnation {old.incarnation!r} is {old.status}; "
            "fail or deregister it first",
        )
    if old is not None and d.held.get(e.server_id):
        raise Rejected(
            FindingKind.INVALID_TRANSITION,
            f"{e.server_id!r}: streams of incarnation {old.incarnation!r} not reassigned yet",
        )
    inst = EnhancedInstance(
        server_id=e.server_id,
        incarnation=e.incarnation,
        ip=str(e.ip),
        port=e.port,
        max_streams=e.max_streams,
        zone=e.zone,
        tags=e.tags,
        registered_at=e.time,
        last_heartbeat=e.time,
        failure_count=old.failure_count if old else 0,
        recovery_attempts=old.recovery_attempts if old else 0,
        last_failure_at=old.last_failure_at if old else None,
        draining=old.draining if old else False,
        past_incarnations=(*old.past_incarnations, old.incarnation)[-PAST_KEPT:] if old else (),
    )
    d.put_instance(inst)


def _instance_suspected(d: Draft, e: ev.InstanceSuspected) -> None:
    inst = _instance(d, e.server_id, e.incarnation)
    if inst.status is not InstanceStatus.ACTIVE:
        raise Rejected(
            FindingKind.INVALID_TRANSITION, f"{e.server_id!r} is {inst.status}, not active"
        )
    d.update_instance(inst, status=InstanceStatus.SUSPECTED, last_heartbeat=e.last_heartbeat)


def _instance_recovered(d: Draft, e: ev.InstanceRecovered) -> None:
    inst = _instance(d, e.server_id, e.incarnation)
    if inst.status not in (InstanceStatus.SUSPECTED, InstanceStatus.QUARANTINED):
        raise Rejected(FindingKind.INVALID_TRANSITION, f"{e.server_id!r} is {inst.status}")
    attempts = inst.recovery_attempts + (1 if inst.status is InstanceStatus.QUARANTINED else 0)
    inst = d.update_instance(
        inst,
        status=InstanceStatus.ACTIVE,
        last_heartbeat=e.time,
        recovery_attempts=attempts,
        quarantined_until=None,
    )


def _instance_gone(d: Draft, e: ev.InstanceFailed | ev.InstanceDeregistered) -> None:
    """Failed or left: it holds nothing any more; its streams are reassigned by later events."""
    inst = _instance(d, e.server_id, e.incarnation)
    if inst.status in GONE_STATUSES:
        raise Rejected(FindingKind.INVALID_TRANSITION, f"{e.server_id!r} is already {inst.status}")
    failed = isinstance(e, ev.InstanceFailed)
    inst = d.update_instance(
        inst,
        status=InstanceStatus.FAILED if failed else InstanceStatus.LEFT,
        failure_count=inst.failure_count + (1 if failed else 0),
        last_failure_at=e.time if failed else inst.last_failure_at,
    )


def _instance_quarantined(d: Draft, e: ev.InstanceQuarantined) -> None:
    inst = _instance(d, e.server_id)
    if inst.status in GONE_STATUSES:
        raise Rejected(FindingKind.INVALID_TRANSITION, f"{e.server_id!r} is {inst.status}")
    if d.held.get(e.server_id):
        raise Rejected(FindingKind.INVALID_TRANSITION, f"{e.server_id!r} still holds streams")
    d.update_instance(inst, status=InstanceStatus.QUARANTINED, quarantined_until=e.until)


def _instance_draining(d: Draft, e: ev.InstanceDraining) -> None:
    d.update_instance(_instance(d, e.server_id), draining=True)


def _instance_undrained(d: Draft, e: ev.InstanceUndrained) -> None:
    inst = _instance(d, e.server_id)
    d.update_instance(inst, draining=False, drained_at=None)


def _instance_drained(d: Draft, e: ev.InstanceDrained) -> None:
    inst = _instance(d, e.server_id)
    if not inst.draining or inst.load:
        raise Rejected(
            FindingKind.INVALID_TRANSITION,
            f"{e.server_id!r} is not an empty draining instance (load {inst.load})",
        )
    d.update_instance(inst, drained_at=e.time)


def _instance_capacity_changed(d: Draft, e: ev.InstanceCapacityChanged) -> None:
    inst = _instance(d, e.server_id)
    if e.max_streams < inst.load:
        raise Rejected(
            FindingKind.CAPACITY_EXCEEDED,
            f"{e.server_id!r} holds {inst.load}; capacity {e.max_streams} is too small",
        )
    d.update_instance(inst, max_streams=e.max_streams)


def _performance_sampled(d: Draft, e: ev.PerformanceSampled) -> None:
    inst = _instance(d, e.server_id)
    d.update_instance(inst, performance_metrics=e.metrics, metrics_at=e.time)


# --- streams ----------------------------------------------------------------------------


def _stream_registered(d: Draft, e: ev.StreamRegistered) -> None:
    if e.stream_id in d.streams:
        raise Rejected(FindingKind.INVALID_TRANSITION, f"stream {e.stream_id!r} already registered")
    stream = StreamAssignment(
        stream_id=e.stream_id,
        weight=e.weight,
        priority=e.priority,
        zone=e.zone,
        anti_affinity=e.anti_affinity,
        params=tuple(sorted(e.params.items())),
        registered_at=e.time,
    )
    d.put_stream(stream)


def _stream_deregistered(d: Draft, e: ev.StreamDeregistered) -> None:
    stream = _stream(d, e.stream_id)
    _release_all(d, stream)
    d.drop_stream(e.stream_id)


def _stream_assigned(d: Draft, e: ev.StreamAssigned) -> None:
    stream = _stream(d, e.stream_id)
    target = _instance(d, e.server_id, e.incarnation)
    if target.status is not InstanceStatus.ACTIVE:
        raise Rejected(FindingKind.INVALID_TRANSITION, f"{e.server_id!r} is {target.status}")
    if stream.migration_state is not None:
        raise Rejected(FindingKind.TWO_OWNERS, f"{e.stream_id!r} is migrating; abort it first")
    if _owner_alive(d, stream):
        raise Rejected(
            FindingKind.TWO_OWNERS,
            f"{e.stream_id!r} is owned by live {stream.server_id!r}; migrate it instead",
        )
    # Check before writing (every transition does: projections.fold.transient relies on it). The
    # dead owner's release below frees the stream's weight on the target first when it is
    # the same server (a new incarnation): count that in, as ``_hold`` will see it.
    load = target.load
    if stream.server_id == e.server_id:
        load = max(0, load - stream.weight)
    _check_room(target, load, stream)
    _release_all(d, stream)
    _hold(d, e.server_id, stream, owner=True)
    stream = d.update_stream(
        stream,
        server_id=e.server_id,
        incarnation=e.incarnation,
        assigned_at=e.time,
        status=AssignmentStatus.ASSIGNED,
    )


def _stream_unassigned(d: Draft, e: ev.StreamUnassigned) -> None:
    stream = _stream(d, e.stream_id)
    _release_all(d, stream)
    stream = d.update_stream(
        stream,
        server_id=None,
        incarnation=None,
        assigned_at=None,
        migration_state=None,
        status=AssignmentStatus.UNASSIGNED,
    )


def _stream_started(d: Draft, e: ev.StreamStarted) -> None:
    stream = _stream(d, e.stream_id)
    if stream.server_id != e.server_id or stream.incarnation != e.incarnation:
        raise Rejected(
            FindingKind.INVALID_TRANSITION,
            f"{e.stream_id!r} is owned by {stream.server_id!r}, "
            f"not {e.server_id!r}/{e.incarnation!r}",
        )
    if stream.status is not AssignmentStatus.ASSIGNED:
        raise Rejected(FindingKind.INVALID_TRANSITION, f"{e.stream_id!r} is {stream.status}")
    inst = _instance(d, e.server_id)
    d.update_instance(inst, last_heartbeat=e.time)
    d.update_stream(stream, status=AssignmentStatus.RUNNING)


def _stream_failed(d: Draft, e: ev.StreamFailed) -> None:
    """A start failed on its owner: the owner lets go; ``parked`` stops all attempts."""
    stream = _stream(d, e.stream_id)
    if stream.server_id != e.server_id:
        raise Rejected(
            FindingKind.INVALID_TRANSITION, f"{e.stream_id!r} is not owned by {e.server_id!r}"
        )
    if stream.migration_state is not None:
        raise Rejected(
            FindingKind.INVALID_TRANSITION, f"{e.stream_id!r} is migrating; abort it first"
        )
    _release_all(d, stream)
    failed_on = (
        stream.failed_on if e.server_id in stream.failed_on else (*stream.failed_on, e.server_id)
    )
    stream = d.update_stream(
        stream,
        server_id=None,
        incarnation=None,
        assigned_at=None,
        status=AssignmentStatus.FAILED if e.parked else AssignmentStatus.UNASSIGNED,
        failure_count=stream.failure_count + 1,
        failed_on=failed_on,
        last_error=e.error,
    )


# --- migrations -------------------------------------------------------------------------


def _migration_started(d: Draft, e: ev.MigrationStarted) -> None:
    stream = _stream(d, e.stream_id)
    if stream.server_id != e.from_server or not stream.can_migrate():
        raise Rejected(
            FindingKind.INVALID_TRANSITION,
            f"{e.stream_id!r} ({stream.status} on {stream.server_id!r}) "
            f"cannot migrate from {e.from_server!r}",
        )
    if e.to_server == e.from_server:
        raise Rejected(FindingKind.INVALID_TRANSITION, "migration to the same instance")
    target = _instance(d, e.to_server, e.to_incarnation)
    if target.status is not InstanceStatus.ACTIVE:
        raise Rejected(FindingKind.INVALID_TRANSITION, f"{e.to_server!r} is {target.status}")
    _hold(d, e.to_server, stream, owner=False)
    migration = MigrationState(
        migration_id=e.migration_id,
        from_server=e.from_server,
        to_server=e.to_server,
        to_incarnation=e.to_incarnation,
        started_at=e.time,
        deadline=e.deadline,
        reason=e.reason,
        plan_id=e.plan_id,
    )
    d.update_stream(stream, status=AssignmentStatus.MIGRATING, migration_state=migration)
    plan = _rebalance(d)
    if plan is not None and e.plan_id == plan.plan_id:
        d.changes["rebalance"] = replace(plan, started=plan.started | {e.stream_id})


def _count_plan_outcome(d: Draft, m: MigrationState, *, completed: bool) -> None:
    plan = _rebalance(d)
    if plan is None or m.plan_id != plan.plan_id:
        return
    if completed:
        d.changes["rebalance"] = replace(plan, completed=plan.completed + 1)
    else:
        d.changes["rebalance"] = replace(plan, aborted=plan.aborted + 1)


def _migration(
    d: Draft, stream_id: str, migration_id: str
) -> tuple[StreamAssignment, MigrationState]:
    stream = _stream(d, stream_id)
    m = stream.migration_state
    if m is None or m.migration_id != migration_id:
        raise Rejected(
            FindingKind.INVALID_TRANSITION, f"{stream_id!r} has no migration {migration_id!r}"
        )
    return stream, m


def _migration_completed(d: Draft, e: ev.MigrationCompleted) -> None:
    """Make-before-break: the target (already holding capacity) becomes the owner."""
    stream, m = _migration(d, e.stream_id, e.migration_id)
    target = _instance(d, m.to_server, m.to_incarnation)
    if target.status in GONE_STATUSES:
        raise Rejected(FindingKind.INVALID_TRANSITION, f"target {m.to_server!r} is {target.status}")
    _release(d, m.from_server, stream, owner=True)
    target = _instance(d, m.to_server)
    d.update_instance(target, current_streams=target.current_streams + 1)
    stream = d.update_stream(
        stream,
        server_id=m.to_server,
        incarnation=m.to_incarnation,
        assigned_at=e.time,
        status=AssignmentStatus.RUNNING,
        migration_state=None,
    )
    _count_plan_outcome(d, m, completed=True)


def _migration_aborted(d: Draft, e: ev.MigrationAborted) -> None:
    stream, m = _migration(d, e.stream_id, e.migration_id)
    _release(d, m.to_server, stream, owner=False)
    _count_plan_outcome(d, m, completed=False)
    d.update_stream(stream, status=AssignmentStatus.RUNNING, migration_state=None)


# --- rebalancing, consistency, commands, maintenance ------------------------------------


def _rebalance_planned(d: Draft, e: ev.RebalancePlanned) -> None:
    if e.dry_run:
        d.changes.update(last_plan_id=e.plan_id, last_plan_at=e.time)
        return
    running = d.base.rebalance
    if running is not None:
        raise Rejected(
            FindingKind.INVALID_TRANSITION, f"rebalance {running.plan_id!r} still running"
        )
    moves = tuple(PlannedMigration(m.stream_id, m.from_server, m.to_server) for m in e.moves)
    progress = RebalanceProgress(plan_id=e.plan_id, moves=moves, started_seq=e.seq)
    d.changes.update(last_plan_id=e.plan_id, last_plan_at=e.time, rebalance=progress)


def _rebalance_completed(d: Draft, e: ev.RebalanceCompleted) -> None:
    running = d.base.rebalance
    if running is None or running.plan_id != e.plan_id:
        raise Rejected(FindingKind.INVALID_TRANSITION, f"no rebalance {e.plan_id!r} in progress")
    d.changes["rebalance"] = None


def _divergence_found(d: Draft, e: ev.ConsistencyDivergenceFound) -> None:
    d.changes["divergences_found"] = d.base.divergences_found + 1


def _divergence_repaired(d: Draft, e: ev.ConsistencyDivergenceRepaired) -> None:
    d.changes["divergences_repaired"] = d.base.divergences_repaired + 1


def _command_done(d: Draft, e: ev.CommandRejected | ev.CommandCompleted) -> None:
    done = d.base.processed_commands.set(e.command_id, e.seq)
    if len(done) > 2 * COMMAND_WINDOW:
        newest = sorted(done.items(), key=lambda kv: kv[1])[-COMMAND_WINDOW:]
        done = immutables.Map(newest)
    d.changes["processed_commands"] = done


def _maintenance_entered(d: Draft, e: ev.MaintenanceModeEntered) -> None:
    d.changes.update(maintenance=True, maintenance_reason=e.reason)


def _maintenance_left(d: Draft, e: ev.MaintenanceModeLeft) -> None:
    d.changes.update(maintenance=False, maintenance_reason=None)


# --- the table the fold dispatches on, and the one-transition public functions ----------

TRANSITIONS: dict[type[ControlEvent], Transition] = {
    ev.LeaderElected: _leader_elected,
    ev.InstanceRegistered: _instance_registered,
    ev.InstanceSuspected: _instance_suspected,
    ev.InstanceRecovered: _instance_recovered,
    ev.InstanceFailed: _instance_gone,
    ev.InstanceDeregistered: _instance_gone,
    ev.InstanceQuarantined: _instance_quarantined,
    ev.InstanceDraining: _instance_draining,
    ev.InstanceUndrained: _instance_undrained,
    ev.InstanceDrained: _instance_drained,
    ev.InstanceCapacityChanged: _instance_capacity_changed,
    ev.PerformanceSampled: _performance_sampled,
    ev.StreamRegistered: _stream_registered,
    ev.StreamDeregistered: _stream_deregistered,
    ev.StreamAssigned: _stream_assigned,
    ev.StreamUnassigned: _stream_unassigned,
    ev.StreamStarted: _stream_started,
    ev.StreamFailed: _stream_failed,
    ev.MigrationStarted: _migration_started,
    ev.MigrationCompleted: _migration_completed,
    ev.MigrationAborted: _migration_aborted,
    ev.RebalancePlanned: _rebalance_planned,
    ev.RebalanceCompleted: _rebalance_completed,
    ev.ConsistencyDivergenceFound: _divergence_found,
    ev.ConsistencyDivergenceRepaired: _divergence_repaired,
    ev.CommandRejected: _command_done,
    ev.CommandCompleted: _command_done,
    ev.MaintenanceModeEntered: _maintenance_entered,
    ev.MaintenanceModeLeft: _maintenance_left,
}
"""Event type -> its transition on a :class:`Draft` (what :func:`projections.fold.apply` runs)."""


def _public(core: Callable[[Draft, _E], None]) -> Callable[[ClusterState, _E], ClusterState]:
    """``core`` as a whole transition ``(state, event) -> state`` (raises :class:`Rejected`)."""

    def transition(state: ClusterState, e: _E) -> ClusterState:
        d = Draft(state)
        core(d, e)
        return d.finish()

    transition.__name__ = transition.__qualname__ = core.__name__.lstrip("_")
    transition.__doc__ = core.__doc__
    return transition


leader_elected = _public(_leader_elected)
instance_registered = _public(_instance_registered)
instance_suspected = _public(_instance_suspected)
instance_recovered = _public(_instance_recovered)
instance_gone = _public(_instance_gone)
instance_quarantined = _public(_instance_quarantined)
instance_draining = _public(_instance_draining)
instance_undrained = _public(_instance_undrained)
instance_drained = _public(_instance_drained)
instance_capacity_changed = _public(_instance_capacity_changed)
performance_sampled = _public(_performance_sampled)
stream_registered = _public(_stream_registered)
stream_deregistered = _public(_stream_deregistered)
stream_assigned = _public(_stream_assigned)
stream_unassigned = _public(_stream_unassigned)
stream_started = _public(_stream_started)
stream_failed = _public(_stream_failed)
migration_started = _public(_migration_started)
migration_completed = _public(_migration_completed)
migration_aborted = _public(_migration_aborted)
rebalance_planned = _public(_rebalance_planned)
rebalance_completed = _public(_rebalance_completed)
divergence_found = _public(_divergence_found)
divergence_repaired = _public(_divergence_repaired)
command_done = _public(_command_done)
maintenance_entered = _public(_maintenance_entered)
maintenance_left = _public(_maintenance_left)
