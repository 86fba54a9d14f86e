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
from projections.state import ClusterState, Finding, FindingKind, replace, replacer

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
    return _replace_state(state, **_advanced(state, event))


def _advanced(state: ClusterState, event: ControlEvent) -> dict[str, Any]:
    """The bookkeeping fields every applied event sets (merged into its one state copy)."""
    seq = event.seq
    recent = state.recent_ids.set(seq, event.id)
    old = seq - RECENT_WINDOW
    if old in recent:
        recent = recent.delete(old)
    return {"seq": seq, "last_event_time": event.time, "recent_ids": recent}


_replace_state: Callable[..., ClusterState] = replacer(ClusterState)
_TRANSITIONS = tr.TRANSITIONS
_LEADER_ELECTED = ev.LeaderElected


def apply(state: ClusterState, event: ControlEvent) -> ClusterState:
    """The next state after ``event``; never raises on bad content (it becomes a finding)."""
    # The usual case (next seq, current epoch) passes every rule of _gate: skip it.
    if (
        event.seq != state.seq + 1
        or event.epoch != state.epoch
        or isinstance(event, _LEADER_ELECTED)
    ):
        ok, state = _gate(state, event)
        if not ok:
            return state
    transition = _TRANSITIONS.get(type(event))
    if transition is None:  # a ControlEvent subclass this fold does not know: a bug, say so
        return _record(
            _advance(state, event), event, FindingKind.INVALID_TRANSITION, "no handler for type"
        )
    draft = tr.Draft(state)
    try:
        transition(draft, event)
    except tr.Rejected as exc:
        return _record(_advance(state, event), event, exc.kind, exc.detail)
    return draft.finish(**_advanced(state, event))


def fold_from(state: ClusterState, events: Iterable[ControlEvent]) -> ClusterState:
    """Continue folding from ``state`` (a snapshot, say)."""
    for event in events:
        state = apply(state, event)
    return state


def fold(events: Iterable[ControlEvent]) -> ClusterState:
    """The state a whole log (prefix) folds to."""
    return fold_from(ClusterState(), events)


__all__ = ["RECENT_WINDOW", "apply", "fold", "fold_from", "immutables"]
