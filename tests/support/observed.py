"""What the test harness observed, kept apart from the processes: the control log as read
(events and their fold), the heartbeats as read (with when), and checks over a log."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TypeVar

from events.base import ControlEvent
from events.heartbeat import Heartbeat
from projections.fold.state import ClusterState

E = TypeVar("E", bound=ControlEvent)


@dataclass(frozen=True)
class Seen:
    heartbeat: Heartbeat
    at: float  # time.monotonic() when the harness read it


@dataclass
class HeartbeatsSeen:
    """What the harness read from the heartbeats topic: the latest heartbeat per server
    (and when it was read), the incarnations of each server, in order."""

    latest: dict[str, Seen] = field(default_factory=dict)
    incarnations: dict[str, list[str]] = field(default_factory=dict)
    #: (server_id, incarnation) -> the first heartbeat of that incarnation
    first: dict[tuple[str, str], Heartbeat] = field(default_factory=dict)
    count: int = 0

    def observe(self, hb: Heartbeat) -> None:
        self.latest[hb.server_id] = Seen(hb, time.monotonic())
        self.first.setdefault((hb.server_id, hb.incarnation), hb)
        seen = self.incarnations.setdefault(hb.server_id, [])
        if hb.incarnation not in seen:
            seen.append(hb.incarnation)
        self.count += 1


@dataclass
class LogWatcher:
    """The control log as the harness read it (read_committed): every committed event, in
    log order, and their fold."""

    events: list[ControlEvent] = field(default_factory=list)
    state: ClusterState = field(default_factory=ClusterState)

    def of(self, cls: type[E], since: int = 0) -> list[E]:
        """Events of type ``cls`` at list index ``since`` or later."""
        return [e for e in self.events[since:] if isinstance(e, cls)]


def in_flight_peak(events: Sequence[ControlEvent]) -> int:
    """The most migrations in flight at once, replayed from the log."""
    from events.control import MigrationAborted, MigrationCompleted, MigrationStarted

    open_: set[str] = set()
    peak = 0
    for e in events:
        if isinstance(e, MigrationStarted):
            open_.add(e.migration_id)
            peak = max(peak, len(open_))
        elif isinstance(e, MigrationCompleted | MigrationAborted):
            open_.discard(e.migration_id)
    return peak


def holds_commands(log_text: str) -> bool:
    """Whether an orchestrator's latest group assignment (aiokafka's log line) holds the
    commands partition."""
    lines = [ln for ln in log_text.splitlines() if "Setting newly assigned partitions" in ln]
    return bool(lines) and ".commands'" in lines[-1]
