"""Placement, short capacity, rebalances (dry run, gradual, max_in_flight, make-before-break,
timeouts), drains, and instances failing mid-migration. Pure: no event loop, no Kafka."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from decide_sim import SIM_CONFIG, Sim, invariant_violations, replay_matches
from hypothesis import given, settings
from hypothesis import strategies as st

from control_plane.decide.placement import in_flight_by_instance
from events import commands as cmd
from events import control as ev
from projections.fold.state import AssignmentStatus, InstanceStatus

CFG = SIM_CONFIG  # max_in_flight 4, per instance 2, migration_timeout 8 s


def _cluster(*caps: int, streams: int = 0, **kw: Any) -> Sim:
    sim = Sim(kw.pop("config", CFG))
    for i, cap in enumerate(caps):
        sim.add_worker(f"w{i}", cap, **kw)
    sim.cycle()
    for i in range(streams):
        sim.register(f"s{i:02d}")
    sim.run(2)
    return sim


def _in_flight_ok(sim: Sim) -> None:
    assert len(sim.state.in_flight) <= sim.config.max_in_flight
    per = in_flight_by_instance(sim.state)
    assert all(n <= sim.config.max_in_flight_per_instance for n in per.values()), per


# --- short capacity -----------------------------------------------------------------------


def test_short_capacity_waits_in_priority_order_and_places_when_capacity_returns() -> None:
    sim = _cluster(0)
    for sid, prio in [("low", -5), ("mid", 0), ("high", 9), ("mid2", 0)]:
        sim.register(sid, priority=prio)
    d = sim.cycle()
    assert set(sim.state.unplaced) == {"low", "mid", "high", "mid2"}
    assert any("no capacity for stream low" in a for a in d.alerts)
    sim.command(cmd.SetCapacity, server_id="w0", max_streams=2)
    sim.cycle()
    placed = {s for s, x in sim.state.streams.items() if x.server_id}
    assert placed == {"high", "mid"}  # highest priority first; ties by id
    assert set(sim.state.unplaced) == {"low", "mid2"}
    sim.add_worker("w1", 1)
    sim.cycle()
    assert sim.owner("mid2") == "w1" and sim.owner("low") is None  # priority order again
    sim.command(cmd.SetCapacity, server_id="w1", max_streams=2)
    sim.run(2)
    assert all(sim.status(s) == "running" for s in sim.state.streams)


def test_waiting_streams_are_placed_when_a_stream_leaves() -> None:
    sim = _cluster(2, streams=3)
    assert list(sim.state.unplaced) == ["s02"]
    sim.command(cmd.DeregisterStream, stream_id="s00")
    sim.cycle()
    assert sim.owner("s02") == "w0"


def test_weighted_stream_fits_only_where_there_is_room() -> None:
    sim = _cluster(2, 3)
    sim.register("big", weight=3)
    sim.register("small", weight=2)
    sim.cycle()
    assert sim.owner("big") == "w1" and sim.owner("small") == "w0"
    sim.register("huge", weight=4)
    sim.cycle()
    assert sim.owner("huge") is None and "huge" in sim.state.unplaced


# --- rebalance ----------------------------------------------------------------------------


def test_dry_run_records_the_plan_and_moves_nothing() -> None:
    sim = _cluster(8, streams=8)
    sim.add_worker("w1", 8)
    sim.cycle()
    c = sim.command(cmd.RequestRebalance, dry_run=True)
    d = sim.cycle()
    planned = [e for e in d.events if isinstance(e, ev.RebalancePlanned)]
    assert len(planned) == 1 and planned[0].dry_run and planned[0].causationid == c.command_id
    assert len(planned[0].moves) == 4 == planned[0].lower_bound
    assert all(m.from_server == "w0" and m.to_server == "w1" for m in planned[0].moves)
    assert sim.state.rebalance is None and not sim.state.in_flight
    sim.run(3)
    assert not sim.events_of(ev.MigrationStarted)
    assert all(sim.owner(s) == "w0" for s in sim.state.streams)


def test_execute_moves_gradually_within_max_in_flight_and_completes() -> None:
    cfg = CFG.model_copy(update={"max_in_flight": 3, "max_in_flight_per_instance": 2})
    sim = _cluster(12, 12, streams=24, config=cfg)
    for name in ("w2", "w3", "w4"):
        sim.add_worker(name, 12, start_delay=2)
    sim.cycle()
    c = sim.command(cmd.RequestRebalance, dry_run=False)
    plan = None
    for _ in range(40):
        d = sim.cycle()
        plan = plan or next((e for e in d.events if isinstance(e, ev.RebalancePlanned)), None)
        _in_flight_ok(sim)
        assert not invariant_violations(sim)
        if any(isinstance(e, ev.RebalanceCompleted) for e in d.events):
            break
    assert plan is not None and not plan.dry_run and plan.causationid == c.command_id
    done = sim.events_of(ev.RebalanceCompleted)
    assert len(done) == 1 and done[0].completed == len(plan.moves) and done[0].aborted == 0
    assert len(plan.moves) == plan.lower_bound  # uniform: moves == lower bound
    loads = sorted(i.load for i in sim.state.instances.values())
    assert loads[-1] - loads[0] <= 1
    peak = max(len(d.state.in_flight) for d in sim.decisions)
    assert peak == 3  # it used its budget, no more
    assert sim.state.rebalance is None and replay_matches(sim)


def test_make_before_break_source_keeps_ownership_until_completed() -> None:
    sim = _cluster(4, streams=4)
    sim.add_worker("w1", 4, start_delay=3)
    sim.cycle()
    sim.command(cmd.RequestRebalance, dry_run=False)
    sim.cycle()
    moving = sorted(sim.state.in_flight)
    assert len(moving) == 2
    for _ in range(3):
        for sid in moving:
            s = sim.state.streams[sid]
            assert s.server_id == "w0" and s.status is AssignmentStatus.MIGRATING
            assert sid in sim.workers["w0"].running or sim.cycle_no < 2
            assert sid in sim.state.desired_streams("w0") and sid in sim.state.desired_streams("w1")
        assert sim.state.instances["w0"].current_streams == 4
        assert sim.state.instances["w1"].current_streams == 0
        assert sim.state.instances["w1"].load == 2  # capacity reserved on the target
        sim.cycle()
    sim.cycle()
    assert all(sim.owner(s) == "w1" for s in moving)
    assert sim.state.instances["w0"].load == 2 and sim.state.instances["w1"].current_streams == 2


def test_migration_timeout_aborts_and_the_source_keeps_the_stream() -> None:
    sim = _cluster(4, streams=4)
    slow = sim.add_worker("w1", 4, start_delay=100)
    sim.cycle()
    sim.command(cmd.RequestRebalance, dry_run=False)
    sim.cycle()
    moving = sorted(sim.state.in_flight)
    started = sim.now
    while sim.state.in_flight:
        sim.cycle()
    assert sim.now - started == CFG.migration_timeout
    aborted = sim.events_of(ev.MigrationAborted)
    assert sorted(e.stream_id for e in aborted) == moving
    assert all(e.reason == ev.Reasons.TIMEOUT for e in aborted)
    assert all(sim.owner(s) == "w0" and sim.status(s) == "running" for s in moving)
    done = sim.events_of(ev.RebalanceCompleted)
    assert len(done) == 1 and done[0].aborted == 2 and done[0].completed == 0
    sim.cycle()
    assert not slow.running  # the target was told to stop


def test_target_start_failure_aborts_the_migration() -> None:
    sim = _cluster(4, streams=4)
    w1 = sim.add_worker("w1", 4)
    w1.bad.update(sim.state.streams)
    sim.cycle()
    sim.command(cmd.RequestRebalance, dry_run=False)
    sim.run(3)
    aborted = sim.events_of(ev.MigrationAborted)
    assert aborted and all(e.reason == ev.Reasons.START_FAILED for e in aborted)
    assert all(sim.owner(s) == "w0" for s in sim.state.streams)
    assert not invariant_violations(sim)


def test_auto_rebalance_on_imbalance_when_enabled() -> None:
    cfg = CFG.model_copy(update={"auto_rebalance": True})
    sim = _cluster(8, streams=8, config=cfg)
    sim.add_worker("w1", 8)
    sim.cycle()
    sim.cycle(check_balance=True)
    planned = sim.events_of(ev.RebalancePlanned)
    assert len(planned) == 1 and planned[0].reason == "imbalance" and not planned[0].dry_run
    sim.run(4)
    assert sorted(i.load for i in sim.state.instances.values()) == [4, 4]
    sim.cycle(check_balance=True)  # balanced now and within the cool-down: no new plan
    assert len(sim.events_of(ev.RebalancePlanned)) == 1


def test_auto_rebalance_off_plans_nothing() -> None:
    sim = _cluster(8, streams=8)
    sim.add_worker("w1", 8)
    sim.run(3, check_balance=True)
    assert not sim.events_of(ev.RebalancePlanned)


# --- drain ----------------------------------------------------------------------------------


def test_drain_is_gradual_then_drained_then_undrain_receives_again() -> None:
    sim = _cluster(6, 8, streams=6)
    assert sim.state.instances["w0"].load == 3
    sim.workers["w1"].start_delay = 1
    sim.command(cmd.DrainInstance, server_id="w0")
    d = sim.cycle()
    assert "InstanceDraining" in [e.type for e in d.events]
    started = [e for e in d.events if isinstance(e, ev.MigrationStarted)]
    assert len(started) == CFG.max_in_flight_per_instance  # gradual
    assert all(e.reason == ev.Reasons.DRAIN and e.to_server == "w1" for e in started)
    for _ in range(8):
        _in_flight_ok(sim)
        d = sim.cycle()
        if any(isinstance(e, ev.InstanceDrained) for e in d.events):
            break
    inst = sim.state.instances["w0"]
    assert inst.load == 0 and inst.drained_at is not None and inst.draining
    assert len(sim.events_of(ev.InstanceDrained)) == 1
    sim.register("new")
    sim.cycle()
    assert sim.owner("new") == "w1"  # a draining instance receives nothing
    sim.run(2)
    assert len(sim.events_of(ev.InstanceDrained)) == 1  # announced once
    sim.command(cmd.UndrainInstance, server_id="w0")
    sim.register("newer")
    sim.cycle()
    assert not sim.state.instances["w0"].draining and sim.owner("newer") == "w0"


def test_drain_without_room_elsewhere_keeps_streams_and_alerts() -> None:
    sim = _cluster(4, 1, streams=4)
    sim.command(cmd.DrainInstance, server_id="w0")
    alerts: list[str] = []
    for d in sim.run(4):
        alerts += d.alerts
    assert sim.state.instances["w0"].load == 3  # one fit on w1, the rest stays
    assert any("no room" in a for a in alerts)
    assert all(sim.status(s) == "running" for s in sim.state.streams)


# --- failures mid-migration -----------------------------------------------------------------


def _migrating() -> tuple[Sim, list[str]]:
    sim = _cluster(4, 4, streams=6)
    sim.add_worker("w2", 4, start_delay=20)
    sim.cycle()
    sim.command(cmd.RequestRebalance, dry_run=False)
    sim.cycle()
    moving = sorted(sim.state.in_flight)
    assert moving
    return sim, moving


def test_target_failing_mid_migration_leaves_the_source_owner() -> None:
    sim, moving = _migrating()
    sources = {s: sim.owner(s) for s in moving}
    sim.crash("w2")
    sim.run(5)
    assert sim.state.instances["w2"].status is InstanceStatus.FAILED
    for sid in moving:
        assert sim.owner(sid) == sources[sid] and sim.status(sid) == "running"
    aborted = sim.events_of(ev.MigrationAborted)
    assert sorted(e.stream_id for e in aborted) == moving
    assert not invariant_violations(sim) and sim.state.rebalance is None


def test_source_failing_mid_migration_hands_over_to_the_target() -> None:
    sim, moving = _migrating()
    sources = {s: sim.owner(s) for s in moving}
    source = sources[moving[0]]
    assert source is not None
    sim.crash(source)
    while sim.state.instances[source].status is not InstanceStatus.FAILED:
        sim.cycle()
        assert not invariant_violations(sim)
    for sid in moving:
        s = sim.state.streams[sid]
        if sources[sid] == source:
            assert s.server_id == "w2" and s.migration_state is None  # the target took over
        else:
            assert s.server_id == sources[sid]  # another source's migration goes on
        assert s.server_id not in (None, source)
    sim.run(30)  # w2 takes 20 cycles per start; it owns the handed-over stream meanwhile
    assert all(sim.status(s) == "running" for s in sim.state.streams)
    assert not invariant_violations(sim) and replay_matches(sim)


def test_both_failing_mid_migration_never_orphans() -> None:
    sim, moving = _migrating()
    source = sim.owner(moving[0])
    assert source is not None
    sim.crash(source)
    sim.crash("w2")
    sim.run(6)
    assert not invariant_violations(sim)
    for sid in sim.state.streams:
        owner = sim.owner(sid)
        assert owner is None or sim.state.instances[owner].status is InstanceStatus.ACTIVE


@settings(max_examples=50, deadline=None)
@given(
    n_old=st.integers(1, 3),
    n_new=st.integers(1, 3),
    streams=st.integers(4, 24),
    delay=st.integers(0, 12),
    chaos=st.lists(
        st.tuples(
            st.integers(0, 10),
            st.sampled_from(["crash", "silence", "leave", "restart", "bad", "lag"]),
            st.integers(0, 9),
        ),
        max_size=4,
    ),
)
def test_migrations_under_fire_keep_one_owner_and_finish(
    n_old: int, n_new: int, streams: int, delay: int, chaos: list[tuple[int, str, int]]
) -> None:
    """Rebalance onto new instances while sources and targets crash, stall or leave."""
    sim = _cluster(*([8] * n_old), streams=min(streams, 8 * n_old))
    for i in range(n_new):
        sim.add_worker(f"n{i}", 8, start_delay=delay)
    sim.cycle()
    sim.command(cmd.RequestRebalance, dry_run=False)
    events = sorted(chaos)
    for t in range(14):
        for when, what, who in events:
            if when != t:
                continue
            names = sorted(sim.workers)
            name = names[who % len(names)]
            if what == "crash":
                sim.crash(name)
            elif what == "silence":
                sim.workers[name].silent = True
            elif what == "leave" and sim.workers[name].alive:
                sim.leave(name)
            elif what == "restart":
                sim.restart(name)
            elif what == "bad":
                sim.workers[name].bad.update(sorted(sim.state.in_flight))
            elif what == "lag":
                sim.observer_lag = timedelta(seconds=10)
        sim.cycle()
        _in_flight_ok(sim)
        assert not invariant_violations(sim), invariant_violations(sim)
    sim.observer_lag = timedelta(0)
    for name, w in sim.workers.items():
        w.bad.clear()
        w.start_delay = 0
        if not w.alive:
            sim.restart(name)
        w.silent = False
    sim.run(30)
    assert not invariant_violations(sim) and replay_matches(sim)
    assert sim.state.rebalance is None and not sim.state.in_flight
    statuses = {s: sim.status(s) for s in sim.state.streams}
    assert set(statuses.values()) <= {"running", "failed"}, statuses  # failed: parked poison
    if not any(what == "bad" for _, what, _ in chaos):
        assert set(statuses.values()) == {"running"}, statuses
