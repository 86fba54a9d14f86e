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

import logging
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import immutables

from events import control as ev
from events.base import ControlEvent
from projections.fold import transitions as tr
from projections.fold.rules import RECENT_WINDOW, check, with_finding
from projections.fold.state import ClusterState, FindingKind, replace, replacer
from projections.fold.transient import Folder, HalfWrittenError

log = logging.getLogger(__name__)


def _record(
    state: ClusterState, event: ControlEvent, kind: FindingKind, detail: str
) -> ClusterState:
    return replace(
        state,
        findings=with_finding(state.findings, event, kind, detail),
        finding_count=state.finding_count + 1,
    )


def _gate(state: ClusterState, event: ControlEvent) -> tuple[bool, ClusterState]:
    """Rules 1-3: whether the event's content may be applied, and the state to apply it to."""
    ok, finding = check(event, state.seq, state.epoch, state.recent_ids.get(event.seq))
    if finding is not None:
        state = _record(state, event, *finding)
    return ok, state


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
    """Continue folding from ``state`` (a snapshot, say): the state ``apply`` would reach
    event by event, reached in place by a :class:`projections.fold.transient.Folder` (or event
    by event after all, should a transition break the folder's rule: a logged bug)."""
    events = events if isinstance(events, Sequence) else list(events)
    try:
        return Folder(state).apply_all(events).state()
    except HalfWrittenError as exc:
        log.error("in-place fold failed (%s); folding event by event instead", exc)
        return persistent_fold(state, events)


def persistent_fold(state: ClusterState, events: Iterable[ControlEvent]) -> ClusterState:
    """``apply`` event by event: the reference :func:`fold_from` reaches faster."""
    for event in events:
        state = apply(state, event)
    return state


class StepFolder:
    """:class:`projections.fold.transient.Folder`'s interface over ``apply``, event by event:
    slower, never broken (what a replay falls back to)."""

    def __init__(self, state: ClusterState | None = None) -> None:
        self._state = state or ClusterState()

    def apply_all(self, events: Iterable[ControlEvent]) -> StepFolder:
        self._state = persistent_fold(self._state, events)
        return self

    def state(self) -> ClusterState:
        return self._state


def fold(events: Iterable[ControlEvent]) -> ClusterState:
    """The state a whole log (prefix) folds to."""
    return fold_from(ClusterState(), events)


__all__ = ["RECENT_WINDOW", "StepFolder", "apply", "fold", "fold_from", "immutables"]
