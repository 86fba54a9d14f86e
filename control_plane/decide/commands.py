"""Operators' commands -> events. Each ends in ``CommandCompleted`` or ``CommandRejected``.

A command id already answered changes nothing (idempotent resend). Invalid commands (unknown
stream or instance, capacity below load without a drain, a second rebalance) are rejected
with a machine-readable reason and a sentence for humans.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from control_plane.decide.checker.repair import repair_reported
from control_plane.decide.consistency import run_check
from control_plane.decide.context import Ctx
from control_plane.decide.failures import handle_instance_failure
from control_plane.decide.liveness import LivenessView
from control_plane.decide.placement import evacuate, instance_views, place, stream_view
from events import commands as cmd
from events import control as ev
from events.base import Command
from events.enrollment import key_id
from projections.fold.state import GONE_STATUSES, InstanceStatus


class Reject(Exception):
    """Raised by a handler before it emits anything: the command is refused whole."""

    def __init__(self, reason: str, detail: str):
        super().__init__(detail)
        self.reason = reason
        self.detail = detail


def on_command(ctx: Ctx, c: Command, liveness: LivenessView) -> None:
    if c.command_id in ctx.state.processed_commands:
        return
    handler = _HANDLERS[type(c)]
    mark = len(ctx.events)
    ctx.principal, ctx.causation = c.principal, c.command_id
    try:
        _carry_out(ctx, c, liveness, handler, mark)
    finally:
        ctx.principal = ctx.causation = None


def _carry_out(
    ctx: Ctx, c: Command, liveness: LivenessView, handler: Callable[..., str], mark: int
) -> None:
    """Run the handler, then record the outcome (``CommandCompleted``/``CommandRejected``)."""
    try:
        detail = handler(ctx, c, liveness)
    except Reject as r:
        # handlers validate before they emit: a rejected command leaves nothing behind
        assert len(ctx.events) == mark, "a command handler emitted events before rejecting"
        ctx.emit(
            ev.CommandRejected,
            causation=c.command_id,
            command_id=c.command_id,
            command_type=c.type,  # type: ignore[attr-defined]
            reason=r.reason,
            detail=r.detail,
        )
        return
    ctx.emit(
        ev.CommandCompleted,
        causation=c.command_id,
        command_id=c.command_id,
        command_type=c.type,  # type: ignore[attr-defined]
        detail=detail,
    )


def _server(ctx: Ctx, server_id: str) -> Any:
    inst = ctx.state.instances.get(server_id)
    if inst is None or inst.status in GONE_STATUSES:
        raise Reject("unknown_instance", f"no live instance {server_id!r}")
    return inst


def _stream(ctx: Ctx, stream_id: str) -> Any:
    s = ctx.state.streams.get(stream_id)
    if s is None:
        raise Reject("unknown_stream", f"no stream {stream_id!r}")
    return s


def register_stream(ctx: Ctx, c: cmd.RegisterStream, _: LivenessView) -> str:
    if c.stream_id in ctx.state.streams:
        raise Reject("already_registered", f"stream {c.stream_id!r} already exists")
    ctx.emit(
        ev.StreamRegistered,
        causation=c.command_id,
        stream_id=c.stream_id,
        weight=c.weight,
        priority=c.priority,
        zone=c.zone,
        anti_affinity=c.anti_affinity,
        params=c.params,
    )
    place(ctx, [c.stream_id], ev.Reasons.NEW_STREAM)
    s = ctx.state.streams[c.stream_id]
    return f"assigned to {s.server_id}" if s.server_id else "waiting for capacity"


def deregister_stream(ctx: Ctx, c: cmd.DeregisterStream, _: LivenessView) -> str:
    _stream(ctx, c.stream_id)
    ctx.emit(
        ev.StreamDeregistered, causation=c.command_id, stream_id=c.stream_id, reason="operator"
    )
    return "removed"


def drain(ctx: Ctx, c: cmd.DrainInstance, _: LivenessView) -> str:
    inst = _server(ctx, c.server_id)
    if not inst.draining:
        ctx.emit(ev.InstanceDraining, causation=c.command_id, server_id=c.server_id)
    return f"draining {inst.current_streams} streams"


def undrain(ctx: Ctx, c: cmd.UndrainInstance, _: LivenessView) -> str:
    inst = _server(ctx, c.server_id)
    if inst.draining:
        ctx.emit(ev.InstanceUndrained, causation=c.command_id, server_id=c.server_id)
    return "receiving streams again"


def set_capacity(ctx: Ctx, c: cmd.SetCapacity, _: LivenessView) -> str:
    inst = _server(ctx, c.server_id)
    if c.max_streams < inst.load:
        raise Reject(
            "capacity_below_load",
            f"{c.server_id!r} holds {inst.load}; drain it or move streams before lowering "
            f"its capacity to {c.max_streams}",
        )
    ctx.emit(
        ev.InstanceCapacityChanged,
        causation=c.command_id,
        server_id=c.server_id,
        max_streams=c.max_streams,
    )
    return f"capacity {inst.max_streams} -> {c.max_streams}"


def request_rebalance(ctx: Ctx, c: cmd.RequestRebalance, _: LivenessView) -> str:
    if not c.dry_run and ctx.state.rebalance is not None:
        raise Reject("rebalance_in_progress", f"plan {ctx.state.rebalance.plan_id} is running")
    moves = plan_rebalance(
        ctx, dry_run=c.dry_run, reason=ev.Reasons.OPERATOR, causation=c.command_id
    )
    return f"{moves} moves planned" + (" (dry run)" if c.dry_run else "")


def plan_rebalance(ctx: Ctx, *, dry_run: bool, reason: str, causation: str | None) -> int:
    """Ask the balancer for a plan and record it (also a dry run) as ``RebalancePlanned``."""
    streams = [stream_view(s) for s in ctx.state.streams.values() if s.server_id is not None]
    plan = ctx.balancer.plan(instance_views(ctx.state), streams)
    ctx.emit(
        ev.RebalancePlanned,
        causation=causation,
        plan_id=ctx.new_id(),
        dry_run=dry_run,
        moves=tuple(ev.PlannedMove(**m._asdict()) for m in plan.moves),
        lower_bound=plan.lower_bound,
        score_before=plan.score_before,
        score_after=plan.score_after,
        reason=reason,
    )
    return len(plan.moves)


def consistency_check(ctx: Ctx, c: cmd.RunConsistencyCheck, liveness: LivenessView) -> str:
    if c.divergences:  # found by ``streamplane check``: the ConsistencyErrorHandler
        done = repair_reported(ctx, liveness, c.divergences, causation=c.command_id)
        return f"{done} of {len(c.divergences)} reported divergences repaired"
    n = run_check(ctx, liveness, repair=c.repair, causation=c.command_id)
    return f"{n} divergences" + (" repaired" if c.repair else " found")


def execute_emergency_recovery(ctx: Ctx, c: cmd.EmergencyRecovery, liveness: LivenessView) -> str:
    """Rebuild (the state is the fold), fail silent instances even in maintenance, re-place
    orphans, make every worker reconcile with its desired set, and leave maintenance."""
    failed = 0
    for inst in sorted(ctx.state.instances.values(), key=lambda i: i.server_id):
        if inst.status in GONE_STATUSES:
            if ctx.state.held.get(inst.server_id):
                evacuate(ctx, inst.server_id, ev.Reasons.EMERGENCY_RECOVERY)
            continue
        quiet = liveness.silence(inst.server_id, inst.incarnation, inst.registered_at, ctx.now)
        if quiet >= ctx.config.fail_after or inst.status is InstanceStatus.SUSPECTED:
            handle_instance_failure(ctx, inst, ev.Reasons.EMERGENCY_RECOVERY)
            failed += 1
    n = run_check(ctx, liveness, repair=True, causation=c.command_id)
    ctx.republish.update(ctx.state.instances.keys())
    if ctx.state.maintenance:
        ctx.emit(
            ev.MaintenanceModeLeft, causation=c.command_id, reason=ev.Reasons.EMERGENCY_RECOVERY
        )
    return f"{failed} silent instances failed, {n} divergences repaired"


def enroll_instance(ctx: Ctx, c: cmd.EnrollInstance, _: LivenessView) -> str:
    """Record the key ``server_id``'s heartbeats must be signed with (a new key replaces
    the old one). Signatures are checked by the orchestrator's shell before ``decide``
    sees a heartbeat (``control_plane.orchestrator.enrollment``): verifying needs the
    record's exact bytes and a crypto library, and ``decide`` sees only what counted."""
    kid = key_id(c.public_key)
    old = ctx.state.enrolled.get(c.server_id)
    if old is not None and old.key_id == kid and old.revoked_at is None:
        return f"{c.server_id} already enrolled with key {kid}"
    ctx.emit(
        ev.InstanceEnrolled,
        causation=c.command_id,
        server_id=c.server_id,
        public_key=c.public_key,
        key_id=kid,
        enrolled_by=c.source,
    )
    replaced = "" if old is None else f" (replaces key {old.key_id})"
    return f"{c.server_id} enrolled with key {kid}{replaced}"


def revoke_instance(ctx: Ctx, c: cmd.RevokeInstance, _: LivenessView) -> str:
    """Revoke the key; fail the live incarnation (its streams move in this transaction)."""
    old = ctx.state.enrolled.get(c.server_id)
    if old is None or old.revoked_at is not None:
        raise Reject("not_enrolled", f"{c.server_id!r} has no unrevoked key")
    ctx.emit(
        ev.InstanceRevoked,
        causation=c.command_id,
        server_id=c.server_id,
        key_id=old.key_id,
        revoked_by=c.source,
        reason=ev.Reasons.OPERATOR,
    )
    inst = ctx.state.instances.get(c.server_id)
    if inst is None or inst.status in GONE_STATUSES:
        return f"key {old.key_id} revoked"
    handle_instance_failure(ctx, inst, ev.Reasons.INSTANCE_REVOKED)
    return f"key {old.key_id} revoked; {inst.incarnation} failed"


_HANDLERS: dict[type[Command], Callable[[Ctx, Any, LivenessView], str]] = {
    cmd.RegisterStream: register_stream,
    cmd.DeregisterStream: deregister_stream,
    cmd.DrainInstance: drain,
    cmd.UndrainInstance: undrain,
    cmd.SetCapacity: set_capacity,
    cmd.RequestRebalance: request_rebalance,
    cmd.RunConsistencyCheck: consistency_check,
    cmd.EmergencyRecovery: execute_emergency_recovery,
    cmd.EnrollInstance: enroll_instance,
    cmd.RevokeInstance: revoke_instance,
}
