"""The state a fold is writing: :class:`Draft`, the one mutable form of a ``ClusterState``.

The one fold driver (:func:`projections.fold.driver.fold_into`) folds into it, both ways it
runs: ``apply`` makes a draft of its state, folds one event into it and takes the next state
from it; a ``Folder`` (a replay, ``fold_from``) keeps one draft for a million events and
takes a state only when asked. A transition
reads the state through the draft (``d.instances.get``, ``sid in d.streams``, ``d.held.get``,
``d.rebalance``) and writes only through its ``put_*``/``update_*``/``drop_stream``/``set``.

Why a mutable form at all: a persistent ``ClusterState`` per event is what the orchestrator
keeps, and a replay has no use for the 999,999 states between its first and last event.
So the draft keeps the maps as ``immutables.MapMutation`` (in-place updates of a HAMT nobody
else sees, like Clojure's transients), the other fields in one dict, and every instance or
stream it changes as a :class:`MutableInstance` / :class:`MutableStream`: a copy of its own,
of its own (mutable) type, changed in place by the later events until :meth:`Draft.state`
freezes it back into an ``EnhancedInstance`` / ``StreamAssignment``. A record is copied once
per hand-out, not once per change (copying an instance's 21 fields on every change cost a
replay's fold ~30%). ``tests/unit/test_fold_in_place.py`` proves the draft equal to the pure
fold: both drivers, valid and corrupted histories, states taken anywhere.

What the draft cannot do is forget: a transition must raise :class:`Rejected` before its
first write (``wrote`` tells), so that a rejected event leaves no trace. The driver holds
every transition to that.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, NamedTuple

import immutables

from events.heartbeat import PerformanceMetrics, StreamPerformance
from projections.fold.state import (
    AssignmentStatus,
    ClusterState,
    EnhancedInstance,
    Enrollment,
    InstanceStatus,
    MigrationState,
    RebalanceProgress,
    StreamAssignment,
    builder,
)

_build_instance = builder(EnhancedInstance)
_build_stream = builder(StreamAssignment)
_build_state = builder(ClusterState)
_INSTANCE_FIELDS = len(EnhancedInstance.__dataclass_fields__)
_STREAM_FIELDS = len(StreamAssignment.__dataclass_fields__)
_MAPS = frozenset({"instances", "streams", "in_flight", "unplaced", "held", "recent_ids"})
#: the fields a transition may ``set`` (the maps change through their own methods)
SCALARS = frozenset(ClusterState.__dataclass_fields__) - _MAPS
_UNASSIGNED = AssignmentStatus.UNASSIGNED


class MutableInstance:
    """A draft's own working copy of an :class:`EnhancedInstance`, changed in place: the
    same fields (``tests/unit/test_fold_in_place.py`` checks names and types), no methods."""

    server_id: str
    incarnation: str
    ip: str
    port: int
    max_streams: int
    zone: str | None
    tags: tuple[str, ...]
    status: InstanceStatus
    draining: bool
    current_streams: int
    load: int
    registered_at: datetime | None
    last_heartbeat: datetime | None
    performance_metrics: PerformanceMetrics
    failure_count: int
    recovery_attempts: int
    quarantined_until: datetime | None
    metrics_at: datetime | None
    drained_at: datetime | None
    last_failure_at: datetime | None
    past_incarnations: tuple[str, ...]


class MutableStream:
    """A draft's own working copy of a :class:`StreamAssignment` (as :class:`MutableInstance`)."""

    stream_id: str
    weight: int
    priority: int
    zone: str | None
    anti_affinity: str | None
    params: tuple[tuple[str, str], ...]
    server_id: str | None
    incarnation: str | None
    assigned_at: datetime | None
    status: AssignmentStatus
    migration_state: MigrationState | None
    performance_data: StreamPerformance
    failure_count: int
    failed_on: tuple[str, ...]
    last_error: str | None
    registered_at: datetime | None


#: what a transition reads from ``d.instances`` / ``d.streams``
InstanceRecord = EnhancedInstance | MutableInstance
StreamRecord = StreamAssignment | MutableStream


class Draft:
    """A ``ClusterState`` being written in place; :meth:`state` (or :meth:`finish`) gives it
    back as a value. Reads: ``instances``, ``streams``, ``held`` (maps) and the properties
    below; writes: the ``put_*``, ``update_*``, ``drop_stream`` and ``set`` methods (each sets
    ``wrote``). ``values``, ``recent_ids`` and ``wrote`` belong to the driver."""

    __slots__ = (
        "_instance_copies",
        "_stream_copies",
        "held",
        "in_flight",
        "instances",
        "recent_ids",
        "streams",
        "unplaced",
        "values",
        "wrote",
    )

    def __init__(self, state: ClusterState) -> None:
        #: whether the current event has written anything (the driver resets it per event)
        self.wrote = False
        self._start(state)

    def _start(self, state: ClusterState) -> None:
        #: every field of the state; those of the maps are stale until :meth:`finish`
        self.values: dict[str, Any] = state.__dict__.copy()  # ClusterState has a __dict__
        instances: immutables.Map[str, InstanceRecord] = state.instances
        streams: immutables.Map[str, StreamRecord] = state.streams
        self.instances = instances.mutate()
        self.streams = streams.mutate()
        self.in_flight = state.in_flight.mutate()
        self.unplaced = state.unplaced.mutate()
        self.held = state.held.mutate()
        self.recent_ids = state.recent_ids.mutate()
        #: the working copies made since the start, by key, to freeze back (by key, so that
        #: a dropped stream's copy is let go at once: a replay drops thousands)
        self._instance_copies: dict[str, MutableInstance] = {}
        self._stream_copies: dict[str, MutableStream] = {}

    def state(self) -> ClusterState:
        """The state written so far, as a value (O(records changed since the last call));
        the draft goes on from it, and later writes never show in it."""
        state = self.finish()
        self._start(state)
        return state

    def finish(self) -> ClusterState:
        """The state written, as a value; the draft is used up (``apply`` folds one event
        into a draft and takes its state this way, without starting over)."""
        instances, streams = self.instances, self.streams
        # each copy back to a value, unless a new record replaced it since (``put_*``)
        for server_id, inst in self._instance_copies.items():
            if instances.get(server_id) is inst:
                instances[server_id] = _build_instance(_fields_of(inst))
        for stream_id, stream in self._stream_copies.items():
            if streams.get(stream_id) is stream:
                streams[stream_id] = _build_stream(_fields_of(stream))
        fields, self.values = self.values, {}
        fields["instances"] = instances.finish()
        fields["streams"] = streams.finish()
        fields["in_flight"] = self.in_flight.finish()
        fields["unplaced"] = self.unplaced.finish()
        fields["held"] = self.held.finish()
        fields["recent_ids"] = self.recent_ids.finish()
        state: ClusterState = _build_state(fields)
        return state

    # --- the fields that are not maps ---------------------------------------------------

    @property
    def rebalance(self) -> RebalanceProgress | None:
        plan: RebalanceProgress | None = self.values["rebalance"]
        return plan

    @property
    def divergences_found(self) -> int:
        found: int = self.values["divergences_found"]
        return found

    @property
    def divergences_repaired(self) -> int:
        repaired: int = self.values["divergences_repaired"]
        return repaired

    @property
    def processed_commands(self) -> immutables.Map[str, int]:
        done: immutables.Map[str, int] = self.values["processed_commands"]
        return done

    @property
    def enrolled(self) -> immutables.Map[str, Enrollment]:
        keys: immutables.Map[str, Enrollment] = self.values["enrolled"]
        return keys

    def set(self, **fields: Any) -> None:
        """Set state fields that are not maps (``epoch``, ``rebalance``, ...)."""
        if not fields.keys() <= SCALARS:
            raise TypeError(f"not a settable ClusterState field: {sorted(set(fields) - SCALARS)}")
        self.wrote = True
        self.values.update(fields)

    # --- instances ------------------------------------------------------------------------

    def put_instance(self, inst: EnhancedInstance) -> None:
        """Store ``inst`` (a new record) under its ``server_id``."""
        self.wrote = True
        self.instances[inst.server_id] = inst

    def update_instance(self, inst: InstanceRecord, **changes: Any) -> None:
        """Change fields of ``inst`` (as read from this draft): in place once the draft has
        a copy of its own, which the first change makes."""
        self.wrote = True
        if not isinstance(inst, MutableInstance):
            inst = self._thaw_instance(inst)
        fields = inst.__dict__
        fields.update(changes)
        if len(fields) != _INSTANCE_FIELDS:  # a name that is not a field added a key
            raise TypeError(f"EnhancedInstance has no field(s) {sorted(changes)}")

    def _thaw_instance(self, inst: EnhancedInstance) -> MutableInstance:
        copy = MutableInstance()
        copy.__dict__ = inst.__dict__.copy()
        self.instances[inst.server_id] = self._instance_copies[inst.server_id] = copy
        return copy

    # --- streams and their indexes --------------------------------------------------------

    def put_stream(self, stream: StreamAssignment) -> None:
        """Store ``stream`` (a new record) and keep ``in_flight`` and ``unplaced`` in step."""
        self._index(stream)
        self.streams[stream.stream_id] = stream

    def update_stream(self, stream: StreamRecord, **changes: Any) -> None:
        """Change fields of ``stream`` as :meth:`update_instance` does, and keep the
        ``in_flight`` and ``unplaced`` indexes in step."""
        if not isinstance(stream, MutableStream):
            stream = self._thaw_stream(stream)
        fields = stream.__dict__
        fields.update(changes)
        if len(fields) != _STREAM_FIELDS:
            raise TypeError(f"StreamAssignment has no field(s) {sorted(changes)}")
        self._index(stream)

    def _thaw_stream(self, stream: StreamAssignment) -> MutableStream:
        copy = MutableStream()
        copy.__dict__ = stream.__dict__.copy()
        self.streams[stream.stream_id] = self._stream_copies[stream.stream_id] = copy
        return copy

    def _index(self, stream: StreamRecord) -> None:
        self.wrote = True
        sid = stream.stream_id
        flight = self.in_flight
        migration = stream.migration_state
        if migration is not None:
            flight[sid] = migration.migration_id
        elif sid in flight:
            del flight[sid]
        unplaced = self.unplaced
        if stream.status is _UNASSIGNED:
            unplaced[sid] = True
        elif sid in unplaced:
            del unplaced[sid]

    def drop_stream(self, sid: str) -> None:
        """Forget stream ``sid`` (it exists) and its index entries."""
        self.wrote = True
        del self.streams[sid]
        self._stream_copies.pop(sid, None)
        if sid in self.in_flight:
            del self.in_flight[sid]
        if sid in self.unplaced:
            del self.unplaced[sid]

    def put_held(self, server_id: str, held: immutables.Map[str, bool]) -> None:
        """What ``server_id`` must run; an empty map removes the entry (it exists then)."""
        self.wrote = True
        if held:
            self.held[server_id] = held
        else:
            del self.held[server_id]


class Changes(NamedTuple):
    """The instances and streams an event changed, as sorted key tuples."""

    instances: tuple[str, ...]
    streams: tuple[str, ...]


_UNSEEN = object()


class TrackingDraft(Draft):
    """A :class:`Draft` that also records which instances and streams the current event
    wrote (and, per stream, its ``in_flight`` entry before the event): what a projection
    writes after each event, known from the writes themselves instead of by comparing two
    states. :meth:`begin` starts an event; :meth:`changes` says what it wrote.

    Every map write goes through the methods below (transitions write only through the
    draft), so the record is exact; ``tests/unit/test_assignments.py`` checks it against
    the comparison of states (:func:`projections.fold.assignments.changes`)."""

    __slots__ = ("_flight_before", "_touched_instances", "_touched_streams")

    def __init__(self, state: ClusterState) -> None:
        super().__init__(state)
        self._touched_instances: set[str] = set()
        self._touched_streams: set[str] = set()
        self._flight_before: dict[str, Any] = {}

    def begin(self) -> None:
        """Forget what the previous event wrote."""
        self._touched_instances.clear()
        self._touched_streams.clear()
        self._flight_before.clear()

    def changes(self) -> Changes:
        """What the event since :meth:`begin` wrote."""
        return Changes(tuple(sorted(self._touched_instances)), tuple(sorted(self._touched_streams)))

    def flight_before(self, sid: str) -> str | None:
        """Stream ``sid``'s ``in_flight`` entry (a migration id) before this event."""
        old = self._flight_before.get(sid, _UNSEEN)
        if old is _UNSEEN:
            old = self.in_flight.get(sid)
        migration: str | None = old
        return migration

    def put_instance(self, inst: EnhancedInstance) -> None:
        self._touched_instances.add(inst.server_id)
        super().put_instance(inst)

    def update_instance(self, inst: InstanceRecord, **changes: Any) -> None:
        self._touched_instances.add(inst.server_id)
        super().update_instance(inst, **changes)

    def _index(self, stream: StreamRecord) -> None:
        self._before(stream.stream_id)
        super()._index(stream)

    def drop_stream(self, sid: str) -> None:
        self._before(sid)
        super().drop_stream(sid)

    def _before(self, sid: str) -> None:
        self._touched_streams.add(sid)
        if sid not in self._flight_before:
            self._flight_before[sid] = self.in_flight.get(sid)


def _fields_of(copy: MutableInstance | MutableStream) -> dict[str, Any]:
    """``copy``'s fields, handed over to the value made of them: the copy is left empty (it
    is out of its map by then, and an empty copy fails loudly if anything still used it)."""
    fields = copy.__dict__
    copy.__dict__ = {}
    return fields
