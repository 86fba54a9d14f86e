"""What the orchestrator has heard from workers: the latest heartbeat per server.

Heartbeats are not control events; they are observations. This record is the only input
of ``decide`` that is not a fold of the log, and ``decide`` turns what matters in it into
events (``InstanceSuspected``, ``StreamStarted``, ...), so every decision is in the log.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from events.heartbeat import Heartbeat


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
    """

    watch_started_at: datetime
    last: dict[str, Sighting] = field(default_factory=dict)

    def observe(self, heartbeat: Heartbeat, received_at: datetime) -> None:
        self.last[heartbeat.server_id] = Sighting(heartbeat, received_at)

    def last_seen(self, server_id: str, incarnation: str) -> datetime | None:
        sighting = self.last.get(server_id)
        if sighting is None or sighting.heartbeat.incarnation != incarnation:
            return None
        return sighting.received_at

    def silence(
        self, server_id: str, incarnation: str, registered_at: datetime | None, now: datetime
    ) -> timedelta:
        """How long this incarnation has been silent, as far as this process can tell."""
        seen = self.last_seen(server_id, incarnation)
        if seen is None:
            seen = max(self.watch_started_at, registered_at or self.watch_started_at)
        return now - seen

    def watched_for(self, now: datetime) -> timedelta:
        return now - self.watch_started_at
