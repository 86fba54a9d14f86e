"""Failure handling (the seed's ``handle_instance_failure``) as pure decision steps.

Silent for ``suspect_after`` -> ``InstanceSuspected``; for ``fail_after`` -> ``InstanceFailed``
and its streams move in the same transaction. With ``failure_detector="phi"`` suspicion comes
instead when the phi accrual level of the incarnation's own heartbeat rhythm reaches
``phi_suspect`` (``control_plane.decide.phi``; fixed thresholds until it has ``phi_min_samples``);
failure stays at ``fail_after``. The mass-failure guard freezes failovers when the observer
itself looks blind; flapping instances are quarantined with growing back-off.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from itertools import filterfalse
from operator import attrgetter
from typing import NamedTuple

from control_plane.decide.config import DecideConfig
from control_plane.decide.context import Ctx
from control_plane.decide.liveness import LivenessView
from control_plane.decide.phi import earliest_suspicion, phi_of
from control_plane.decide.placement import evacuate
from events import control as ev
from projections.fold.state import EnhancedInstance, InstanceStatus

WATCHED = (InstanceStatus.ACTIVE, InstanceStatus.SUSPECTED, InstanceStatus.QUARANTINED)
_STATUS = attrgetter("status")
_ID_INCARNATION = attrgetter("server_id", "incarnation")


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


def observer_blind(ctx: Ctx, liveness: LivenessView, observer_lag: timedelta) -> tuple[bool, str]:
    """Whether silence says more about us than about the workers."""
    as_of = _heard_until(ctx, observer_lag)
    return _blind(ctx, _silent(ctx, liveness, as_of), observer_lag, as_of)


def _heard_until(ctx: Ctx, observer_lag: timedelta) -> datetime:
    """Up to when the heartbeats have been read: silence is judged as of then, not as of
    ``now``, so a stall of our own (a long cycle, a slow fetch) shorter than the blindness
    threshold never makes a live instance look silent."""
    return ctx.now - max(observer_lag, timedelta(0))


def _blind(
    ctx: Ctx, silent: list[_Quiet], observer_lag: timedelta, as_of: datetime
) -> tuple[bool, str]:
    cfg = ctx.config
    if observer_lag > cfg.observer_max_lag:
        return True, f"heartbeat consumption lags {observer_lag.total_seconds():.1f}s"
    n = sum(1 for q in silent if q.suspect)
    if n < cfg.mass_failure_min:
        return False, ""  # the usual case: no need to count the watched instances
    watched = sum(1 for i in ctx.state.instances.values() if i.status in WATCHED)
    if n > cfg.mass_failure_share * watched:
        return True, f"{n} of {watched} instances silent at once"
    return False, ""


class _Quiet(NamedTuple):
    inst: EnhancedInstance
    since: datetime
    #: silent long enough to be suspected, by the configured detector
    suspect: bool


def _silent(ctx: Ctx, liveness: LivenessView, as_of: datetime) -> list[_Quiet]:
    """Watched instances silent for at least the shortest silence that can matter.

    Cost: the servers heard before the cutoff (from the oldest sighting on) plus one C-speed
    pass comparing incarnations, rather than a silence computed per instance per cycle.
    """
    cfg = ctx.config
    cutoff = as_of - _shortest_silence(cfg)
    instances = ctx.state.instances
    out = []
    for s in liveness.heard_up_to(cutoff):  # heard, but not lately
        inst = instances.get(s.heartbeat.server_id)
        if inst is not None and inst.status in WATCHED:
            if inst.incarnation == s.heartbeat.incarnation:
                quiet = as_of - s.received_at
                out.append(_Quiet(inst, s.received_at, _suspect(cfg, liveness, inst, quiet)))
    if liveness.watch_started_at <= cutoff:  # never heard in their current incarnation
        heard = liveness.incarnations.items()
        for sid, _ in filterfalse(heard.__contains__, map(_ID_INCARNATION, instances.values())):
            inst = instances[sid]
            since = liveness.quiet_since(sid, inst.incarnation, inst.registered_at)
            if inst.status in WATCHED and since <= cutoff:
                # no history of this incarnation: the fixed threshold judges it
                out.append(_Quiet(inst, since, as_of - since >= cfg.suspect_after))
    return out


def _shortest_silence(cfg: DecideConfig) -> timedelta:
    """Below this silence no detector suspects or fails anyone."""
    fixed = min(cfg.suspect_after, cfg.fail_after)
    if cfg.failure_detector != "phi":
        return fixed
    floor = earliest_suspicion(
        cfg.phi_suspect, acceptable_pause=cfg.phi_acceptable_pause, min_std=cfg.phi_min_std
    )
    return min(fixed, floor)


def _suspect(
    cfg: DecideConfig, liveness: LivenessView, inst: EnhancedInstance, quiet: timedelta
) -> bool:
    """Whether a silence of ``quiet`` makes this heard incarnation suspect.

    Phi judges an incarnation by its own rhythm once it has ``phi_min_samples`` intervals;
    before that (a new incarnation, a new leader still listening) the fixed threshold does.
    """
    if cfg.failure_detector == "phi":
        window = liveness.intervals_of(inst.server_id, inst.incarnation)
        if window is not None and window.size >= cfg.phi_min_samples:
            level = phi_of(
                window,
                quiet,
                acceptable_pause=cfg.phi_acceptable_pause,
                min_std=cfg.phi_min_std,
            )
            return level >= cfg.phi_suspect
    return quiet >= cfg.suspect_after


def detect_failures(ctx: Ctx, liveness: LivenessView, observer_lag: timedelta) -> None:
    """Suspect, fail and move; or, when the observer looks blind, freeze and alert."""
    cfg = ctx.config
    as_of = _heard_until(ctx, observer_lag)
    silent = _silent(ctx, liveness, as_of)
    blind, why = _blind(ctx, silent, observer_lag, as_of)
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
    for inst, since, suspect in sorted(silent, key=lambda q: q.inst.server_id):
        if as_of - since >= cfg.fail_after:
            handle_instance_failure(ctx, inst, ev.Reasons.INSTANCE_FAILED)
        elif suspect and inst.status is InstanceStatus.ACTIVE:
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
    instances = ctx.state.instances.values()
    if InstanceStatus.QUARANTINED not in map(_STATUS, instances):
        return  # the usual case, answered at C speed: nothing to sort every cycle
    quarantined = [i for i in instances if i.status is InstanceStatus.QUARANTINED]
    for inst in sorted(quarantined, key=lambda i: i.server_id):
        if inst.quarantined_until is not None:
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
