"""Synthetic history: what happens to streams (register, assign, start, fail, deregister)
and their migrations and rebalances. Each function emits legal events through the
:class:`Generator`, or returns False when nothing fits the current state."""

from __future__ import annotations

from datetime import timedelta

from events import control as ev
from projections.fold.state import (
    EnhancedInstance,
    InstanceStatus,
    PlannedMigration,
    StreamAssignment,
)
from projections.testing.synthetic.generator import Generator


def register_stream(g: Generator) -> bool:
    if len(g.all_streams) >= g.target_streams * 6 // 5 + 1:
        return False
    g.serial += 1
    r = g.rng.random()
    params = {"url": f"rtsp://cam-{g.serial}/live"} if r < 0.3 else {}
    g.emit(
        ev.StreamRegistered,
        stream_id=f"s{g.serial}",
        weight=1 if r < 0.8 else (2 if r < 0.95 else 3),
        priority=g.rng.choice((0, 0, 0, 10, -10)),
        params=params,
    )
    return True


def deregister_stream(g: Generator) -> bool:
    parked = g.rng.random() < 0.5
    stream_id = g.stream_in("failed") if parked else g.all_streams.choice(g.rng)
    if stream_id is None:
        return False
    g.emit(ev.StreamDeregistered, stream_id=stream_id, reason=ev.Reasons.OPERATOR)
    return True


def assign(g: Generator) -> bool:
    stream_id = g.stream_in("unassigned")
    if stream_id is None:
        return False
    stream = g.state.streams[stream_id]
    target = g.target(stream.weight)
    if target is None:
        return False
    new = stream.failure_count == 0 and stream.assigned_at is None
    g.emit(
        ev.StreamAssigned,
        stream_id=stream_id,
        server_id=target.server_id,
        incarnation=target.incarnation,
        reason=ev.Reasons.NEW_STREAM if new else ev.Reasons.CAPACITY_RETURNED,
    )
    return True


def _assigned_on_active(g: Generator) -> tuple[str, EnhancedInstance] | None:
    stream_id = g.stream_in("assigned")
    if stream_id is None:
        return None
    server_id = g.state.streams[stream_id].server_id
    inst = g.state.instances.get(server_id) if server_id is not None else None
    if inst is None or inst.status is not InstanceStatus.ACTIVE:
        return None
    return stream_id, inst


def start(g: Generator) -> bool:
    found = _assigned_on_active(g)
    if found is None:
        return False
    stream_id, inst = found
    g.emit(
        ev.StreamStarted,
        stream_id=stream_id,
        server_id=inst.server_id,
        incarnation=inst.incarnation,
    )
    return True


def fail_stream(g: Generator) -> bool:
    found = _assigned_on_active(g)
    if found is None:
        return False
    stream_id, inst = found
    stream = g.state.streams[stream_id]
    parked = stream.failure_count >= 2 and g.rng.random() < 0.5
    g.emit(
        ev.StreamFailed,
        stream_id=stream_id,
        server_id=inst.server_id,
        error=f"start failed on {inst.server_id}",
        parked=parked,
        reason=ev.Reasons.POISON if parked else ev.Reasons.START_FAILED,
    )
    return True


def migrate(g: Generator) -> bool:
    stream_id = g.stream_in("running")
    return stream_id is not None and migrate_stream(g, stream_id, ev.Reasons.REBALANCE)


def migrate_stream(g: Generator, stream_id: str, reason: str) -> bool:
    stream = g.state.streams[stream_id]
    target = g.target(stream.weight, exclude=stream.server_id)
    if target is None or stream.server_id is None:
        return False
    _start_migration(g, stream, target, reason, None)
    return True


def _start_migration(
    g: Generator, stream: StreamAssignment, target: EnhancedInstance, reason: str, plan: str | None
) -> None:
    g.emit(
        ev.MigrationStarted,
        stream_id=stream.stream_id,
        migration_id=f"m{g.state.seq + 1}",
        from_server=stream.server_id,
        to_server=target.server_id,
        to_incarnation=target.incarnation,
        deadline=g.now + timedelta(seconds=30),
        reason=reason,
        plan_id=plan,
    )


def end_migration(g: Generator) -> bool:
    stream_id = g.stream_in("migrating")
    if stream_id is None:
        return False
    m = g.state.streams[stream_id].migration_state
    assert m is not None  # the "migrating" bucket holds only streams with a migration
    if g.rng.random() < 0.85:
        g.emit(ev.MigrationCompleted, stream_id=stream_id, migration_id=m.migration_id)
    else:
        g.emit(
            ev.MigrationAborted,
            stream_id=stream_id,
            migration_id=m.migration_id,
            reason=ev.Reasons.TIMEOUT,
        )
    return True


def rebalance(g: Generator) -> bool:
    """Plan a rebalance, or carry the current plan on one move at a time, then close it."""
    plan = g.state.rebalance
    if plan is None:
        return _plan(g)
    for move in plan.moves:
        if move.stream_id not in plan.started and _planned_move(g, move, plan.plan_id):
            return True
    g.emit(
        ev.RebalanceCompleted,
        plan_id=plan.plan_id,
        completed=plan.completed,
        aborted=len(plan.moves) - plan.completed,
    )
    return True


def _planned_move(g: Generator, move: PlannedMigration, plan_id: str) -> bool:
    stream = g.state.streams.get(move.stream_id)
    target = g.state.instances.get(move.to_server)
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
    _start_migration(g, stream, target, ev.Reasons.REBALANCE, plan_id)
    return True


def _plan(g: Generator) -> bool:
    moves: dict[str, ev.PlannedMove] = {}
    for _ in range(g.rng.randint(0, 4)):
        stream_id = g.stream_in("running")
        stream = g.state.streams.get(stream_id) if stream_id else None
        target = g.target(1)
        if stream and stream.server_id and target and target.server_id != stream.server_id:
            moves[stream.stream_id] = ev.PlannedMove(
                stream_id=stream.stream_id,
                from_server=stream.server_id,
                to_server=target.server_id,
                gain=g.rng.randint(0, 100) / 100,
            )
    g.emit(
        ev.RebalancePlanned,
        plan_id=f"p{g.state.seq + 1}",
        dry_run=g.rng.random() < 0.3,
        moves=tuple(moves.values()),
        score_before=0.5,
        score_after=0.5 + len(moves) / 10,
    )
    return True
