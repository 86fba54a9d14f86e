"""Drift of the ``<prefix>.assignments`` topic: its newest records against the log folded
to their as-of seq, with the tail of the log after it (see :mod:`projections.fold.drift`)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, NamedTuple

import orjson

from events.base import ControlEvent
from projections.fold import apply_tracked
from projections.fold.assignments import (
    JsonDict,
    Update,
    assignment_value,
    instance_value,
    same_assignment,
    same_instance,
)
from projections.fold.drift.report import (
    DRIFT_REPAIR_REASON,
    Drift,
    DriftReport,
    Projection,
)
from projections.fold.state import ClusterState


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
        state, touched = apply_tracked(state, event)
        changed.update(touched.streams)
    return Tail(state, frozenset(changed))


def instance_values_after(
    at: ClusterState, events: Iterable[ControlEvent], seen: dict[str, list[JsonDict | None]]
) -> ClusterState:
    """Fold ``events`` onto ``at``, adding to ``seen`` each value an instance took (None:
    gone), in order: every value a projector's ``instances`` table may show while it is
    part-way through them. Returns the state after them."""
    state = at
    for event in events:
        state, touched = apply_tracked(state, event)
        for key in touched.instances:
            inst = state.instances.get(key)
            seen.setdefault(key, []).append(
                None if inst is None else instance_value(inst, seq=state.seq)
            )
    return state


def compare_instances(
    before: ClusterState,
    seen: Mapping[str, list[JsonDict | None]],
    view: AssignmentsView,
    *,
    head_seq: int,
) -> DriftReport:
    """The Faust projector's ``instances`` table (``view``) against the log. ``before`` is
    the log folded to just before the view's as-of seq (the last event the table may show
    only part of: an assignment changes two instances, written one after the other), and
    ``seen`` the values each instance took from there to ``head_seq``
    (:func:`instance_values_after`). An entry is right if it shows its value in ``before``
    or one it took since (lag when not the newest); ``as_of_seq`` is bookkeeping."""
    drifts, lag = [], 0
    keys = sorted(set(before.instances) | set(view.latest) | set(seen))
    for key in keys:
        inst = before.instances.get(key)
        expected = None if inst is None else instance_value(inst, seq=before.seq)
        found, later = view.latest.get(key), seen.get(key, [])
        if any(same_instance(v, found) for v in [expected, *later]):
            lag += bool(later) and not same_instance(later[-1], found)
            continue
        newest = later[-1] if later else expected
        fields: tuple[str, ...] = ()
        if isinstance(newest, dict) and isinstance(found, dict):
            names = sorted((set(newest) | set(found)) - {"as_of_seq"})
            fields = tuple(k for k in names if newest.get(k) != found.get(k))
        drifts.append(
            Drift(Projection.FAUST_TABLES, "instances", key, newest, found, fields, view.as_of_seq)
        )
    report = (Projection.FAUST_TABLES, view.as_of_seq, head_seq, lag, len(keys), tuple(drifts))
    return DriftReport(*report)


def compare_assignments(
    at: ClusterState,
    tail: Tail,
    view: AssignmentsView,
    projection: Projection = Projection.ASSIGNMENTS,
) -> DriftReport:
    """Compare the topic's newest records with ``at`` (the log folded to ``view.as_of_seq``);
    ``tail`` is the rest of the log folded onto ``at``. A record that shows a later change
    from the tail is fine; one that still shows ``at``'s value there is lag. ``projection``:
    the assignments topic, or the Faust ``assignments`` table (same records, by changelog)."""
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
                projection,
                "assignments",
                key,
                _content(expected),
                _content(found),
                _fields(expected, found),
                at.seq,
            )
        )
    return DriftReport(projection, at.seq, tail.state.seq, lag, len(keys), tuple(drifts))


def assignment_repairs(at: ClusterState, report: DriftReport) -> list[Update]:
    """The records that put the drifted keys right as of ``at`` (the state the report was
    made at): the correct value with reason :data:`DRIFT_REPAIR_REASON`, or a tombstone for a
    stream the log does not have there. Later changes are the projector's to publish."""
    return [
        Update(d.key, _record(at, d.key, DRIFT_REPAIR_REASON))
        for d in report.drifts
        if d.projection is Projection.ASSIGNMENTS
    ]
