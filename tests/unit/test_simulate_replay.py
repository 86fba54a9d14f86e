"""Cycle marks and the what-if replay (pure): a run of the decide simulator recorded as the
leader records it (marks citing heartbeats and commands by position) replays exactly with
its own settings, and differently with another ``fail_after``."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from control_plane.decide.marks import (
    Batch,
    CycleMark,
    MarkFormatError,
    MarkRecord,
    Sighting,
    TermMark,
    decode_marks,
    encode_marks,
)
from control_plane.orchestrator.marks import CycleMarker
from control_plane.tools.simulate import replay as rp
from control_plane.tools.simulate.report import figures, first_divergence
from events import commands as cmd
from events.base import Command
from events.heartbeat import Heartbeat, StreamRunState
from tests.unit.decide_sim import SIM_CONFIG, START, Sim

T = START


def _term(**kw: Any) -> TermMark:
    fields: dict[str, Any] = dict(
        epoch=1, seq=1, watch_started_at=T, phi_window=0,
        config=SIM_CONFIG.model_dump(mode="json"), sightings=(), positions=((0, 0),),
    )  # fmt: skip
    return TermMark(**(fields | kw))


def test_a_mark_record_round_trips() -> None:
    cycle = CycleMark(
        n=3, now=T, observer_lag=timedelta(milliseconds=12), check_balance=True,
        batches=(Batch(T, ((2, 10), (0, 4))),), commands=(5, 7), seq=9,
        watch_started_at=T + timedelta(seconds=1),
    )  # fmt: skip
    term = _term(sightings=(Sighting("w1", 2, 9, T),), intervals={"w1": (1000, 1100)})
    record = MarkRecord("o1", 1, (cycle, cycle._replace(n=4, batches=(), commands=None)), term)
    assert decode_marks(encode_marks(record)) == record
    with pytest.raises(MarkFormatError, match="format"):
        decode_marks(b'{"v": 99}')
    with pytest.raises(MarkFormatError):
        decode_marks(b"not json")


def test_the_marker_writes_with_a_transaction_or_after_flush_after() -> None:
    marker = CycleMarker("o1", flush_after=timedelta(seconds=1), config=SIM_CONFIG)
    marker.begin(epoch=1, seq=1, liveness=Sim().liveness, where={}, positions=((0, 0),),
                 config=SIM_CONFIG)  # fmt: skip
    first = marker.take()
    assert first is not None and decode_marks(first).term is not None
    quiet = dict(observer_lag=timedelta(0), check_balance=False, batches=(), commands=None,
                 seq=1, watch_started_at=None)  # fmt: skip
    marker.cycle(now=T, **quiet)
    assert not marker.due(T + timedelta(milliseconds=500))
    assert marker.due(T + timedelta(seconds=1))
    marker.cycle(now=T + timedelta(seconds=1), **quiet)
    record = decode_marks(marker.take() or b"")
    assert [c.n for c in record.cycles] == [1, 2] and record.term is None
    assert marker.take() is None
    marker.cycle(now=T, **quiet)
    marker.drop()
    assert marker.take() is None


def _recorded_run() -> rp.Recorded:
    """The simulator's cluster, with the leader's marks: 3 workers, 6 streams, a crash."""
    sim = Sim()
    hbs: dict[tuple[int, int], Heartbeat | None] = {}
    commands: dict[int, Command | None] = {}
    cycles: list[CycleMark] = []

    def cycle() -> None:
        sim.liveness.journal = []
        taken = list(sim.pending)
        for c in taken:
            commands[len(commands)] = c
        first = len(commands) - len(taken)
        sim.cycle()
        seen = sim.liveness.journal
        start = len(hbs)
        for s in seen:
            hbs[(0, len(hbs))] = s.heartbeat
        batches = (Batch(sim.now, ((0, len(hbs)),)),) if seen else ()
        span = (first, len(commands)) if taken else None
        cycles.append(CycleMark(len(cycles) + 1, sim.now, timedelta(0), False, batches, span,
                                sim.state.seq))  # fmt: skip
        assert start <= len(hbs)

    for w in ("w1", "w2", "w3"):
        sim.add_worker(w, capacity=4)
    cycle()
    for i in range(6):
        sim.command(cmd.RegisterStream, stream_id=f"s{i}")
    for _ in range(4):
        cycle()
    sim.crash("w2")
    for _ in range(10):
        cycle()
    record = MarkRecord("o1", 1, tuple(cycles), _term())
    return rp.Recorded(sim.log, [record], hbs, commands)


def test_the_recorded_run_replays_exactly() -> None:
    recorded = _recorded_run()
    span = rp.Simulation(since=T, until=T + timedelta(hours=1))
    results = list(rp.run(recorded, span))
    assert len(results) == 15
    assert first_divergence(results) is None
    assert [e for r in results for e in r.real] == list(recorded.log[1:])


def test_a_later_window_starts_from_the_log() -> None:
    recorded = _recorded_run()
    since = T + timedelta(seconds=6)
    results = list(rp.run(recorded, rp.Simulation(since=since, until=T + timedelta(hours=1))))
    assert results[0].mark.now >= since and first_divergence(results) is None
    assert results[0].seq_before == results[0].mark.seq - len(results[0].real)


def test_a_shorter_fail_after_fails_w2_sooner() -> None:
    recorded = _recorded_run()
    window = dict(since=T, until=T + timedelta(hours=1))
    quick = rp.Simulation(**window, overrides={"fail_after": 2.5}, workers="obedient",  # type: ignore[arg-type]
                          start_delay=timedelta(0))  # fmt: skip
    results = list(rp.run(recorded, quick))
    assert first_divergence(results) is not None

    def failed_at(events: list[Any]) -> Any:
        return next(e.time for e in events if type(e).__name__ == "InstanceFailed")

    real = failed_at([e for r in results for e in r.real])
    simulated = failed_at([e for r in results for e in r.simulated])
    assert simulated < real
    fork = results[0].seq_before
    sim_log = [e for e in recorded.log if e.seq <= fork] + [e for r in results for e in r.simulated]
    heard = {k: v for r in results for k, v in r.last_heard.items()}
    a = figures(recorded.log, since=T, until=results[-1].mark.now, heard=heard)
    b = figures(sim_log, since=T, until=results[-1].mark.now, heard=heard)
    assert b["silent_stream_s"] < a["silent_stream_s"]


def test_obedient_workers_report_what_they_were_told() -> None:
    recorded = _recorded_run()
    sim = Sim()
    for w in ("w1",):
        sim.add_worker(w, capacity=4)
    sim.cycle()
    sim.command(cmd.RegisterStream, stream_id="a")
    sim.cycle()
    hb = sim.workers["w1"].heartbeat(id_="x", now=sim.now)
    assert hb.streams == ()  # the simulated worker has not applied its desired set yet
    told = rp.obedient(hb, sim.state, sim.now, timedelta(0))
    assert [(r.stream_id, r.state) for r in told.streams] == [("a", StreamRunState.RUNNING)]
    slow = rp.obedient(hb, sim.state, sim.now, timedelta(hours=1))
    assert [r.state for r in slow.streams] == [StreamRunState.STARTING]
    assert recorded.heartbeats  # the shared fixture still builds


def test_a_heartbeat_gone_with_retention_is_said() -> None:
    recorded = _recorded_run()
    gone = dict(recorded.heartbeats)
    del gone[(0, 3)]
    broken = rp.Recorded(recorded.log, recorded.marks, gone, recorded.commands)
    with pytest.raises(rp.RecordMissingError, match="heartbeat 0:3"):
        list(rp.run(broken, rp.Simulation(since=T, until=T + timedelta(hours=1))))


def _with_ghost(recorded: rp.Recorded, *, refused: bool) -> rp.Recorded:
    """The recorded run with one more read in its fourth cycle: a heartbeat of an unknown
    server on partition 1, which the leader's gate refused (``refused``) or, as a mark of
    the first format says, for all the replay knows counted."""
    [record] = recorded.marks
    cycles = list(record.cycles)
    c = cycles[3]
    ghost = Heartbeat(
        id="ghost-1", source="forger", time=c.now, server_id="ghost", incarnation="ghost.1",
        ip="10.6.6.6", port=6666, max_streams=100,
    )  # fmt: skip
    read = Batch(c.now, ((1, 1),), ((1, 0),) if refused else ())
    cycles[3] = c._replace(batches=(*c.batches, read))
    term = _term(positions=((0, 0), (1, 0)))
    marks = [record._replace(cycles=tuple(cycles), term=term)]
    return rp.Recorded(
        recorded.log, marks, {**recorded.heartbeats, (1, 0): ghost}, recorded.commands
    )


def test_a_heartbeat_the_leader_refused_is_not_counted_by_the_replay() -> None:
    """The leader dead-lettered it (unenrolled, revoked, a bad signature): its mark says so,
    and the replay does not register the server the log never registered."""
    span = rp.Simulation(since=T, until=T + timedelta(hours=1))
    recorded = _with_ghost(_recorded_run(), refused=True)
    assert decode_marks(encode_marks(recorded.marks[0])) == recorded.marks[0]
    assert first_divergence(list(rp.run(recorded, span))) is None
    blind = _with_ghost(_recorded_run(), refused=False)
    diverged = first_divergence(list(rp.run(blind, span)))
    assert diverged is not None and "ghost" in str(diverged)
