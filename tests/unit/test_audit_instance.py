"""``audit instance`` (pure): every event that touched an instance, and the streams it held
over time."""

from __future__ import annotations

import itertools
from datetime import timedelta

from hypothesis import given

from events import control as ev
from projections.fold import fold
from projections.fold.audit_instance import instance_history, intervals
from tests.unit import test_audit
from tests.unit.fold_histories import FAST, histories
from tests.unit.test_audit import T0, Log

failover = test_audit.failover  # the fixture: a failover of camera-42 from w1 to w2


def test_the_failed_instance_story(failover: Log) -> None:
    history = instance_history(failover.events, "w1")
    types = [s.type for s in history.steps]
    assert types == [
        "InstanceRegistered",
        "StreamAssigned",
        "StreamStarted",
        "InstanceFailed",
        "StreamAssigned",  # its stream leaves it for w2 (the fold lets go here)
    ]
    registered, assigned, started, failed, moved = history.steps
    assert (registered.status_before, registered.status_after) == (None, "active")
    assert registered.detail == "registered (w1.1, capacity 4)"
    assert assigned.gained == ("camera-42",) and assigned.held_after == 1
    assert (assigned.reason, assigned.causationid) == ("new_stream", "cmd-add")
    assert started.gained == () and started.held_after == 1
    assert (failed.status_after, failed.reason, failed.held_after) == (
        "failed",
        "instance_failed",
        1,
    )
    assert (moved.lost, moved.held_after, moved.detail) == (
        ("camera-42",),
        0,
        "camera-42: w1 -> w2",
    )
    assert all(s.applied and s.epoch == 1 for s in history.steps)
    (held,) = intervals(history)
    assert (held.stream_id, held.since_seq, held.until_seq) == (
        "camera-42",
        assigned.seq,
        moved.seq,
    )
    assert held.ended_by == "instance_failed"


def test_the_new_owner_holds_it_still(failover: Log) -> None:
    history = instance_history(failover.events, "w2")
    assert [s.type for s in history.steps][:1] == ["InstanceRegistered"]
    (held,) = intervals(history)
    assert held.stream_id == "camera-42" and held.until is None
    assert held.since == failover.events[8].time


def test_a_refused_event_naming_it_is_in_the_story(failover: Log) -> None:
    failover.add(ev.StreamStarted, stream_id="camera-42", server_id="w1", incarnation="w1.1")
    last = instance_history(failover.events, "w1").steps[-1]
    assert last.type == "StreamStarted" and not last.applied and last.finding


def test_an_unknown_instance_has_no_story(failover: Log) -> None:
    history = instance_history(failover.events, "nobody")
    assert history.steps == () and intervals(history) == ()


def test_a_migration_shows_on_both_ends() -> None:
    log = Log()
    log.add(ev.LeaderElected, leader_id="o")
    for w in ("w1", "w2"):
        log.add(
            ev.InstanceRegistered,
            server_id=w,
            incarnation=f"{w}.1",
            ip="10.0.0.2",
            port=1,
            max_streams=4,
        )
    log.add(ev.StreamRegistered, stream_id="s")
    log.add(
        ev.StreamAssigned, stream_id="s", server_id="w1", incarnation="w1.1", reason="new_stream"
    )
    log.add(ev.StreamStarted, stream_id="s", server_id="w1", incarnation="w1.1")
    log.add(
        ev.MigrationStarted, stream_id="s", migration_id="m1", from_server="w1", to_server="w2",
        to_incarnation="w2.1", deadline=T0 + timedelta(hours=1), reason="drain",
    )  # fmt: skip
    log.add(ev.MigrationCompleted, stream_id="s", migration_id="m1")
    w1, w2 = (instance_history(log.events, w) for w in ("w1", "w2"))
    assert [s.type for s in w2.steps][-2:] == ["MigrationStarted", "MigrationCompleted"]
    assert w2.steps[-2].gained == ("s",)  # the target must run it from the start
    assert w1.steps[-1].lost == ("s",) and w1.steps[-1].type == "MigrationCompleted"
    (moved,) = intervals(w1)
    assert moved.ended_by is None  # MigrationCompleted carries no reason of its own


@FAST
@given(histories())
def test_intervals_agree_with_the_fold(events: list[ev.ControlEvent]) -> None:
    """Open intervals are exactly what the instance holds at the end; none overlaps another
    of the same stream; every step is an event of the log, in order."""
    state = fold(events)
    for server in list(state.instances)[:3]:
        history = instance_history(events, server)
        spans = intervals(history)
        assert {h.stream_id for h in spans if h.until is None} == set(state.held.get(server, ()))
        by_stream: dict[str, list[tuple[int, int]]] = {}
        for h in spans:
            by_stream.setdefault(h.stream_id, []).append((h.since_seq, h.until_seq or 1 << 62))
        for ranges in by_stream.values():
            ranges.sort()
            assert all(a[1] <= b[0] for a, b in itertools.pairwise(ranges))
        seqs = [s.seq for s in history.steps]
        assert seqs == sorted(seqs)
