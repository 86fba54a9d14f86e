"""Churn and downtime from the control log: how often streams moved, why, and how long each
was without a running owner. The figures Service Fabric and Slicer budget (moves per
window, unavailability per partition), computed as a pure view over the one fold.

A stream is **up** when its record says ``running`` or ``migrating`` (it runs on its owner,
even while a target starts it) and its owner is not failed or gone; otherwise, while it is
registered, it is **down**: waiting for capacity, assigned but not started yet, parked as
poison, or owned by an instance the log has declared failed. A failed owner's streams are
down from when it was last heard, as its ``InstanceSuspected`` says (``last_heartbeat``; the
silence before a failure is detected is what ``fail_after`` costs), else from the
``InstanceFailed``. Because that start lies before the event that reveals it, a window
ending between the two does not count that silence: churn of adjacent windows adds up to
the churn of their union only without it (``count_silence=False``).

A **move** is a stream getting an owner other than its last one: a ``StreamAssigned`` to
another server than the one it was last assigned to (even if that one has failed since and
the stream waited in between), or a ``MigrationCompleted``. The first placement of a stream
is not a move, nor is a stream put back on the server it was on. A move's reason is the
``StreamAssigned``'s ``reason`` or the migration's (``drain``, ``rebalance``, ...).

:class:`ChurnCounter` folds the whole log (the state at ``since`` needs everything before
it) and counts only inside ``[since, until]``; :meth:`ChurnCounter.report` closes the
window. It is a mutable accumulator with a small surface, fed one event at a time, so a CLI
can show progress; :func:`churn` is the one-call form.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from events import control as ev
from events.base import ControlEvent
from projections.fold import apply
from projections.fold.state import GONE_STATUSES, AssignmentStatus, ClusterState, StreamAssignment

_RUNS = frozenset({AssignmentStatus.RUNNING, AssignmentStatus.MIGRATING})


def is_up(state: ClusterState, stream: StreamAssignment | None) -> bool:
    """Whether ``stream`` runs on a live owner, as ``state`` says (module docstring)."""
    if stream is None or stream.status not in _RUNS or stream.server_id is None:
        return False
    owner = state.instances.get(stream.server_id)
    return owner is not None and owner.status not in GONE_STATUSES


@dataclass(slots=True)
class StreamChurn:
    """One stream's figures inside the window."""

    down_s: float = 0.0
    moves: int = 0
    #: stretches of downtime that began (or were under way) in the window
    outages: int = 0
    longest_outage_s: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        return {
            "down_s": round(self.down_s, 6),
            "moves": self.moves,
            "outages": self.outages,
            "longest_outage_s": round(self.longest_outage_s, 6),
        }


@dataclass(frozen=True, slots=True)
class ChurnReport:
    """What :meth:`ChurnCounter.report` returns (``as_dict`` is the ``--json`` form)."""

    since: datetime
    until: datetime
    events: int
    moves: int
    moves_by_reason: dict[str, int]
    streams: dict[str, StreamChurn]

    @property
    def window_s(self) -> float:
        return (self.until - self.since).total_seconds()

    @property
    def streams_moved(self) -> int:
        return sum(1 for s in self.streams.values() if s.moves)

    @property
    def unowned_stream_s(self) -> float:
        """Stream-seconds without a running owner in the window, all streams together."""
        return sum(s.down_s for s in self.streams.values())

    def as_dict(self, *, per_stream: bool = True) -> dict[str, Any]:
        doc: dict[str, Any] = {
            "since": self.since.isoformat(),
            "until": self.until.isoformat(),
            "window_s": self.window_s,
            "events": self.events,
            "moves": self.moves,
            "streams_moved": self.streams_moved,
            "moves_by_reason": dict(sorted(self.moves_by_reason.items())),
            "unowned_stream_s": round(self.unowned_stream_s, 6),
            "streams_down": sum(1 for s in self.streams.values() if s.down_s > 0),
            "longest_outage_s": round(
                max((s.longest_outage_s for s in self.streams.values()), default=0.0), 6
            ),
        }
        if per_stream:
            doc["streams"] = {k: v.as_dict() for k, v in sorted(self.streams.items())}
        return doc


@dataclass(slots=True)
class ChurnCounter:
    """Feed it the control log in order (:meth:`feed`); ask for :meth:`report` at the end."""

    since: datetime
    until: datetime
    state: ClusterState = field(default_factory=ClusterState)
    events: int = 0
    moves_by_reason: Counter[str] = field(default_factory=Counter)
    streams: dict[str, StreamChurn] = field(default_factory=dict)
    #: the server each stream was last assigned to (survives its owner's failure)
    last_owner: dict[str, str] = field(default_factory=dict)
    #: when each stream that is down now went down (clamped to ``since``)
    down_since: dict[str, datetime] = field(default_factory=dict)
    #: a failed owner's streams were down since it was last heard (module docstring)
    count_silence: bool = True
    #: server_id -> last heartbeat of its suspected incarnation (from InstanceSuspected)
    _silent: dict[str, datetime] = field(default_factory=dict)
    _opened: bool = False
    #: the latest time seen: an event stamped earlier (another leader's clock) counts here
    _clock: datetime | None = None

    def __post_init__(self) -> None:
        if self.until < self.since:
            raise ValueError(f"until ({self.until}) is before since ({self.since})")

    def feed(self, event: ControlEvent) -> bool:
        """Fold one event; False once events lie after ``until`` (stop reading)."""
        if event.time > self.until:
            return False
        if not self._opened and event.time >= self.since:
            self._open()
        before, self.state = self.state, apply(self.state, event)
        if self._opened:
            self.events += 1
            self._clock = max(self._clock or event.time, event.time)
            self._count(before, event, self._clock)
        else:
            self._move_of(before, event)  # before the window: only who owned what
        return True

    def report(self) -> ChurnReport:
        """The figures for ``[since, until]``: open outages end at ``until``."""
        if not self._opened:
            self._open()
        for sid, start in self.down_since.items():
            self._close_outage(sid, start, self.until)
        self.down_since = {}
        moves = sum(self.moves_by_reason.values())
        return ChurnReport(
            self.since, self.until, self.events, moves, dict(self.moves_by_reason), self.streams
        )

    # --- inside ----------------------------------------------------------------------------

    def _open(self) -> None:
        """The window starts: every stream down at ``since`` is down from ``since``."""
        self._opened = True
        for sid, stream in self.state.streams.items():
            self.streams[sid] = StreamChurn()
            if not is_up(self.state, stream):
                self.down_since[sid] = self.since
                self.streams[sid].outages += 1

    def _move_of(self, before: ClusterState, event: ControlEvent) -> str | None:
        """The reason when ``event`` moved its stream (applied, another owner), and keep
        ``last_owner`` up to date; None when it is not a move."""
        sid = getattr(event, "stream_id", None)
        if sid is None or before.streams.get(sid) is self.state.streams.get(sid):
            return None  # not a stream event, or refused by the fold
        if isinstance(event, ev.StreamDeregistered):
            self.last_owner.pop(sid, None)
            return None
        old = before.streams.get(sid)
        if isinstance(event, ev.StreamAssigned):
            target, reason = event.server_id, event.reason
        elif isinstance(event, ev.MigrationCompleted) and old and old.migration_state:
            target, reason = old.migration_state.to_server, old.migration_state.reason
        else:
            return None
        previous = self.last_owner.get(sid)
        self.last_owner[sid] = target
        return reason if previous is not None and previous != target else None

    def _down_from(self, event: ControlEvent, t: datetime) -> datetime:
        """When the streams this event takes down went down: ``t``, or for a failure the
        owner's last heartbeat as its suspicion said (never before ``since``)."""
        if isinstance(event, ev.InstanceSuspected) and event.last_heartbeat is not None:
            self._silent[event.server_id] = event.last_heartbeat
        elif isinstance(event, ev.InstanceRecovered | ev.InstanceRegistered):
            self._silent.pop(event.server_id, None)
        elif isinstance(event, ev.InstanceFailed):
            heard = self._silent.pop(event.server_id, None)
            if heard is not None and self.count_silence:
                return max(self.since, min(heard, t))
        return t

    def _count(self, before: ClusterState, event: ControlEvent, t: datetime) -> None:
        down_from = self._down_from(event, t)
        reason = self._move_of(before, event)
        if reason is not None:
            sid: str = event.stream_id  # type: ignore[attr-defined]  # a move is a stream event
            self.moves_by_reason[reason] += 1
            self.streams.setdefault(sid, StreamChurn()).moves += 1
        for sid in self._touched(before, event):
            self._update(sid, before, t, down_from)

    def _touched(self, before: ClusterState, event: ControlEvent) -> set[str]:
        """Streams whose up/down may have changed: the event's own, and those an instance
        event's server held (its failure or return changes them all)."""
        out: set[str] = set()
        sid = getattr(event, "stream_id", None)
        if sid is not None:
            out.add(sid)
        server = getattr(event, "server_id", None)
        if server is not None and not isinstance(event, ev.StreamAssigned | ev.StreamStarted):
            for state in (before, self.state):
                out.update(state.held.get(server, ()))
        return out

    def _update(self, sid: str, before: ClusterState, t: datetime, down_from: datetime) -> None:
        was = before.streams.get(sid)
        now = self.state.streams.get(sid)
        if was is None and now is not None:
            self.streams.setdefault(sid, StreamChurn())
        up_before = was is not None and is_up(before, was)
        up_after = now is not None and is_up(self.state, now)
        down = sid in self.down_since
        if now is not None and not up_after and not down and (up_before or was is None):
            self.down_since[sid] = down_from  # went down (or registered: down until it runs)
            self.streams[sid].outages += 1
        elif down and (up_after or now is None):
            self._close_outage(sid, self.down_since.pop(sid), t)

    def _close_outage(self, sid: str, start: datetime, end: datetime) -> None:
        seconds = max(0.0, (end - start).total_seconds())
        figures = self.streams.setdefault(sid, StreamChurn())
        figures.down_s += seconds
        figures.longest_outage_s = max(figures.longest_outage_s, seconds)


def churn(
    events: Iterable[ControlEvent],
    *,
    since: datetime,
    until: datetime,
    state: ClusterState | None = None,
    count_silence: bool = True,
) -> ChurnReport:
    """Churn and downtime of ``events`` (the whole log, or from ``state``) in the window."""
    counter = ChurnCounter(
        since=since, until=until, state=state or ClusterState(), count_silence=count_silence
    )
    for event in events:
        if not counter.feed(event):
            break
    return counter.report()


__all__ = ["ChurnCounter", "ChurnReport", "StreamChurn", "churn", "is_up"]
