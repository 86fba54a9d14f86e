"""The log says what happened (docs/contract.md, section 5): a stream that begins to wait for
capacity gets one ``StreamWaiting`` at the end of that cycle, not one per cycle; the fold
accepts it only for a waiting stream and changes nothing; a rebalance plan's completion counts
the moves it skipped (``RebalanceCompleted`` v2, v1 read through its upcaster).

Pure: the decision core on the simulator of ``decide_sim``, the fold, the codec.
"""

from __future__ import annotations

from dataclasses import replace

import orjson
from decide_sim import Sim, cluster, replay_matches, types_of
from event_examples import T0, example

from events import commands as cmd
from events import control as ev
from events import decode, encode
from events.upcasters import upcast_rebalancecompleted_v1_v2
from projections.fold import apply, fold
from projections.fold.state import ClusterState, FindingKind


def waits(sim: Sim) -> list[str]:
    return [e.stream_id for e in sim.events_of(ev.StreamWaiting)]


def test_streams_registered_without_room_are_said_to_wait_once_at_the_end_of_the_cycle() -> None:
    sim = cluster(1)
    for sid in ("s0", "s1", "s2"):
        sim.register(sid)
    d = sim.cycle()
    types = types_of(d.events)
    assert types[-2:] == ["StreamWaiting", "StreamWaiting"]
    assert types.count("CommandCompleted") == 3 and "StreamWaiting" not in types[:-2]
    waiting = [e for e in d.events if isinstance(e, ev.StreamWaiting)]
    assert [e.stream_id for e in waiting] == sorted(sim.state.unplaced)
    assert all(e.reason == "no_capacity" and e.causationid is None for e in waiting)
    sim.run(10)
    assert len(waits(sim)) == 2, "once per wait, not once per cycle"
    # room comes: the waiting streams are placed as such, the stream placed at once was new
    sim.add_worker("w9", 5)
    sim.run(2)
    reasons = {e.stream_id: e.reason for e in sim.events_of(ev.StreamAssigned)}
    assert sorted(r for s, r in reasons.items() if s in set(waits(sim))) == [
        "capacity_returned",
        "capacity_returned",
    ]
    assert [r for s, r in reasons.items() if s not in waits(sim)] == ["new_stream"]
    assert replay_matches(sim)


def test_a_stream_waits_again_after_it_was_placed_and_lost_again() -> None:
    sim = cluster(1, 1, streams=2)
    assert not waits(sim)
    lost = next(s for s, x in sim.state.streams.items() if x.server_id == "w1")
    sim.crash("w1")
    sim.run(6)  # failed after fail_after: its stream is let go and waits, once
    assert waits(sim) == [lost]
    unassigned = sim.events_of(ev.StreamUnassigned)
    assert [(e.stream_id, e.reason) for e in unassigned] == [(lost, "no_capacity")]
    sim.add_worker("w2", 1)
    sim.run(3)
    assert sim.owner(lost) == "w2" and sim.status(lost) == "running"
    placed = [e for e in sim.events_of(ev.StreamAssigned) if e.stream_id == lost]
    assert placed[-1].reason == "capacity_returned"  # it waited for room, and room came
    sim.crash("w2")
    sim.run(6)
    assert waits(sim) == [lost, lost]  # a new wait, said again
    assert replay_matches(sim)


def test_a_stream_that_failed_to_start_and_lost_its_slot_waits() -> None:
    sim = Sim()
    sim.add_worker("w0", 1, bad={"s0"})
    sim.cycle()
    sim.register("s0")
    sim.cycle()
    assert sim.owner("s0") == "w0"
    sim.register("s1")  # takes the slot s0's failure frees, in the same cycle
    d = sim.cycle()
    assert types_of(d.events)[0] == "StreamFailed"
    assert sim.owner("s1") == "w0" and sim.status("s0") == "unassigned"
    assert types_of(d.events)[-1] == "StreamWaiting" and waits(sim) == ["s0"]
    assert replay_matches(sim)


def test_rebalance_completed_counts_the_moves_it_skipped() -> None:
    sim = cluster(10, streams=6)
    sim.add_worker("w1", 10)
    sim.cycle()
    sim.command(cmd.RequestRebalance, dry_run=False)
    sim.cycle()  # planned; two moves start (max_in_flight_per_instance 2)
    (plan,) = sim.events_of(ev.RebalancePlanned)
    assert len(plan.moves) == 3
    progress = sim.state.rebalance
    assert progress is not None and len(progress.started) == 2
    (stale,) = [m.stream_id for m in plan.moves if m.stream_id not in progress.started]
    sim.command(cmd.DeregisterStream, stream_id=stale)  # its move goes stale before it starts
    sim.run(5)
    (done,) = sim.events_of(ev.RebalanceCompleted)
    assert (done.completed, done.aborted, done.skipped) == (2, 0, 1)
    assert replay_matches(sim)


# --- the fold -------------------------------------------------------------------------------


def _log() -> list[ev.ControlEvent]:
    base = {"source": "test", "time": T0, "epoch": 1}
    return [
        ev.LeaderElected(id="e1", seq=1, leader_id="o1", **base),
        ev.InstanceRegistered(
            id="e2",
            seq=2,
            server_id="w1",
            incarnation="w1.a",
            ip="10.0.0.1",
            port=7000,
            max_streams=1,
            **base,
        ),
        ev.StreamRegistered(id="e3", seq=3, stream_id="s1", **base),
        ev.StreamRegistered(id="e4", seq=4, stream_id="s2", **base),
        ev.StreamAssigned(
            id="e5",
            seq=5,
            stream_id="s1",
            server_id="w1",
            incarnation="w1.a",
            reason="new_stream",
            **base,
        ),
    ]


def _waiting(state: ClusterState, stream_id: str) -> ev.StreamWaiting:
    assert state.last_event_time is not None
    return ev.StreamWaiting(
        id=f"w{state.seq + 1}", source="test", time=state.last_event_time,
        seq=state.seq + 1, epoch=state.epoch, stream_id=stream_id,
    )  # fmt: skip


def test_the_fold_takes_stream_waiting_for_a_waiting_stream_and_changes_nothing_else() -> None:
    state = fold(_log())
    after = apply(state, _waiting(state, "s2"))
    assert after.finding_count == 0 and after.seq == state.seq + 1
    position = {"seq": state.seq, "last_event_time": state.last_event_time}
    assert replace(after, recent_ids=state.recent_ids, **position) == state


def test_the_fold_refuses_stream_waiting_for_a_stream_that_is_not_waiting() -> None:
    state = fold(_log())
    for stream_id, kind in (
        ("s1", FindingKind.INVALID_TRANSITION),  # it has an owner
        ("nope", FindingKind.UNKNOWN_STREAM),
    ):
        after = apply(state, _waiting(state, stream_id))
        assert after.finding_count == 1 and after.findings[-1].kind is kind
        assert after.streams == state.streams


# --- RebalanceCompleted v2 ------------------------------------------------------------------


def test_a_v1_rebalance_completed_reads_as_v2_with_nothing_skipped() -> None:
    wire = orjson.loads(encode(example("RebalanceCompleted")))
    assert wire["schemaversion"] == ev.RebalanceCompleted.SCHEMA_VERSION == 2
    wire["schemaversion"] = 1
    del wire["data"]["skipped"]
    message = decode(orjson.dumps(wire))
    assert isinstance(message, ev.RebalanceCompleted) and message.skipped == 0
    assert orjson.loads(encode(message))["schemaversion"] == 2


def test_the_rebalance_completed_upcaster_is_pure_and_adds_only_skipped() -> None:
    data = {"plan_id": "p1", "completed": 2, "aborted": 1}
    assert upcast_rebalancecompleted_v1_v2(data) == {**data, "skipped": 0}
    assert data == {"plan_id": "p1", "completed": 2, "aborted": 1}
