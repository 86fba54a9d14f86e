"""Turning heartbeats (observations) into control events.

New incarnation -> ``InstanceRegistered`` (superseding a live one first); suspected and heard
again -> ``InstanceRecovered``; ``leaving`` -> ``InstanceDeregistered``; a stream reported
running -> ``StreamStarted`` or ``MigrationCompleted``; reported failed -> ``StreamFailed``
(parked as poison after ``poison_threshold`` distinct instances) or ``MigrationAborted``.
"""

from __future__ import annotations

from control_plane.decide.context import Ctx
from control_plane.decide.failures import (
    handle_departure,
    handle_instance_failure,
    quarantine_if_flapping,
)
from control_plane.decide.placement import evacuate, has_home
from events import control as ev
from events.heartbeat import Heartbeat, StreamReport, StreamRunState
from projections.fold.state import GONE_STATUSES, AssignmentStatus, EnhancedInstance, InstanceStatus


def on_heartbeat(ctx: Ctx, hb: Heartbeat) -> None:
    inst = ctx.state.instances.get(hb.server_id)
    if inst is not None and hb.incarnation in inst.past_incarnations:
        return  # a superseded process: its desired set tells it it is fenced
    if inst is not None and inst.incarnation == hb.incarnation:
        _known(ctx, inst, hb)
        return
    if hb.leaving:
        return  # an incarnation we never registered is leaving: nothing to undo
    _register(ctx, inst, hb)


def _known(ctx: Ctx, inst: EnhancedInstance, hb: Heartbeat) -> None:
    if inst.status in GONE_STATUSES:
        return  # fenced; it must register anew
    if hb.leaving:
        handle_departure(ctx, inst)
        return
    if inst.status is InstanceStatus.SUSPECTED:
        ctx.emit(ev.InstanceRecovered, server_id=inst.server_id, incarnation=inst.incarnation)
    for report in hb.streams:
        _on_report(ctx, inst, report)
    _maybe_sample(ctx, hb)


def _register(ctx: Ctx, old: EnhancedInstance | None, hb: Heartbeat) -> None:
    if old is not None and old.status not in GONE_STATUSES:
        handle_instance_failure(ctx, old, ev.Reasons.SUPERSEDED)
    elif old is not None and ctx.state.held.get(old.server_id):
        evacuate(ctx, old.server_id, ev.Reasons.INSTANCE_FAILED)  # leftovers of a past term
    ctx.emit(
        ev.InstanceRegistered,
        server_id=hb.server_id,
        incarnation=hb.incarnation,
        ip=hb.ip,
        port=hb.port,
        max_streams=hb.max_streams,
        zone=hb.zone,
        tags=hb.tags,
    )
    ctx.republish.add(hb.server_id)
    quarantine_if_flapping(ctx, ctx.state.instances[hb.server_id])


def _on_report(ctx: Ctx, inst: EnhancedInstance, r: StreamReport) -> None:
    s = ctx.state.streams.get(r.stream_id)
    if s is None:
        return
    m = s.migration_state
    if m is not None and m.to_server == inst.server_id and m.to_incarnation == inst.incarnation:
        if r.state is StreamRunState.RUNNING:
            ctx.emit(ev.MigrationCompleted, stream_id=s.stream_id, migration_id=m.migration_id)
        elif r.state is StreamRunState.FAILED:
            ctx.emit(
                ev.MigrationAborted,
                stream_id=s.stream_id,
                migration_id=m.migration_id,
                reason=ev.Reasons.START_FAILED,
            )
        return
    if s.server_id != inst.server_id or s.incarnation != inst.incarnation:
        return  # running where it should not: its desired set already says stop
    if r.state is StreamRunState.RUNNING and s.status is AssignmentStatus.ASSIGNED:
        ctx.emit(
            ev.StreamStarted,
            stream_id=s.stream_id,
            server_id=inst.server_id,
            incarnation=inst.incarnation,
        )
    elif r.state is StreamRunState.FAILED and m is None and s.status is AssignmentStatus.ASSIGNED:
        tried = set(s.failed_on) | {inst.server_id}
        limit = ctx.config.poison_threshold
        # distinct instances, or as many attempts when no untried instance has room for it
        parked = len(tried) >= limit or (
            s.failure_count + 1 >= limit and not has_home(ctx, s, exclude=tuple(tried))
        )
        ctx.emit(
            ev.StreamFailed,
            stream_id=s.stream_id,
            server_id=inst.server_id,
            error=(r.error or "")[:4096] or None,
            parked=parked,
            reason=ev.Reasons.POISON if parked else ev.Reasons.START_FAILED,
        )
        if parked:
            ctx.alerts.append(f"stream {s.stream_id} parked as poison: {r.error}")


def _maybe_sample(ctx: Ctx, hb: Heartbeat) -> None:
    inst = ctx.state.instances[hb.server_id]
    due = inst.metrics_at is None or ctx.now - inst.metrics_at >= ctx.config.perf_sample_interval
    if due and hb.metrics != inst.performance_metrics:
        ctx.emit(ev.PerformanceSampled, server_id=hb.server_id, metrics=hb.metrics)
