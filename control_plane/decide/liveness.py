"""What the orchestrator has heard from workers: the latest heartbeat per server.

Heartbeats are not control events; they are observations. This record is the only input
of ``decide`` that is not a fold of the log, and ``decide`` turns what matters in it into
events (``InstanceSuspected``, ``StreamStarted``, ...), so every decision is in the log.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from control_plane.decide.phi import Intervals
from events.heartbeat import Heartbeat

#: heartbeat inter-arrival times kept per incarnation for the phi accrual detector
DEFAULT_PHI_WINDOW = 100


_US = timedelta(microseconds=1)
_EMPTY = Intervals()


@dataclass(frozen=True, slots=True)
class Sighting:
    heartbeat: Heartbeat
    received_at: datetime


@dataclass(slots=True)
class Liveness:
    """Latest heartbeat per server_id, and since when this process has been listening.

    ``watch_started_at`` guards a new leader: it judges no one silent before it has
    listened for ``fail_after`` (a hot standby that was already listening passes its own
    earlier start time).

    ``last`` is kept in order of ``received_at`` (oldest first), so that failure detection
    reads only the servers heard before a cutoff instead of all of them every cycle;
    ``incarnations`` mirrors the incarnation of each sighting for a C-speed comparison
    with the state's instances.

    ``intervals`` holds, per server, the last ``phi_window`` inter-arrival times of its
    current incarnation (a new incarnation starts afresh), for the phi accrual detector;
    ``phi_window=0`` keeps none. Two sightings at the same instant (one poll read both) add
    no sample: the poll's batching says nothing about the worker's rhythm.
    """

    watch_started_at: datetime
    last: dict[str, Sighting] = field(default_factory=dict)
    incarnations: dict[str, str] = field(default_factory=dict)
    intervals: dict[str, Intervals] = field(default_factory=dict)
    phi_window: int = DEFAULT_PHI_WINDOW
    _newest: datetime | None = None
    #: False after a sighting older than the newest one (the clock went back)
    _in_order: bool = True

    def observe(self, heartbeat: Heartbeat, received_at: datetime) -> None:
        sid = heartbeat.server_id
        prev = self.last.pop(sid, None)  # re-inserted at the end: the newest sighting
        self.last[sid] = Sighting(heartbeat, received_at)
        if self.phi_window > 0:
            self._sample(sid, prev, heartbeat.incarnation, received_at)
        self.incarnations[sid] = heartbeat.incarnation
        if self._newest is not None and received_at < self._newest:
            self._in_order = False
        else:
            self._newest = received_at

    def _sample(
        self, sid: str, prev: Sighting | None, incarnation: str, received_at: datetime
    ) -> None:
        if prev is None or prev.heartbeat.incarnation != incarnation:
            self.intervals.pop(sid, None)
            return
        gap = (received_at - prev.received_at) // _US
        if gap > 0:  # the same instant, or the clock stepped back: no rhythm to learn
            window = self.intervals.get(sid, _EMPTY)
            self.intervals[sid] = window.push(gap, self.phi_window)

    def intervals_of(self, server_id: str, incarnation: str) -> Intervals | None:
        """The inter-arrival window of this incarnation, if it is the one last heard."""
        if self.incarnations.get(server_id) != incarnation:
            return None
        return self.intervals.get(server_id)

    def heard_up_to(self, cutoff: datetime) -> Iterator[Sighting]:
        """The latest sightings received at or before ``cutoff``, oldest first."""
        if not self._in_order:
            # a rare repair (wall clock stepped back): the content stays the same
            self.last = dict(sorted(self.last.items(), key=lambda kv: kv[1].received_at))
            self._in_order = True
        for sighting in self.last.values():
            if sighting.received_at > cutoff:
                return
            yield sighting

    def last_seen(self, server_id: str, incarnation: str) -> datetime | None:
        sighting = self.last.get(server_id)
        if sighting is None or sighting.heartbeat.incarnation != incarnation:
            return None
        return sighting.received_at

    def silence(
        self, server_id: str, incarnation: str, registered_at: datetime | None, now: datetime
    ) -> timedelta:
        """How long this incarnation has been silent, as far as this process can tell."""
        return now - self.quiet_since(server_id, incarnation, registered_at)

    def quiet_since(
        self, server_id: str, incarnation: str, registered_at: datetime | None
    ) -> datetime:
        """Since when this incarnation has been silent: its last sighting, else the later of
        its registration and the start of this watch."""
        seen = self.last_seen(server_id, incarnation)
        if seen is None:
            seen = max(self.watch_started_at, registered_at or self.watch_started_at)
        return seen

    def watched_for(self, now: datetime) -> timedelta:
        return now - self.watch_started_at
