"""Heartbeats into decisions: registration, incarnations, fencing, starts, start failures,
poison streams, graceful leave, desired sets and determinism. Pure: no event loop, no Kafka."""

from __future__ import annotations

from datetime import timedelta

from decide_sim import SIM_CONFIG, Sim, invariant_violations, replay_matches

from control_plane.decide import Inputs, decide, desired_changes
from events import commands as cmd
from events import control as ev
from events import encode
from events.heartbeat import StreamReport, StreamRunState
from projections.fold.state import AssignmentStatus, InstanceStatus


def _types(events: object) -> list[str]:
    return [e.type for e in events]  # type: ignore[attr-defined]


def _cluster(*caps: int, streams: int = 0, **worker_kw: object) -> Sim:
    """Workers w0.. registered, ``streams`` streams s0.. registered and running."""
    sim = Sim()
    for i, cap in enumerate(caps):
        sim.add_worker(f"w{i}", cap, **worker_kw)
    sim.cycle()
    for i in range(streams):
        sim.register(f"s{i}")
    sim.run(2)
    return sim


# --- registration and incarnations ------------------------------------------------------


def test_first_heartbeat_registers_with_an_empty_desired_set() -> None:
    sim = Sim()
    w = sim.add_worker("w0", 5)
    d = sim.cycle()
    assert _types(d.events) == ["InstanceRegistered"]
    e = d.events[0]
    assert (e.server_id, e.incarnation, e.max_streams) == ("w0", w.incarnation, 5)
    assert sim.state.instances["w0"].status is InstanceStatus.ACTIVE
    assert [(ds.server_id, ds.incarnation, ds.streams, ds.fenced) for ds in d.desired] == [
        ("w0", w.incarnation, (), False)
    ]
    assert sim.cycle().events == ()  # the next heartbeat is no news


def test_new_incarnation_supersedes_the_live_one_and_takes_nothing_over() -> None:
    sim = _cluster(3, 6, streams=4)
    old = sim.workers["w0"].incarnation
    owned = sorted(s for s, x in sim.state.streams.items() if x.server_id == "w0")
    assert owned
    new = sim.restart("w0").incarnation
    d = sim.cycle()
    types = _types(d.events)
    assert types[0] == "InstanceFailed"
    assert d.events[0].reason == ev.Reasons.SUPERSEDED and d.events[0].incarnation == old
    assert types[-1] == "InstanceRegistered" and d.events[-1].incarnation == new
    moved = [e for e in d.events if isinstance(e, ev.StreamAssigned)]
    assert sorted(e.stream_id for e in moved) == owned
    assert all(e.server_id == "w1" for e in moved)  # not onto the superseded server's slot
    fenced = {(ds.incarnation, ds.fenced) for ds in d.desired if ds.server_id == "w0"}
    assert fenced == {(new, False)}  # the compacted key now speaks to the new incarnation
    assert sim.state.instances["w0"].past_incarnations == (old,)
    assert not invariant_violations(sim)


def test_heartbeats_of_past_incarnations_are_ignored() -> None:
    sim = _cluster(3, 3, streams=2)
    old = sim.workers["w0"]
    stale = old.heartbeat(id_="stale", now=sim.now)
    sim.restart("w0")
    sim.run(2)
    before = sim.state
    d = decide(
        before,
        sim.liveness,
        Inputs(heartbeats=(stale,)),
        now=sim.now,
        new_id=sim.new_id,
        config=sim.config,
    )
    assert d.events == () and d.desired == () and d.state is before


def test_fenced_incarnation_changes_nothing_and_is_told_it_is_fenced() -> None:
    sim = _cluster(3, 3, streams=4)
    sim.workers["w0"].reregister_when_fenced = False
    sim.workers["w0"].silent = True
    sim.run(5)
    assert sim.state.instances["w0"].status is InstanceStatus.FAILED
    assert sim.published["w0"].fenced and sim.published["w0"].streams == ()
    w0 = sim.workers["w0"]
    zombie = w0.heartbeat(id_="zombie", now=sim.now)
    assert zombie.streams == ()  # it applied its fenced desired set and stopped everything
    # even a zombie still claiming streams changes nothing
    claim = zombie.model_copy(
        update={"streams": tuple(StreamReport(stream_id=s, state="running") for s in ("s0", "s1"))}
    )
    d = decide(
        sim.state,
        sim.liveness,
        Inputs(heartbeats=(claim,)),
        now=sim.now,
        new_id=sim.new_id,
        config=sim.config,
    )
    assert d.events == () and d.desired == ()


def test_a_fenced_worker_that_is_heard_again_registers_anew() -> None:
    sim = _cluster(3, 3, streams=2)
    old = sim.workers["w0"].incarnation
    sim.workers["w0"].silent = True
    sim.run(5)
    assert sim.state.instances["w0"].status is InstanceStatus.FAILED
    sim.workers["w0"].silent = False  # it reads "fenced", stops, and starts a new incarnation
    d = sim.cycle()
    assert _types(d.events) == ["InstanceRegistered"]
    inc = sim.workers["w0"].incarnation
    assert inc != old and sim.state.instances["w0"].incarnation == inc
    assert sim.state.instances["w0"].failure_count == 1


# --- starts, completions, failures, poison ------------------------------------------------


def test_running_report_becomes_stream_started() -> None:
    sim = _cluster(3)
    sim.register("s0")
    d1 = sim.cycle()
    assert "StreamAssigned" in _types(d1.events) and sim.status("s0") == "assigned"
    d2 = sim.cycle()
    started = [e for e in d2.events if isinstance(e, ev.StreamStarted)]
    assert [(e.stream_id, e.server_id) for e in started] == [("s0", "w0")]
    assert sim.status("s0") == "running"
    assert _types(sim.cycle().events) == []  # running again is not news


def test_slow_start_waits_for_running() -> None:
    sim = _cluster(3, start_delay=3)
    sim.register("s0")  # assigned in the next cycle, started by the worker one later
    sim.run(4)
    assert sim.status("s0") == "assigned"
    sim.run(1)
    assert sim.status("s0") == "running"


def test_target_running_completes_the_migration_make_before_break() -> None:
    sim = _cluster(4, streams=4)
    sim.add_worker("w1", 4, start_delay=2)
    sim.cycle()
    sim.command(cmd.RequestRebalance, dry_run=False)
    d = sim.cycle()
    started = [e for e in d.events if isinstance(e, ev.MigrationStarted)]
    assert len(started) == 2
    for m in started:
        s = sim.state.streams[m.stream_id]
        assert s.server_id == "w0" and s.status is AssignmentStatus.MIGRATING
        assert m.stream_id in sim.state.desired_streams("w0")  # the source keeps it
        assert m.stream_id in sim.state.desired_streams("w1")  # the target starts it
    sim.run(2)
    assert all(sim.owner(m.stream_id) == "w0" for m in started)  # target still starting
    d = sim.cycle()
    done = [e for e in d.events if isinstance(e, ev.MigrationCompleted)]
    assert sorted(e.stream_id for e in done) == sorted(m.stream_id for m in started)
    for m in started:
        assert sim.owner(m.stream_id) == "w1" and sim.status(m.stream_id) == "running"
        assert m.stream_id not in sim.state.desired_streams("w0")
    assert not invariant_violations(sim)


def test_start_failure_is_replaced_elsewhere_never_back_while_another_has_room() -> None:
    sim = _cluster(2, 2, 2)
    for w in sim.workers.values():
        w.bad.add("s0") if w.server_id != "w2" else None
    sim.register("s0")
    sim.cycle()
    first = sim.owner("s0")
    assert first in ("w0", "w1")
    d = sim.cycle()
    types = _types(d.events)
    assert types[:2] == ["StreamFailed", "StreamAssigned"]
    failed = d.events[0]
    assert failed.server_id == first and not failed.parked
    assert failed.reason == ev.Reasons.START_FAILED and "cannot start" in (failed.error or "")
    second = sim.owner("s0")
    assert second != first
    sim.run(4)
    assert sim.owner("s0") == "w2" and sim.status("s0") == "running"
    assert set(sim.state.streams["s0"].failed_on) == {"w0", "w1"}
    assert not invariant_violations(sim)


def test_poison_stream_is_parked_after_threshold_distinct_instances_with_an_alert() -> None:
    sim = _cluster(2, 2, 2, 2)
    for w in sim.workers.values():
        w.bad.add("p")
    sim.register("p")
    alerts: list[str] = []
    for d in sim.run(8):
        alerts += d.alerts
    s = sim.state.streams["p"]
    assert s.status is AssignmentStatus.FAILED and s.server_id is None
    assert len(s.failed_on) == SIM_CONFIG.poison_threshold
    parked = [e for e in sim.log if isinstance(e, ev.StreamFailed) and e.parked]
    assert len(parked) == 1 and parked[0].reason == ev.Reasons.POISON
    assert any("poison" in a and "p" in a for a in alerts)
    assert "p" not in sim.state.unplaced
    sim.run(5)  # parked: no more attempts
    assert sum(isinstance(e, ev.StreamAssigned) and e.stream_id == "p" for e in sim.log) == 3


def test_start_failure_retries_where_it_failed_when_nowhere_else_has_room() -> None:
    """Two instances, threshold 3: it retries on a failed instance, then is parked."""
    sim = _cluster(2, 2)
    for w in sim.workers.values():
        w.bad.add("p")
    sim.register("p")
    sim.run(10)
    s = sim.state.streams["p"]
    assert s.status is AssignmentStatus.FAILED, s
    assert s.failure_count == SIM_CONFIG.poison_threshold
    assert not invariant_violations(sim)


def test_transient_start_failure_on_all_instances_recovers_once_fixed() -> None:
    sim = _cluster(2, 2)
    for w in sim.workers.values():
        w.bad.add("s")
    sim.register("s")
    sim.run(3)  # failed on both: waits or retries
    for w in sim.workers.values():
        w.bad.clear()
    sim.run(4)
    assert sim.status("s") == "running"


# --- graceful leave -----------------------------------------------------------------------


def test_graceful_leave_deregisters_and_moves_streams_at_once() -> None:
    sim = _cluster(4, 4, streams=4)
    held = sorted(sim.state.desired_streams("w0"))
    assert held
    sim.leave("w0")
    d = sim.cycle()
    types = _types(d.events)
    assert types[0] == "InstanceDeregistered" and d.events[0].reason == ev.Reasons.INSTANCE_LEFT
    moved = sorted(e.stream_id for e in d.events if isinstance(e, ev.StreamAssigned))
    assert moved == held and all(sim.owner(s) == "w1" for s in held)
    assert sim.state.instances["w0"].status is InstanceStatus.LEFT
    assert sim.state.instances["w0"].failure_count == 0  # leaving is not failing
    assert {ds.server_id: ds.fenced for ds in d.desired}["w0"] is True


# --- desired sets and determinism ----------------------------------------------------------


def test_desired_sets_only_for_servers_whose_holdings_or_status_changed() -> None:
    sim = _cluster(3, 3, 3, streams=6)
    sim.register("new")
    d = sim.cycle()
    owner = sim.owner("new")
    assert [ds.server_id for ds in d.desired] == [owner]
    ds = d.desired[0]
    assert ds.streams == sim.state.desired_streams(owner) and ds.seq == sim.state.seq
    assert sim.cycle().desired == ()
    sim.workers["w1"].silent = True
    sim.run(1)
    d = sim.cycle()  # w1 suspected
    assert "InstanceSuspected" in _types(d.events)
    assert [x.server_id for x in d.desired] == ["w1"]


def test_desired_changes_names_exactly_the_changed_servers() -> None:
    sim = _cluster(3, 3, 3, streams=6)
    before = sim.state
    sim.crash("w2")
    sim.run(6)
    after = sim.state
    out = desired_changes(before, after, set(), source="x", now=sim.now, new_id=sim.new_id)
    changed = {
        sid
        for sid in after.instances
        if before.held.get(sid) != after.held.get(sid)
        or before.instances[sid].status != after.instances[sid].status
    }
    assert {ds.server_id for ds in out} == changed and "w2" in changed
    for ds in out:
        if ds.server_id == "w2":
            assert ds.fenced and ds.streams == ()
        else:
            assert ds.streams == after.desired_streams(ds.server_id) and not ds.fenced


def _scripted() -> Sim:
    sim = _cluster(3, 2, 4, streams=7)
    sim.workers["w1"].bad.add("s8")
    sim.register("s8", priority=3)
    sim.run(2)
    sim.crash("w0")
    sim.add_worker("w3", 5)
    sim.run(6)
    sim.command(cmd.RequestRebalance, dry_run=False)
    sim.run(5)
    return sim


def test_same_inputs_clock_and_ids_give_identical_bytes() -> None:
    a, b = _scripted(), _scripted()
    assert [encode(e) for e in a.log] == [encode(e) for e in b.log]
    assert [encode(d) for x in a.decisions for d in x.desired] == [
        encode(d) for x in b.decisions for d in x.desired
    ]
    assert a.state == b.state and replay_matches(a)


def test_decide_is_a_pure_function_of_its_arguments() -> None:
    sim = _cluster(3, 3, streams=3)
    sim.crash("w0")
    sim.run(2)
    hb = sim.workers["w1"].heartbeat(id_="hb", now=sim.now)
    now = sim.now + timedelta(seconds=5)

    def once() -> list[bytes]:
        ids = iter(f"x{i}" for i in range(1000))
        d = decide(
            sim.state,
            sim.liveness,
            Inputs(heartbeats=(hb,)),
            now=now,
            new_id=lambda: next(ids),
            config=sim.config,
        )
        assert not d.dropped
        return [encode(e) for e in d.events] + [encode(x) for x in d.desired]

    first = once()
    assert first and once() == first
    assert any(b'"InstanceFailed"' in x for x in first)


def test_failed_report_for_a_stream_running_elsewhere_is_ignored() -> None:
    sim = _cluster(3, 3, streams=2)
    owner = sim.owner("s0")
    other = "w1" if owner == "w0" else "w0"
    hb = sim.workers[other].heartbeat(id_="hb", now=sim.now)
    hb = hb.model_copy(
        update={"streams": (StreamReport(stream_id="s0", state=StreamRunState.FAILED),)}
    )
    d = decide(
        sim.state, sim.liveness, Inputs(heartbeats=(hb,)), now=sim.now,
        new_id=sim.new_id, config=sim.config,
    )  # fmt: skip
    assert not any(isinstance(e, ev.StreamFailed) for e in d.events)
