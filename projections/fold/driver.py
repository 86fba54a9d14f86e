"""The one fold driver: ``apply(state, event) -> state``, and the same loop in place.

Every projection (the orchestrator's memory, the Faust tables, the PostgreSQL read model,
replays and audits) is ``fold(log prefix)`` through :func:`fold_into` and nothing else.

Rules, in the order they are checked:

1. An exact duplicate (a ``seq`` already applied, same event ``id``) changes nothing.
2. An event of an older ``epoch`` (a zombie leader) has no effect: ``stale_epoch``. Only
   ``LeaderElected`` may raise the epoch; anything else from a newer one is ``unknown_epoch``.
3. ``seq`` must be the previous one + 1. A lower one is ``conflicting_seq`` (or ``stale_seq``
   beyond the duplicate window) and has no effect; a higher one is a ``seq_gap``, recorded,
   and the event is applied (the log lost events: the checker must look).
4. The event's content must keep the invariants (one owner, capacity, known entities, legal
   transitions); otherwise it has no effect and becomes a finding.

:func:`fold_into` runs them (the gate, :func:`projections.fold.rules.check`), the transition
(:data:`projections.fold.transitions.TRANSITIONS`), the log position's bookkeeping and the
findings, for each event, on a :class:`~projections.fold.transitions.draft.Draft`. Its two
users differ only in how long they keep the draft:

- :func:`apply` makes a draft of its state, folds the one event, and returns the draft's
  state: a new persistent state per event, as the orchestrator needs.
- :class:`Folder` keeps one draft for whole batches (a replay, ``fold_from``) and builds a
  state only when asked; that is what makes a replay fast.

A draft writes in place, so it cannot take back a transition that wrote and was then
rejected (a bug: transitions check before they write). :func:`fold_into` raises
:class:`HalfWrittenError` then. ``apply`` just drops its one-event draft and records the
rejection on a fresh one, so it never fails; a ``Folder`` has lost its state, and
:func:`fold_from` folds the batch again with ``apply``. The fold logs nothing: a shell that
wants the bug reported folds with a ``Folder`` and reports the error (the replay does).

No clock, no randomness, no I/O: time comes from the events.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any

from events import control as ev
from events.base import ControlEvent
from projections.fold.rules import RECENT_WINDOW, check, with_finding
from projections.fold.state import ClusterState, FindingKind
from projections.fold.transitions import TRANSITIONS, Draft, Rejected, Transition
from projections.fold.transitions.draft import Changes, TrackingDraft

_LEADER_ELECTED = ev.LeaderElected
Refusal = tuple[FindingKind, str]


class HalfWrittenError(RuntimeError):
    """A transition was rejected after it had written (a bug: transitions check first).
    ``refusal`` is the rejection's kind and detail. A :class:`Folder`'s state is lost; fold
    the events again with :func:`apply`, which drops such a write."""

    def __init__(self, message: str, refusal: Refusal | None = None) -> None:
        super().__init__(message)
        self.refusal = refusal


def fold_into(
    d: Draft,
    events: Iterable[ControlEvent],
    transitions: Mapping[type[ControlEvent], Transition] = TRANSITIONS,
) -> int:
    """Fold ``events`` into ``d`` by rules 1-4 (the module docstring), in order; returns how
    many were exact duplicates (rule 1: they changed nothing at all). Raises
    :class:`HalfWrittenError` if a transition wrote before it was rejected.

    Everything the loop touches is a local: it runs once per event of a replay, and each
    lookup saved is ~1% of the fold."""
    values, recent, handler = d.values, d.recent_ids, transitions.get
    leader_elected, window = _LEADER_ELECTED, RECENT_WINDOW
    seq_now, epoch_now = values["seq"], values["epoch"]
    duplicates = 0
    for event in events:
        seq = event.seq
        # The usual event (next seq, current epoch, not an election) passes rules 1-3.
        if seq != seq_now + 1 or event.epoch != epoch_now or isinstance(event, leader_elected):
            ok, finding = check(event, seq_now, epoch_now, recent.get(seq))
            if finding is not None:
                _record(values, event, finding)
            elif not ok:
                duplicates += 1
            if not ok:
                continue
        transition = handler(type(event))
        d.wrote = False
        try:
            if transition is None:  # a ControlEvent subclass the fold does not know: a bug
                raise Rejected(FindingKind.INVALID_TRANSITION, "no handler for type")
            transition(d, event)
        except Rejected as exc:
            # kept as plain values: the exception would tie this frame up in a cycle
            refused: Refusal | None = (exc.kind, exc.detail)
            if d.wrote:
                raise HalfWrittenError(
                    f"{type(event).__name__} (seq {seq}) wrote before it was rejected: "
                    f"{exc.kind.value}: {exc.detail}",
                    refused,
                ) from exc
        else:
            refused = None
            epoch_now = values["epoch"]
        # the log position moves on past every event the gate let through, applied or not
        values["seq"] = seq_now = seq
        values["last_event_time"] = event.time
        recent[seq] = event.id
        if seq - window in recent:
            del recent[seq - window]
        if refused is not None:
            _record(values, event, refused)
    return duplicates


def _record(values: dict[str, Any], event: ControlEvent, finding: Refusal) -> None:
    """Rules 2-4's findings: the last ``FINDINGS_KEPT`` kept, all counted."""
    values["findings"] = with_finding(values["findings"], event, *finding)
    values["finding_count"] += 1


def _fold_one(state: ClusterState, event: ControlEvent, make: type[Draft] = Draft) -> Draft | None:
    """A draft of ``state`` with ``event`` folded in, or None for an exact duplicate."""
    draft = make(state)
    try:
        if fold_into(draft, (event,)):
            return None
    except HalfWrittenError as exc:
        # A transition broke its rule (the tests rule that out). The draft held this one
        # event only: drop it, and fold the event on a fresh one as the rejection it was.
        draft = make(state)
        fold_into(draft, (event,), {type(event): _refusing(exc.refusal)})
    return draft


def apply(state: ClusterState, event: ControlEvent) -> ClusterState:
    """The next state after ``event``; never raises on bad content (it becomes a finding).
    An exact duplicate gives the very same state (callers may ask ``is``)."""
    draft = _fold_one(state, event)
    return state if draft is None else draft.finish()


def apply_tracked(state: ClusterState, event: ControlEvent) -> tuple[ClusterState, Changes]:
    """:func:`apply`, and the instances and streams the event changed (known from its
    writes: no comparison of the two states, which costs O(streams) for an event without a
    subject)."""
    draft = _fold_one(state, event, TrackingDraft)
    if draft is None:
        return state, Changes((), ())
    assert isinstance(draft, TrackingDraft)
    return draft.finish(), draft.changes()


def _refusing(refusal: Refusal | None) -> Transition:
    kind, detail = refusal or (FindingKind.INVALID_TRANSITION, "rejected after a write")

    def refuse(d: Draft, e: ControlEvent) -> None:
        raise Rejected(kind, detail)

    return refuse


class Folder:
    """``fold_from(state, events)`` in place, batch after batch; :meth:`state` at any time.

    Not thread-safe and not shareable: one folder per replay. The states :meth:`state`
    returns are ordinary persistent states, never changed by later :meth:`apply_all` calls.
    """

    __slots__ = ("_broken", "_draft")

    def __init__(self, state: ClusterState | None = None) -> None:
        self._draft = Draft(state or ClusterState())
        self._broken: str | None = None

    def apply_all(self, events: Iterable[ControlEvent]) -> Folder:
        """Fold every event of ``events``; returns the folder (to chain :meth:`state`).
        Raises :class:`HalfWrittenError` if a transition wrote before it was rejected; the
        folder is unusable from then on."""
        self._check()
        try:
            fold_into(self._draft, events)
        except HalfWrittenError as exc:
            self._broken = str(exc)
            raise
        return self

    def state(self) -> ClusterState:
        """The state folded so far (O(records changed since the last call)); the folder
        goes on from it."""
        self._check()
        return self._draft.state()

    def _check(self) -> None:
        if self._broken is not None:
            raise HalfWrittenError(f"this folder's state was lost: {self._broken}")


class StepFolder:
    """:class:`Folder`'s interface over :func:`apply`, event by event: slower, and never
    broken (what a replay falls back to)."""

    def __init__(self, state: ClusterState | None = None) -> None:
        self._state = state or ClusterState()

    def apply_all(self, events: Iterable[ControlEvent]) -> StepFolder:
        self._state = _stepwise(self._state, events)
        return self

    def state(self) -> ClusterState:
        return self._state


def _stepwise(state: ClusterState, events: Iterable[ControlEvent]) -> ClusterState:
    for event in events:
        state = apply(state, event)
    return state


def fold_from(state: ClusterState, events: Iterable[ControlEvent]) -> ClusterState:
    """Continue folding from ``state`` (a snapshot, say): the state ``apply`` reaches event
    by event, reached by a :class:`Folder` (or with ``apply`` after all, should a transition
    break its rule: see the module docstring)."""
    events = events if isinstance(events, Sequence) else list(events)
    try:
        return Folder(state).apply_all(events).state()
    except HalfWrittenError:
        return _stepwise(state, events)


def fold(events: Iterable[ControlEvent]) -> ClusterState:
    """The state a whole log (prefix) folds to."""
    return fold_from(ClusterState(), events)


def fold_until(
    state: ClusterState,
    events: Iterable[ControlEvent],
    *,
    seq: int | None = None,
    time: datetime | None = None,
) -> tuple[ClusterState, int]:
    """Fold the leading ``events`` onto ``state`` up to the first one whose seq is above
    ``seq`` or whose time is after ``time``; returns the state and how many events were
    folded (the rest are not). Time travel over events in memory
    (:func:`projections.io.replay.replay` does it on Kafka) and the drift check's fold up to
    a projection's as-of seq."""
    prefix = []
    for event in events:
        if (seq is not None and event.seq > seq) or (time is not None and event.time > time):
            break
        prefix.append(event)
    return fold_from(state, prefix), len(prefix)


__all__ = [
    "RECENT_WINDOW",
    "Folder",
    "HalfWrittenError",
    "StepFolder",
    "Changes",
    "TrackingDraft",
    "apply",
    "apply_tracked",
    "fold",
    "fold_from",
    "fold_into",
    "fold_until",
]
