"""Drift of the ``<prefix>.assignments`` topic: its newest records against the log folded
to their as-of seq, with the tail of the log after it (see :mod:`projections.fold.drift`)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, NamedTuple

import orjson

from events.base import ControlEvent
from projections.fold import apply
from projections.fold.assignments import (
    JsonDict,
    Update,
    assignment_value,
    changes,
    same_assignment,
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
        before, state = state, apply(state, event)
        changed.update(changes(before, state, event).streams)
    return Tail(state, frozenset(changed))


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
