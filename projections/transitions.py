"""One pure transition per control event type (used only by :mod:`projections.fold`).

A transition returns the next state or raises :class:`Rejected`; the fold turns that into
a finding and leaves the state as it was (never a half-applied change).
"""

from __future__ import annotations

from typing import TypeVar

import immutables

from events import control as ev
from projections.state import (
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
)

_V = TypeVar("_V")

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


# --- helpers ----------------------------------------------------------------------------


def _instance(
    state: ClusterState, server_id: str, incarnation: str | None = None
) -> EnhancedInstance:
    inst = state.instances.get(server_id)
    if inst is None:
        raise Rejected(FindingKind.UNKNOWN_INSTANCE, f"unknown instance {server_id!r}")
    if incarnation is not None and inst.incarnation != incarnation:
        raise Rejected(
            FindingKind.UNKNOWN_INSTANCE,
            f"{server_id!r} is incarnation {inst.incarnation!r}, not {incarnation!r}",
        )
    return inst


def _stream(state: ClusterState, stream_id: str) -> StreamAssignment:
    stream = state.streams.get(stream_id)
    if stream is None:
        raise Rejected(FindingKind.UNKNOWN_STREAM, f"unknown stream {stream_id!r}")
    return stream


def _put_instance(state: ClusterState, inst: EnhancedInstance) -> ClusterState:
    return replace(state, instances=state.instances.set(inst.server_id, inst))


def _put_stream(state: ClusterState, stream: StreamAssignment) -> ClusterState:
    """Store ``stream`` and keep the ``in_flight`` and ``unplaced`` indexes in step."""
    sid = stream.stream_id
    m = stream.migration_state
    in_flight = state.in_flight.set(sid, m.migration_id) if m else _drop(state.in_flight, sid)
    waiting = stream.status is AssignmentStatus.UNASSIGNED
    unplaced = state.unplaced.set(sid, True) if waiting else _drop(state.unplaced, sid)
    return replace(
        state,
        streams=state.streams.set(sid, stream),
        in_flight=in_flight,
        unplaced=unplaced,
    )


def _drop(m: immutables.Map[str, _V], key: str) -> immutables.Map[str, _V]:
    return m.delete(key) if key in m else m


def _hold(
    state: ClusterState, server_id: str, stream: StreamAssignment, *, owner: bool
) -> ClusterState:
    """``server_id`` takes ``stream`` on (as owner or as a migration target): check capacity."""
    inst = _instance(state, server_id)
    if inst.load + stream.weight > inst.max_streams:
        raise Rejected(
            FindingKind.CAPACITY_EXCEEDED,
            f"{server_id!r} holds {inst.load}/{inst.max_streams}; "
            f"{stream.stream_id!r} weighs {stream.weight}",
        )
    inst = replace(
        inst,
        load=inst.load + stream.weight,
        current_streams=inst.current_streams + (1 if owner else 0),
    )
    held = state.held.get(server_id, immutables.Map()).set(stream.stream_id, True)
    state = replace(state, held=state.held.set(server_id, held))
    return _put_instance(state, inst)


def _release(
    state: ClusterState, server_id: str, stream: StreamAssignment, *, owner: bool
) -> ClusterState:
    inst = state.instances.get(server_id)
    if inst is None:
        return state
    inst = replace(
        inst,
        load=max(0, inst.load - stream.weight),
        current_streams=max(0, inst.current_streams - (1 if owner else 0)),
    )
    held = state.held.get(server_id)
    if held is not None and stream.stream_id in held:
        held = held.delete(stream.stream_id)
        state = replace(
            state, held=state.held.set(server_id, held) if held else state.held.delete(server_id)
        )
    return _put_instance(state, inst)


def _release_all(state: ClusterState, stream: StreamAssignment) -> ClusterState:
    """Drop the owner's and any migration target's hold on ``stream``."""
    if stream.server_id is not None:
        state = _release(state, stream.server_id, stream, owner=True)
    if stream.migration_state is not None:
        state = _release(state, stream.migration_state.to_server, stream, owner=False)
    return state


def _owner_alive(state: ClusterState, stream: StreamAssignment) -> bool:
    if stream.server_id is None:
        return False
    owner = state.instances.get(stream.server_id)
    return (
        owner is not None
        and owner.incarnation == stream.incarnation
        and owner.status not in GONE_STATUSES
    )


# --- leadership and instances -----------------------------------------------------------


def leader_elected(state: ClusterState, e: ev.LeaderElected) -> ClusterState:
    return replace(state, epoch=e.epoch, leader_id=e.leader_id)


def instance_registered(state: ClusterState, e: ev.InstanceRegistered) -> ClusterState:
    old = state.instances.get(e.server_id)
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
    if old is not None and state.held.get(e.server_id):
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
        draining=old.draining if old else False,
        past_incarnations=(*old.past_incarnations, old.incarnation)[-PAST_KEPT:] if old else (),
    )
    return _put_instance(state, inst)


def instance_suspected(state: ClusterState, e: ev.InstanceSuspected) -> ClusterState:
    inst = _instance(state, e.server_id, e.incarnation)
    if inst.status is not InstanceStatus.ACTIVE:
        raise Rejected(
            FindingKind.INVALID_TRANSITION, f"{e.server_id!r} is {inst.status}, not active"
        )
    return _put_instance(
        state, replace(inst, status=InstanceStatus.SUSPECTED, last_heartbeat=e.last_heartbeat)
    )


def instance_recovered(state: ClusterState, e: ev.InstanceRecovered) -> ClusterState:
    inst = _instance(state, e.server_id, e.incarnation)
    if inst.status not in (InstanceStatus.SUSPECTED, InstanceStatus.QUARANTINED):
        raise Rejected(FindingKind.INVALID_TRANSITION, f"{e.server_id!r} is {inst.status}")
    attempts = inst.recovery_attempts + (1 if inst.status is InstanceStatus.QUARANTINED else 0)
    inst = replace(
        inst,
        status=InstanceStatus.ACTIVE,
        last_heartbeat=e.time,
        recovery_attempts=attempts,
        quarantined_until=None,
    )
    return _put_instance(state, inst)


def instance_gone(
    state: ClusterState, e: ev.InstanceFailed | ev.InstanceDeregistered
) -> ClusterState:
    """Failed or left: it holds nothing any more; its streams are reassigned by later events."""
    inst = _instance(state, e.server_id, e.incarnation)
    if inst.status in GONE_STATUSES:
        raise Rejected(FindingKind.INVALID_TRANSITION, f"{e.server_id!r} is already {inst.status}")
    failed = isinstance(e, ev.InstanceFailed)
    inst = replace(
        inst,
        status=InstanceStatus.FAILED if failed else InstanceStatus.LEFT,
        failure_count=inst.failure_count + (1 if failed else 0),
        last_failure_at=e.time if failed else inst.last_failure_at,
    )
    return _put_instance(state, inst)


def instance_quarantined(state: ClusterState, e: ev.InstanceQuarantined) -> ClusterState:
    inst = _instance(state, e.server_id)
    if inst.status in GONE_STATUSES:
        raise Rejected(FindingKind.INVALID_TRANSITION, f"{e.server_id!r} is {inst.status}")
    if state.held.get(e.server_id):
        raise Rejected(FindingKind.INVALID_TRANSITION, f"{e.server_id!r} still holds streams")
    return _put_instance(
        state, replace(inst, status=InstanceStatus.QUARANTINED, quarantined_until=e.until)
    )


def instance_draining(state: ClusterState, e: ev.InstanceDraining) -> ClusterState:
    return _put_instance(state, replace(_instance(state, e.server_id), draining=True))


def instance_undrained(state: ClusterState, e: ev.InstanceUndrained) -> ClusterState:
    inst = _instance(state, e.server_id)
    return _put_instance(state, replace(inst, draining=False, drained_at=None))


def instance_drained(state: ClusterState, e: ev.InstanceDrained) -> ClusterState:
    inst = _instance(state, e.server_id)
    if not inst.draining or inst.load:
        raise Rejected(
            FindingKind.INVALID_TRANSITION,
            f"{e.server_id!r} is not an empty draining instance (load {inst.load})",
        )
    return _put_instance(state, replace(inst, drained_at=e.time))


def instance_capacity_changed(state: ClusterState, e: ev.InstanceCapacityChanged) -> ClusterState:
    inst = _instance(state, e.server_id)
    if e.max_streams < inst.load:
        raise Rejected(
            FindingKind.CAPACITY_EXCEEDED,
            f"{e.server_id!r} holds {inst.load}; capacity {e.max_streams} is too small",
        )
    return _put_instance(state, replace(inst, max_streams=e.max_streams))


def performance_sampled(state: ClusterState, e: ev.PerformanceSampled) -> ClusterState:
    inst = _instance(state, e.server_id)
    return _put_instance(state, replace(inst, performance_metrics=e.metrics, metrics_at=e.time))


# --- streams ----------------------------------------------------------------------------


def stream_registered(state: ClusterState, e: ev.StreamRegistered) -> ClusterState:
    if e.stream_id in state.streams:
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
    return _put_stream(state, stream)


def stream_deregistered(state: ClusterState, e: ev.StreamDeregistered) -> ClusterState:
    stream = _stream(state, e.stream_id)
    state = _release_all(state, stream)
    return replace(
        state,
        streams=state.streams.delete(e.stream_id),
        in_flight=_drop(state.in_flight, e.stream_id),
        unplaced=_drop(state.unplaced, e.stream_id),
    )


def stream_assigned(state: ClusterState, e: ev.StreamAssigned) -> ClusterState:
    stream = _stream(state, e.stream_id)
    target = _instance(state, e.server_id, e.incarnation)
    if target.status is not InstanceStatus.ACTIVE:
        raise Rejected(FindingKind.INVALID_TRANSITION, f"{e.server_id!r} is {target.status}")
    if stream.migration_state is not None:
        raise Rejected(FindingKind.TWO_OWNERS, f"{e.stream_id!r} is migrating; abort it first")
    if _owner_alive(state, stream):
        raise Rejected(
            FindingKind.TWO_OWNERS,
            f"{e.stream_id!r} is owned by live {stream.server_id!r}; migrate it instead",
        )
    state = _release_all(state, stream)
    state = _hold(state, e.server_id, stream, owner=True)
    stream = replace(
        stream,
        server_id=e.server_id,
        incarnation=e.incarnation,
        assigned_at=e.time,
        status=AssignmentStatus.ASSIGNED,
    )
    return _put_stream(state, stream)


def stream_unassigned(state: ClusterState, e: ev.StreamUnassigned) -> ClusterState:
    stream = _stream(state, e.stream_id)
    state = _release_all(state, stream)
    stream = replace(
        stream,
        server_id=None,
        incarnation=None,
        assigned_at=None,
        migration_state=None,
        status=AssignmentStatus.UNASSIGNED,
    )
    return _put_stream(state, stream)


def stream_started(state: ClusterState, e: ev.StreamStarted) -> ClusterState:
    stream = _stream(state, e.stream_id)
    if stream.server_id != e.server_id or stream.incarnation != e.incarnation:
        raise Rejected(
            FindingKind.INVALID_TRANSITION,
            f"{e.stream_id!r} is owned by {stream.server_id!r}, "
            f"not {e.server_id!r}/{e.incarnation!r}",
        )
    if stream.status is not AssignmentStatus.ASSIGNED:
        raise Rejected(FindingKind.INVALID_TRANSITION, f"{e.stream_id!r} is {stream.status}")
    inst = _instance(state, e.server_id)
    state = _put_instance(state, replace(inst, last_heartbeat=e.time))
    return _put_stream(state, replace(stream, status=AssignmentStatus.RUNNING))


def stream_failed(state: ClusterState, e: ev.StreamFailed) -> ClusterState:
    """A start failed on its owner: the owner lets go; ``parked`` stops all attempts."""
    stream = _stream(state, e.stream_id)
    if stream.server_id != e.server_id:
        raise Rejected(
            FindingKind.INVALID_TRANSITION, f"{e.stream_id!r} is not owned by {e.server_id!r}"
        )
    if stream.migration_state is not None:
        raise Rejected(
            FindingKind.INVALID_TRANSITION, f"{e.stream_id!r} is migrating; abort it first"
        )
    state = _release_all(state, stream)
    failed_on = (
        stream.failed_on if e.server_id in stream.failed_on else (*stream.failed_on, e.server_id)
    )
    stream = replace(
        stream,
        server_id=None,
        incarnation=None,
        assigned_at=None,
        status=AssignmentStatus.FAILED if e.parked else AssignmentStatus.UNASSIGNED,
        failure_count=stream.failure_count + 1,
        failed_on=failed_on,
        last_error=e.error,
    )
    return _put_stream(state, stream)


# --- migrations -------------------------------------------------------------------------


def migration_started(state: ClusterState, e: ev.MigrationStarted) -> ClusterState:
    stream = _stream(state, e.stream_id)
    if stream.server_id != e.from_server or not stream.can_migrate():
        raise Rejected(
            FindingKind.INVALID_TRANSITION,
            f"{e.stream_id!r} ({stream.status} on {stream.server_id!r}) "
            f"cannot migrate from {e.from_server!r}",
        )
    if e.to_server == e.from_server:
        raise Rejected(FindingKind.INVALID_TRANSITION, "migration to the same instance")
    target = _instance(state, e.to_server, e.to_incarnation)
    if target.status is not InstanceStatus.ACTIVE:
        raise Rejected(FindingKind.INVALID_TRANSITION, f"{e.to_server!r} is {target.status}")
    state = _hold(state, e.to_server, stream, owner=False)
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
    state = _put_stream(
        state, replace(stream, status=AssignmentStatus.MIGRATING, migration_state=migration)
    )
    plan = state.rebalance
    if plan is not None and e.plan_id == plan.plan_id:
        state = replace(state, rebalance=replace(plan, started=plan.started | {e.stream_id}))
    return state


def _count_plan_outcome(state: ClusterState, m: MigrationState, *, completed: bool) -> ClusterState:
    plan = state.rebalance
    if plan is None or m.plan_id != plan.plan_id:
        return state
    if completed:
        return replace(state, rebalance=replace(plan, completed=plan.completed + 1))
    return replace(state, rebalance=replace(plan, aborted=plan.aborted + 1))


def _migration(
    state: ClusterState, stream_id: str, migration_id: str
) -> tuple[StreamAssignment, MigrationState]:
    stream = _stream(state, stream_id)
    m = stream.migration_state
    if m is None or m.migration_id != migration_id:
        raise Rejected(
            FindingKind.INVALID_TRANSITION, f"{stream_id!r} has no migration {migration_id!r}"
        )
    return stream, m


def migration_completed(state: ClusterState, e: ev.MigrationCompleted) -> ClusterState:
    """Make-before-break: the target (already holding capacity) becomes the owner."""
    stream, m = _migration(state, e.stream_id, e.migration_id)
    target = _instance(state, m.to_server, m.to_incarnation)
    if target.status in GONE_STATUSES:
        raise Rejected(FindingKind.INVALID_TRANSITION, f"target {m.to_server!r} is {target.status}")
    state = _release(state, m.from_server, stream, owner=True)
    target = _instance(state, m.to_server)
    state = _put_instance(state, replace(target, current_streams=target.current_streams + 1))
    stream = replace(
        stream,
        server_id=m.to_server,
        incarnation=m.to_incarnation,
        assigned_at=e.time,
        status=AssignmentStatus.RUNNING,
        migration_state=None,
    )
    state = _count_plan_outcome(state, m, completed=True)
    return _put_stream(state, stream)


def migration_aborted(state: ClusterState, e: ev.MigrationAborted) -> ClusterState:
    stream, m = _migration(state, e.stream_id, e.migration_id)
    state = _release(state, m.to_server, stream, owner=False)
    state = _count_plan_outcome(state, m, completed=False)
    return _put_stream(
        state, replace(stream, status=AssignmentStatus.RUNNING, migration_state=None)
    )


# --- rebalancing, consistency, commands, maintenance ------------------------------------


def rebalance_planned(state: ClusterState, e: ev.RebalancePlanned) -> ClusterState:
    if e.dry_run:
        return replace(state, last_plan_id=e.plan_id, last_plan_at=e.time)
    if state.rebalance is not None:
        raise Rejected(
            FindingKind.INVALID_TRANSITION, f"rebalance {state.rebalance.plan_id!r} still running"
        )
    moves = tuple(PlannedMigration(m.stream_id, m.from_server, m.to_server) for m in e.moves)
    progress = RebalanceProgress(plan_id=e.plan_id, moves=moves, started_seq=e.seq)
    return replace(state, last_plan_id=e.plan_id, last_plan_at=e.time, rebalance=progress)


def rebalance_completed(state: ClusterState, e: ev.RebalanceCompleted) -> ClusterState:
    if state.rebalance is None or state.rebalance.plan_id != e.plan_id:
        raise Rejected(FindingKind.INVALID_TRANSITION, f"no rebalance {e.plan_id!r} in progress")
    return replace(state, rebalance=None)


def divergence_found(state: ClusterState, e: ev.ConsistencyDivergenceFound) -> ClusterState:
    return replace(state, divergences_found=state.divergences_found + 1)


def divergence_repaired(state: ClusterState, e: ev.ConsistencyDivergenceRepaired) -> ClusterState:
    return replace(state, divergences_repaired=state.divergences_repaired + 1)


def command_done(state: ClusterState, e: ev.CommandRejected | ev.CommandCompleted) -> ClusterState:
    done = state.processed_commands.set(e.command_id, e.seq)
    if len(done) > 2 * COMMAND_WINDOW:
        newest = sorted(done.items(), key=lambda kv: kv[1])[-COMMAND_WINDOW:]
        done = immutables.Map(newest)
    return replace(state, processed_commands=done)


def maintenance_entered(state: ClusterState, e: ev.MaintenanceModeEntered) -> ClusterState:
    return replace(state, maintenance=True, maintenance_reason=e.reason)


def maintenance_left(state: ClusterState, e: ev.MaintenanceModeLeft) -> ClusterState:
    return replace(state, maintenance=False, maintenance_reason=None)
