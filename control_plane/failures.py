"""Failure handling (the seed's ``handle_instance_failure``) as pure decision steps.

Silent for ``suspect_after`` -> ``InstanceSuspected``; for ``fail_after`` -> ``InstanceFailed``
and its streams move in the same transaction. The mass-failure guard freezes failovers when
the observer itself looks blind; flapping instances are quarantined with growing back-off.
"""

from __future__ import annotations

from datetime import timedelta

from control_plane.context import Ctx
from control_plane.liveness import Liveness
from control_plane.placement import evacuate
from events import control as ev
from projections.state import EnhancedInstance, InstanceStatus

WATCHED = (InstanceStatus.ACTIVE, InstanceStatus.SUSPECTED, InstanceStatus.QUARANTINED)


def handle_instance_failure(ctx: Ctx, inst: EnhancedInstance, reason: str) -> None:
    """Fail (fence) ``inst`` and move what it held, in this same transaction."""
    ctx.emit(
        ev.InstanceFailed, server_id=inst.server_id, incarnation=inst.incarnation, reason=reason
    )
    evacuate(ctx, inst.server_id, ev.Reasons.INSTANCE_FAILED)


def handle_departure(ctx: Ctx, inst: EnhancedInstance) -> None:
    """A graceful leave: move its streams now, without waiting for ``fail_after``."""
    ctx.emit(
        ev.InstanceDeregistered,
        server_id=inst.server_id,
        incarnation=inst.incarnation,
        reason=ev.Reasons.INSTANCE_LEFT,
    )
    evacuate(ctx, inst.server_id, ev.Reasons.INSTANCE_LEFT)


def observer_blind(ctx: Ctx, liveness: Liveness, observer_lag: timedelta) -> tuple[bool, str]:
    """Whether silence says more about us than about the workers."""
    cfg = ctx.config
    if observer_lag > cfg.observer_max_lag:
        return True, f"heartbeat consumption lags {observer_lag.total_seconds():.1f}s"
    watched = [i for i in ctx.state.instances.values() if i.status in WATCHED]
    silent = [
        i
        for i in watched
        if liveness.silence(i.server_id, i.incarnation, i.registered_at, ctx.now)
        >= cfg.suspect_after
    ]
    if len(silent) >= cfg.mass_failure_min and len(silent) > cfg.mass_failure_share * len(watched):
        return True, f"{len(silent)} of {len(watched)} instances silent at once"
    return False, ""


def detect_failures(ctx: Ctx, liveness: Liveness, observer_lag: timedelta) -> None:
    """Suspect, fail and move; or, when the observer looks blind, freeze and alert."""
    cfg = ctx.config
    blind, why = observer_blind(ctx, liveness, observer_lag)
    if blind:
        if not ctx.state.maintenance:
            ctx.emit(ev.MaintenanceModeEntered, reason=ev.Reasons.MASS_FAILURE, detail=why)
            ctx.alerts.append(f"maintenance mode: {why}; failovers frozen")
        return
    if ctx.state.maintenance and ctx.state.maintenance_reason == ev.Reasons.MASS_FAILURE:
        ctx.emit(ev.MaintenanceModeLeft, reason="heartbeats_resumed")
    if ctx.state.maintenance:
        return
    # a new leader judges no one before it has listened for a whole fail_after
    if liveness.watched_for(ctx.now) < cfg.fail_after:
        return
    for inst in sorted(ctx.state.instances.values(), key=lambda i: i.server_id):
        if inst.status not in WATCHED:
            continue
        quiet = liveness.silence(inst.server_id, inst.incarnation, inst.registered_at, ctx.now)
        if quiet >= cfg.fail_after:
            handle_instance_failure(ctx, inst, ev.Reasons.INSTANCE_FAILED)
        elif quiet >= cfg.suspect_after and inst.status is InstanceStatus.ACTIVE:
            ctx.emit(
                ev.InstanceSuspected,
                server_id=inst.server_id,
                incarnation=inst.incarnation,
                last_heartbeat=liveness.last_seen(inst.server_id, inst.incarnation),
            )


def quarantine_if_flapping(ctx: Ctx, inst: EnhancedInstance) -> None:
    """Right after a re-registration: quarantine a server that keeps failing.

    ``failure_count`` and ``last_failure_at`` are per server (the fold carries them over
    from earlier incarnations).
    """
    cfg = ctx.config
    last = inst.last_failure_at
    recent = last is not None and ctx.now - last <= cfg.flap_window
    if inst.failure_count < cfg.quarantine_after or not recent:
        return
    backoff = cfg.quarantine_base * (2 ** min(inst.recovery_attempts, 16))
    until = ctx.now + min(backoff, cfg.quarantine_max)
    ctx.emit(ev.InstanceQuarantined, server_id=inst.server_id, until=until, reason="flapping")
    ctx.alerts.append(f"{inst.server_id} quarantined until {until.isoformat()} (flapping)")


def expire_quarantines(ctx: Ctx) -> None:
    for inst in sorted(ctx.state.instances.values(), key=lambda i: i.server_id):
        if inst.status is InstanceStatus.QUARANTINED and inst.quarantined_until is not None:
            if inst.quarantined_until <= ctx.now:
                ctx.emit(
                    ev.InstanceRecovered, server_id=inst.server_id, incarnation=inst.incarnation
                )


def check_migrations(ctx: Ctx) -> None:
    """Abort migrations past their deadline (the source keeps the stream)."""
    for sid in sorted(ctx.state.in_flight.keys()):
        m = ctx.state.streams[sid].migration_state
        if m is not None and m.deadline <= ctx.now:
            ctx.emit(
                ev.MigrationAborted,
                stream_id=sid,
                migration_id=m.migration_id,
                reason=ev.Reasons.TIMEOUT,
            )
