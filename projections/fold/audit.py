"""Audit helpers: why did a stream move, and what did the system believe at a moment.

Pure: events in, values out, through the one fold. The CLI (``streamplane audit``) reads the
control log from Kafka and hands the events to these functions.

- :func:`stream_history` / :func:`follow_stream`: the chain of events that concerned one
  stream, each with ``seq``, time, type, ``reason``, ``causationid`` and the owner and status
  before and after (an event the fold refused is in the chain too, with its finding).
- :func:`explain`: one readable line about an event, given the state it was applied to.
- :func:`summarize`: counts and headline facts of a state (for ``audit state``).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from datetime import datetime
from typing import Any, NamedTuple

from events import control as ev
from events.base import ControlEvent
from projections.fold import apply
from projections.fold.state import (
    ClusterState,
    Finding,
    FindingKind,
    InstanceStatus,
    StreamAssignment,
)


class StreamStep(NamedTuple):
    """One event in a stream's history and what it did to the stream."""

    seq: int
    epoch: int
    time: datetime
    type: str
    event_id: str
    reason: str | None
    causationid: str | None
    server_before: str | None
    server_after: str | None
    status_before: str | None
    status_after: str | None
    #: whether the fold applied the event (False: refused, see ``finding``)
    applied: bool
    finding: str | None
    #: what the event did, in words (:func:`explain` adds seq, time, reason and cause)
    detail: str


class StreamHistory(NamedTuple):
    """The fold state so far and the steps found for ``stream_id`` (the accumulator of
    :func:`follow_stream`)."""

    stream_id: str
    state: ClusterState
    steps: tuple[StreamStep, ...] = ()


#: instance events that make a stream move off its owner: they belong in its chain
_OWNER_EVENTS = (ev.InstanceFailed, ev.InstanceDeregistered, ev.InstanceDraining)


def _mentions(event: ControlEvent, stream_id: str, current: StreamAssignment | None) -> bool:
    if getattr(event, "stream_id", None) == stream_id:
        return True
    if isinstance(event, ev.RebalancePlanned):
        return any(m.stream_id == stream_id for m in event.moves)
    if isinstance(event, _OWNER_EVENTS) and current is not None:
        target = current.migration_state.to_server if current.migration_state else None
        return event.server_id in (current.server_id, target)
    return False


def finding_for(before: ClusterState, after: ClusterState, event: ControlEvent) -> Finding | None:
    """The finding the fold recorded for ``event`` (None: it had no objection)."""
    if after.finding_count == before.finding_count or not after.findings:
        return None
    last = after.findings[-1]
    return last if last.event_id == event.id else None


def refused(finding: Finding | None) -> bool:
    """Whether the event with this finding had no effect."""
    # every finding means "no effect" except a seq gap, which is recorded and applied
    return finding is not None and finding.kind is not FindingKind.SEQ_GAP


def finding_text(finding: Finding) -> str:
    """``kind: detail``, as the audit commands print a finding."""
    return f"{finding.kind.value}: {finding.detail}"


def _owner(s: StreamAssignment | None) -> str | None:
    return None if s is None else s.server_id


def _status(s: StreamAssignment | None) -> str | None:
    return None if s is None else s.status.value


def follow_stream(history: StreamHistory, event: ControlEvent) -> StreamHistory:
    """Apply ``event`` and add a step when it changed the stream's record, names the stream
    (a rebalance plan's move included), or fails, removes or drains its owner (the cause
    of the move that follows)."""
    before = history.state
    after = apply(before, event)
    old = before.streams.get(history.stream_id)
    new = after.streams.get(history.stream_id)
    if old is new and not _mentions(event, history.stream_id, old):
        return history._replace(state=after)
    finding = finding_for(before, after, event)
    step = StreamStep(
        seq=event.seq,
        epoch=event.epoch,
        time=event.time,
        type=type(event).__name__,
        event_id=event.id,
        reason=getattr(event, "reason", None),
        causationid=event.causationid,
        server_before=_owner(old),
        server_after=_owner(new),
        status_before=_status(old),
        status_after=_status(new),
        applied=not refused(finding),
        finding=None if finding is None else finding_text(finding),
        detail=describe(before, event, history.stream_id),
    )
    return history._replace(state=after, steps=(*history.steps, step))


def stream_history(
    events: Iterable[ControlEvent], stream_id: str, *, state: ClusterState | None = None
) -> tuple[StreamStep, ...]:
    """The chain of events that moved or changed ``stream_id``, oldest first, folding
    ``events`` from ``state`` (default: the empty state, i.e. the whole log)."""
    history = StreamHistory(stream_id, state or ClusterState())
    for event in events:
        history = follow_stream(history, event)
    return history.steps


def _planned(event: ev.RebalancePlanned, stream_id: str | None) -> str:
    kind = "dry-run plan" if event.dry_run else "plan"
    for move in event.moves:
        if move.stream_id == stream_id:
            return (
                f"{kind} {event.plan_id} moves it {move.from_server} -> {move.to_server} "
                f"(reason {move.reason}, gain {move.gain:g})"
            )
    return f"{kind} {event.plan_id}: {len(event.moves)} move(s), lower bound {event.lower_bound}"


def describe(state: ClusterState, event: ControlEvent, stream_id: str | None) -> str:
    """What ``event`` does to ``state``, in words (``stream_id`` focuses a plan on it)."""
    sid = getattr(event, "stream_id", None)
    current = state.streams.get(sid) if sid else None
    owner = current.server_id if current is not None else None
    if isinstance(event, ev.StreamAssigned):
        if owner and owner != event.server_id:
            return f"{sid}: {owner} -> {event.server_id}"
        return f"{sid} assigned to {event.server_id} ({event.incarnation})"
    if isinstance(event, ev.StreamUnassigned):
        return f"{sid} unassigned (was on {event.server_id or owner or 'nobody'})"
    if isinstance(event, ev.StreamWaiting):
        return f"{sid} waits for a home"
    if isinstance(event, ev.MigrationStarted):
        return (
            f"{sid}: migration {event.from_server} -> {event.to_server} started "
            f"(deadline {event.deadline.isoformat()})"
        )
    if isinstance(event, ev.MigrationCompleted):
        target = current.migration_state.to_server if current and current.migration_state else "?"
        return f"{sid}: migration {owner} -> {target} completed"
    if isinstance(event, ev.MigrationAborted):
        return f"{sid}: migration aborted, stays on {owner}"
    if isinstance(event, ev.StreamFailed):
        parked = ", parked as poison" if event.parked else ""
        return f"{sid} failed on {event.server_id}: {event.error or 'no error given'}{parked}"
    if isinstance(event, ev.StreamStarted):
        return f"{sid} running on {event.server_id}"
    if isinstance(event, ev.RebalancePlanned):
        return _planned(event, stream_id)
    if isinstance(event, ev.InstanceFailed | ev.InstanceDeregistered):
        held = len(state.held.get(event.server_id, {}))
        return f"{event.server_id} ({event.incarnation}) gone, held {held} stream(s)"
    subject = event.subject
    return f"{type(event).__name__} {subject}" if subject else type(event).__name__


def explain(
    state_before: ClusterState, event: ControlEvent, *, stream_id: str | None = None
) -> str:
    """One line about ``event`` as applied to ``state_before``: what it did, why
    (``reason``), what caused it (``causationid``), and whether the fold refused it.
    ``stream_id`` focuses a rebalance plan's description on that stream's move."""
    parts = [f"seq {event.seq}", event.time.isoformat(), describe(state_before, event, stream_id)]
    reason = getattr(event, "reason", None)
    if reason:
        parts.append(f"reason {reason}")
    if event.causationid:
        parts.append(f"caused by {event.causationid}")
    after = apply(state_before, event)
    finding = finding_for(state_before, after, event)
    if finding is not None:
        parts.append(
            f"REFUSED ({finding_text(finding)})" if refused(finding) else finding_text(finding)
        )
    return "; ".join(parts)


def summarize(state: ClusterState) -> dict[str, Any]:
    """Headline facts of ``state``: where it is in the log, counts by status, health."""
    instances = Counter(i.status.value for i in state.instances.values())
    streams = Counter(s.status.value for s in state.streams.values())
    return {
        "seq": state.seq,
        "epoch": state.epoch,
        "leader_id": state.leader_id,
        "as_of": state.last_event_time.isoformat() if state.last_event_time else None,
        "maintenance": state.maintenance,
        "instances": dict(sorted(instances.items())),
        "draining": sum(1 for i in state.instances.values() if i.draining),
        "streams": dict(sorted(streams.items())),
        "migrations_in_flight": len(state.in_flight),
        "unplaced": len(state.unplaced),
        "capacity": sum(
            i.max_streams for i in state.instances.values() if i.status is InstanceStatus.ACTIVE
        ),
        "load": sum(i.load for i in state.instances.values()),
        "findings": state.finding_count,
    }


__all__ = [
    "StreamHistory",
    "StreamStep",
    "describe",
    "explain",
    "finding_for",
    "finding_text",
    "follow_stream",
    "refused",
    "stream_history",
    "summarize",
]
