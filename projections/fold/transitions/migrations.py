"""Transitions of make-before-break migrations: started, completed, aborted."""

from __future__ import annotations

from events import control as ev
from projections.fold.state import (
    GONE_STATUSES,
    AssignmentStatus,
    FindingKind,
    InstanceStatus,
    MigrationState,
    replace,
)
from projections.fold.transitions.common import Rejected, hold, instance_of, release, stream_of
from projections.fold.transitions.draft import Draft, StreamRecord


def migration_started(d: Draft, e: ev.MigrationStarted) -> None:
    stream = stream_of(d, e.stream_id)
    # StreamAssignment.can_migrate(), asked of either record: running and not migrating
    movable = stream.status is AssignmentStatus.RUNNING and stream.migration_state is None
    if stream.server_id != e.from_server or not movable:
        raise Rejected(
            FindingKind.INVALID_TRANSITION,
            f"{e.stream_id!r} ({stream.status} on {stream.server_id!r}) "
            f"cannot migrate from {e.from_server!r}",
        )
    if e.to_server == e.from_server:
        raise Rejected(FindingKind.INVALID_TRANSITION, "migration to the same instance")
    target = instance_of(d, e.to_server, e.to_incarnation)
    if target.status is not InstanceStatus.ACTIVE:
        raise Rejected(FindingKind.INVALID_TRANSITION, f"{e.to_server!r} is {target.status}")
    hold(d, e.to_server, stream, owner=False)
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
    plan = d.rebalance
    if plan is not None and e.plan_id == plan.plan_id:
        d.set(rebalance=replace(plan, started=plan.started | {e.stream_id}))


def _count_plan_outcome(d: Draft, m: MigrationState, *, completed: bool) -> None:
    plan = d.rebalance
    if plan is None or m.plan_id != plan.plan_id:
        return
    if completed:
        d.set(rebalance=replace(plan, completed=plan.completed + 1))
    else:
        d.set(rebalance=replace(plan, aborted=plan.aborted + 1))


def _migration(d: Draft, stream_id: str, migration_id: str) -> tuple[StreamRecord, MigrationState]:
    stream = stream_of(d, stream_id)
    m = stream.migration_state
    if m is None or m.migration_id != migration_id:
        raise Rejected(
            FindingKind.INVALID_TRANSITION, f"{stream_id!r} has no migration {migration_id!r}"
        )
    return stream, m


def migration_completed(d: Draft, e: ev.MigrationCompleted) -> None:
    """Make-before-break: the target (already holding capacity) becomes the owner."""
    stream, m = _migration(d, e.stream_id, e.migration_id)
    target = instance_of(d, m.to_server, m.to_incarnation)
    if target.status in GONE_STATUSES:
        raise Rejected(FindingKind.INVALID_TRANSITION, f"target {m.to_server!r} is {target.status}")
    release(d, m.from_server, stream, owner=True)
    target = instance_of(d, m.to_server)
    d.update_instance(target, current_streams=target.current_streams + 1)
    d.update_stream(
        stream,
        server_id=m.to_server,
        incarnation=m.to_incarnation,
        assigned_at=e.time,
        status=AssignmentStatus.RUNNING,
        migration_state=None,
    )
    _count_plan_outcome(d, m, completed=True)


def migration_aborted(d: Draft, e: ev.MigrationAborted) -> None:
    stream, m = _migration(d, e.stream_id, e.migration_id)
    release(d, m.to_server, stream, owner=False)
    _count_plan_outcome(d, m, completed=False)
    d.update_stream(stream, status=AssignmentStatus.RUNNING, migration_state=None)
