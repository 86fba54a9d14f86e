"""What the orchestrator has heard from workers: the latest heartbeat per server.

Heartbeats are not control events; they are observations. This record is the only input
of ``decide`` that is not a fold of the log, and ``decide`` turns what matters in it into
events (``InstanceSuspected``, ``StreamStarted``, ...), so every decision is in the log.

Two types, one per role. :class:`Liveness` is the shell's mutable record: the shell
``observe``\\ s each heartbeat as it reads it, and calls :meth:`Liveness.view` once before
each ``decide``. :class:`LivenessView` is all that ``decide`` (and every step of the decide
core) may use: the read methods, typed so that a step cannot change what it reads. The
view is the record itself, not a copy, so handing it over costs nothing per cycle.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Protocol

from control_plane.decide.phi import Intervals
from events.heartbeat import Heartbeat

#: heartbeat inter-arrival times kept per incarnation for the phi accrual detector
DEFAULT_PHI_WINDOW = 100


_US = timedelta(microseconds=1)
_EMPTY = Intervals()


def _window(samples: Iterable[int], capacity: int) -> Intervals:
    window = _EMPTY
    for sample in samples:
        window = window.push(sample, capacity)
    return window


@dataclass(frozen=True, slots=True)
class Sighting:
    heartbeat: Heartbeat
    received_at: datetime


class LivenessView(Protocol):
    """The read-only view of liveness that ``decide`` takes (see :class:`Liveness`)."""

    @property
    def watch_started_at(self) -> datetime: ...

    @property
    def last(self) -> Mapping[str, Sighting]:
        """The latest sighting per server_id."""

    @property
    def incarnations(self) -> Mapping[str, str]:
        """The incarnation of each server's latest sighting."""

    def heard_up_to(self, cutoff: datetime) -> Iterator[Sighting]:
        """The latest sightings received at or before ``cutoff``, oldest first."""

    def intervals_of(self, server_id: str, incarnation: str) -> Intervals | None:
        """The inter-arrival window of this incarnation, if it is the one last heard."""

    def last_seen(self, server_id: str, incarnation: str) -> datetime | None:
        """When this incarnation was last heard, if it is the one last heard."""

    def silence(
        self, server_id: str, incarnation: str, registered_at: datetime | None, now: datetime
    ) -> timedelta:
        """How long this incarnation has been silent, as far as this process can tell."""

    def quiet_since(
        self, server_id: str, incarnation: str, registered_at: datetime | None
    ) -> datetime:
        """Since when this incarnation has been silent."""

    def watched_for(self, now: datetime) -> timedelta:
        """How long this process has been listening."""


@dataclass(slots=True)
class Liveness:
    """Latest heartbeat per server_id, and since when this process has been listening.

    ``watch_started_at`` guards a new leader: it judges no one silent before it has
    listened for ``fail_after`` (a hot standby that was already listening passes its own
    earlier start time).

    ``last`` is kept in order of ``received_at`` (oldest first), so that failure detection
    reads only the servers heard before a cutoff instead of all of them every cycle;
    ``incarnations`` mirrors the incarnation of each sighting for a C-speed comparison
    with the state's instances. When the wall clock steps back, a sighting arrives out of
    order: :meth:`view` (the shell, before ``decide``) puts the record back in order, once;
    until then :meth:`heard_up_to` reads a sorted copy, so it is exact either way.

    ``intervals`` holds, per server, the last ``phi_window`` inter-arrival times of its
    current incarnation (a new incarnation starts afresh), for the phi accrual detector;
    ``phi_window=0`` keeps none. Two sightings at the same instant (one poll read both) add
    no sample: the poll's batching says nothing about the worker's rhythm.

    ``journal``, when a list (None, the default, keeps none), receives every sighting as
    it is observed: a decision recorder (``control_plane.orchestrator.recorder``) takes it
    each cycle, so that a replay observes exactly what this record observed.
    """

    watch_started_at: datetime
    last: dict[str, Sighting] = field(default_factory=dict)
    incarnations: dict[str, str] = field(default_factory=dict)
    intervals: dict[str, Intervals] = field(default_factory=dict)
    phi_window: int = DEFAULT_PHI_WINDOW
    _newest: datetime | None = None
    #: False after a sighting older than the newest one (the clock went back)
    _in_order: bool = True
    journal: list[Sighting] | None = None

    @classmethod
    def restored(
        cls,
        *,
        watch_started_at: datetime,
        phi_window: int,
        sightings: Iterable[Sighting],
        intervals: Mapping[str, Sequence[int]],
    ) -> Liveness:
        """A record holding exactly these sightings (in this order) and windows: how a
        recorded run (docs/orchestrator.md, "Decision goldens") rebuilds what the
        orchestrator knew when the recording starts."""
        live = cls(watch_started_at=watch_started_at, phi_window=phi_window)
        for s in sightings:
            sid = s.heartbeat.server_id
            live.last[sid] = s
            live.incarnations[sid] = s.heartbeat.incarnation
            if live._newest is not None and s.received_at < live._newest:
                live._in_order = False
            else:
                live._newest = s.received_at
        for sid, samples in intervals.items():
            if phi_window > 0:  # phi_window=0 keeps no windows
                live.intervals[sid] = _window(samples, phi_window)
        return live

    def observe(self, heartbeat: Heartbeat, received_at: datetime) -> None:
        sid = heartbeat.server_id
        prev = self.last.pop(sid, None)  # re-inserted at the end: the newest sighting
        self.last[sid] = sighting = Sighting(heartbeat, received_at)
        if self.journal is not None:
            self.journal.append(sighting)
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

    def view(self) -> LivenessView:
        """This record as the read-only view ``decide`` takes, in ``received_at`` order.

        The shell calls it once per cycle, before ``decide``: the rare repair after the
        wall clock stepped back (one sort) happens here, in the shell, never in the core.
        """
        if not self._in_order:
            self.last = dict(sorted(self.last.items(), key=lambda kv: kv[1].received_at))
            self._in_order = True
        return self

    def heard_up_to(self, cutoff: datetime) -> Iterator[Sighting]:
        """The latest sightings received at or before ``cutoff``, oldest first."""
        sightings: Iterable[Sighting] = self.last.values()
        if not self._in_order:  # not repaired by view(): read a sorted copy, change nothing
            sightings = sorted(sightings, key=lambda s: s.received_at)
        for sighting in sightings:
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
