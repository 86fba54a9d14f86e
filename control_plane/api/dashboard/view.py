"""Pure: what the page is sent, made from the fold and the events folded.

The page never folds control events itself (there is one fold, :func:`projections.fold.apply`,
and it runs on the server in the :class:`~projections.io.follow.LogFollower`). It is sent

- a **snapshot** when it connects: every instance and stream in a small plain form, the
  stream counts by status, the recent events for the live feed, the timeline, the firing
  alerts and the SystemHealth summary, all as of one ``seq``;
- then one **delta** per batch of events folded: the instances and streams whose value
  changed (``null`` for one that is gone), the events themselves as feed lines, the timeline
  buckets that changed, the new counts (and now and then the health summary).

The page applies a delta by replacing keys, which is why a delta carries whole values: a
snapshot followed by its deltas equals the snapshot taken after them
(``tests/unit/test_dashboard_view.py`` checks that on generated histories).
"""

from __future__ import annotations

import dataclasses
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import immutables

from control_plane.api.dashboard.settings import DashboardSettings
from control_plane.api.dashboard.timeline import DOWN_STATUSES, Timeline
from events import control as ev
from events.base import ControlEvent
from projections.fold.assignments import event_reason, iso
from projections.fold.health import system_health
from projections.fold.state import (
    AssignmentStatus,
    ClusterState,
    EnhancedInstance,
    StreamAssignment,
)

Json = dict[str, Any]
STATUSES = tuple(s.value for s in AssignmentStatus)


def instance_view(inst: EnhancedInstance) -> Json:
    """One instance card: status, load against capacity, the figures of its last report."""
    m = inst.performance_metrics
    return {
        "status": inst.status.value,
        "draining": inst.draining,
        "zone": inst.zone,
        "load": inst.load,
        "capacity": inst.max_streams,
        "streams": inst.current_streams,
        "cpu": m.cpu_percent,
        "memory_mb": m.memory_mb,
        "error_rate": m.error_rate,
        "last_heartbeat": iso(inst.last_heartbeat),
        "failures": inst.failure_count,
        "quarantined_until": iso(inst.quarantined_until),
    }


def stream_view(stream: StreamAssignment) -> Json:
    """One stream: status, owner, weight, and the migration it is in, if any."""
    m = stream.migration_state
    migration = None
    if m is not None:
        migration = {
            "id": m.migration_id,
            "to": m.to_server,
            "reason": m.reason,
            "started": iso(m.started_at),
            "deadline": iso(m.deadline),
        }
    return {
        "status": stream.status.value,
        "server": stream.server_id,
        "weight": stream.weight,
        "migration": migration,
        "error": stream.last_error,
    }


_SENTENCES: dict[type[ControlEvent], Callable[[Any], str]] = {
    ev.LeaderElected: lambda e: f"{e.leader_id} became the leader (epoch {e.epoch})",
    ev.InstanceRegistered: lambda e: f"{e.server_id} joined with room for {e.max_streams}",
    ev.InstanceSuspected: lambda e: f"{e.server_id} went silent: suspected",
    ev.InstanceRecovered: lambda e: f"{e.server_id} was heard again: recovered",
    ev.InstanceFailed: lambda e: f"{e.server_id} failed: its streams move elsewhere",
    ev.InstanceQuarantined: lambda e: f"{e.server_id} quarantined (fails too often)",
    ev.InstanceDraining: lambda e: f"{e.server_id} is being drained",
    ev.InstanceUndrained: lambda e: f"{e.server_id} takes streams again",
    ev.InstanceDrained: lambda e: f"{e.server_id} is drained (holds nothing)",
    ev.InstanceDeregistered: lambda e: f"{e.server_id} left",
    ev.InstanceCapacityChanged: lambda e: f"{e.server_id} now has room for {e.max_streams}",
    ev.InstanceEnrolled: lambda e: f"{e.server_id} enrolled with key {e.key_id}",
    ev.InstanceRevoked: lambda e: f"{e.server_id}'s key {e.key_id} revoked",
    ev.PerformanceSampled: lambda e: f"{e.server_id} reported its figures",
    ev.StreamRegistered: lambda e: f"stream {e.stream_id} added",
    ev.StreamDeregistered: lambda e: f"stream {e.stream_id} removed",
    ev.StreamAssigned: lambda e: f"stream {e.stream_id} assigned to {e.server_id}",
    ev.StreamUnassigned: lambda e: f"stream {e.stream_id} has no owner now",
    ev.StreamWaiting: lambda e: f"stream {e.stream_id} waits: no instance can take it",
    ev.StreamStarted: lambda e: f"stream {e.stream_id} runs on {e.server_id}",
    ev.StreamFailed: lambda e: (
        f"stream {e.stream_id} failed to start on {e.server_id}"
        + (" and is parked" if e.parked else "")
    ),
    ev.MigrationStarted: lambda e: f"stream {e.stream_id} moving {e.from_server} -> {e.to_server}",
    ev.MigrationCompleted: lambda e: f"stream {e.stream_id} moved",
    ev.MigrationAborted: lambda e: f"move of stream {e.stream_id} called off",
    ev.RebalancePlanned: lambda e: (
        f"rebalance {'dry run' if e.dry_run else 'planned'}: {len(e.moves)} moves"
    ),
    ev.RebalanceCompleted: lambda e: f"rebalance done: {e.completed} moved, {e.aborted} not",
    ev.ConsistencyDivergenceFound: lambda e: f"consistency check found {e.kind}",
    ev.ConsistencyDivergenceRepaired: lambda e: f"consistency repair: {e.action}",
    ev.CommandRejected: lambda e: f"command {e.command_type} rejected",
    ev.CommandCompleted: lambda e: f"command {e.command_type} done",
    ev.MaintenanceModeEntered: lambda e: "maintenance mode: failovers frozen",
    ev.MaintenanceModeLeft: lambda e: "maintenance mode left",
}


def describe(event: ControlEvent) -> str:
    """One plain sentence for the live feed (the type's name when there is none)."""
    sentence = _SENTENCES.get(type(event))
    return sentence(event) if sentence is not None else type(event).__name__


def event_view(event: ControlEvent) -> Json:
    """One line of the live feed."""
    return {
        "seq": event.seq,
        "time": iso(event.time),
        "type": type(event).__name__,
        "subject": event.subject,
        "reason": event_reason(event),
        "text": describe(event),
    }


def _changed_keys(
    before: immutables.Map[str, Any], after: immutables.Map[str, Any], keys: set[str] | None
) -> list[str]:
    """Keys whose value is not the same object (the fold shares what it did not touch)."""
    if before is after:
        return []
    if keys is None:
        keys = set(after) | set(before)
    return sorted(k for k in keys if before.get(k) is not after.get(k))


def _touched(
    before: ClusterState, after: ClusterState, events: Sequence[ControlEvent]
) -> tuple[set[str], set[str]] | None:
    """(server ids, stream ids) the batch may have changed, or None when an event without a
    subject may have changed anything (then every key is compared)."""
    servers: set[str] = set()
    streams: set[str] = set()
    for event in events:
        subject = event.subject
        if subject is None:
            return None
        if type(event).SUBJECT_FIELD == "server_id":
            servers.add(subject)
            continue
        streams.add(subject)
        for name in ("server_id", "from_server", "to_server"):
            value = getattr(event, name, None)
            if isinstance(value, str):
                servers.add(value)
    # a stream's owner and target before and after the batch (an event naming the stream
    # changes their load even when it does not name them)
    for state in (before, after):
        for sid in streams:
            s = state.streams.get(sid)
            if s is not None and s.server_id is not None:
                servers.add(s.server_id)
            if s is not None and s.migration_state is not None:
                servers.add(s.migration_state.to_server)
    return servers, streams


class DashboardView:
    """What the page is sent (see the module docstring); holds the last state it was given."""

    def __init__(self, settings: DashboardSettings, state: ClusterState | None = None) -> None:
        self.state = state or ClusterState()
        self.counts = dict.fromkeys(STATUSES, 0)
        for s in self.state.streams.values():
            self.counts[s.status.value] += 1
        self.feed: deque[Json] = deque(maxlen=settings.feed_size)
        owners = {k: v.server_id for k, v in self.state.streams.items() if v.server_id}
        down = sum(self.counts[status] for status in DOWN_STATUSES)
        self.timeline = Timeline(
            bucket=settings.timeline_bucket,
            points=settings.timeline_points,
            owners=owners,
            down=down,
        )

    def _header(self) -> Json:
        s = self.state
        return {
            "seq": s.seq,
            "epoch": s.epoch,
            "leader": s.leader_id,
            "maintenance": s.maintenance,
            "maintenance_reason": s.maintenance_reason,
            "time": iso(s.last_event_time),
            "counts": dict(self.counts),
        }

    def health(self) -> Json:
        """SystemHealth of the state (a pass over every stream: the caller paces it)."""
        h = system_health(self.state)
        return {**dataclasses.asdict(h), "status": h.overall_health().value}

    def snapshot(self, alerts: Mapping[str, Json]) -> Json:
        """Everything a page needs to start, as of :attr:`state`'s seq."""
        s = self.state
        return {
            "kind": "snapshot",
            **self._header(),
            "instances": {k: instance_view(v) for k, v in s.instances.items()},
            "streams": {k: stream_view(v) for k, v in s.streams.items()},
            "feed": list(self.feed),
            "timeline": self.timeline.view(),
            "bucket_ms": self.timeline.bucket_ms,
            "alerts": dict(alerts),
            "health": self.health(),
        }

    def advance(
        self, after: ClusterState, events: Sequence[ControlEvent], *, with_health: bool
    ) -> Json:
        """Move to ``after`` (the fold of the old state and ``events``); returns the delta."""
        before, self.state = self.state, after
        touched = _touched(before, after, events)
        servers, streams = touched if touched is not None else (None, None)
        changed_streams = _changed_keys(before.streams, after.streams, streams)
        for sid in changed_streams:
            old, new = before.streams.get(sid), after.streams.get(sid)
            if old is not None:
                self.counts[old.status.value] -= 1
            if new is not None:
                self.counts[new.status.value] += 1
        lines = [event_view(e) for e in events]
        self.feed.extend(lines)
        instances = {
            k: None if (i := after.instances.get(k)) is None else instance_view(i)
            for k in _changed_keys(before.instances, after.instances, servers)
        }
        delta: Json = {
            "kind": "delta",
            **self._header(),
            "instances": instances,
            "streams": {
                k: None if (v := after.streams.get(k)) is None else stream_view(v)
                for k in changed_streams
            },
            "events": lines,
            "timeline": self.timeline.record(events, self.counts),
        }
        if with_health:
            delta["health"] = self.health()
        return delta
