"""Audit helpers (pure): a stream's history chain, explanations and state summaries."""

from __future__ import annotations

import itertools
from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from events import ControlEvent
from events import control as ev
from projections.fold import fold
from projections.fold.audit import explain, stream_history, summarize
from projections.fold.state import ClusterState
from projections.testing.synthetic import generate_history

T0 = datetime(2026, 5, 1, 3, 0, tzinfo=UTC)


class Log:
    """Builds a small valid log: gapless seq, increasing time, one epoch at a time."""

    def __init__(self) -> None:
        self.events: list[ControlEvent] = []
        self.epoch = 1
        self._n = itertools.count(1)

    def add(self, cls: type[ControlEvent], **fields: Any) -> ControlEvent:
        n = next(self._n)
        fields.setdefault("epoch", self.epoch)
        event = cls(
            id=f"e{n}",
            source="streamplane/orchestrator",
            time=T0 + timedelta(seconds=n),
            seq=n,
            **fields,
        )
        self.events.append(event)
        return event


def _instance(log: Log, server: str) -> None:
    log.add(
        ev.InstanceRegistered,
        server_id=server,
        incarnation=f"{server}.1",
        ip="10.0.0.1",
        port=9000,
        max_streams=4,
    )


@pytest.fixture
def failover() -> Log:
    """camera-42 assigned to w1, running; w1 fails; it is reassigned to w2 and runs there."""
    log = Log()
    log.add(ev.LeaderElected, leader_id="orch-a")
    _instance(log, "w1")
    _instance(log, "w2")
    log.add(ev.StreamRegistered, stream_id="camera-42", causationid="cmd-add")
    log.add(ev.StreamRegistered, stream_id="other")
    log.add(
        ev.StreamAssigned,
        stream_id="camera-42",
        server_id="w1",
        incarnation="w1.1",
        reason="new_stream",
        causationid="cmd-add",
    )
    log.add(ev.StreamStarted, stream_id="camera-42", server_id="w1", incarnation="w1.1")
    log.add(ev.InstanceFailed, server_id="w1", incarnation="w1.1")
    log.add(
        ev.StreamAssigned,
        stream_id="camera-42",
        server_id="w2",
        incarnation="w2.1",
        reason="instance_failed",
    )
    log.add(ev.StreamStarted, stream_id="camera-42", server_id="w2", incarnation="w2.1")
    return log


def test_the_chain_of_a_failover(failover: Log) -> None:
    steps = stream_history(failover.events, "camera-42")
    assert [(s.seq, s.type) for s in steps] == [
        (4, "StreamRegistered"),
        (6, "StreamAssigned"),
        (7, "StreamStarted"),
        (8, "InstanceFailed"),
        (9, "StreamAssigned"),
        (10, "StreamStarted"),
    ]
    registered, assigned, started, failed, moved, running = steps
    assert (started.status_before, started.status_after) == ("assigned", "running")
    assert (registered.status_before, registered.status_after) == (None, "unassigned")
    assert (assigned.server_before, assigned.server_after) == (None, "w1")
    assert (assigned.reason, assigned.causationid) == ("new_stream", "cmd-add")
    assert (moved.server_before, moved.server_after, moved.reason) == (
        "w1",
        "w2",
        "instance_failed",
    )
    assert moved.detail == "camera-42: w1 -> w2"
    assert running.status_after == "running" and running.server_after == "w2"
    assert failed.detail.startswith("w1 (w1.1) gone")
    assert all(s.applied and s.finding is None for s in steps)
    assert steps[0].time == T0 + timedelta(seconds=4)


def test_other_streams_events_are_not_in_the_chain(failover: Log) -> None:
    steps = stream_history(failover.events, "other")
    assert [s.type for s in steps] == ["StreamRegistered"]
    assert stream_history(failover.events, "nobody") == ()


def test_a_refused_event_is_in_the_chain_with_its_finding(failover: Log) -> None:
    # a zombie of epoch 1 tries to move the stream after epoch 2 began: no effect
    failover.epoch = 2
    failover.add(ev.LeaderElected, leader_id="orch-b")
    failover.add(
        ev.StreamAssigned,
        stream_id="camera-42",
        server_id="w1",
        incarnation="w1.1",
        reason="rebalance",
        epoch=1,
    )
    last = stream_history(failover.events, "camera-42")[-1]
    assert (last.seq, last.type, last.applied) == (12, "StreamAssigned", False)
    assert last.finding is not None and last.finding.startswith("stale_epoch")
    assert last.server_before == last.server_after == "w2"


def test_explain_says_what_why_and_who(failover: Log) -> None:
    before = fold(failover.events[:5])
    line = explain(before, failover.events[5])
    assert line.startswith("seq 6; 2026-05-01T03:00:06+00:00; ")
    assert "camera-42 assigned to w1" in line
    assert "reason new_stream" in line and "caused by cmd-add" in line
    assert "REFUSED" not in line


def test_explain_flags_a_refused_event() -> None:
    log = Log()
    log.add(ev.LeaderElected, leader_id="orch-a")
    orphan = log.add(ev.StreamStarted, stream_id="ghost", server_id="w9", incarnation="w9.1")
    line = explain(fold(log.events[:1]), orphan)
    assert "REFUSED (unknown_stream" in line


def test_chains_of_a_generated_history_are_continuous_and_complete() -> None:
    history = generate_history(6000, seed=21, instances=8, streams=60)
    final = fold(history)
    mentioned = Counter(getattr(e, "stream_id", None) for e in history)
    for stream_id in [s for s, _ in mentioned.most_common(6) if s is not None]:
        steps = stream_history(history, stream_id)
        # every event about the stream is there, in log order
        own = [e.seq for e in history if getattr(e, "stream_id", None) == stream_id]
        assert set(own) <= {s.seq for s in steps}
        assert [s.seq for s in steps] == sorted(s.seq for s in steps)
        # each step starts where the previous one ended
        for a, b in itertools.pairwise(steps):
            assert (a.server_after, a.status_after) == (b.server_before, b.status_before)
        end = final.streams.get(stream_id)
        assert steps[-1].server_after == (end.server_id if end else None)


def test_the_chain_can_start_from_a_snapshot_state() -> None:
    history = generate_history(3000, seed=8)
    stream_id = next(e.stream_id for e in history if isinstance(e, ev.StreamAssigned))
    cut = 1500
    whole = stream_history(history, stream_id)
    tail = stream_history(history[cut:], stream_id, state=fold(history[:cut]))
    assert tail == tuple(s for s in whole if s.seq > cut)


def test_summarize_counts() -> None:
    state = fold(generate_history(4000, seed=5))
    summary = summarize(state)
    assert summary["seq"] == state.seq == 4000
    assert sum(summary["streams"].values()) == len(state.streams)
    assert sum(summary["instances"].values()) == len(state.instances)
    assert summary["migrations_in_flight"] == len(state.in_flight)
    assert summary["as_of"] == state.last_event_time.isoformat()  # type: ignore[union-attr]
    assert summarize(ClusterState())["streams"] == {}
