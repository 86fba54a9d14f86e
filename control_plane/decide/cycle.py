"""``decide(state, liveness, inputs, *, now, new_id, config) -> Decision``: the pure core.

One orchestrator cycle: heartbeats and commands in, control events and desired sets out.
No clock, no randomness, no I/O: ``now`` and ``new_id`` are arguments, so a test (or an
auditor) can run the same decision twice and get the same events.

Order of the steps: heartbeats (registrations, starts, failures reported by workers),
commands, failure detection, quarantine expiry, migration timeouts, placing waiting
streams, drains, the running rebalance plan, an automatic rebalance when due, and last a
``StreamWaiting`` for each stream that began to wait in this cycle.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from control_plane.decide.commands import on_command, plan_rebalance
from control_plane.decide.config import DecideConfig
from control_plane.decide.context import Ctx
from control_plane.decide.failures import check_migrations, detect_failures, expire_quarantines
from control_plane.decide.liveness import LivenessView
from control_plane.decide.observations import on_heartbeat
from control_plane.decide.placement import (
    advance_drains,
    advance_rebalance,
    announce_waiting,
    instance_views,
    place_waiting,
    stream_view,
)
from events import control as ev
from events.base import Command, ControlEvent
from events.heartbeat import DesiredSet, Heartbeat
from projections.fold.state import GONE_STATUSES, ClusterState, InstanceStatus


@dataclass(frozen=True, slots=True)
class Inputs:
    heartbeats: Sequence[Heartbeat] = ()
    commands: Sequence[Command] = ()
    #: how far behind the heartbeat topic the orchestrator's consumer is
    observer_lag: timedelta = timedelta(0)
    #: the shell's timer says: look for imbalance now (it costs O(streams))
    check_balance: bool = False


@dataclass(frozen=True, slots=True)
class Decision:
    state: ClusterState
    events: tuple[ControlEvent, ...]
    desired: tuple[DesiredSet, ...]
    alerts: tuple[str, ...] = ()
    #: events a step tried to emit that the fold refused (a bug): logged, never written
    dropped: tuple[str, ...] = field(default=())


def decide(
    state: ClusterState,
    liveness: LivenessView,
    inputs: Inputs,
    *,
    now: datetime,
    new_id: Callable[[], str],
    config: DecideConfig,
    source: str = "streamplane/orchestrator",
) -> Decision:
    """Everything one cycle decides, as events folded into the returned state.

    ``liveness`` is read, never changed (the shell observes heartbeats into its own
    :class:`~control_plane.decide.liveness.Liveness` and hands over ``Liveness.view()``);
    ``config`` carries every threshold, the balancer's included.
    """
    ctx = Ctx(state=state, now=now, new_id=new_id, config=config, source=source)
    for hb in inputs.heartbeats:
        on_heartbeat(ctx, hb)
    for c in inputs.commands:
        on_command(ctx, c, liveness)
    detect_failures(ctx, liveness, inputs.observer_lag)
    expire_quarantines(ctx)
    check_migrations(ctx)
    place_waiting(ctx, state)
    advance_drains(ctx)
    advance_rebalance(ctx)
    if inputs.check_balance:
        _maybe_auto_rebalance(ctx)
    announce_waiting(ctx, state)
    desired = desired_changes(
        state, ctx.state, ctx.republish, source=source, now=now, new_id=new_id
    )
    return Decision(ctx.state, tuple(ctx.events), desired, tuple(ctx.alerts), tuple(ctx.dropped))


def _maybe_auto_rebalance(ctx: Ctx) -> None:
    s, cfg = ctx.state, ctx.config
    if not cfg.auto_rebalance or s.maintenance or s.rebalance is not None or s.in_flight:
        return
    # A suspected instance is ineligible, so the balancer would empty it: a failover before
    # fail_after, and a blind observer's first suspicions would move streams before the
    # mass-failure guard trips. Failure detection decides about suspects, not the balancer.
    if any(i.status is InstanceStatus.SUSPECTED for i in s.instances.values()):
        return
    if s.last_plan_at is not None and ctx.now - s.last_plan_at < cfg.rebalance_cooldown:
        return
    streams = [stream_view(x) for x in s.streams.values() if x.server_id is not None]
    if streams and ctx.balancer.detect_imbalance(instance_views(s), streams):
        plan_rebalance(ctx, dry_run=False, reason="imbalance", causation=None)


def begin_term(
    state: ClusterState, *, leader_id: str, now: datetime, new_id: Callable[[], str], source: str
) -> ev.LeaderElected:
    """The first event of a leader term (epoch + 1), written before any decision."""
    return ev.LeaderElected(
        id=new_id(),
        source=source,
        time=now,
        seq=state.seq + 1,
        epoch=state.epoch + 1,
        leader_id=leader_id,
    )


def desired_set(
    state: ClusterState, server_id: str, *, source: str, now: datetime, new_id: Callable[[], str]
) -> DesiredSet | None:
    inst = state.instances.get(server_id)
    if inst is None:
        return None
    fenced = inst.status in GONE_STATUSES
    streams = () if fenced else state.desired_streams(server_id)
    params = {sid: dict(state.streams[sid].params) for sid in streams if state.streams[sid].params}
    return DesiredSet(
        id=new_id(),
        source=source,
        time=now,
        server_id=server_id,
        incarnation=inst.incarnation,
        streams=streams,
        params=params,
        fenced=fenced,
        seq=state.seq,
        epoch=state.epoch,
    )


def desired_changes(
    before: ClusterState,
    after: ClusterState,
    republish: set[str],
    *,
    source: str,
    now: datetime,
    new_id: Callable[[], str],
) -> tuple[DesiredSet, ...]:
    """Desired sets of every server whose held streams, incarnation or status changed."""
    changed = set(republish)
    if after.held is not before.held:
        for sid in set(before.held.keys()) | set(after.held.keys()):
            if before.held.get(sid) is not after.held.get(sid):
                changed.add(sid)
    if after.instances is not before.instances:
        for sid, inst in after.instances.items():
            old = before.instances.get(sid)
            if old is None or (old.incarnation, old.status) != (inst.incarnation, inst.status):
                changed.add(sid)
    out = []
    for sid in sorted(changed):
        d = desired_set(after, sid, source=source, now=now, new_id=new_id)
        if d is not None:
            out.append(d)
    return tuple(out)


def all_desired(
    state: ClusterState, *, source: str, now: datetime, new_id: Callable[[], str]
) -> tuple[DesiredSet, ...]:
    """Every server's desired set (a new leader re-sends them all)."""
    out = []
    for sid in sorted(state.instances.keys()):
        d = desired_set(state, sid, source=source, now=now, new_id=new_id)
        if d is not None:
            out.append(d)
    return tuple(out)
