"""Pure: the read model's rows from fold states (what :mod:`projections.read_model` writes).

:func:`fold_batch` folds a batch of ``(offset, event)`` pairs with the one fold driver and collects
the rows it changes; ``*_row`` give one row each; :func:`health_data` is SystemHealth as JSON.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any, NamedTuple

from events import control as ev
from events.base import ControlEvent
from events.codec import to_wire
from projections.fold.assignments import (
    assignment_value,
    event_reason,
    instance_value,
    stream_value,
)
from projections.fold.driver import HalfWrittenError, apply_tracked, fold_into
from projections.fold.health import system_health
from projections.fold.state import ClusterState, EnhancedInstance, StreamAssignment
from projections.fold.transitions.draft import StreamRecord, TrackingDraft


class BatchOutcome(NamedTuple):
    """What one batch did: the new state and the rows to write."""

    state: ClusterState
    #: stream_id -> (reason, seq) of the last event that changed it
    streams: dict[str, tuple[str, int]]
    instances: set[str]
    events: list[tuple[Any, ...]]
    migrations_started: list[tuple[Any, ...]]
    migrations_ended: list[tuple[Any, ...]]


def event_row(offset: int, event: ControlEvent, finding: str | None) -> tuple[Any, ...]:
    """The ``events`` audit row of one decoded record."""
    wire = to_wire(event)
    reason = getattr(event, "reason", None)
    return (
        offset,
        event.seq,
        event.epoch,
        event.id,
        wire["type"],
        event.time,
        event.subject,
        reason,
        event.causationid,
        event.correlationid,
        finding,
        wire["data"],
    )


def _migration_rows(
    out: BatchOutcome,
    event: ControlEvent,
    sid: str,
    old: str | None,
    new: str | None,
    stream: StreamRecord | None,
) -> None:
    """Migration rows from the ``in_flight`` index (``old`` before the event, ``new``
    after it): a migration that left it ended (``completed``/``aborted`` by its own event,
    else ``cancelled``, e.g. the stream failed or was deregistered); one that entered it
    started."""
    if old == new:
        return
    if old is not None:
        outcome = "cancelled"
        if isinstance(event, ev.MigrationCompleted | ev.MigrationAborted):
            outcome = "completed" if isinstance(event, ev.MigrationCompleted) else "aborted"
        out.migrations_ended.append((old, outcome, event_reason(event), event.time, event.seq))
    m = stream.migration_state if new is not None and stream is not None else None
    if m is not None:
        out.migrations_started.append(
            (m.migration_id, sid, m.from_server, m.to_server, m.reason, m.plan_id,
             m.started_at, m.deadline, event.seq)
        )  # fmt: skip


def fold_batch(state: ClusterState, records: Sequence[tuple[int, ControlEvent]]) -> BatchOutcome:
    """Pure: fold ``(offset, event)`` pairs onto ``state`` and collect the rows they change.

    One :class:`TrackingDraft` for the whole batch (a state per event would cost ~6x the
    fold); it says what each event wrote. Should a transition write before it is rejected
    (a bug, see :mod:`projections.fold.driver`), the batch is folded again event by event
    with :func:`apply_tracked`, which drops such a write."""
    try:
        return _fold_batch(state, records)
    except HalfWrittenError:
        return fold_batch_stepwise(state, records)


def _fold_batch(state: ClusterState, records: Sequence[tuple[int, ControlEvent]]) -> BatchOutcome:
    out = BatchOutcome(state, {}, set(), [], [], [])
    d = TrackingDraft(state)
    values, flight, streams = d.values, d.in_flight, d.streams
    for offset, event in records:
        d.begin()
        count = values["finding_count"]
        fold_into(d, (event,))
        finding = None
        if values["finding_count"] != count:
            finding = values["findings"][-1].kind.value
        out.events.append(event_row(offset, event, finding))
        changed = d.changes()
        out.instances.update(changed.instances)
        if changed.streams:
            reason = event_reason(event)
            for sid in changed.streams:
                out.streams[sid] = (reason, event.seq)
                old, new = d.flight_before(sid), flight.get(sid)
                _migration_rows(out, event, sid, old, new, streams.get(sid))
    return out._replace(state=d.finish())


def fold_batch_stepwise(
    state: ClusterState, records: Sequence[tuple[int, ControlEvent]]
) -> BatchOutcome:
    """:func:`fold_batch` with a persistent state per event (:func:`apply_tracked`): slower,
    never broken; the reference the tests hold :func:`fold_batch` to."""
    out = BatchOutcome(state, {}, set(), [], [], [])
    for offset, event in records:
        before = state
        state, changed = apply_tracked(before, event)
        finding = None
        if state.finding_count != before.finding_count:
            finding = state.findings[-1].kind.value
        out.events.append(event_row(offset, event, finding))
        out.instances.update(changed.instances)
        reason = event_reason(event)
        for sid in changed.streams:
            out.streams[sid] = (reason, event.seq)
            old, new = before.in_flight.get(sid), state.in_flight.get(sid)
            _migration_rows(out, event, sid, old, new, state.streams.get(sid))
    return out._replace(state=state)


def stream_row(stream: StreamAssignment, reason: str, seq: int) -> tuple[Any, ...]:
    """One ``streams`` row."""
    record = assignment_value(stream, seq=seq, epoch=0, time=None, reason=reason)
    return (
        stream.stream_id,
        stream.server_id,
        stream.incarnation,
        stream.status.value,
        stream.weight,
        stream.priority,
        stream.assigned_at,
        record["migration"],
        reason,
        stream_value(stream),
        seq,
    )


def instance_row(inst: EnhancedInstance, seq: int) -> tuple[Any, ...]:
    """One ``instances`` row."""
    return (
        inst.server_id,
        inst.incarnation,
        inst.status.value,
        inst.draining,
        inst.max_streams,
        inst.current_streams,
        inst.load,
        inst.zone,
        inst.last_heartbeat,
        instance_value(inst, seq=seq),
        seq,
    )


def health_data(state: ClusterState) -> dict[str, Any]:
    """SystemHealth of ``state`` as JSON, with ``overall`` and ``needs_intervention``."""
    health = system_health(state)
    data = dataclasses.asdict(health)
    data["overall"] = health.overall_health().value
    data["needs_intervention"] = health.needs_intervention()
    return data
