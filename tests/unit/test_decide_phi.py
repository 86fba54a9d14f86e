"""Failure detection with the phi accrual detector: suspicion by each worker's own rhythm,
the fixed thresholds until a history fills, failure still at ``fail_after`` with its
failover in the same decision, the mass-failure guard and the new-leader grace."""

from __future__ import annotations

import math
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

from control_plane.decide import Decision
from control_plane.decide.config import DecideConfig
from control_plane.decide.phi import suspect_at
from events import control as ev
from projections.fold.state import InstanceStatus

CFG = SIM_CONFIG  # suspect_after 2 s, fail_after 4 s, one-second cycles

PHI = CFG.model_copy(update={"failure_detector": "phi", "phi_min_samples": 5})
TENTH = timedelta(milliseconds=100)


def _beats(*gaps: int, start: int = 1) -> set[int]:
    """The cycles a worker heartbeats in: ``start``, then after each gap (in cycles)."""
    out, at = {start}, start
    for g in gaps:
        at += g
        out.add(at)
    return out


def _scheduled(sim: Sim, schedule: dict[str, set[int]], cycles: int) -> list[Decision]:
    """Run ``cycles``; a worker named in ``schedule`` heartbeats only in its cycles."""
    out = []
    for _ in range(cycles):
        n = sim.cycle_no + 1
        for name, beats in schedule.items():
            sim.workers[name].silent = n not in beats
        out.append(sim.cycle())
    return out


def _first_suspected(sim: Sim, server_id: str) -> int | None:
    """The cycle of the first suspicion of ``server_id`` (None: never)."""
    for n, d in enumerate(sim.decisions, start=1):
        if any(isinstance(e, ev.InstanceSuspected) and e.server_id == server_id for e in d.events):
            return n
    return None


def _tenths(t: timedelta) -> int:
    return math.ceil(t / TENTH)


def test_phi_suspects_a_regular_worker_sooner_than_a_jittery_one() -> None:
    cfg = PHI.model_copy(update={"fail_after": timedelta(seconds=8)})
    sim = Sim(cfg, step=TENTH)
    for name in ("regular", "jittery", "steady"):
        sim.add_worker(name, 4)
    # 20 intervals each, both with a mean of exactly 1 s; then both stop at cycle 201
    regular, jittery = _beats(*[10] * 20), _beats(*[5, 15] * 10)
    assert max(regular) == max(jittery) == 201
    _scheduled(sim, {"regular": regular, "jittery": jittery}, 260)
    windows = [sim.liveness.intervals_of(n, sim.workers[n].incarnation) for n in sim.workers]
    assert [w.size if w else 0 for w in windows] == [20, 20, 100]
    kw = {"acceptable_pause": cfg.phi_acceptable_pause, "min_std": cfg.phi_min_std}
    calm, nervous = (suspect_at(w, cfg.phi_suspect, **kw) for w in windows[:2] if w)
    assert calm < timedelta(seconds=3) < timedelta(seconds=4) < nervous < cfg.fail_after
    # suspected on the first cycle past its own threshold, measured from its last heartbeat
    assert _first_suspected(sim, "regular") == 201 + _tenths(calm)
    assert _first_suspected(sim, "jittery") == 201 + _tenths(nervous)
    assert _first_suspected(sim, "steady") is None
    assert not sim.events_of(ev.InstanceFailed)  # fail_after (8 s) not reached yet
    assert not invariant_violations(sim) and replay_matches(sim)


def test_phi_without_acceptable_pause_suspects_a_regular_worker_before_suspect_after() -> None:
    cfg = PHI.model_copy(update={"phi_acceptable_pause": timedelta(0)})
    sim = Sim(cfg, step=TENTH)
    sim.add_worker("w0", 4)
    sim.add_worker("w1", 4)
    _scheduled(sim, {"w0": _beats(*[10] * 10)}, 150)
    # 1 s mean + 5.2 * 0.1 s floor: 1.6 s, where the fixed detector waits for 2 s
    assert _first_suspected(sim, "w0") == 101 + 16
    assert 16 * TENTH < cfg.suspect_after
    assert [e.server_id for e in sim.events_of(ev.InstanceFailed)] == ["w0"]
    assert not invariant_violations(sim) and replay_matches(sim)


def _live_jitter(detector: str) -> Sim:
    """A live worker with gaps of 0.5..1.9 s (after ten regular ones), with
    ``suspect_after`` at 1.5 s: below the mean plus the acceptable pause of 1 s."""
    cfg = PHI.model_copy(
        update={
            "failure_detector": detector,
            "suspect_after": timedelta(seconds=1.5),
            "fail_after": timedelta(seconds=8),
        }
    )
    sim = Sim(cfg, step=TENTH)
    sim.add_worker("w0", 4)
    sim.add_worker("w1", 4)
    sim.register("s0")
    gaps = [10] * 10 + [5 + (7 * i) % 15 for i in range(40)]
    assert max(gaps) == 19
    _scheduled(sim, {"w0": _beats(*gaps)}, sum(gaps) + 1)
    return sim


def test_phi_never_suspects_a_live_worker_whose_jitter_stays_under_the_acceptable_pause() -> None:
    sim = _live_jitter("phi")
    assert not sim.events_of(ev.InstanceSuspected)
    assert not sim.events_of(ev.InstanceFailed)
    assert sim.state.instances["w0"].status is InstanceStatus.ACTIVE
    # the same worker under the fixed threshold (1.5 s) is suspected again and again
    fixed = _live_jitter("fixed")
    suspected = [e.server_id for e in fixed.events_of(ev.InstanceSuspected)]
    assert suspected and set(suspected) == {"w0"}


def test_phi_failure_still_reassigns_the_streams_in_the_same_decision() -> None:
    sim = cluster(4, 4, 4, streams=6, cfg=PHI)
    sim.run(5)  # five more one-second intervals: phi judges from now on
    held = sorted(sim.state.desired_streams("w0"))
    assert held
    sim.crash("w0")
    seen, failed = until_failed(sim)
    # phi: mean 1 s + pause 1 s + 5.2 * 0.1 s = 2.5 s, i.e. the third cycle, not the second
    assert seen["InstanceSuspected"] == 3
    assert seen["InstanceFailed"] == 4  # fail_after, as with the fixed detector
    moved = sorted(e.stream_id for e in failed.events if isinstance(e, ev.StreamAssigned))
    assert moved == held
    assert all(sim.owner(s) in ("w1", "w2") for s in held)
    assert not failed.dropped and not invariant_violations(sim) and replay_matches(sim)


def _few_samples_run(cfg: DecideConfig) -> list[tuple[int, str, str]]:
    """(cycle, event type, server) of every decision: w0 falls silent after 3 heartbeats."""
    sim = cluster(4, 4, streams=4, cfg=cfg)  # three heartbeats: two intervals
    sim.workers["w0"].silent = True
    sim.run(6)
    return [
        (n, e.type, getattr(e, "server_id", ""))  # type: ignore[attr-defined]
        for n, d in enumerate(sim.decisions)
        for e in d.events
    ]


def test_with_too_few_samples_phi_falls_back_to_the_fixed_thresholds() -> None:
    phi_log = _few_samples_run(PHI)
    assert phi_log == _few_samples_run(CFG)
    kinds = {(t, server) for _, t, server in phi_log}
    assert {("InstanceSuspected", "w0"), ("InstanceFailed", "w0")} <= kinds
    # with enough samples the same scenario differs: phi suspects a cycle later
    assert _few_samples_run(PHI.model_copy(update={"phi_min_samples": 2})) != phi_log


def test_a_restarted_worker_is_judged_by_fixed_thresholds_until_its_new_history_fills() -> None:
    sim = cluster(4, 4, cfg=PHI)
    sim.run(6)
    w = sim.restart("w0")
    sim.run(2)  # the new incarnation registers: two heartbeats, one interval
    assert sim.state.instances["w0"].incarnation == w.incarnation
    window = sim.liveness.intervals_of("w0", w.incarnation)
    assert window is not None and window.size == 1
    w.silent = True
    start = sim.cycle_no
    sim.run(3)
    assert _first_suspected(sim, "w0") == start + 2  # suspect_after, not phi


def test_phi_mass_silence_enters_maintenance_instead_of_suspecting() -> None:
    """Without acceptable pause phi would suspect these regular workers at 1.6 s, before
    ``suspect_after``: the guard must count what phi suspects, not what the fixed rule does."""
    cfg = PHI.model_copy(update={"phi_acceptable_pause": timedelta(0)})
    sim = Sim(cfg, step=TENTH)
    for i in range(4):
        sim.add_worker(f"w{i}", 3)
    for i in range(8):
        sim.register(f"s{i}")
    steady = _beats(*[10] * 30)
    stopped = _beats(*[10] * 10)  # the last heartbeat at cycle 101
    schedule = {"w0": stopped, "w1": stopped, "w2": stopped, "w3": steady}
    _scheduled(sim, schedule, 100)
    owners = {s: sim.owner(s) for s in sim.state.streams}
    assert None not in owners.values()
    decisions = _scheduled(sim, schedule, 60)
    entered = [
        n
        for n, d in enumerate(decisions, start=101)
        if "MaintenanceModeEntered" in types_of(d.events)
    ]
    assert entered == [101 + 16]  # phi's 1.6 s, not the fixed 2 s
    assert not sim.events_of(ev.InstanceFailed) and not sim.events_of(ev.InstanceSuspected)
    assert {s: sim.owner(s) for s in sim.state.streams} == owners
    for name in ("w0", "w1", "w2"):
        schedule[name] = steady
    _scheduled(sim, schedule, 10)
    assert not sim.state.maintenance
    assert sim.events_of(ev.MaintenanceModeLeft)
    assert not invariant_violations(sim) and replay_matches(sim)


def test_phi_new_leader_fails_no_one_before_fail_after() -> None:
    sim = cluster(4, 4, streams=4, cfg=PHI)
    sim.run(6)
    sim.workers["w0"].silent = True
    sim.run(1)
    sim.new_leader(hot=False)  # heard nothing, so it has no history either
    for _ in range(3):
        d = sim.cycle()
        assert not any(isinstance(e, ev.InstanceFailed) for e in d.events)
    sim.run(2)
    failed = [e.server_id for e in sim.log if isinstance(e, ev.InstanceFailed)]
    assert failed == ["w0"]
    assert not invariant_violations(sim) and replay_matches(sim)
