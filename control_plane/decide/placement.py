"""Where streams go: placing homeless streams, evacuating lost instances, drains and plans.

Pure steps of ``decide`` over a :class:`~control_plane.decide.context.Ctx`; the balancer does the
arithmetic, this module turns its answers into events.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from operator import attrgetter

from control_plane.decide.balancer import InstanceView, StreamView
from control_plane.decide.context import Ctx
from events import control as ev
from projections.fold.state import (
    GONE_STATUSES,
    AssignmentStatus,
    ClusterState,
    EnhancedInstance,
    InstanceStatus,
    StreamAssignment,
)

_DRAINING = attrgetter("draining")


def perf_factor(inst: EnhancedInstance) -> float:
    """Effective-capacity share from performance history (1.0 = no penalty).

    Errors cost their rate; a CPU past 90% costs up to a further 40%; never below 0.25.
    """
    m = inst.performance_metrics
    cpu_penalty = min(0.4, max(0.0, (m.cpu_percent - 90.0) / 100.0))
    return max(0.25, (1.0 - m.error_rate) * (1.0 - cpu_penalty))


def receives(inst: EnhancedInstance) -> bool:
    """May this instance be given new streams (policy, not just the fold's invariants)?"""
    return inst.status is InstanceStatus.ACTIVE and not inst.draining


def instance_views(state: ClusterState, exclude: Iterable[str] = ()) -> list[InstanceView]:
    skip = set(exclude)
    return [
        InstanceView(
            server_id=i.server_id,
            capacity=i.max_streams,
            eligible=receives(i) and i.server_id not in skip,
            zone=i.zone,
            tags=frozenset(i.tags),
            perf_factor=perf_factor(i),
        )
        for i in state.instances.values()
        if i.status not in GONE_STATUSES
    ]


def stream_view(s: StreamAssignment) -> StreamView:
    return StreamView(
        stream_id=s.stream_id,
        weight=s.weight,
        priority=s.priority,
        owner=s.server_id,
        zone=s.zone,
        anti_affinity=s.anti_affinity,
        movable=s.can_migrate(),
    )


def _loads(state: ClusterState) -> dict[str, int]:
    return {i.server_id: i.load for i in state.instances.values() if i.status not in GONE_STATUSES}


def place(
    ctx: Ctx,
    stream_ids: Sequence[str],
    reason: str,
    *,
    exclude: Sequence[str] = (),
    reasons: Mapping[str, str] | None = None,
) -> None:
    """Give each stream a home (highest priority first); those that fit nowhere wait.
    ``reasons``: a stream's own reason in place of ``reason``.

    A stream that failed to start somewhere is not sent back there while another home with
    room exists; when none does, it may retry where it failed (rather than wait forever; the
    poison rule in :mod:`control_plane.decide.observations` bounds those retries).
    ``exclude``: instances none of them may go to (a silent owner a repair moves them off).
    """
    streams = [ctx.state.streams[s] for s in stream_ids if s in ctx.state.streams]
    fresh = [s for s in streams if not s.failed_on]
    retried = [s for s in streams if s.failed_on]
    why = reasons or {}
    if fresh:
        _place_batch(ctx, fresh, reason, exclude=exclude, reasons=why)
    for s in retried:
        avoid = (*exclude, *s.failed_on)
        where = avoid if has_home(ctx, s, exclude=avoid) else exclude
        _place_batch(ctx, [s], reason, exclude=where, reasons=why)


def has_home(ctx: Ctx, s: StreamAssignment, *, exclude: Sequence[str]) -> bool:
    """Whether an instance outside ``exclude`` may take ``s`` now (eligible, with room)."""
    views = instance_views(ctx.state, exclude)
    return bool(ctx.balancer.place(views, [stream_view(s)], _loads(ctx.state)).assignments)


def _place_batch(
    ctx: Ctx,
    streams: list[StreamAssignment],
    reason: str,
    *,
    exclude: Sequence[str],
    reasons: Mapping[str, str],
) -> None:
    views = instance_views(ctx.state, exclude)
    result = ctx.balancer.place(views, [stream_view(s) for s in streams], _loads(ctx.state))
    for a in result.assignments:
        inst = ctx.state.instances[a.server_id]
        ctx.emit(
            ev.StreamAssigned,
            stream_id=a.stream_id,
            server_id=a.server_id,
            incarnation=inst.incarnation,
            reason=reasons.get(a.stream_id, reason),
        )
    for sid in result.unassigned:
        s = ctx.state.streams[sid]
        if s.server_id is not None:  # its owner is gone: let go of it explicitly
            ctx.emit(
                ev.StreamUnassigned, stream_id=sid, server_id=s.server_id, reason="no_capacity"
            )
        ctx.alerts.append(f"no capacity for stream {sid} (priority {s.priority})")


def evacuate(ctx: Ctx, server_id: str, reason: str) -> None:
    """Move everything a failed or departed instance held, in this same transaction.

    Migrations towards it are aborted (their source keeps the stream); migrations away from
    it complete onto their target when the target is live (it has the capacity reserved);
    every other stream is placed anew or waits unassigned. Never an orphan, never two owners.
    """
    held = sorted(ctx.state.held.get(server_id, ()))
    homeless: list[str] = []
    for sid in held:
        s = ctx.state.streams[sid]
        m = s.migration_state
        if m is not None and m.to_server == server_id:
            ctx.emit(ev.MigrationAborted, stream_id=sid, migration_id=m.migration_id, reason=reason)
            continue
        if m is not None:
            ctx.emit(ev.MigrationAborted, stream_id=sid, migration_id=m.migration_id, reason=reason)
            target = ctx.state.instances.get(m.to_server)
            if target is not None and target.status is InstanceStatus.ACTIVE:
                ctx.emit(
                    ev.StreamAssigned,
                    stream_id=sid,
                    server_id=m.to_server,
                    incarnation=target.incarnation,
                    reason=reason,
                )
                continue
        homeless.append(sid)
    place(ctx, homeless, reason)


def place_waiting(ctx: Ctx, before: ClusterState) -> None:
    """Streams waiting for capacity (``unplaced``), placed as soon as there is room: with
    ``capacity_returned`` when they were already waiting as the cycle began (``before``),
    ``new_stream`` when they began waiting in this cycle."""
    if not ctx.state.unplaced:
        return
    if not any(receives(i) and i.free_capacity() for i in ctx.state.instances.values()):
        return
    waiting = sorted(ctx.state.unplaced.keys())
    returned = dict.fromkeys(
        (s for s in waiting if s in before.unplaced), ev.Reasons.CAPACITY_RETURNED
    )
    place(ctx, waiting, ev.Reasons.NEW_STREAM, reasons=returned)


def announce_waiting(ctx: Ctx, before: ClusterState) -> None:
    """``StreamWaiting(no_capacity)`` for each stream that ends this cycle waiting and began
    it otherwise (it was registered, lost its owner or failed to start, and no instance took
    it): once per wait, so a stream left waiting for an hour writes one event, not one per
    cycle. Last step of the cycle: only then is it known that nothing placed it."""
    after = ctx.state.unplaced
    if after is before.unplaced or not after:
        return
    touched = dict.fromkeys(
        sid for e in ctx.events if isinstance(sid := getattr(e, "stream_id", None), str)
    )
    for sid in touched:
        if sid in ctx.state.unplaced and sid not in before.unplaced:
            ctx.emit(ev.StreamWaiting, stream_id=sid, reason=ev.Reasons.NO_CAPACITY)


def in_flight_by_instance(state: ClusterState) -> dict[str, int]:
    counts: dict[str, int] = {}
    for sid in state.in_flight:
        m = state.streams[sid].migration_state
        if m is not None:
            counts[m.from_server] = counts.get(m.from_server, 0) + 1
            counts[m.to_server] = counts.get(m.to_server, 0) + 1
    return counts


def start_migration(
    ctx: Ctx, s: StreamAssignment, to_server: str, reason: str, plan_id: str | None = None
) -> bool:
    """Make-before-break: the target starts the stream, the owner keeps it until then."""
    target = ctx.state.instances.get(to_server)
    if s.server_id is None or target is None or not receives(target):
        return False
    if target.load + s.weight > target.max_streams or not s.can_migrate():
        return False
    done = ctx.emit(
        ev.MigrationStarted,
        stream_id=s.stream_id,
        migration_id=ctx.new_id(),
        from_server=s.server_id,
        to_server=to_server,
        to_incarnation=target.incarnation,
        deadline=ctx.now + ctx.config.migration_timeout,
        reason=reason,
        plan_id=plan_id,
    )
    return done is not None


def _budget(ctx: Ctx) -> tuple[int, dict[str, int]]:
    return ctx.config.max_in_flight - len(ctx.state.in_flight), in_flight_by_instance(ctx.state)


def _room(ctx: Ctx, per: dict[str, int], *servers: str) -> bool:
    cap = ctx.config.max_in_flight_per_instance
    return all(per.get(s, 0) < cap for s in servers)


def advance_drains(ctx: Ctx) -> None:
    """Empty draining instances gradually; announce each one that is empty."""
    instances = ctx.state.instances.values()
    if not any(map(_DRAINING, instances)):
        return  # the usual case, answered at C speed: nothing to sort every cycle
    draining = [i for i in instances if i.draining]
    for inst in sorted(draining, key=lambda i: i.server_id):
        if inst.status in GONE_STATUSES:
            continue
        if inst.load == 0:
            if inst.drained_at is None:
                ctx.emit(ev.InstanceDrained, server_id=inst.server_id)
            continue
        _drain_some(ctx, inst.server_id)


def _drain_some(ctx: Ctx, server_id: str) -> None:
    budget, per = _budget(ctx)
    held = ctx.state.held.get(server_id, ())
    movable = [ctx.state.streams[s] for s in sorted(held)]
    movable = [s for s in movable if s.server_id == server_id and s.can_migrate()]
    for s in movable:
        if budget <= 0 or not _room(ctx, per, server_id):
            return
        views = instance_views(ctx.state, exclude=(server_id,))
        home = ctx.balancer.place(views, [stream_view(s)], _loads(ctx.state))
        if not home.assignments:
            ctx.alerts.append(f"drain of {server_id}: no room for {s.stream_id}")
            return
        to = home.assignments[0].server_id
        if _room(ctx, per, to) and start_migration(ctx, s, to, ev.Reasons.DRAIN):
            budget -= 1
            per[server_id] = per.get(server_id, 0) + 1
            per[to] = per.get(to, 0) + 1


def advance_rebalance(ctx: Ctx) -> None:
    """Start the next planned moves within the in-flight limits; close a finished plan."""
    plan = ctx.state.rebalance
    if plan is None:
        return
    budget, per = _budget(ctx)
    pending = False
    for move in plan.moves:
        if move.stream_id in plan.started:
            continue
        s = ctx.state.streams.get(move.stream_id)
        if s is None or s.server_id != move.from_server:
            continue  # stale: the stream moved or left since the plan
        if s.status is AssignmentStatus.ASSIGNED:
            pending = True  # not running yet: may still become movable
            continue
        if budget <= 0 or not _room(ctx, per, move.from_server, move.to_server):
            pending = True
            continue
        if start_migration(ctx, s, move.to_server, ev.Reasons.REBALANCE, plan.plan_id):
            budget -= 1
            per[move.from_server] = per.get(move.from_server, 0) + 1
            per[move.to_server] = per.get(move.to_server, 0) + 1
    plan = ctx.state.rebalance
    assert plan is not None
    mine = any(
        (m := ctx.state.streams[sid].migration_state) is not None and m.plan_id == plan.plan_id
        for sid in ctx.state.in_flight
    )
    if not pending and not mine:
        ctx.emit(
            ev.RebalanceCompleted,
            plan_id=plan.plan_id,
            completed=plan.completed,
            aborted=plan.aborted,
            skipped=sum(1 for m in plan.moves if m.stream_id not in plan.started),
        )
