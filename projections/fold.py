"""The one pure fold: ``apply(state, event) -> state``.

Every projection (the orchestrator's memory, the Faust tables, the PostgreSQL read model,
replays and audits) is ``fold(log prefix)`` through this function and nothing else.

Rules, in the order they are checked:

1. An exact duplicate (a ``seq`` already applied, same event ``id``) changes nothing.
2. An event of an older ``epoch`` (a zombie leader) has no effect: ``stale_epoch``. Only
   ``LeaderElected`` may raise the epoch; anything else from a newer one is ``unknown_epoch``.
3. ``seq`` must be the previous one + 1. A lower one is ``conflicting_seq`` (or ``stale_seq``
   beyond the duplicate window) and has no effect; a higher one is a ``seq_gap``, recorded,
   and the event is applied (the log lost events: the checker must look).
4. The event's content must keep the invariants (one owner, capacity, known entities, legal
   transitions); otherwise it has no effect and becomes a finding.

No clock, no randomness, no I/O: time comes from the events.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import immutables

from events import control as ev
from events.base import ControlEvent
from projections import transitions as tr
from projections.state import ClusterState, Finding, FindingKind, replace

#: how many recent seq -> id pairs are kept to tell a duplicate from a conflict
RECENT_WINDOW = 4096
#: findings kept in the state (all are counted)
FINDINGS_KEPT = 256


def _record(
    state: ClusterState, event: ControlEvent, kind: FindingKind, detail: str
) -> ClusterState:
    finding = Finding(event.seq, kind, event.id, type(event).__name__, detail)
    return replace(
        state,
        findings=(*state.findings[-(FINDINGS_KEPT - 1) :], finding),
        finding_count=state.finding_count + 1,
    )


def _gate(state: ClusterState, event: ControlEvent) -> tuple[bool, ClusterState]:
    """Rules 1-3: whether the event's content may be applied, and the state to apply it to."""
    known = state.recent_ids.get(event.seq)
    if event.seq <= state.seq and known == event.id:
        return False, state  # exact duplicate: idempotent
    if event.epoch < state.epoch:
        return False, _record(
            state, event, FindingKind.STALE_EPOCH, f"epoch {event.epoch} < {state.epoch}"
        )
    if isinstance(event, ev.LeaderElected):
        if state.epoch and event.epoch <= state.epoch:
            return False, _record(
                state,
                event,
                FindingKind.STALE_EPOCH,
                f"epoch {event.epoch} not above {state.epoch}",
            )
    elif event.epoch > state.epoch:
        return False, _record(
            state, event, FindingKind.UNKNOWN_EPOCH, f"epoch {event.epoch} never elected"
        )
    if event.seq <= state.seq:
        kind = FindingKind.CONFLICTING_SEQ if known is not None else FindingKind.STALE_SEQ
        return False, _record(state, event, kind, f"seq {event.seq} already applied")
    if event.seq != state.seq + 1:
        state = _record(
            state, event, FindingKind.SEQ_GAP, f"expected seq {state.seq + 1}, got {event.seq}"
        )
    return True, state


def _advance(state: ClusterState, event: ControlEvent) -> ClusterState:
    recent = state.recent_ids.set(event.seq, event.id)
    old = event.seq - RECENT_WINDOW
    if old in recent:
        recent = recent.delete(old)
    return replace(state, seq=event.seq, last_event_time=event.time, recent_ids=recent)


Handler = Callable[[ClusterState, Any], ClusterState]

_HANDLERS: dict[type[ControlEvent], Handler] = {
    ev.LeaderElected: tr.leader_elected,
    ev.InstanceRegistered: tr.instance_registered,
    ev.InstanceSuspected: tr.instance_suspected,
    ev.InstanceRecovered: tr.instance_recovered,
    ev.InstanceFailed: tr.instance_gone,
    ev.InstanceDeregistered: tr.instance_gone,
    ev.InstanceQuarantined: tr.instance_quarantined,
    ev.InstanceDraining: tr.instance_draining,
    ev.InstanceUndrained: tr.instance_undrained,
    ev.InstanceDrained: tr.instance_drained,
    ev.InstanceCapacityChanged: tr.instance_capacity_changed,
    ev.PerformanceSampled: tr.performance_sampled,
    ev.StreamRegistered: tr.stream_registered,
    ev.StreamDeregistered: tr.stream_deregistered,
    ev.StreamAssigned: tr.stream_assigned,
    ev.StreamUnassigned: tr.stream_unassigned,
    ev.StreamStarted: tr.stream_started,
    ev.StreamFailed: tr.stream_failed,
    ev.MigrationStarted: tr.migration_started,
    ev.MigrationCompleted: tr.migration_completed,
    ev.MigrationAborted: tr.migration_aborted,
    ev.RebalancePlanned: tr.rebalance_planned,
    ev.RebalanceCompleted: tr.rebalance_completed,
    ev.ConsistencyDivergenceFound: tr.divergence_found,
    ev.ConsistencyDivergenceRepaired: tr.divergence_repaired,
    ev.CommandRejected: tr.command_done,
    ev.CommandCompleted: tr.command_done,
    ev.MaintenanceModeEntered: tr.maintenance_entered,
    ev.MaintenanceModeLeft: tr.maintenance_left,
}


def apply(state: ClusterState, event: ControlEvent) -> ClusterState:
    """The next state after ``event``; never raises on bad content (it becomes a finding)."""
    ok, state = _gate(state, event)
    if not ok:
        return state
    state = _advance(state, event)
    handler = _HANDLERS.get(type(event))
    if handler is None:  # a ControlEvent subclass this fold does not know: a bug, say so
        return _record(state, event, FindingKind.INVALID_TRANSITION, "no handler for type")
    try:
        return handler(state, event)
    except tr.Rejected as exc:
        return _record(state, event, exc.kind, exc.detail)


def fold_from(state: ClusterState, events: Iterable[ControlEvent]) -> ClusterState:
    """Continue folding from ``state`` (a snapshot, say)."""
    for event in events:
        state = apply(state, event)
    return state


def fold(events: Iterable[ControlEvent]) -> ClusterState:
    """The state a whole log (prefix) folds to."""
    return fold_from(ClusterState(), events)


__all__ = ["RECENT_WINDOW", "apply", "fold", "fold_from", "immutables"]
