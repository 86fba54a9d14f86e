"""How long a failover took, as the orchestrator sees it: from the failed instance's last
heartbeat received to its streams running elsewhere.

The measurement, precisely: for an instance that becomes ``InstanceFailed``, the clock starts
at the **last heartbeat this orchestrator received** from that incarnation (the liveness
record, in this process's clock; when this process never heard it, the last heartbeat the log
knows) and stops at the **latest ``StreamStarted``** (or ``MigrationCompleted``: the target
reported it running) among the streams the instance owned when it was first judged silent
(``InstanceSuspected``, or ``InstanceFailed`` when no suspicion came first). Event times are
the leader's ``now`` of the cycle that wrote them, the same clock. A stream that is
deregistered or parked on the way is left out; a failover none of whose streams started
again (all left out, or it owned none) gives no sample.

Measured from the log the leader writes, so a stream moved away while its owner was only
suspected (the balancer empties a suspected instance make-before-break) counts from the same
last heartbeat. An instance that recovers is forgotten. A failover still waiting for streams
``horizon`` after it was declared (no capacity anywhere, say) is given up and counted as
unfinished, so the tracker stays bounded.

Pure: times are passed in; the shell (:mod:`control_plane.orchestrator.metrics`) feeds it the
events it committed and observes the samples.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta


@dataclass(slots=True)
class _Watch:
    """One silent instance whose streams we wait to see running elsewhere."""

    silent_since: datetime
    pending: set[str]
    #: when it was first judged silent (the horizon counts from here)
    judged_at: datetime
    failed_at: datetime | None = None
    last_start: datetime | None = None


class FailoverTracker:
    """Watches silent instances until their streams run elsewhere (module docstring)."""

    def __init__(self, horizon: timedelta) -> None:
        self.horizon = horizon
        self._watches: dict[str, _Watch] = {}
        #: stream id -> the server whose failover waits for it
        self._owner_of: dict[str, str] = {}

    def __len__(self) -> int:
        return len(self._watches)

    def suspected(
        self, server_id: str, streams: Iterable[str], *, silent_since: datetime, at: datetime
    ) -> None:
        """``server_id`` was judged silent; ``streams`` are the ones it owns now."""
        if server_id not in self._watches:
            self._watch(server_id, streams, silent_since, at)

    def recovered(self, server_id: str) -> None:
        """Heard again before failing: no failover."""
        watch = self._watches.pop(server_id, None)
        if watch is not None:
            for sid in watch.pending:
                self._owner_of.pop(sid, None)

    def failed(
        self, server_id: str, streams: Iterable[str], *, silent_since: datetime, at: datetime
    ) -> float | None:
        """``InstanceFailed``: the failover starts counting (``streams``: what it owns now, if
        no suspicion came first). Returns a sample if its streams all run elsewhere already."""
        watch = self._watches.get(server_id) or self._watch(server_id, streams, silent_since, at)
        watch.failed_at = at
        return self._finish(server_id, watch)

    def running(self, stream_id: str, at: datetime) -> float | None:
        """``stream_id`` runs on another instance now; a sample when that ends a failover."""
        server_id = self._owner_of.pop(stream_id, None)
        if server_id is None:
            return None
        watch = self._watches[server_id]
        watch.pending.discard(stream_id)
        watch.last_start = at if watch.last_start is None else max(watch.last_start, at)
        return self._finish(server_id, watch)

    def dropped(self, stream_id: str) -> float | None:
        """``stream_id`` was deregistered or parked: it will not run elsewhere."""
        server_id = self._owner_of.pop(stream_id, None)
        if server_id is None:
            return None
        watch = self._watches[server_id]
        watch.pending.discard(stream_id)
        return self._finish(server_id, watch)

    def expire(self, now: datetime) -> int:
        """Give up on watches older than ``horizon``; returns how many were failovers."""
        old = [s for s, w in self._watches.items() if now - w.judged_at > self.horizon]
        unfinished = 0
        for server_id in old:
            unfinished += self._watches[server_id].failed_at is not None
            self.recovered(server_id)
        return unfinished

    def clear(self) -> None:
        """Forget everything (the leader stepped down: another process measures now)."""
        self._watches.clear()
        self._owner_of.clear()

    def _watch(
        self, server_id: str, streams: Iterable[str], silent_since: datetime, at: datetime
    ) -> _Watch:
        watch = _Watch(silent_since, set(streams), at)
        self._watches[server_id] = watch
        for sid in watch.pending:
            self._owner_of[sid] = server_id
        return watch

    def _finish(self, server_id: str, watch: _Watch) -> float | None:
        if watch.failed_at is None or watch.pending:
            return None
        del self._watches[server_id]
        if watch.last_start is None:
            return None  # nothing of it runs elsewhere: no time to report
        return max(0.0, (watch.last_start - watch.silent_since).total_seconds())
