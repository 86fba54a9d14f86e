"""Operators' commands through ``decide``: every type, rejections, idempotency by command_id,
and exactly one CommandCompleted/CommandRejected per command, caused by it."""

from __future__ import annotations

from typing import Any

import pytest
from decide_sim import Run, Sim, invariant_violations, replay_matches

from events import commands as cmd
from events import control as ev
from events.base import Command
from events.heartbeat import StreamRunState
from projections.fold.state import AssignmentStatus, InstanceStatus


def _cluster(*caps: int, streams: int = 0) -> Sim:
    sim = Sim()
    for i, cap in enumerate(caps):
        sim.add_worker(f"w{i}", cap)
    sim.cycle()
    for i in range(streams):
        sim.register(f"s{i}")
    sim.run(2)
    return sim


def _outcome(sim: Sim, c: Command) -> Any:
    """The one outcome event of ``c`` (asserting there is exactly one)."""
    out = [
        e
        for e in sim.log
        if isinstance(e, ev.CommandCompleted | ev.CommandRejected) and e.command_id == c.command_id
    ]
    assert len(out) == 1, out
    assert out[0].causationid == c.command_id
    assert out[0].command_type == c.type  # type: ignore[attr-defined]
    return out[0]


def _send(sim: Sim, cls: type[Command], **fields: Any) -> Any:
    c = sim.command(cls, **fields)
    sim.cycle()
    return _outcome(sim, c)


ALL_COMMANDS: list[tuple[type[Command], dict[str, Any]]] = [
    (cmd.RegisterStream, {"stream_id": "x", "weight": 2, "priority": 5, "params": {"a": "b"}}),
    (cmd.DeregisterStream, {"stream_id": "s0"}),
    (cmd.DrainInstance, {"server_id": "w0"}),
    (cmd.UndrainInstance, {"server_id": "w0"}),
    (cmd.SetCapacity, {"server_id": "w1", "max_streams": 9}),
    (cmd.RequestRebalance, {"dry_run": True}),
    (cmd.RequestRebalance, {"dry_run": False}),
    (cmd.RunConsistencyCheck, {"repair": False}),
    (cmd.RunConsistencyCheck, {"repair": True}),
    (cmd.EmergencyRecovery, {}),
]


@pytest.mark.parametrize(("cls", "fields"), ALL_COMMANDS, ids=lambda x: getattr(x, "__name__", ""))
def test_every_command_completes_once_and_a_resend_changes_nothing(
    cls: type[Command], fields: dict[str, Any]
) -> None:
    sim = _cluster(4, 4, streams=4)
    c = sim.command(cls, **fields)
    d = sim.cycle()
    out = _outcome(sim, c)
    assert isinstance(out, ev.CommandCompleted), out
    assert not d.dropped and not invariant_violations(sim)
    # effects carrying the causation come before the outcome, in the same decision
    caused = [e for e in d.events if e.causationid == c.command_id]
    assert caused[-1] is out
    seq = sim.state.seq
    sim.resend(c)
    sim.resend(c)
    d = sim.cycle()
    assert not any(e.causationid == c.command_id for e in d.events)
    _outcome(sim, c)
    assert sim.state.processed_commands[c.command_id] == out.seq
    assert sim.state.seq >= seq and replay_matches(sim)


def test_register_stream_places_it_with_its_params() -> None:
    sim = _cluster(4)
    out = _send(sim, cmd.RegisterStream, stream_id="cam", weight=2, params={"url": "rtsp://x"})
    assert out.detail == "assigned to w0"
    s = sim.state.streams["cam"]
    assert (s.weight, s.server_id, s.params) == (2, "w0", (("url", "rtsp://x"),))
    assert sim.published["w0"].params == {"cam": {"url": "rtsp://x"}}


def test_duplicate_stream_registration_is_rejected() -> None:
    sim = _cluster(4, streams=1)
    out = _send(sim, cmd.RegisterStream, stream_id="s0")
    assert isinstance(out, ev.CommandRejected) and out.reason == "already_registered"


def test_same_command_twice_in_one_batch_is_carried_out_once() -> None:
    sim = _cluster(4)
    c = sim.command(cmd.RegisterStream, stream_id="x")
    sim.resend(c)
    d = sim.cycle()
    assert [e.type for e in d.events].count("StreamRegistered") == 1
    _outcome(sim, c)


@pytest.mark.parametrize(
    ("cls", "fields", "reason"),
    [
        (cmd.DeregisterStream, {"stream_id": "nope"}, "unknown_stream"),
        (cmd.DrainInstance, {"server_id": "nope"}, "unknown_instance"),
        (cmd.UndrainInstance, {"server_id": "nope"}, "unknown_instance"),
        (cmd.SetCapacity, {"server_id": "nope", "max_streams": 3}, "unknown_instance"),
        (cmd.SetCapacity, {"server_id": "w0", "max_streams": 1}, "capacity_below_load"),
    ],
)
def test_invalid_commands_are_rejected_and_change_nothing(
    cls: type[Command], fields: dict[str, Any], reason: str
) -> None:
    sim = _cluster(4, 4, streams=6)
    assert sim.state.instances["w0"].load == 3
    before = sim.state
    c = sim.command(cls, **fields)
    d = sim.cycle()
    out = _outcome(sim, c)
    assert isinstance(out, ev.CommandRejected) and out.reason == reason and out.detail
    assert [e.type for e in d.events] == ["CommandRejected"]
    assert sim.state.streams == before.streams and sim.state.instances == before.instances


def test_command_for_a_failed_instance_is_rejected() -> None:
    sim = _cluster(4, 4)
    sim.crash("w0")
    sim.run(5)
    assert sim.state.instances["w0"].status is InstanceStatus.FAILED
    out = _send(sim, cmd.DrainInstance, server_id="w0")
    assert isinstance(out, ev.CommandRejected) and out.reason == "unknown_instance"


def test_capacity_below_load_is_accepted_once_a_drain_emptied_the_instance() -> None:
    sim = _cluster(4, 8, streams=6)
    sim.command(cmd.DrainInstance, server_id="w0")
    early = _send(sim, cmd.SetCapacity, server_id="w0", max_streams=0)
    assert isinstance(early, ev.CommandRejected) and early.reason == "capacity_below_load"
    assert sim.state.instances["w0"].draining
    sim.run(6)
    assert sim.state.instances["w0"].load == 0
    out = _send(sim, cmd.SetCapacity, server_id="w0", max_streams=0)
    assert isinstance(out, ev.CommandCompleted)
    assert sim.state.instances["w0"].max_streams == 0


def test_capacity_raise_places_waiting_streams() -> None:
    sim = _cluster(2, streams=4)
    waiting = sorted(sim.state.unplaced)
    assert len(waiting) == 2
    out = _send(sim, cmd.SetCapacity, server_id="w0", max_streams=4)
    assert isinstance(out, ev.CommandCompleted)
    assert not sim.state.unplaced and all(sim.owner(s) == "w0" for s in waiting)


def test_second_rebalance_while_one_runs_is_rejected_but_a_dry_run_is_not() -> None:
    sim = _cluster(6, streams=6)
    sim.add_worker("w1", 6, start_delay=5)
    sim.cycle()
    first = _send(sim, cmd.RequestRebalance, dry_run=False)
    assert isinstance(first, ev.CommandCompleted) and sim.state.rebalance is not None
    second = _send(sim, cmd.RequestRebalance, dry_run=False)
    assert isinstance(second, ev.CommandRejected) and second.reason == "rebalance_in_progress"
    dry = _send(sim, cmd.RequestRebalance, dry_run=True)
    assert isinstance(dry, ev.CommandCompleted)


def test_deregister_stops_the_stream_even_mid_migration() -> None:
    sim = _cluster(6, streams=4)
    sim.add_worker("w1", 6, start_delay=5)
    sim.cycle()
    _send(sim, cmd.RequestRebalance, dry_run=False)
    migrating = sorted(sim.state.in_flight)
    assert migrating
    out = _send(sim, cmd.DeregisterStream, stream_id=migrating[0])
    assert isinstance(out, ev.CommandCompleted)
    assert migrating[0] not in sim.state.streams
    assert all(migrating[0] not in sim.state.desired_streams(w) for w in ("w0", "w1"))
    sim.run(8)
    assert not invariant_violations(sim) and sim.state.rebalance is None


def test_deregister_a_waiting_or_parked_stream() -> None:
    sim = _cluster(1, streams=2)
    waiting = next(iter(sim.state.unplaced))
    assert isinstance(_send(sim, cmd.DeregisterStream, stream_id=waiting), ev.CommandCompleted)
    assert waiting not in sim.state.streams and not sim.state.unplaced


def test_commands_are_answered_in_order_with_their_effects_first() -> None:
    sim = _cluster(4, 4)
    a = sim.command(cmd.RegisterStream, stream_id="a")
    b = sim.command(cmd.DeregisterStream, stream_id="zzz")
    c = sim.command(cmd.DrainInstance, server_id="w1")
    d = sim.cycle()
    outcomes = [e.command_id for e in d.events if e.type.startswith("Command")]  # type: ignore[attr-defined]
    assert outcomes == [a.command_id, b.command_id, c.command_id]
    for e in d.events:
        if isinstance(e, ev.StreamRegistered | ev.StreamAssigned):
            assert e.causationid in (a.command_id, None)
        if isinstance(e, ev.InstanceDraining):
            assert e.causationid == c.command_id


def test_emergency_recovery_leaves_maintenance_fails_silent_and_replaces_orphans() -> None:
    sim = _cluster(3, 3, 3, 3, streams=8)
    for name in ("w0", "w1", "w2"):
        sim.workers[name].silent = True
    sim.run(6)
    assert sim.state.maintenance
    # w1 and w2 come back; w0 stays silent: recovery fails it and re-places its streams
    sim.workers["w1"].silent = False
    sim.workers["w2"].silent = False
    sim.workers["w0"].silent = False
    sim.crash("w0")
    held = sorted(sim.state.desired_streams("w0"))
    c = sim.command(cmd.EmergencyRecovery)
    d = sim.cycle()
    out = _outcome(sim, c)
    assert isinstance(out, ev.CommandCompleted)
    assert not sim.state.maintenance
    failed = [e for e in d.events if isinstance(e, ev.InstanceFailed)]
    assert [e.server_id for e in failed] == ["w0"]
    assert failed[0].reason == ev.Reasons.EMERGENCY_RECOVERY
    assert all(sim.owner(s) not in (None, "w0") for s in held)
    # every live worker is told its desired set again
    assert {ds.server_id for ds in d.desired} == set(sim.state.instances)
    sim.run(3)
    assert all(sim.status(s) == "running" for s in sim.state.streams)
    assert not invariant_violations(sim) and replay_matches(sim)


def test_consistency_check_finds_and_repairs_worker_mismatch_and_duplicates() -> None:
    sim = _cluster(4, 4, streams=4)
    s_w0 = sorted(sim.state.desired_streams("w0"))
    s_w1 = sorted(sim.state.desired_streams("w1"))
    # w1 also runs one of w0's streams (a duplicate) and dropped one of its own
    w1 = sim.workers["w1"]
    w1.running[s_w0[0]] = Run(StreamRunState.RUNNING)
    del w1.running[s_w1[0]]
    sim.published.pop("w1")  # no new desired set reaches it until the repair
    sim.cycle()
    check = sim.command(cmd.RunConsistencyCheck, repair=False)
    d = sim.cycle()
    found = [e for e in d.events if isinstance(e, ev.ConsistencyDivergenceFound)]
    kinds = sorted((e.kind, e.stream_id, e.server_id) for e in found)
    assert kinds == [("duplicated", s_w0[0], None), ("worker_mismatch", None, "w1")]
    assert all(e.causationid == check.command_id for e in found)
    assert not any(isinstance(e, ev.ConsistencyDivergenceRepaired) for e in d.events)
    assert d.desired == ()
    repair = sim.command(cmd.RunConsistencyCheck, repair=True)
    d = sim.cycle()
    repaired = [e for e in d.events if isinstance(e, ev.ConsistencyDivergenceRepaired)]
    assert sorted(e.kind for e in repaired) == ["duplicated", "worker_mismatch"]
    assert all(e.causationid == repair.command_id for e in repaired)
    assert [ds.server_id for ds in d.desired] == ["w1"]  # re-sent: the worker reconciles
    assert _outcome(sim, repair).detail == "2 divergences repaired"
    sim.run(2)
    assert set(w1.running) == set(s_w1)
    recheck = sim.command(cmd.RunConsistencyCheck, repair=False)
    sim.cycle()
    assert _outcome(sim, recheck).detail.startswith("0 divergences")


def test_consistency_check_repairs_an_orphan_as_an_event() -> None:
    """An orphan can only come from a log written elsewhere (say, by an older build):
    fabricate one by failing an instance through the fold without moving its streams."""
    from projections.fold import apply

    sim = _cluster(4, 4, streams=4)
    orphans = sorted(sim.state.desired_streams("w0"))
    failed = ev.InstanceFailed(
        id="raw",
        source="old-build",
        time=sim.now,
        seq=sim.state.seq + 1,
        epoch=sim.state.epoch,
        server_id="w0",
        incarnation=sim.state.instances["w0"].incarnation,
    )
    sim.state = apply(sim.state, failed)
    sim.log.append(failed)
    assert all(sim.state.streams[s].server_id == "w0" for s in orphans)
    repair = sim.command(cmd.RunConsistencyCheck, repair=True)
    d = sim.cycle()
    found = {e.stream_id for e in d.events if isinstance(e, ev.ConsistencyDivergenceFound)}
    assert set(orphans) <= found
    moved = [e for e in d.events if isinstance(e, ev.StreamAssigned)]
    assert sorted(e.stream_id for e in moved) == orphans
    assert all(e.reason == ev.Reasons.ORPHANED and e.server_id == "w1" for e in moved)
    assert not d.dropped and _outcome(sim, repair)
    assert not invariant_violations(sim) and replay_matches(sim)


def test_parked_stream_stays_parked_through_commands() -> None:
    sim = _cluster(2, 2, 2)
    for w in sim.workers.values():
        w.bad.add("p")
    sim.register("p")
    sim.run(8)
    assert sim.state.streams["p"].status is AssignmentStatus.FAILED
    _send(sim, cmd.RequestRebalance, dry_run=False)
    _send(sim, cmd.RunConsistencyCheck, repair=True)
    sim.run(2)
    assert sim.state.streams["p"].status is AssignmentStatus.FAILED


@pytest.mark.parametrize(("cls", "fields"), ALL_COMMANDS)
def test_the_principal_travels_exactly_with_the_causation(
    cls: type[Command], fields: dict[str, Any]
) -> None:
    """Every event a command caused (its ``causationid``) names who issued it; the
    orchestrator's own decisions in the same cycle (placements, waits) name no one."""
    sim = _cluster(5, 5, streams=4)
    c = sim.command(cls, principal="ops-alice", **fields)
    before = len(sim.log)
    sim.cycle()
    assert _outcome(sim, c).principal == "ops-alice"
    for e in sim.log[before:]:
        expected = "ops-alice" if e.causationid == c.command_id else None
        assert e.principal == expected, e


def test_a_command_without_a_principal_causes_events_without_one() -> None:
    sim = _cluster(5)
    c = sim.command(cmd.RegisterStream, stream_id="anon")
    sim.cycle()
    assert _outcome(sim, c).principal is None
    assert all(e.principal is None for e in sim.log)


def test_what_a_command_sets_off_at_once_names_it_and_later_decisions_do_not() -> None:
    """A new stream's placement follows from its registration: the StreamAssigned carries
    the command's causationid and principal. A stream that must wait is placed later by the
    orchestrator's own decision (capacity came back), which names no command."""
    sim = _cluster(1)
    fits = sim.command(cmd.RegisterStream, principal="ops-alice", stream_id="fits")
    sim.cycle()
    [placed] = [e for e in sim.log if isinstance(e, ev.StreamAssigned)]
    assert (placed.stream_id, placed.reason) == ("fits", "new_stream")
    assert (placed.causationid, placed.principal) == (fits.command_id, "ops-alice")
    for sid in ("w-a", "w-b"):
        sim.command(cmd.RegisterStream, principal="ops-bob", stream_id=sid, weight=100)
    sim.cycle()
    assert {"w-a", "w-b"} <= set(sim.state.unplaced)
    sim.add_worker("big", 1000)
    sim.run(3)
    later = [e for e in sim.log if isinstance(e, ev.StreamAssigned) and e.stream_id != "fits"]
    assert sorted(e.stream_id for e in later) == ["w-a", "w-b"]
    assert all(e.reason == "capacity_returned" for e in later)
    assert all(e.causationid is None and e.principal is None for e in later)
    assert replay_matches(sim)
