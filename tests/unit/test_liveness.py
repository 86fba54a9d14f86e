"""Liveness bookkeeping and the failure detector's use of it (pure, no event loop)."""

from __future__ import annotations

import copy
import itertools
from datetime import UTC, datetime, timedelta

from decide_sim import cluster

from control_plane.decide import Inputs, decide
from control_plane.decide.config import DecideConfig
from control_plane.decide.liveness import Liveness
from events import commands as cmd
from events import control as ev
from events.heartbeat import Heartbeat
from projections.fold import fold

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def _hb(server_id: str, incarnation: str, at: datetime) -> Heartbeat:
    return Heartbeat(
        id=f"hb-{server_id}-{incarnation}-{at.timestamp()}",
        source="test",
        time=at,
        server_id=server_id,
        incarnation=incarnation,
        ip="127.0.0.1",
        port=7000,
        max_streams=4,
    )


def test_heard_up_to_stays_exact_when_the_clock_steps_back() -> None:
    lv = Liveness(watch_started_at=T0)
    lv.observe(_hb("a", "1", T0), T0 + timedelta(seconds=10))
    lv.observe(_hb("b", "1", T0), T0 + timedelta(seconds=5))  # the clock went back
    lv.observe(_hb("c", "1", T0), T0 + timedelta(seconds=12))
    heard = [s.heartbeat.server_id for s in lv.heard_up_to(T0 + timedelta(seconds=11))]
    assert heard == ["b", "a"]
    # a newer sighting of a server moves it to the end
    lv.observe(_hb("b", "1", T0), T0 + timedelta(seconds=13))
    heard = [s.heartbeat.server_id for s in lv.heard_up_to(T0 + timedelta(seconds=12))]
    assert heard == ["a", "c"]


def test_silence_counts_only_the_current_incarnation() -> None:
    lv = Liveness(watch_started_at=T0)
    lv.observe(_hb("w1", "old", T0), T0 + timedelta(seconds=9))
    assert lv.last_seen("w1", "old") == T0 + timedelta(seconds=9)
    assert lv.last_seen("w1", "new") is None
    registered = T0 + timedelta(seconds=2)
    assert lv.silence("w1", "new", registered, T0 + timedelta(seconds=10)) == timedelta(seconds=8)


def test_a_current_incarnation_never_heard_is_failed_even_if_an_old_one_keeps_beating() -> None:
    """w1's new incarnation registered and went silent; its superseded process still
    heartbeats. The old beats must not keep the new incarnation alive."""
    n = itertools.count(1)

    def e(cls: type[ev.ControlEvent], at: float, **fields: object) -> ev.ControlEvent:
        seq = next(n)
        return cls(
            id=f"e{seq}", source="t", time=T0 + timedelta(seconds=at), seq=seq, epoch=1, **fields
        )

    reg = {"ip": "127.0.0.1", "port": 7000, "max_streams": 4}
    state = fold(
        [
            e(ev.LeaderElected, 0, leader_id="o1"),
            e(ev.InstanceRegistered, 0, server_id="w1", incarnation="old", **reg),
            e(ev.InstanceRegistered, 0, server_id="w2", incarnation="b", **reg),
            e(ev.InstanceRegistered, 0, server_id="w3", incarnation="c", **reg),
            e(ev.InstanceFailed, 1, server_id="w1", incarnation="old"),
            e(ev.InstanceRegistered, 1, server_id="w1", incarnation="new", **reg),
        ]
    )
    assert state.finding_count == 0
    lv = Liveness(watch_started_at=T0 - timedelta(seconds=60))  # a hot leader
    ids = (f"id{i}" for i in itertools.count())
    cfg = DecideConfig()
    failed: list[str] = []
    for tick in range(2, 10):
        now = T0 + timedelta(seconds=tick)
        beats = [_hb("w1", "old", now), _hb("w2", "b", now), _hb("w3", "c", now)]
        for hb in beats:
            lv.observe(hb, now)
        d = decide(
            state, lv, Inputs(heartbeats=beats), now=now, new_id=lambda: next(ids), config=cfg
        )
        assert not d.dropped
        state = d.state
        failed += [x.incarnation for x in d.events if isinstance(x, ev.InstanceFailed)]
    assert failed == ["new"]
    assert state.instances["w1"].status.value == "failed"
    assert state.instances["w2"].status.value == "active"


def test_silence_is_judged_as_of_what_was_read_so_a_short_stall_suspects_no_one() -> None:
    """Two workers last read 2.8 s ago, three read just now. If the consumer was caught up a
    moment ago, those two really are silent (> suspect_after = 2.5 s) and are suspected. If
    instead we stalled for 2 s (below observer_max_lag = 3 s), their recent heartbeats are
    merely unread: judged as of the read point, no one is suspected."""
    reg = {"ip": "127.0.0.1", "port": 7000, "max_streams": 4}
    events = [
        ev.LeaderElected(id="e1", source="t", time=T0, seq=1, epoch=1, leader_id="o1"),
        *(
            ev.InstanceRegistered(
                id=f"e{i + 2}",
                source="t",
                time=T0,
                seq=i + 2,
                epoch=1,
                server_id=f"w{i}",
                incarnation="a",
                **reg,
            )
            for i in range(5)
        ),
    ]
    state = fold(events)
    lv = Liveness(watch_started_at=T0 - timedelta(seconds=60))
    now = T0 + timedelta(seconds=20)
    earlier = now - timedelta(seconds=2.8)
    for i in range(2):
        lv.observe(_hb(f"w{i}", "a", earlier), earlier)
    for i in range(2, 5):
        lv.observe(_hb(f"w{i}", "a", now), now - timedelta(seconds=0.05))
    ids = (f"id{i}" for i in itertools.count())
    cfg = DecideConfig()

    def suspects(lag: float) -> list[str]:
        d = decide(
            state,
            lv,
            Inputs(observer_lag=timedelta(seconds=lag)),
            now=now,
            new_id=lambda: next(ids),
            config=cfg,
        )
        assert not any(isinstance(e, ev.MaintenanceModeEntered) for e in d.events)
        return sorted(e.server_id for e in d.events if isinstance(e, ev.InstanceSuspected))

    assert suspects(0.1) == ["w0", "w1"]
    assert suspects(2.0) == []


# --- the read-only view: decide reads, the shell mutates and repairs ---------------------


def test_heard_up_to_reads_a_stepped_back_record_in_order_without_changing_it() -> None:
    lv = Liveness(watch_started_at=T0)
    lv.observe(_hb("a", "1", T0), T0 + timedelta(seconds=10))
    lv.observe(_hb("b", "1", T0), T0 + timedelta(seconds=5))  # the clock went back
    before = copy.deepcopy(lv)
    heard = [s.heartbeat.server_id for s in lv.heard_up_to(T0 + timedelta(seconds=11))]
    assert heard == ["b", "a"]
    assert lv == before and list(lv.last) == ["a", "b"]  # read, never repaired here
    assert lv.view() is lv  # the shell's repair, once, before decide
    assert list(lv.last) == ["b", "a"]
    assert [s.heartbeat.server_id for s in lv.heard_up_to(T0 + timedelta(seconds=11))] == heard


def test_decide_never_changes_the_liveness_it_reads() -> None:
    """Every reader of the view runs: failure detection (suspicion, failure, the blind
    observer), the consistency check and emergency recovery, on an unrepaired record."""
    sim = cluster(4, 4, 4, 4, streams=8)
    sim.crash("w1")
    lv = sim.liveness
    lv.observe(_hb("w2", sim.workers["w2"].incarnation, sim.now), sim.now - timedelta(hours=1))
    assert not lv._in_order
    state, now, ids = sim.state, sim.now, (f"x{i}" for i in itertools.count())
    commands = [
        cmd.RunConsistencyCheck(id="c1", source="t", time=now, command_id="c1", repair=True),
        cmd.EmergencyRecovery(id="c2", source="t", time=now, command_id="c2"),
    ]
    seen: list[ev.ControlEvent] = []
    for k in range(8):
        now += timedelta(seconds=1)
        for name in ("w0", "w3"):  # the shell's part: observe, but no repair
            lv.observe(_hb(name, sim.workers[name].incarnation, now), now)
        before, order = copy.deepcopy(lv), list(lv.last)
        d = decide(
            state,
            lv,
            Inputs(
                commands=commands if k == 6 else (),
                observer_lag=timedelta(seconds=4 if k == 4 else 0),  # blind for one cycle
            ),
            now=now,
            new_id=lambda: next(ids),
            config=sim.config,
        )
        assert lv == before and list(lv.last) == order
        assert not d.dropped
        state, seen = d.state, seen + list(d.events)
    kinds = {e.type for e in seen}  # type: ignore[attr-defined]
    assert {"InstanceSuspected", "InstanceFailed", "MaintenanceModeEntered"} <= kinds
    assert {"ConsistencyDivergenceFound", "MaintenanceModeLeft", "CommandCompleted"} <= kinds


def test_a_restored_record_equals_the_observed_one() -> None:
    lv = Liveness(watch_started_at=T0, phi_window=3)
    for k, (sid, inc) in enumerate(
        [("a", "1"), ("b", "1"), ("a", "1"), ("a", "1"), ("b", "2"), ("a", "1"), ("c", "1")]
    ):
        lv.observe(_hb(sid, inc, T0), T0 + timedelta(seconds=k, milliseconds=7 * k))
    lv.observe(_hb("b", "2", T0), T0 + timedelta(seconds=1))  # stepped back
    rebuilt = Liveness.restored(
        watch_started_at=T0,
        phi_window=3,
        sightings=lv.last.values(),
        intervals={sid: w.samples for sid, w in lv.intervals.items()},
    )
    assert rebuilt == lv and list(rebuilt.last) == list(lv.last)
    assert lv.intervals["a"].size == 3  # the window really was full


def test_the_journal_keeps_every_sighting_only_while_on() -> None:
    lv = Liveness(watch_started_at=T0)
    lv.observe(_hb("a", "1", T0), T0)
    lv.journal = []
    lv.observe(_hb("a", "1", T0), T0 + timedelta(seconds=1))
    lv.observe(_hb("a", "1", T0), T0 + timedelta(seconds=2))
    assert [s.received_at for s in lv.journal] == [T0 + timedelta(seconds=s) for s in (1, 2)]
    lv.journal = None
    lv.observe(_hb("a", "1", T0), T0 + timedelta(seconds=3))
    assert lv.last["a"].received_at == T0 + timedelta(seconds=3)
