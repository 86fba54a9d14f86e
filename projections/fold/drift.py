"""Pure: projection drift, i.e. a projection that disagrees with ``fold(log prefix)``.

A projection may be *behind* the log (it has not folded the newest events yet): that is lag,
not drift. So each projection is compared with the fold of the log **at its own as-of
point**, and how far behind it is gets reported separately:

- **PostgreSQL read model**: the tracking row says exactly where it stands (``next_offset``);
  the shell folds ``log[:next_offset]`` and hands it here with the rows
  (:func:`compare_read_model`). Lag = log records after ``next_offset``.
- **``<prefix>.assignments``** (one record per stream, compacted): its as-of is the highest
  ``as_of_seq`` of any record read (:func:`latest_assignments`); the shell folds the log up to
  that seq (:func:`fold_to_seq`) and keeps the events after it (the *tail*).
  :func:`compare_assignments` accepts a record that matches the state at the as-of seq, or
  one that already shows a later change from the tail (a tombstone carries no seq, so a
  deregistration published after the last valued record looks "ahead"). Lag = streams the
  tail changed whose new value is not published yet.

Only content is compared, never bookkeeping that depends on batching: a stream row's
``reason``/``as_of_seq``, an instance row's ``as_of_seq``, a record's ``reason``/``epoch``/
``time`` (:func:`projections.fold.assignments.same_assignment`). Every difference is a
:class:`Drift` (kind ``projection_drift``) naming the projection, the table and key, what the
log says and what was found.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, NamedTuple

import orjson

from events.base import ControlEvent
from projections.fold import apply
from projections.fold.assignments import (
    Update,
    assignment_value,
    changes,
    instance_value,
    iso,
    same_assignment,
    stream_value,
)
from projections.fold.state import ClusterState, EnhancedInstance, StreamAssignment

#: the divergence kind of every item here (DESIGN.md's classification)
PROJECTION_DRIFT = "projection_drift"
#: ``reason`` of the assignment records a repair republishes
DRIFT_REPAIR_REASON = "drift_repair"

#: ``streams`` columns compared (``reason`` and ``as_of_seq`` are bookkeeping)
STREAM_COLUMNS = (
    "server_id", "incarnation", "status", "weight", "priority", "assigned_at", "migration", "data",
)  # fmt: skip
#: ``instances`` columns compared (``as_of_seq`` is the batch's seq, and left out of ``data``)
INSTANCE_COLUMNS = (
    "incarnation", "status", "draining", "max_streams", "current_streams", "load", "zone",
    "last_heartbeat", "data",
)  # fmt: skip
#: ``cluster`` columns compared
CLUSTER_COLUMNS = ("seq", "epoch", "leader_id", "maintenance", "finding_count")

JsonDict = dict[str, Any]


class Projection(StrEnum):
    """Which projection drifted."""

    READ_MODEL = "read_model"
    ASSIGNMENTS = "assignments"


class Drift(NamedTuple):
    """One key of a projection that disagrees with the log at ``as_of_seq``; ``expected``
    and ``found`` are plain JSON (None: no row / no record / tombstone)."""

    projection: Projection
    table: str
    key: str
    expected: Any
    found: Any
    #: the fields that differ (empty when the whole row is missing or unexpected)
    fields: tuple[str, ...]
    as_of_seq: int
    kind: str = PROJECTION_DRIFT

    def to_json(self) -> JsonDict:
        """Plain JSON (for ``--json`` and logs)."""
        return {**self._asdict(), "projection": self.projection.value, "fields": list(self.fields)}


class DriftReport(NamedTuple):
    """The outcome of comparing one projection with the log."""

    projection: Projection
    #: the seq the projection stands at (and was compared at)
    as_of_seq: int
    #: the seq at the end of the log
    head_seq: int
    #: how far behind: log records (read model) or unpublished stream changes (assignments)
    lag: int
    #: keys compared
    checked: int
    drifts: tuple[Drift, ...]

    @property
    def clean(self) -> bool:
        """No drift (lag alone is fine)."""
        return not self.drifts

    def to_json(self) -> JsonDict:
        """Plain JSON (for ``--json``)."""
        data = self._asdict()
        data["projection"] = self.projection.value
        data["drifts"] = [d.to_json() for d in self.drifts]
        data["clean"] = self.clean
        return data


def _plain(value: Any) -> Any:
    """Database values as JSON: datetimes as ISO UTC with ``Z`` (like the codec)."""
    if isinstance(value, datetime):
        return iso(value.astimezone(UTC))
    return value


def _differing(expected: Mapping[str, Any], found: Mapping[str, Any]) -> tuple[str, ...]:
    return tuple(k for k in expected if expected[k] != found.get(k))


def _diff_rows(
    table: str,
    expected: Mapping[str, JsonDict],
    found: Mapping[str, JsonDict],
    as_of_seq: int,
    projection: Projection = Projection.READ_MODEL,
) -> list[Drift]:
    out = []
    for key in sorted(set(expected) | set(found)):
        exp, got = expected.get(key), found.get(key)
        if exp is not None and got is not None:
            fields = _differing(exp, got)
            if not fields:
                continue
        else:
            fields = ()
        out.append(Drift(projection, table, key, exp, got, fields, as_of_seq))
    return out


# --- the read model ---------------------------------------------------------------------


class ReadModelRows(NamedTuple):
    """What the shell read from the read model, in one snapshot transaction."""

    #: the tracking row: next log offset to apply and the seq it reached
    next_offset: int
    last_seq: int
    streams: Sequence[Mapping[str, Any]]
    instances: Sequence[Mapping[str, Any]]
    #: this projection's ``cluster`` row (None: missing)
    cluster: Mapping[str, Any] | None
    #: stream_id -> migration_id of the ``migrations`` rows still ``in_flight``
    in_flight: Mapping[str, str]


def expected_stream_row(stream: StreamAssignment) -> JsonDict:
    """The compared columns of ``stream``'s ``streams`` row, as JSON."""
    record = assignment_value(stream, seq=0, epoch=0, time=None, reason="")
    return {
        "server_id": stream.server_id,
        "incarnation": stream.incarnation,
        "status": stream.status.value,
        "weight": stream.weight,
        "priority": stream.priority,
        "assigned_at": iso(stream.assigned_at),
        "migration": record["migration"],
        "data": stream_value(stream),
    }


def expected_instance_row(inst: EnhancedInstance) -> JsonDict:
    """The compared columns of ``inst``'s ``instances`` row, as JSON."""
    data = instance_value(inst, seq=0)
    del data["as_of_seq"]
    return {
        "incarnation": inst.incarnation,
        "status": inst.status.value,
        "draining": inst.draining,
        "max_streams": inst.max_streams,
        "current_streams": inst.current_streams,
        "load": inst.load,
        "zone": inst.zone,
        "last_heartbeat": iso(inst.last_heartbeat),
        "data": data,
    }


def _found_row(row: Mapping[str, Any], columns: tuple[str, ...]) -> JsonDict:
    found = {c: _plain(row.get(c)) for c in columns}
    if isinstance(found.get("data"), dict) and "as_of_seq" in found["data"]:
        found["data"] = {k: v for k, v in found["data"].items() if k != "as_of_seq"}
    return found


def compare_read_model(
    state: ClusterState, rows: ReadModelRows, *, head_seq: int, lag: int
) -> DriftReport:
    """Compare the read model with ``state`` = ``fold(log[:rows.next_offset])``: every
    ``streams``/``instances`` row, the ``cluster`` row, migrations in flight, the tracking
    row's seq. ``head_seq``/``lag`` describe the log beyond it (reported, not judged)."""
    seq = state.seq
    drifts = _diff_rows(
        "streams",
        {k: expected_stream_row(s) for k, s in state.streams.items()},
        {str(r["stream_id"]): _found_row(r, STREAM_COLUMNS) for r in rows.streams},
        seq,
    )
    drifts += _diff_rows(
        "instances",
        {k: expected_instance_row(i) for k, i in state.instances.items()},
        {str(r["server_id"]): _found_row(r, INSTANCE_COLUMNS) for r in rows.instances},
        seq,
    )
    cluster_expected = {
        "seq": state.seq,
        "epoch": state.epoch,
        "leader_id": state.leader_id,
        "maintenance": state.maintenance,
        "finding_count": state.finding_count,
    }
    found_cluster = None if rows.cluster is None else _found_row(rows.cluster, CLUSTER_COLUMNS)
    drifts += _diff_rows(
        "cluster",
        {"cluster": cluster_expected} if seq or found_cluster is not None else {},
        {} if found_cluster is None else {"cluster": found_cluster},
        seq,
    )
    drifts += _diff_rows(
        "migrations",
        {sid: {"migration_id": mid} for sid, mid in state.in_flight.items()},
        {sid: {"migration_id": mid} for sid, mid in rows.in_flight.items()},
        seq,
    )
    drifts += _diff_rows(
        "projection_tracking", {"last_seq": {"seq": seq}}, {"last_seq": {"seq": rows.last_seq}}, seq
    )
    checked = len(state.streams) + len(state.instances) + len(state.in_flight) + 2
    return DriftReport(Projection.READ_MODEL, seq, head_seq, lag, checked, tuple(drifts))


def missing_read_model(*, head_seq: int, lag: int) -> DriftReport:
    """The report when the read model's tables or tracking row do not exist at all."""
    drift = Drift(
        Projection.READ_MODEL,
        "projection_tracking",
        "tracking_row",
        {"present": True},
        None,
        (),
        0,
    )
    return DriftReport(Projection.READ_MODEL, 0, head_seq, lag, 1, (drift,))


# --- the assignments topic --------------------------------------------------------------


class AssignmentsView(NamedTuple):
    """The newest record per key of ``<prefix>.assignments`` (None: tombstone) and the
    highest ``as_of_seq`` seen: how far the projector that wrote them had got."""

    latest: Mapping[str, Any]
    as_of_seq: int


def latest_assignments(records: Iterable[tuple[bytes | None, bytes | None]]) -> AssignmentsView:
    """Fold ``(key, value)`` records in offset order (per partition; a key lives in one)
    into the newest value per key. A value that is not a JSON object is kept as
    ``{"undecodable": text}``, so it shows up as drift; a record without a key is skipped."""
    latest: dict[str, Any] = {}
    top = 0
    for key, value in records:
        if key is None:
            continue
        name = key.decode("utf-8", "replace")
        if value is None:
            latest[name] = None
            continue
        try:
            data = orjson.loads(value)
        except orjson.JSONDecodeError:
            data = None
        if not isinstance(data, dict):
            latest[name] = {"undecodable": value.decode("utf-8", "replace")[:200]}
            continue
        latest[name] = data
        seq = data.get("as_of_seq")
        if isinstance(seq, int) and seq > top:
            top = seq
    return AssignmentsView(latest, top)


def fold_to_seq(
    state: ClusterState, events: Sequence[ControlEvent], seq: int
) -> tuple[ClusterState, int]:
    """Fold the leading ``events`` whose seq is at most ``seq``; returns the state and how
    many were folded (the rest are the tail)."""
    folded = 0
    for event in events:
        if event.seq > seq:
            break
        state = apply(state, event)
        folded += 1
    return state, folded


def _record(state: ClusterState, key: str, reason: str = "") -> JsonDict | None:
    stream = state.streams.get(key)
    if stream is None:
        return None
    return assignment_value(
        stream, seq=state.seq, epoch=state.epoch, time=state.last_event_time, reason=reason
    )


def _content(record: Any) -> Any:
    """The compared part of a record (what ``same_assignment`` looks at) for the report."""
    if not isinstance(record, dict) or "undecodable" in record:
        return record
    return {k: record.get(k) for k in ("stream_id", "server_id", "incarnation", "status",
                                       "migration", "assigned_at", "as_of_seq")}  # fmt: skip


def _fields(expected: Any, found: Any) -> tuple[str, ...]:
    if not isinstance(expected, dict) or not isinstance(found, dict):
        return ()
    keys = ("stream_id", "server_id", "incarnation", "status", "migration", "assigned_at")
    return tuple(k for k in keys if expected.get(k) != found.get(k))


class Tail(NamedTuple):
    """The log after the as-of seq, folded: the head state and the streams it changed."""

    state: ClusterState
    changed: frozenset[str] = frozenset()


def fold_tail(tail: Tail, events: Iterable[ControlEvent]) -> Tail:
    """Fold more tail ``events`` (in batches: the tail never has to be held in memory)."""
    state, changed = tail.state, set(tail.changed)
    for event in events:
        before, state = state, apply(state, event)
        changed.update(changes(before, state, event).streams)
    return Tail(state, frozenset(changed))


def compare_assignments(at: ClusterState, tail: Tail, view: AssignmentsView) -> DriftReport:
    """Compare the topic's newest records with ``at`` (the log folded to ``view.as_of_seq``);
    ``tail`` is the rest of the log folded onto ``at``. A record that shows a later change
    from the tail is fine; one that still shows ``at``'s value there is lag."""
    drifts, lag = [], 0
    keys = sorted(set(at.streams) | set(view.latest))
    for key in keys:
        expected, found = _record(at, key), view.latest.get(key)
        if key in tail.changed:
            if same_assignment(_record(tail.state, key), found):
                continue  # already published (a tombstone has no seq to tell us so)
            if same_assignment(expected, found):
                lag += 1
                continue
        elif same_assignment(expected, found):
            continue
        drifts.append(
            Drift(
                Projection.ASSIGNMENTS,
                "assignments",
                key,
                _content(expected),
                _content(found),
                _fields(expected, found),
                at.seq,
            )
        )
    return DriftReport(
        Projection.ASSIGNMENTS, at.seq, tail.state.seq, lag, len(keys), tuple(drifts)
    )


def assignment_repairs(at: ClusterState, report: DriftReport) -> list[Update]:
    """The records that put the drifted keys right as of ``at`` (the state the report was
    made at): the correct value with reason :data:`DRIFT_REPAIR_REASON`, or a tombstone for a
    stream the log does not have there. Later changes are the projector's to publish."""
    return [
        Update(d.key, _record(at, d.key, DRIFT_REPAIR_REASON))
        for d in report.drifts
        if d.projection is Projection.ASSIGNMENTS
    ]


__all__ = [
    "DRIFT_REPAIR_REASON",
    "PROJECTION_DRIFT",
    "AssignmentsView",
    "Drift",
    "DriftReport",
    "Projection",
    "ReadModelRows",
    "Tail",
    "assignment_repairs",
    "compare_assignments",
    "compare_read_model",
    "expected_instance_row",
    "expected_stream_row",
    "fold_tail",
    "fold_to_seq",
    "latest_assignments",
    "missing_read_model",
]
