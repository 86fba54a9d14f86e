"""Failure detection: suspicion, recovery, failover in the same decision, the new-leader grace,
the mass-failure guard (silence and observer lag), quarantine of flapping servers. The same
with the phi accrual detector is in ``test_decide_phi.py``."""

from __future__ import annotations

from datetime import timedelta

from decide_sim import (
    SIM_CONFIG,
    Sim,
    cluster,
    invariant_violations,
    replay_matches,
    types_of,
    until_failed,
)

from control_plane.decide import Inputs, decide
from control_plane.decide.context import Ctx
from control_plane.decide.failures import detect_failures, handle_instance_failure, observer_blind
from control_plane.decide.liveness import Liveness
from events import control as ev
from projections.fold.state import AssignmentStatus, InstanceStatus

CFG = SIM_CONFIG  # suspect_after 2 s, fail_after 4 s, one-second cycles


def test_silence_suspects_then_fails_and_reassigns_in_the_same_decision() -> None:
    sim = cluster(4, 4, 4, streams=6)
    held = sorted(sim.state.desired_streams("w0"))
    sim.workers["w0"].silent = True
    seen, failed = until_failed(sim)
    assert seen["InstanceSuspected"] == 2  # suspect_after
    assert seen["InstanceFailed"] == 4  # fail_after
    moved = sorted(e.stream_id for e in failed.events if isinstance(e, ev.StreamAssigned))
    assert moved == held  # same Decision.events as the failure: one transaction
    assert all(sim.owner(s) in ("w1", "w2") for s in held)
    assert not failed.dropped and not invariant_violations(sim)
    assert {ds.server_id for ds in failed.desired} >= {"w0", *(sim.owner(s) for s in held)}


def test_suspected_instance_heard_again_recovers_and_keeps_its_streams() -> None:
    sim = cluster(4, 4, streams=4)
    held = sim.state.desired_streams("w0")
    sim.workers["w0"].silent = True
    sim.run(3)
    assert sim.state.instances["w0"].status is InstanceStatus.SUSPECTED
    sim.workers["w0"].silent = False
    d = sim.cycle()
    assert types_of(d.events) == ["InstanceRecovered"]
    assert sim.state.instances["w0"].status is InstanceStatus.ACTIVE
    assert sim.state.desired_streams("w0") == held
    sim.run(6)
    assert not any(isinstance(e, ev.InstanceFailed) for e in sim.log)


def test_suspected_instance_receives_no_new_streams() -> None:
    sim = cluster(4, 4)
    sim.workers["w0"].silent = True
    sim.run(2)
    assert sim.state.instances["w0"].status is InstanceStatus.SUSPECTED
    for i in range(3):
        sim.register(f"n{i}")
    sim.cycle()
    assert all(sim.owner(f"n{i}") == "w1" for i in range(3))


def test_new_leader_fails_no_one_before_fail_after() -> None:
    sim = cluster(4, 4, streams=4)
    sim.workers["w0"].silent = True
    sim.run(1)
    sim.new_leader(hot=False)  # a cold leader: it has heard nothing yet
    for _ in range(3):
        d = sim.cycle()
        assert not any(isinstance(e, ev.InstanceFailed) for e in d.events)
    sim.run(2)
    failed = [e.server_id for e in sim.log if isinstance(e, ev.InstanceFailed)]
    assert failed == ["w0"]
    assert not invariant_violations(sim) and replay_matches(sim)


def test_cold_leader_does_not_fail_an_instance_it_never_heard_within_the_grace() -> None:
    """Liveness unit: silence counts from when this process started listening."""
    sim = cluster(4)
    now = sim.now
    cold = Liveness(watch_started_at=now)
    inst = sim.state.instances["w0"]
    assert cold.silence("w0", inst.incarnation, inst.registered_at, now) == timedelta(0)
    later = now + CFG.fail_after
    assert cold.silence("w0", inst.incarnation, inst.registered_at, later) == CFG.fail_after
    assert cold.watched_for(later) == CFG.fail_after
    d = decide(
        sim.state, cold, Inputs(), now=now + timedelta(seconds=3),
        new_id=sim.new_id, config=CFG,
    )  # fmt: skip
    assert not any(isinstance(e, ev.InstanceFailed) for e in d.events)


def test_mass_silence_enters_maintenance_instead_of_failing_over() -> None:
    sim = cluster(3, 3, 3, 3, streams=8)
    owners = {s: sim.owner(s) for s in sim.state.streams}
    for name in ("w0", "w1", "w2"):  # 3 of 4: >= mass_failure_min and > half
        sim.workers[name].silent = True
    alerts: list[str] = []
    for d in sim.run(8):
        alerts += d.alerts
    assert sim.state.maintenance
    entered = sim.events_of(ev.MaintenanceModeEntered)
    assert len(entered) == 1 and entered[0].reason == ev.Reasons.MASS_FAILURE
    assert "3 of 4" in entered[0].detail and any("maintenance" in a for a in alerts)
    assert not sim.events_of(ev.InstanceFailed) and not sim.events_of(ev.InstanceSuspected)
    assert {s: sim.owner(s) for s in sim.state.streams} == owners
    for name in ("w0", "w1", "w2"):
        sim.workers[name].silent = False
    d = sim.cycle()
    assert "MaintenanceModeLeft" in types_of(d.events) and not sim.state.maintenance
    sim.run(6)
    assert not sim.events_of(ev.InstanceFailed)
    assert {s: sim.owner(s) for s in sim.state.streams} == owners


def test_a_minority_going_silent_is_failed_normally() -> None:
    sim = cluster(3, 3, 3, 3, 3, 3, streams=6)
    for name in ("w0", "w1"):  # 2 of 6: below mass_failure_min
        sim.workers[name].silent = True
    sim.run(5)
    assert not sim.state.maintenance
    assert sorted(e.server_id for e in sim.events_of(ev.InstanceFailed)) == ["w0", "w1"]


def test_observer_lag_enters_maintenance_and_leaves_when_it_catches_up() -> None:
    sim = cluster(4, 4, streams=4)
    sim.observer_lag = CFG.observer_max_lag + timedelta(seconds=1)
    sim.workers["w0"].silent = True
    d = sim.cycle()
    assert types_of(d.events) == ["MaintenanceModeEntered"]
    assert "lags" in d.events[0].detail
    sim.run(6)
    assert not sim.events_of(ev.InstanceFailed)
    sim.observer_lag = timedelta(0)
    sim.workers["w0"].silent = False
    d = sim.cycle()
    assert types_of(d.events) == ["MaintenanceModeLeft"]


def test_observer_blind_thresholds() -> None:
    sim = cluster(1, 1, 1, 1, 1)
    ctx = Ctx(sim.state, sim.now, sim.new_id, CFG, "t")
    assert observer_blind(ctx, sim.liveness, timedelta(0)) == (False, "")
    assert observer_blind(ctx, sim.liveness, CFG.observer_max_lag)[0] is False
    assert observer_blind(ctx, sim.liveness, CFG.observer_max_lag * 2)[0] is True
    for name in ("w0", "w1"):
        sim.workers[name].silent = True
    sim.run(2)
    ctx = Ctx(sim.state, sim.now, sim.new_id, CFG, "t")
    assert observer_blind(ctx, sim.liveness, timedelta(0))[0] is False  # 2 < min 3
    sim.workers["w2"].silent = True
    sim.run(2)
    ctx = Ctx(sim.state, sim.now, sim.new_id, CFG, "t")
    blind, why = observer_blind(ctx, sim.liveness, timedelta(0))
    assert blind and "3 of 5" in why


def test_handle_instance_failure_moves_everything_it_held() -> None:
    sim = cluster(3, 3, 3, streams=6)
    ctx = Ctx(sim.state, sim.now, sim.new_id, CFG, "t")
    inst = sim.state.instances["w1"]
    held = sorted(sim.state.desired_streams("w1"))
    handle_instance_failure(ctx, inst, "operator")
    assert ctx.events[0].type == "InstanceFailed" and ctx.events[0].reason == "operator"  # type: ignore[attr-defined]
    assert not ctx.dropped and not ctx.state.held.get("w1")
    assert sorted(e.stream_id for e in ctx.events[1:]) == held  # type: ignore[attr-defined]


def test_detect_failures_in_maintenance_does_nothing() -> None:
    sim = cluster(3, 3, 3)
    for name in sim.workers:
        sim.workers[name].silent = True
    sim.run(3)
    assert sim.state.maintenance
    ctx = Ctx(sim.state, sim.now + timedelta(minutes=5), sim.new_id, CFG, "t")
    detect_failures(ctx, sim.liveness, timedelta(0))
    assert ctx.events == []


# --- quarantine -------------------------------------------------------------------------


def _flap(sim: Sim, name: str) -> None:
    """The process dies silently, is failed after fail_after, then restarts."""
    sim.crash(name)
    while sim.state.instances[name].status is not InstanceStatus.FAILED:
        sim.cycle()
    sim.restart(name)
    sim.cycle()


def test_flapping_server_is_quarantined_with_growing_backoff_then_recovers() -> None:
    sim = cluster(2, 2, 2, streams=3)
    for _ in range(CFG.quarantine_after - 1):
        _flap(sim, "w0")
        assert sim.state.instances["w0"].status is InstanceStatus.ACTIVE
    _flap(sim, "w0")
    inst = sim.state.instances["w0"]
    assert inst.status is InstanceStatus.QUARANTINED and inst.failure_count == 3
    q1 = sim.events_of(ev.InstanceQuarantined)[-1]
    assert q1.until - q1.time == CFG.quarantine_base
    # quarantined: receives nothing, even with room to spare
    for i in range(3):
        sim.register(f"q{i}")
    sim.cycle()
    assert sim.state.desired_streams("w0") == ()
    assert all(sim.owner(f"q{i}") != "w0" for i in range(3))
    while sim.state.instances["w0"].status is InstanceStatus.QUARANTINED:
        d = sim.cycle()
    assert sim.now >= q1.until
    assert "InstanceRecovered" in types_of(d.events)
    assert sim.state.instances["w0"].recovery_attempts == 1
    # it flaps again: the back-off doubles
    _flap(sim, "w0")
    q2 = sim.events_of(ev.InstanceQuarantined)[-1]
    assert q2 is not q1 and q2.until - q2.time == 2 * CFG.quarantine_base
    assert not invariant_violations(sim) and replay_matches(sim)


def test_quarantine_backoff_is_capped() -> None:
    cfg = CFG.model_copy(update={"quarantine_max": timedelta(seconds=4)})
    sim = Sim(cfg)
    sim.add_worker("w0", 2)
    sim.add_worker("w1", 2)
    sim.add_worker("w2", 2)
    sim.cycle()
    backoffs = []
    for _ in range(6):
        _flap(sim, "w0")
        inst = sim.state.instances["w0"]
        if inst.status is InstanceStatus.QUARANTINED:
            q = sim.events_of(ev.InstanceQuarantined)[-1]
            backoffs.append(q.until - q.time)
            while sim.state.instances["w0"].status is InstanceStatus.QUARANTINED:
                sim.cycle()
    assert backoffs and max(backoffs) == timedelta(seconds=4)
    assert backoffs == sorted(backoffs)


def test_quarantined_server_that_dies_again_is_failed_not_left_quarantined() -> None:
    sim = cluster(2, 2, 2)
    for _ in range(CFG.quarantine_after):
        _flap(sim, "w0")
    assert sim.state.instances["w0"].status is InstanceStatus.QUARANTINED
    sim.crash("w0")
    sim.run(6)
    assert sim.state.instances["w0"].status is InstanceStatus.FAILED
    assert not invariant_violations(sim)


def test_streams_of_a_failed_instance_wait_when_no_room_and_return_with_capacity() -> None:
    sim = cluster(2, 2, streams=4)
    sim.crash("w0")
    alerts: list[str] = []
    for d in sim.run(5):
        alerts += d.alerts
    waiting = sorted(s for s, x in sim.state.streams.items() if x.server_id is None)
    assert len(waiting) == 2 and any("no capacity" in a for a in alerts)
    assert all(sim.state.streams[s].status is AssignmentStatus.UNASSIGNED for s in waiting)
    sim.restart("w0")
    sim.run(3)
    assert all(sim.status(s) == "running" for s in sim.state.streams)
