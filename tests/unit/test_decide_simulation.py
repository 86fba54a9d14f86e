"""Hypothesis simulation of the decision core: random cluster chaos, then calm.

Workers join, crash, go silent and come back, restart (superseding themselves), leave
gracefully; streams come and go; drains, capacity changes, rebalances, start failures,
consistency checks and emergency recovery happen at random. After every cycle the state
keeps its invariants; at the end ``fold(log) == state`` with no finding; and once the chaos
stops and enough cycles pass, every stream that is not parked runs, where capacity allows.
All of it with either failure detector (fixed thresholds, phi accrual).
"""

from __future__ import annotations

from typing import Any

import pytest
from decide_sim import SIM_CONFIG, Sim, invariant_violations, replay_matches
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from control_plane.decide.config import DecideConfig
from events import commands as cmd
from projections.fold.state import AssignmentStatus, InstanceStatus

MAX_WEIGHT = 3
SIM_SETTINGS = settings(
    max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)

_idx = st.integers(0, 50)
OPS = st.one_of(
    st.tuples(st.just("join"), st.integers(1, 6)),
    st.tuples(st.just("scale_out"), st.integers(2, 8)),
    st.tuples(st.just("scale_out"), st.integers(2, 8)),
    st.tuples(st.just("poison"), st.integers(1, MAX_WEIGHT)),
    st.tuples(st.just("crash"), _idx),
    st.tuples(st.just("silence"), _idx),
    st.tuples(st.just("unsilence"), _idx),
    st.tuples(st.just("restart"), _idx),
    st.tuples(st.just("leave"), _idx),
    st.tuples(st.just("add_stream"), st.integers(1, MAX_WEIGHT), st.integers(-2, 2)),
    st.tuples(st.just("remove_stream"), _idx),
    st.tuples(st.just("drain"), _idx),
    st.tuples(st.just("undrain"), _idx),
    st.tuples(st.just("capacity"), _idx, st.integers(0, 8)),
    st.tuples(st.just("rebalance"), st.booleans()),
    st.tuples(st.just("rebalance"), st.just(False)),
    st.tuples(st.just("bad"), _idx, _idx),
    st.tuples(st.just("slow"), _idx, st.integers(0, 12)),
    st.tuples(st.just("check"), st.booleans()),
    st.tuples(st.just("recover")),
    st.tuples(st.just("lag"), st.integers(0, 6)),
    st.tuples(st.just("wait"), st.integers(1, 6)),
)


def _pick(items: list[str], i: int) -> str | None:
    return items[i % len(items)] if items else None


def _apply_op(sim: Sim, op: tuple[Any, ...], n: int) -> None:
    kind = op[0]
    names = sorted(sim.workers)
    streams = sorted(sim.state.streams)
    w = _pick(names, op[1]) if len(op) > 1 and isinstance(op[1], int) else None
    if kind == "join":
        sim.add_worker(f"w{len(names)}", op[1])
    elif kind == "scale_out":
        sim.add_worker(f"w{len(names)}", op[1])
        sim.command(cmd.RequestRebalance, dry_run=False)
    elif kind == "poison":  # fails to start everywhere it is sent (today)
        sim.register(f"s{n}", weight=op[1])
        for worker in sim.workers.values():
            worker.bad.add(f"s{n}")
    elif kind == "crash" and w:
        sim.crash(w)
    elif kind == "silence" and w:
        sim.workers[w].silent = True
    elif kind == "unsilence" and w:
        sim.workers[w].silent = False
    elif kind == "restart" and w:
        sim.restart(w)
    elif kind == "leave" and w and sim.workers[w].alive:
        sim.leave(w)
    elif kind == "add_stream":
        sim.register(f"s{n}", weight=op[1], priority=op[2])
    elif kind == "remove_stream" and streams:
        sim.command(cmd.DeregisterStream, stream_id=_pick(streams, op[1]))
    elif kind == "drain" and w:
        sim.command(cmd.DrainInstance, server_id=w)
    elif kind == "undrain" and w:
        sim.command(cmd.UndrainInstance, server_id=w)
    elif kind == "capacity" and w:
        sim.command(cmd.SetCapacity, server_id=w, max_streams=op[2])
    elif kind == "rebalance":
        sim.command(cmd.RequestRebalance, dry_run=op[1])
    elif kind == "bad" and w and streams:
        sim.workers[w].bad.add(_pick(streams, op[2]) or "")
    elif kind == "slow" and w:
        sim.workers[w].start_delay = op[2]
    elif kind == "check":
        sim.command(cmd.RunConsistencyCheck, repair=op[1])
    elif kind == "recover":
        sim.command(cmd.EmergencyRecovery)
    elif kind == "lag":
        sim.observer_lag = sim.config.observer_max_lag * op[1] / 3


def _cycle_checked(sim: Sim, **kw: Any) -> None:
    sim.cycle(**kw)
    bad = invariant_violations(sim)
    assert not bad, f"cycle {sim.cycle_no}: {bad}"


def _heal(sim: Sim) -> None:
    """The chaos stops: everyone is back, heard, healthy, undrained, with room to spare."""
    sim.observer_lag = sim.config.observer_max_lag * 0
    for name in sorted(sim.workers):
        w = sim.workers[name]
        if not w.alive:
            sim.restart(name)
        w.silent = False
        w.bad.clear()
        w.start_delay = min(w.start_delay, 2)
    _cycle_checked(sim)
    for name, inst in sorted(sim.state.instances.items()):
        if inst.draining:
            sim.command(cmd.UndrainInstance, server_id=name)


#: the phi accrual detector, judging by each worker's rhythm after two intervals already
PHI_CONFIG = SIM_CONFIG.model_copy(update={"failure_detector": "phi", "phi_min_samples": 2})


def _fits(sim: Sim) -> bool:
    """Whether any placement at all must succeed: each instance wastes < MAX_WEIGHT."""
    s = sim.state
    live = [i for i in s.instances.values() if i.status is InstanceStatus.ACTIVE]
    room = sum(i.max_streams - (MAX_WEIGHT - 1) for i in live)
    demand = sum(x.weight for x in s.streams.values() if x.status is not AssignmentStatus.FAILED)
    return demand <= room


@pytest.mark.parametrize("config", [SIM_CONFIG, PHI_CONFIG], ids=["fixed", "phi"])
@SIM_SETTINGS
@given(
    capacities=st.lists(st.integers(1, 8), min_size=2, max_size=5),
    initial_streams=st.integers(0, 20),
    ops=st.lists(OPS, max_size=30),
    auto=st.booleans(),
)
def test_random_chaos_keeps_invariants_and_settles(
    config: DecideConfig,
    capacities: list[int],
    initial_streams: int,
    ops: list[tuple[Any, ...]],
    auto: bool,
) -> None:
    sim = Sim(config)
    for i, cap in enumerate(capacities):
        sim.add_worker(f"w{i}", cap)
    _cycle_checked(sim)
    for i in range(initial_streams):
        sim.register(f"init{i}", weight=1 + i % MAX_WEIGHT)
    for n, op in enumerate(ops):
        _apply_op(sim, op, n)
        for _ in range(op[1] if op[0] == "wait" else 1):
            _cycle_checked(sim, check_balance=auto)
    _heal(sim)
    for _ in range(60):
        _cycle_checked(sim, check_balance=auto)
    assert replay_matches(sim)
    s = sim.state
    assert not s.maintenance
    assert not s.in_flight and s.rebalance is None
    if _fits(sim):
        waiting = {
            x.stream_id: x.status
            for x in s.streams.values()
            if x.status not in (AssignmentStatus.RUNNING, AssignmentStatus.FAILED)
        }
        assert not waiting, f"not running after calm: {waiting}"
    # every live worker runs exactly its desired set, and nothing else
    for name, w in sorted(sim.workers.items()):
        inst = s.instances.get(name)
        if inst is None or inst.incarnation != w.incarnation:
            continue
        assert set(w.running) == set(s.desired_streams(name)), name
        assert all(r.state.value == "running" for r in w.running.values()), name
    # every command got exactly one answer
    answered = [e.command_id for e in sim.log if e.type in ("CommandCompleted", "CommandRejected")]  # type: ignore[attr-defined]
    assert len(answered) == len(set(answered))
