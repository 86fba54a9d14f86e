"""The orchestrator's metrics derived from the fold and from the events a leader commits,
driven by the deterministic simulator (``decide_sim``: the real ``decide``, one-second
cycles, no Kafka): state gauges, the failover time, migrations, command latency; and the
per-cycle log lines (INFO summary, DEBUG per event with the event's coordinates)."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from datetime import timedelta

import pytest
from decide_sim import Sim, cluster
from fold_histories import FAST, histories
from hypothesis import given
from hypothesis import strategies as st

from control_plane.decide import Decision
from control_plane.orchestrator import metrics as om
from control_plane.orchestrator.failovers import FailoverTracker
from control_plane.orchestrator.log_lines import log_written
from control_plane.orchestrator.metrics import OrchestratorMetrics, Seen
from control_plane.orchestrator.tally import advance, tally
from events import commands as cmd
from events import control as ev
from projections.fold import fold, fold_from
from projections.fold.state import AssignmentStatus, ClusterState

T = timedelta(seconds=1)


class Metered:
    """A simulator whose every cycle goes through the metrics as the service's does."""

    def __init__(self, sim: Sim) -> None:
        self.sim = sim
        self.metrics = OrchestratorMetrics(self.seen, failover_horizon=timedelta(minutes=10))

    def seen(self) -> Seen:
        return Seen(True, 0.25, 7, 1)

    def cycle(self) -> Decision:
        before, commands = self.sim.state, list(self.sim.pending)
        d = self.sim.cycle()
        self.metrics.committed(
            d.events,
            before=before,
            after=d.state,
            liveness=self.sim.liveness,
            commands=commands,
            committed_at=self.sim.now + T / 10,
        )
        return d

    def run(self, n: int) -> None:
        for _ in range(n):
            self.cycle()

    def value(self, name: str, **labels: str) -> float:
        value = self.metrics.registry.get_sample_value(name, labels)
        assert value is not None, f"no sample {name}{labels}"
        return value


def placed(n: int, *caps: int) -> Metered:
    m = Metered(cluster(*caps))
    for i in range(n):
        m.sim.register(f"s{i}")
    m.run(4)
    assert all(s.status is AssignmentStatus.RUNNING for s in m.sim.state.streams.values())
    return m


def test_state_gauges_count_the_fold() -> None:
    m = placed(6, 4, 4, 4)
    sim = m.sim
    sim.add_worker("w9", 4, bad={"p"})  # a stream that fails everywhere gets parked
    for w in sim.workers.values():
        w.bad.add("p")
    sim.register("p")
    sim.command(cmd.DrainInstance, server_id="w0")
    m.run(12)
    assert sim.state.streams["p"].status is AssignmentStatus.FAILED
    assert m.value("streamplane_instances", status="active") == 4
    assert m.value("streamplane_instances", status="failed") == 0
    assert m.value("streamplane_instances_draining") == 1
    assert m.value("streamplane_streams", status="running") == 6
    assert m.value("streamplane_streams", status="failed") == 1
    assert m.value("streamplane_streams_parked") == 1
    assert m.value("streamplane_streams_unassigned") == 0
    assert m.value("streamplane_migrations_in_flight") == 0
    assert m.value("streamplane_leader_epoch") == sim.state.epoch == 1
    assert m.value("streamplane_control_log_seq") == sim.state.seq == len(sim.log)
    assert m.value("streamplane_is_leader") == 1
    assert m.value("streamplane_heartbeat_backlog_seconds") == 0.25
    assert m.value("streamplane_heartbeats_received_total") == 7


def test_streams_waiting_for_capacity_are_unassigned() -> None:
    m = placed(2, 2)
    m.sim.register("s-extra")
    m.run(2)
    assert m.value("streamplane_streams_unassigned") == 1
    assert m.value("streamplane_streams", status="unassigned") == 1


def test_the_counts_follow_the_events_without_counting_the_state_again(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    m = placed(3, 4)
    full: list[ClusterState] = []
    monkeypatch.setattr(om, "tally", lambda state: full.append(state) or tally(state))
    m.sim.register("s-new")
    m.run(3)
    assert m.value("streamplane_streams", status="running") == 4
    assert full == [], "cycles advance the counts from their events"
    replayed = fold(m.sim.log)  # a jump: a take-over replays the log to a new state
    m.metrics.state_gauges.moved(ClusterState(), replayed, [])
    assert len(full) == 1 and m.value("streamplane_streams", status="running") == 4


@FAST
@given(histories(), st.lists(st.integers(1, 60), min_size=1, max_size=30))
def test_advancing_by_batches_counts_as_a_full_count(events: list, cuts: list[int]) -> None:
    t = tally(ClusterState())
    i = 0
    for size in cuts:
        batch = events[i : i + size]
        t = advance(t, fold_from(t.state, batch), batch)
        i += size
    rest = events[i:]
    t = advance(t, fold_from(t.state, rest), rest)
    full = tally(t.state)
    assert _nonzero(t.streams) == _nonzero(full.streams)
    assert _nonzero(t.instances) == _nonzero(full.instances)
    assert t.draining == full.draining


def _nonzero(counts: Mapping[object, int]) -> dict[object, int]:
    return {k: v for k, v in counts.items() if v}


def test_a_failover_is_timed_from_the_last_heartbeat_to_the_last_start_elsewhere() -> None:
    m = placed(6, 4, 4, 4)
    sim = m.sim
    victim = max(sim.state.held, key=lambda w: len(sim.state.held[w]))
    lost = set(sim.state.held[victim])
    last_heard = sim.liveness.last[victim].received_at
    sim.crash(victim)
    m.run(10)
    assert m.value("streamplane_failovers_total") == 1
    assert m.value("streamplane_instances", status="failed") == 1
    starts = [
        e.time
        for e in sim.log
        if isinstance(e, ev.StreamStarted | ev.MigrationCompleted)
        and e.stream_id in lost
        and e.time > last_heard
    ]
    assert len(starts) == len(lost)
    assert m.value("streamplane_failover_seconds_count") == 1
    took = (max(starts) - last_heard).total_seconds()
    assert m.value("streamplane_failover_seconds_sum") == took
    assert took >= sim.config.fail_after.total_seconds()


def test_migrations_and_command_latency_are_counted() -> None:
    m = placed(4, 4, 4)
    sim = m.sim
    moving = len(sim.state.held["w0"])
    sim.command(cmd.DrainInstance, server_id="w0")
    m.run(8)
    assert m.value("streamplane_migrations_started_total", reason="drain") == moving
    assert m.value("streamplane_migrations_completed_total") == moving
    assert m.value("streamplane_migrations_in_flight") == 0
    # the 4 registrations and the drain, each decided in the cycle after it was queued (one
    # step) and committed 1/10 s later
    completed = m.value("streamplane_command_decision_seconds_count", outcome="completed")
    assert completed == 5
    total = m.value("streamplane_command_decision_seconds_sum", outcome="completed")
    assert total == pytest.approx(5 * 1.1)
    assert m.value("streamplane_control_events_total", type="MigrationStarted") == moving


def test_a_dry_run_plan_and_a_rejection_are_counted() -> None:
    m = placed(4, 4, 4)
    m.sim.command(cmd.RequestRebalance, dry_run=True)
    m.sim.command(cmd.DrainInstance, server_id="nobody")
    m.run(2)
    assert m.value("streamplane_rebalance_plans_total", dry_run="true") == 1
    assert m.metrics.registry.get_sample_value("streamplane_rebalance_moves_planned_total") == 0
    assert m.value("streamplane_command_decision_seconds_count", outcome="rejected") == 1


def test_the_tracker_forgets_a_recovery_and_gives_up_after_the_horizon() -> None:
    t0 = Sim().now
    tracker = FailoverTracker(timedelta(seconds=30))
    tracker.suspected("w1", ["a"], silent_since=t0, at=t0 + 2 * T)
    tracker.recovered("w1")
    assert len(tracker) == 0 and tracker.running("a", t0 + 3 * T) is None
    # failed, one stream parked on the way, the other started: one sample
    assert tracker.failed("w2", ["b", "c"], silent_since=t0, at=t0 + 4 * T) is None
    assert tracker.dropped("b") is None
    assert tracker.running("c", t0 + 6 * T) == 6.0
    # moved away while only suspected: the failure completes it at once
    tracker.suspected("w3", ["d"], silent_since=t0, at=t0 + 2 * T)
    assert tracker.running("d", t0 + 3 * T) is None
    assert tracker.failed("w3", [], silent_since=t0, at=t0 + 4 * T) == 3.0
    # nothing to move: no sample; nowhere to go: unfinished after the horizon
    assert tracker.failed("w4", [], silent_since=t0, at=t0) is None
    tracker.failed("w5", ["e"], silent_since=t0, at=t0)
    assert tracker.expire(t0 + 10 * T) == 0
    assert tracker.expire(t0 + 31 * T) == 1 and len(tracker) == 0


def test_every_metric_exists_before_anything_happened() -> None:
    m = Metered(Sim())
    names = {family.name for family in m.metrics.registry.collect()}
    assert {"streamplane_failover_seconds", "streamplane_failovers", "streamplane_streams"} <= names
    assert m.value("streamplane_failovers_total") == 0


def test_one_info_line_per_cycle_and_debug_lines_carry_the_coordinates(
    caplog: pytest.LogCaptureFixture,
) -> None:
    m = placed(0, 4)
    m.sim.register("s1")
    events = m.cycle().events
    assert len(events) >= 2
    with caplog.at_level(logging.INFO, "streamplane.orchestrator"):
        log_written(events)
    assert len(caplog.records) == 1, "INFO: one summary line, no line per event"
    assert caplog.records[0].seq == events[-1].seq  # type: ignore[attr-defined]
    caplog.clear()
    with caplog.at_level(logging.DEBUG, "streamplane.orchestrator"):
        log_written(events)
    per_event = caplog.records[1:]
    assert [r.seq for r in per_event] == [e.seq for e in events]  # type: ignore[attr-defined]
    first, e = per_event[0], events[0]
    assert (first.event_id, first.epoch, first.causation_id) == (e.id, e.epoch, e.causationid)  # type: ignore[attr-defined]
    assert first.correlation_id == e.correlationid  # type: ignore[attr-defined]
