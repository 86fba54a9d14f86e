"""Fold a whole batch of events in place: the fast way to the same state as ``apply``.

:func:`projections.fold.apply` returns a new persistent state for every event, which is
what the orchestrator and the projections need (each state is kept and shared). A replay
or an audit folds a million events and only looks at the end, so it has no use for the
999,999 states in between. :class:`Folder` keeps the state's maps as
``immutables.MapMutation`` (in-place updates of a HAMT nobody else sees, like Clojure's
transients) and its other fields in one dict, runs the very same transitions
(:data:`projections.fold.transitions.TRANSITIONS`) through a :class:`TransientDraft` and the very
same rules (:func:`projections.fold.rules.check`), and builds a :class:`ClusterState` only when
asked. ``Folder(s).apply_all(events).state() == fold_from(s, events)`` for every log,
valid or not (a property test holds it to that).

A transition that raises :class:`Rejected` must leave no trace. The persistent draft just
drops its work; this one writes in place, so it relies on the rule every transition keeps
(:mod:`projections.fold.transitions`): check before the first write. A transition breaking it is
a bug: the folder then raises :class:`HalfWrittenError` (its state is lost), and its callers
fold the same events again with the persistent ``apply``, the reference
(:func:`projections.fold.fold_from`, :func:`projections.io.replay.replay`). Until session 3 the
folder took a checkpoint every 512 events to refold from instead; ``StreamAssigned``, the one
transition that wrote before its capacity check, now checks first, and dropping the
checkpoints saved ~6% of a replay's folding process.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any, cast

import immutables

from events import control as ev
from events.base import ControlEvent
from projections.fold.rules import RECENT_WINDOW, check, with_finding
from projections.fold.state import (
    AssignmentStatus,
    ClusterState,
    EnhancedInstance,
    FindingKind,
    StreamAssignment,
    replacer,
)
from projections.fold.transitions import TRANSITIONS, Draft, Rejected

_replace_instance = replacer(EnhancedInstance)
_replace_stream = replacer(StreamAssignment)
_INSTANCE_FIELDS = len(EnhancedInstance.__dataclass_fields__)
_STREAM_FIELDS = len(StreamAssignment.__dataclass_fields__)

_MAPS = ("instances", "streams", "in_flight", "unplaced", "held", "recent_ids")
_FIELDS = tuple(ClusterState.__dataclass_fields__)
_LEADER_ELECTED = ev.LeaderElected
_UNASSIGNED = AssignmentStatus.UNASSIGNED

Mutation = immutables.MapMutation[Any, Any]


class HalfWrittenError(RuntimeError):
    """A transition was rejected after it had written (a bug: transitions check first).
    The folder's state is lost; fold the events again with the persistent ``apply``."""


class _Live:
    """The folder's current scalar fields as attributes (``d.base.rebalance`` ...): its
    ``__dict__`` *is* the folder's dict of them, so reads need no copy."""


class TransientDraft(Draft):
    """A :class:`Draft` whose maps are mutations, written in place.

    ``wrote`` says whether the current event has written anything yet. ``owned`` holds the
    ids of the instance and stream copies this draft made since the folder last handed out
    a state (only copies: ``put_*`` may be given any value). Nobody else can see those, so
    they are updated in place instead of copied again (frozen to everyone else; ~15% of
    the fold). An id there may come to name another object once its copy died, but only
    one made since the last hand-out too (the objects of a state handed out stay alive as
    long as that state, and the set is emptied at every hand-out), which no state handed out
    holds either: updating it in place is as safe.
    """

    __slots__ = ("owned", "wrote")

    def __init__(self, live: _Live, maps: dict[str, Mutation]) -> None:
        # Deliberately not Draft.__init__: the base is the live fields, the maps mutations
        # (they answer the reads transitions make: get, ``in``, ``[]``).
        self.base = cast(ClusterState, live)
        self.changes = {}
        self.wrote = False
        self.owned: set[int] = set()
        self.attach(maps)

    def attach(self, maps: dict[str, Mutation]) -> None:
        """Use these mutations from now on; values made so far become shared."""
        self.instances = cast(Any, maps["instances"])
        self.streams = cast(Any, maps["streams"])
        self.in_flight = cast(Any, maps["in_flight"])
        self.unplaced = cast(Any, maps["unplaced"])
        self.held = cast(Any, maps["held"])
        self.owned.clear()

    def put_instance(self, inst: EnhancedInstance) -> None:
        self.wrote = True
        m: Any = self.instances
        m[inst.server_id] = inst

    def update_instance(self, inst: EnhancedInstance, **changes: Any) -> EnhancedInstance:
        self.wrote = True
        if id(inst) in self.owned:  # ours alone: change it where it is
            values = inst.__dict__
            values.update(changes)
            if len(values) != _INSTANCE_FIELDS:
                raise TypeError(f"EnhancedInstance has no field(s) {sorted(changes)}")
            return inst
        new = _replace_instance(inst, **changes)
        self.owned.add(id(new))
        m: Any = self.instances
        m[new.server_id] = new
        return new

    def update_stream(self, stream: StreamAssignment, **changes: Any) -> StreamAssignment:
        if id(stream) in self.owned:
            values = stream.__dict__
            values.update(changes)
            if len(values) != _STREAM_FIELDS:
                raise TypeError(f"StreamAssignment has no field(s) {sorted(changes)}")
            self._index(stream)
            return stream
        new = _replace_stream(stream, **changes)
        self.owned.add(id(new))
        self.put_stream(new)
        return new

    def put_stream(self, stream: StreamAssignment) -> None:
        self._index(stream)
        streams: Any = self.streams
        streams[stream.stream_id] = stream

    def _index(self, stream: StreamAssignment) -> None:
        """Keep the ``in_flight`` and ``unplaced`` indexes in step with ``stream``."""
        self.wrote = True
        sid = stream.stream_id
        flight: Any = self.in_flight
        migration = stream.migration_state
        if migration is not None:
            flight[sid] = migration.migration_id
        elif sid in flight:
            del flight[sid]
        unplaced: Any = self.unplaced
        if stream.status is _UNASSIGNED:
            unplaced[sid] = True
        elif sid in unplaced:
            del unplaced[sid]

    def drop_stream(self, sid: str) -> None:
        self.wrote = True
        for m in (self.streams, self.in_flight, self.unplaced):
            mm: Any = m
            if sid in mm:
                del mm[sid]

    def put_held(self, server_id: str, held: immutables.Map[str, bool]) -> None:
        self.wrote = True
        m: Any = self.held
        if held:
            m[server_id] = held
        else:
            del m[server_id]


class Folder:
    """``fold_from(state, events)`` in place, batch after batch; :meth:`state` at any time.

    Not thread-safe and not shareable: one folder per replay. The states :meth:`state`
    returns are ordinary persistent states, never changed by later :meth:`apply` calls.
    """

    __slots__ = ("_broken", "_draft", "_maps", "_values")

    def __init__(self, state: ClusterState | None = None) -> None:
        state = state or ClusterState()
        values = dict(state.__dict__)  # ClusterState has a __dict__ (see state.py)
        self._maps: dict[str, Mutation] = {name: values.pop(name).mutate() for name in _MAPS}
        self._values: dict[str, Any] = values
        live = _Live()
        live.__dict__ = values
        self._draft = TransientDraft(live, self._maps)
        self._broken: str | None = None

    def apply(self, event: ControlEvent) -> None:
        """Fold one event (exactly what :func:`projections.fold.apply` does to a state)."""
        self.apply_all((event,))

    def apply_all(self, events: Iterable[ControlEvent]) -> Folder:
        """Fold every event of ``events``; returns the folder (to chain :meth:`state`).
        Raises :class:`HalfWrittenError` if a transition wrote before it was rejected."""
        if self._broken is not None:
            raise HalfWrittenError(f"this folder's state was lost: {self._broken}")
        self._fold(iter(events))
        return self

    def _fold(self, events: Iterator[ControlEvent]) -> None:
        """The loop, with everything it touches in locals (it runs once per event of a
        replay: each lookup saved is ~1% of the fold)."""
        values = self._values
        recent: Any = self._maps["recent_ids"]
        d = self._draft
        changes = d.changes
        transitions, leader_elected, window = TRANSITIONS, _LEADER_ELECTED, RECENT_WINDOW
        seq_now, epoch_now = values["seq"], values["epoch"]
        for event in events:
            seq = event.seq
            if seq != seq_now + 1 or event.epoch != epoch_now or isinstance(event, leader_elected):
                ok, finding = check(event, seq_now, epoch_now, recent.get(seq))
                if finding is not None:
                    self._record(event, *finding)
                if not ok:
                    continue
            transition = transitions.get(type(event))
            d.wrote = False
            try:
                if transition is None:  # a ControlEvent subclass the fold does not know
                    raise Rejected(FindingKind.INVALID_TRANSITION, "no handler for type")
                transition(d, event)
            except Rejected as exc:
                changes.clear()
                if d.wrote:  # a bug: transitions check before they write
                    self._broken = (
                        f"{type(event).__name__} (seq {seq}) wrote before it was rejected: "
                        f"{exc.kind.value}: {exc.detail}"
                    )
                    raise HalfWrittenError(self._broken) from exc
                finding = (exc.kind, exc.detail)
            else:
                finding = None
                if changes:
                    values.update(changes)
                    epoch_now = values["epoch"]
                    changes.clear()
            # the bookkeeping every applied event does (fold._advanced)
            values["seq"] = seq_now = seq
            values["last_event_time"] = event.time
            recent[seq] = event.id
            if seq - window in recent:
                del recent[seq - window]
            if finding is not None:
                self._record(event, *finding)

    def state(self) -> ClusterState:
        """The state folded so far: O(1), and the folder goes on from it."""
        if self._broken is not None:
            raise HalfWrittenError(f"this folder's state was lost: {self._broken}")
        maps = self._maps
        values = self._values
        frozen = {}
        for name in _MAPS:
            done = maps[name].finish()
            frozen[name] = done
            maps[name] = done.mutate()
        self._draft.attach(maps)
        state: ClusterState = object.__new__(ClusterState)
        object.__setattr__(
            state, "__dict__", {f: frozen[f] if f in frozen else values[f] for f in _FIELDS}
        )
        return state

    def _record(self, event: ControlEvent, kind: FindingKind, detail: str) -> None:
        values = self._values
        values["findings"] = with_finding(values["findings"], event, kind, detail)
        values["finding_count"] += 1
