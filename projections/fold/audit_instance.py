"""An instance's history: every event that touched it, and the streams it held over time.

Pure, like :mod:`projections.fold.audit` (whose helpers it shares): events in, values out,
through the one fold. ``streamplane audit instance ID`` reads the control log and hands the
events to :func:`follow_instance`; the answer to "what happened to worker-3, and which
streams did it run, when?" is then :class:`InstanceHistory`'s ``steps`` and
:func:`intervals`.

An event *touches* an instance when it changes the instance's record (registration,
suspicion, failure, drain, capacity, a performance sample), changes the set of streams the
instance must run (``ClusterState.held``: owned streams and incoming migrations), or names
it (a refused event, a rebalance plan that moves a stream to or from it).
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import NamedTuple

import immutables

from events import control as ev
from events.base import ControlEvent
from projections.fold import apply
from projections.fold.audit import describe, finding_for, finding_text, refused
from projections.fold.state import ClusterState, EnhancedInstance

_NAMING_FIELDS = ("server_id", "from_server", "to_server")


class InstanceStep(NamedTuple):
    """One event in an instance's history and what it did to the instance."""

    seq: int
    epoch: int
    time: datetime
    type: str
    event_id: str
    reason: str | None
    causationid: str | None
    incarnation: str | None
    status_before: str | None
    status_after: str | None
    #: streams the instance must run before and after the event (owned + incoming)
    held_before: int
    held_after: int
    gained: tuple[str, ...]
    lost: tuple[str, ...]
    applied: bool
    finding: str | None
    detail: str


class HeldInterval(NamedTuple):
    """A stretch of the log during which the instance held ``stream_id`` (``until_*`` None:
    it still does at the end of what was read)."""

    stream_id: str
    since_seq: int
    since: datetime
    until_seq: int | None = None
    until: datetime | None = None
    #: the reason of the event that took the stream away (None while held)
    ended_by: str | None = None


class InstanceHistory(NamedTuple):
    """The accumulator of :func:`follow_instance`: the fold state so far, the steps found
    for ``server_id`` and the intervals of held streams (open ones last)."""

    server_id: str
    state: ClusterState
    steps: tuple[InstanceStep, ...] = ()
    closed: tuple[HeldInterval, ...] = ()
    open: immutables.Map[str, HeldInterval] = immutables.Map()


def _names(event: ControlEvent, server_id: str) -> bool:
    if any(getattr(event, f, None) == server_id for f in _NAMING_FIELDS):
        return True
    if isinstance(event, ev.RebalancePlanned):
        return any(server_id in (m.from_server, m.to_server) for m in event.moves)
    return False


_PLAIN = {
    ev.InstanceRecovered: "heard again: no longer suspected",
    ev.InstanceDraining: "draining: its streams move away",
    ev.InstanceUndrained: "no longer draining",
    ev.InstanceDrained: "drained: it holds nothing",
    ev.PerformanceSampled: "performance sampled",
}


def _detail(state: ClusterState, event: ControlEvent) -> str:
    """What the event did to the instance, in words (stream events: as ``audit stream``)."""
    plain = _PLAIN.get(type(event))
    if plain is not None:
        return plain
    if isinstance(event, ev.InstanceRegistered):
        zone = f", zone {event.zone}" if event.zone else ""
        return f"registered ({event.incarnation}, capacity {event.max_streams}{zone})"
    if isinstance(event, ev.InstanceSuspected):
        heard = event.last_heartbeat.isoformat() if event.last_heartbeat else "never"
        return f"suspected: silent since {heard}"
    if isinstance(event, ev.InstanceCapacityChanged):
        return f"capacity set to {event.max_streams}"
    return describe(state, event, None)


def _status(inst: EnhancedInstance | None) -> str | None:
    if inst is None:
        return None
    return inst.status.value + (" draining" if inst.draining else "")


def _reason(event: ControlEvent) -> str | None:
    reason = getattr(event, "reason", None)
    return reason if isinstance(reason, str) else None


def _track(
    history: InstanceHistory, event: ControlEvent, gained: Iterable[str], lost: Iterable[str]
) -> tuple[tuple[HeldInterval, ...], immutables.Map[str, HeldInterval]]:
    closed, open_ = list(history.closed), history.open.mutate()
    for sid in lost:
        start = open_.pop(sid, None)
        if start is not None:
            closed.append(
                start._replace(until_seq=event.seq, until=event.time, ended_by=_reason(event))
            )
    for sid in gained:
        open_[sid] = HeldInterval(sid, event.seq, event.time)
    return tuple(closed), open_.finish()


def follow_instance(history: InstanceHistory, event: ControlEvent) -> InstanceHistory:
    """Apply ``event``; add a step when it touched the instance (see the module docstring)
    and keep the held intervals up to date."""
    sid, before = history.server_id, history.state
    after = apply(before, event)
    old, new = before.instances.get(sid), after.instances.get(sid)
    held_old, held_new = before.held.get(sid), after.held.get(sid)
    if old is new and held_old is held_new and not _names(event, sid):
        return history._replace(state=after)
    old_set = set(held_old or ())
    new_set = set(held_new or ())
    gained, lost = tuple(sorted(new_set - old_set)), tuple(sorted(old_set - new_set))
    finding = finding_for(before, after, event)
    record = new if new is not None else old
    step = InstanceStep(
        seq=event.seq,
        epoch=event.epoch,
        time=event.time,
        type=type(event).__name__,
        event_id=event.id,
        reason=_reason(event),
        causationid=event.causationid,
        incarnation=None if record is None else record.incarnation,
        status_before=_status(old),
        status_after=_status(new),
        held_before=len(old_set),
        held_after=len(new_set),
        gained=gained,
        lost=lost,
        applied=not refused(finding),
        finding=None if finding is None else finding_text(finding),
        detail=_detail(before, event),
    )
    closed, open_ = _track(history, event, gained, lost)
    return history._replace(state=after, steps=(*history.steps, step), closed=closed, open=open_)


def instance_history(
    events: Iterable[ControlEvent], server_id: str, *, state: ClusterState | None = None
) -> InstanceHistory:
    """Fold ``events`` (from ``state``, default the empty state) following ``server_id``."""
    history = InstanceHistory(server_id, state or ClusterState())
    for event in events:
        history = follow_instance(history, event)
    return history


def intervals(history: InstanceHistory) -> tuple[HeldInterval, ...]:
    """Every stretch during which the instance held a stream: the closed ones in the order
    they ended, then the open ones by stream id."""
    return (*history.closed, *(history.open[k] for k in sorted(history.open)))


__all__ = [
    "HeldInterval",
    "InstanceHistory",
    "InstanceStep",
    "follow_instance",
    "instance_history",
    "intervals",
]
