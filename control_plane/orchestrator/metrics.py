"""The orchestrator's Prometheus metrics (every one is listed in docs/metrics.md).

Three sources, each as cheap as it can be:

- **the folded state** (instances and streams by status, migrations in flight, epoch, seq,
  ...): :class:`StateGauges` keeps the counts by status up to date from the events each
  cycle folds (:mod:`control_plane.orchestrator.tally`: a lookup or two per event, nothing
  when nothing happened), the rest comes from the fold's own indexes (``in_flight``,
  ``unplaced``) when Prometheus scrapes; every orchestrator, leader or standby, exports the
  state it holds;
- **the events the leader committed** (:meth:`OrchestratorMetrics.committed`): counters, the
  failover time (:mod:`control_plane.orchestrator.failovers`) and the command latency;
  O(events) per cycle, a dict lookup each and a handler for the few types that matter;
- **timings** the service observes: the cycle, ``decide`` and the control transaction.

Counters count what *this* process wrote as leader, so they start at zero in each process
(Prometheus' ``rate()`` and ``increase()`` handle that); sum them over the orchestrators.
"""

from __future__ import annotations

import collections
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime, timedelta
from typing import Any, NamedTuple

from prometheus_client import CollectorRegistry, Counter, Histogram

from control_plane.decide.liveness import LivenessView
from control_plane.orchestrator.failovers import FailoverTracker
from control_plane.orchestrator.tally import Tally, advance, tally
from events import EventError
from events import control as ev
from events.base import Command, ControlEvent
from events.errors import UnauthenticatedError
from events.topics import Topics
from projections.fold.state import AssignmentStatus, ClusterState, InstanceStatus
from projections.io.follow import OnUndecodable, Record
from telemetry.metrics import (
    LATENCY_BUCKETS,
    Derived,
    LoopLag,
    Spec,
    Value,
    process_registry,
    topic_label,
)

#: seconds buckets of a failover (fail_after is 5 s by default: fine steps around it)
FAILOVER_BUCKETS = (1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 12, 15, 20, 30, 60, 120, 300)

STATE_SPECS = (
    Spec("streamplane_instances", "gauge", "Instances by status.", ("status",)),
    Spec("streamplane_instances_draining", "gauge", "Instances marked draining (or drained)."),
    Spec("streamplane_streams", "gauge", "Streams by status.", ("status",)),
    Spec("streamplane_streams_unassigned", "gauge", "Streams waiting for capacity."),
    Spec("streamplane_streams_parked", "gauge", "Streams parked as poison (status failed)."),
    Spec("streamplane_migrations_in_flight", "gauge", "Migrations started, not yet ended."),
    Spec("streamplane_rebalance_in_progress", "gauge", "1 while a rebalance plan is carried out."),
    Spec("streamplane_maintenance_mode", "gauge", "1 while failovers are frozen."),
    Spec("streamplane_fold_findings", "gauge", "Events the fold refused, since the log began."),
    Spec("streamplane_leader_epoch", "gauge", "Epoch of the current leader term."),
    Spec("streamplane_control_log_seq", "gauge", "Seq of the last control event folded."),
    Spec("streamplane_is_leader", "gauge", "1 if this orchestrator is the leader."),
    Spec(
        "streamplane_heartbeat_backlog_seconds",
        "gauge",
        "Observer lag: how long ago this orchestrator had read every heartbeat sent.",
    ),
    Spec("streamplane_heartbeats_received", "counter", "Heartbeats read and decoded."),
    Spec("streamplane_snapshots_written", "counter", "State snapshots written by this process."),
    Spec(
        "streamplane_snapshot_failures",
        "counter",
        "State snapshots this process failed to write (tried again after the interval).",
    ),
)


class Seen(NamedTuple):
    """What the orchestrator holds besides its state, as the gauges read it."""

    leader: bool
    observer_lag: float
    heartbeats: int
    snapshots: int
    snapshot_failures: int = 0


def state_samples(t: Tally) -> dict[str, Value]:
    """The gauges of a tallied state (pure; O(1) beyond the tally: the fold's indexes)."""
    state = t.state
    return {
        "streamplane_instances": {(s.value,): t.instances.get(s, 0) for s in InstanceStatus},
        "streamplane_instances_draining": t.draining,
        "streamplane_streams": {(s.value,): t.streams.get(s, 0) for s in AssignmentStatus},
        "streamplane_streams_unassigned": len(state.unplaced),
        "streamplane_streams_parked": t.streams.get(AssignmentStatus.FAILED, 0),
        "streamplane_migrations_in_flight": len(state.in_flight),
        "streamplane_rebalance_in_progress": int(state.rebalance is not None),
        "streamplane_maintenance_mode": int(state.maintenance),
        "streamplane_fold_findings": state.finding_count,
        "streamplane_leader_epoch": state.epoch,
        "streamplane_control_log_seq": state.seq,
    }


class StateGauges:
    """The state gauges: the service calls :meth:`moved` each time its state moves (on its
    loop); a scrape reads the latest :class:`Tally`, published by replacing one reference."""

    def __init__(self, seen: Callable[[], Seen], registry: CollectorRegistry) -> None:
        self._seen = seen
        self.tally = tally(ClusterState())
        Derived(STATE_SPECS, self.read, registry)

    def moved(
        self, before: ClusterState, after: ClusterState, events: Iterable[ControlEvent]
    ) -> None:
        """The state went from ``before`` to ``after`` by folding ``events``; a ``before``
        that is not the state last tallied (a take-over, a snapshot) is counted in full."""
        t = self.tally
        if after is not t.state:
            self.tally = advance(t, after, events) if before is t.state else tally(after)

    def read(self) -> dict[str, Value]:
        seen = self._seen()
        return {
            **state_samples(self.tally),
            "streamplane_is_leader": int(seen.leader),
            "streamplane_heartbeat_backlog_seconds": max(0.0, seen.observer_lag),
            "streamplane_heartbeats_received": seen.heartbeats,
            "streamplane_snapshots_written": seen.snapshots,
            "streamplane_snapshot_failures": seen.snapshot_failures,
        }


class _Cycle(NamedTuple):
    """What the event handlers of one committed cycle may read."""

    before: ClusterState
    liveness: LivenessView
    commands: Sequence[Command]
    committed_at: datetime
    #: command id -> its time, filled at the first outcome of the cycle
    sent: dict[str, datetime]


def owned_streams(state: ClusterState, server_id: str) -> list[str]:
    """The streams ``server_id`` owns (not those it only starts as a migration target)."""
    held = state.held.get(server_id)
    if held is None:
        return []
    streams = state.streams
    return [sid for sid in held if (s := streams.get(sid)) is not None and s.server_id == server_id]


class OrchestratorMetrics:
    """The orchestrator's registry and the metrics the service updates (module docstring)."""

    def __init__(
        self,
        seen: Callable[[], Seen],
        *,
        failover_horizon: timedelta,
        registry: CollectorRegistry | None = None,
    ) -> None:
        self.registry = r = registry or process_registry()
        self.loop_lag = LoopLag(r)
        self.state_gauges = StateGauges(seen, r)
        self.failover_tracker = FailoverTracker(failover_horizon)
        self.cycle = Histogram(
            "streamplane_orchestrator_cycle_seconds",
            "A leader cycle's work: commands, decide, the transaction (not the heartbeat read).",
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.decide = Histogram(
            "streamplane_decide_seconds", "One decide() call.", buckets=LATENCY_BUCKETS, registry=r
        )
        self.transaction = Histogram(
            "streamplane_decision_transaction_seconds",
            "One control transaction: events, desired sets and command offsets.",
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.command_latency = Histogram(
            "streamplane_command_decision_seconds",
            "From a command's time to the commit of the transaction holding its outcome.",
            ("outcome",),
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.failover = Histogram(
            "streamplane_failover_seconds",
            "From a failed instance's last heartbeat received to its streams running elsewhere.",
            buckets=FAILOVER_BUCKETS,
            registry=r,
        )
        self._counters(r)
        self._handlers = self._handlers_by_type()
        #: the outcome's child of the latency histogram (``labels()`` costs a lock and a dict)
        self._latency = {
            ev.CommandCompleted: self.command_latency.labels("completed"),
            ev.CommandRejected: self.command_latency.labels("rejected"),
        }

    def _counters(self, r: CollectorRegistry) -> None:
        def counter(name: str, doc: str, labels: tuple[str, ...] = ()) -> Counter:
            return Counter(name, doc, labels, registry=r)

        self.events = counter("streamplane_control_events", "Control events written.", ("type",))
        self.failovers = counter("streamplane_failovers", "Instances declared failed.")
        self.failovers_unfinished = counter(
            "streamplane_failovers_unfinished",
            "Failovers given up on (streams not all running elsewhere within the horizon).",
        )
        self.migrations_started = counter(
            "streamplane_migrations_started", "Migrations started.", ("reason",)
        )
        self.migrations_completed = counter(
            "streamplane_migrations_completed", "Migrations completed."
        )
        self.migrations_aborted = counter(
            "streamplane_migrations_aborted", "Migrations aborted.", ("reason",)
        )
        self.rebalance_plans = counter(
            "streamplane_rebalance_plans", "Rebalance plans made.", ("dry_run",)
        )
        self.rebalance_moves = counter(
            "streamplane_rebalance_moves_planned", "Moves of rebalance plans (not dry runs)."
        )
        self.alerts = counter("streamplane_decision_alerts", "Alerts decide() reported.")
        self.refused = counter(
            "streamplane_decisions_refused", "Events decide() made that the fold refused (bugs)."
        )
        self.terms = counter("streamplane_leader_terms", "Leader terms this process opened.")
        self.cycle_mark_bytes = counter(
            "streamplane_cycle_mark_bytes", "Bytes of cycle marks written to <prefix>.cycles."
        )
        self.dead_letters = counter(
            "streamplane_dead_letters", "Records sent to the dead-letter topic.", ("origin",)
        )
        self.heartbeats_refused = counter(
            "streamplane_heartbeats_refused",
            "Heartbeats that did not count (unsigned, badly signed, unenrolled, revoked...).",
            ("reason",),
        )

    # --- the service's hooks ------------------------------------------------------------------

    def counting(self, hook: OnUndecodable, topics: Topics) -> OnUndecodable:
        """``hook`` (a dead-letter writer) that also counts by the record's topic."""
        dead_letters, prefix, refused = self.dead_letters, topics.prefix, self.heartbeats_refused

        async def dead_letter(record: Record, exc: EventError) -> None:
            dead_letters.labels(topic_label(record.topic, prefix)).inc()
            if isinstance(exc, UnauthenticatedError):
                refused.labels(exc.reason).inc()
            await hook(record, exc)

        return dead_letter

    def committed(
        self,
        events: Sequence[ControlEvent],
        *,
        before: ClusterState,
        after: ClusterState,
        liveness: LivenessView,
        commands: Sequence[Command],
        committed_at: datetime,
    ) -> None:
        """Count what one leader transaction wrote, which took the state from ``before`` to
        ``after``: one dict lookup per event, a handler for the few types that matter."""
        self.state_gauges.moved(before, after, events)
        cycle = _Cycle(before, liveness, commands, committed_at, {})
        types: collections.Counter[str] = collections.Counter()
        handlers = self._handlers
        for e in events:
            types[e.type] += 1  # type: ignore[attr-defined]
            handle = handlers.get(type(e))
            if handle is not None:
                handle(e, cycle)
        for type_, n in types.items():
            self.events.labels(type_).inc(n)
        unfinished = self.failover_tracker.expire(committed_at)
        if unfinished:
            self.failovers_unfinished.inc(unfinished)

    def _handlers_by_type(self) -> dict[type[ControlEvent], Callable[[Any, _Cycle], None]]:
        return {
            ev.CommandCompleted: self._decided,
            ev.CommandRejected: self._decided,
            ev.StreamStarted: self._running,
            ev.MigrationCompleted: self._running,
            ev.MigrationStarted: lambda e, _: self.migrations_started.labels(e.reason).inc(),
            ev.MigrationAborted: lambda e, _: self.migrations_aborted.labels(e.reason).inc(),
            ev.StreamDeregistered: self._dropped,
            ev.StreamFailed: self._dropped,
            ev.RebalancePlanned: self._planned,
            ev.InstanceSuspected: self._silent,
            ev.InstanceFailed: self._silent,
            ev.InstanceRecovered: lambda e, _: self.failover_tracker.recovered(e.server_id),
        }

    def _decided(self, e: ev.CommandCompleted | ev.CommandRejected, c: _Cycle) -> None:
        if not c.sent and c.commands:
            c.sent.update((x.command_id, x.time) for x in c.commands)
        sent = c.sent.get(e.command_id)
        if sent is not None:  # else an outcome for an earlier cycle's command (a resend)
            seconds = max(0.0, (c.committed_at - sent).total_seconds())
            self._latency[type(e)].observe(seconds)

    def _running(self, e: ev.StreamStarted | ev.MigrationCompleted, c: _Cycle) -> None:
        if isinstance(e, ev.MigrationCompleted):
            self.migrations_completed.inc()
        self._sample(self.failover_tracker.running(e.stream_id, e.time))

    def _dropped(self, e: ev.StreamDeregistered | ev.StreamFailed, c: _Cycle) -> None:
        if isinstance(e, ev.StreamDeregistered) or e.parked:
            self._sample(self.failover_tracker.dropped(e.stream_id))

    def _planned(self, e: ev.RebalancePlanned, c: _Cycle) -> None:
        self.rebalance_plans.labels(str(e.dry_run).lower()).inc()
        if not e.dry_run:
            self.rebalance_moves.inc(len(e.moves))

    def _silent(self, e: ev.InstanceSuspected | ev.InstanceFailed, c: _Cycle) -> None:
        inst = c.before.instances.get(e.server_id)
        registered = inst.registered_at if inst is not None else None
        silent = c.liveness.quiet_since(e.server_id, e.incarnation, registered)
        owned = owned_streams(c.before, e.server_id)
        tracker = self.failover_tracker
        if isinstance(e, ev.InstanceSuspected):
            tracker.suspected(e.server_id, owned, silent_since=silent, at=e.time)
        else:
            self.failovers.inc()
            self._sample(tracker.failed(e.server_id, owned, silent_since=silent, at=e.time))

    def _sample(self, seconds: float | None) -> None:
        if seconds is not None:
            self.failover.observe(seconds)

    def decision_outcome(self, *, alerts: int, refused: int) -> None:
        """What ``decide`` reported besides events (alerts, events the fold refused)."""
        if alerts:
            self.alerts.inc(alerts)
        if refused:
            self.refused.inc(refused)

    def stepped_down(self) -> None:
        """Failovers in progress are now another leader's to measure."""
        self.failover_tracker.clear()
