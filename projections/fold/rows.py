"""Pure: the read model's rows from fold states (what :mod:`projections.read_model` writes).

:func:`fold_batch` folds a batch of ``(offset, event)`` pairs with the one ``apply`` and collects
the rows it changes; ``*_row`` give one row each; :func:`health_data` is SystemHealth as JSON.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any, NamedTuple

from events import control as ev
from events.base import ControlEvent
from events.codec import to_wire
from projections.fold import apply
from projections.fold.assignments import (
    assignment_value,
    event_reason,
    instance_value,
    stream_value,
)
from projections.fold.assignments import changes as state_changes
from projections.fold.health import system_health
from projections.fold.state import ClusterState, EnhancedInstance, StreamAssignment


class BatchOutcome(NamedTuple):
    """What one batch did: the new state and the rows to write."""

    state: ClusterState
    #: stream_id -> (reason, seq) of the last event that changed it
    streams: dict[str, tuple[str, int]]
    instances: set[str]
    events: list[tuple[Any, ...]]
    migrations_started: list[tuple[Any, ...]]
    migrations_ended: list[tuple[Any, ...]]


def _finding(before: ClusterState, after: ClusterState) -> str | None:
    if after.finding_count == before.finding_count:
        return None
    return after.findings[-1].kind.value


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
    out: BatchOutcome, before: ClusterState, after: ClusterState, event: ControlEvent, sid: str
) -> None:
    """Migration rows from the ``in_flight`` index: a migration that left it ended
    (``completed``/``aborted`` by its own event, else ``cancelled``, e.g. the stream failed
    or was deregistered); one that entered it started."""
    old, new = before.in_flight.get(sid), after.in_flight.get(sid)
    if old == new:
        return
    if old is not None:
        outcome = "cancelled"
        if isinstance(event, ev.MigrationCompleted | ev.MigrationAborted):
            outcome = "completed" if isinstance(event, ev.MigrationCompleted) else "aborted"
        out.migrations_ended.append((old, outcome, event_reason(event), event.time, event.seq))
    m = after.streams[sid].migration_state if new is not None else None
    if m is not None:
        out.migrations_started.append(
            (m.migration_id, sid, m.from_server, m.to_server, m.reason, m.plan_id,
             m.started_at, m.deadline, event.seq)
        )  # fmt: skip


def fold_batch(state: ClusterState, records: Sequence[tuple[int, ControlEvent]]) -> BatchOutcome:
    """Pure: fold ``(offset, event)`` pairs onto ``state`` and collect the rows they change."""
    out = BatchOutcome(state, {}, set(), [], [], [])
    for offset, event in records:
        before = state
        state = apply(before, event)
        finding = _finding(before, state)
        out.events.append(event_row(offset, event, finding))
        changed = state_changes(before, state, event)
        out.instances.update(changed.instances)
        reason = event_reason(event)
        for sid in changed.streams:
            out.streams[sid] = (reason, event.seq)
            _migration_rows(out, before, state, event, sid)
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
