"""The two ways of running the one fold driver reach the same states: a :class:`Folder` (one
draft, changed in place, for whole batches) reaches exactly the state ``apply`` reaches event
by event (a fresh draft per event, a persistent state each time): on valid histories, on
corrupted ones (rejections leave no trace, findings alike), across any number of ``state()``
calls, without touching earlier states. The draft's working copies mirror the frozen records
and never leak into a state. Every transition checks before it writes (the draft relies on
it); one that did not would make the folder raise, ``fold`` would fold event by event
instead, and ``apply`` would drop the write."""

from __future__ import annotations

import dataclasses
import weakref
from datetime import UTC, datetime, timedelta
from functools import reduce
from unittest.mock import patch

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from events import ControlEvent
from events.control import (
    InstanceRegistered,
    LeaderElected,
    StreamAssigned,
    StreamRegistered,
    StreamStarted,
)
from projections.fold import Folder, HalfWrittenError, apply, fold, fold_until
from projections.fold.canonical import state_digest
from projections.fold.state import ClusterState, EnhancedInstance, FindingKind, StreamAssignment
from projections.fold.transitions import TRANSITIONS, Draft, Rejected
from projections.fold.transitions.draft import MutableInstance, MutableStream
from projections.testing.synthetic import generate_history

FAST = settings(max_examples=60, deadline=None, database=None)


def stepwise(events: list[ControlEvent], state: ClusterState | None = None) -> ClusterState:
    """The reference: one persistent ``apply`` per event."""
    return reduce(apply, events, state or ClusterState())


def assert_same(a: ClusterState, b: ClusterState) -> None:
    assert a == b
    assert state_digest(a) == state_digest(b)
    assert a.findings == b.findings and a.finding_count == b.finding_count


@st.composite
def histories(draw: st.DrawFn, max_size: int = 300) -> list[ControlEvent]:
    return generate_history(
        draw(st.integers(1, max_size)),
        seed=draw(st.integers(0, 2**32 - 1)),
        instances=draw(st.integers(1, 6)),
        streams=draw(st.integers(0, 30)),
    )


@st.composite
def corrupted(draw: st.DrawFn) -> list[ControlEvent]:
    """A valid history with a handful of events dropped, repeated, moved, re-aimed at
    another stream or instance, or given another epoch or seq: every rejection path."""
    events = list(draw(histories()))
    streams = sorted({getattr(e, "stream_id", None) or "s0" for e in events} | {"ghost"})
    servers = sorted({getattr(e, "server_id", None) or "w0" for e in events} | {"nobody"})
    for _ in range(draw(st.integers(1, 12))):
        i = draw(st.integers(0, len(events) - 1))
        e = events[i]
        op = draw(st.sampled_from(["drop", "repeat", "move", "stream", "server", "epoch", "seq"]))
        if op == "drop" and len(events) > 1:
            del events[i]
        elif op == "repeat":
            events.insert(draw(st.integers(i, len(events))), e)
        elif op == "move":
            events.insert(draw(st.integers(0, len(events))), events.pop(i))
        elif op == "stream" and hasattr(e, "stream_id"):
            events[i] = e.model_copy(update={"stream_id": draw(st.sampled_from(streams))})
        elif op == "server" and hasattr(e, "server_id"):
            events[i] = e.model_copy(update={"server_id": draw(st.sampled_from(servers))})
        elif op == "epoch":
            events[i] = e.model_copy(update={"epoch": draw(st.integers(0, e.epoch + 2))})
        elif op == "seq":
            events[i] = e.model_copy(update={"seq": draw(st.integers(1, e.seq + 3))})
    return events


@FAST
@given(histories())
def test_valid_histories_fold_alike(history: list[ControlEvent]) -> None:
    state = Folder().apply_all(history).state()
    assert_same(state, stepwise(history))
    assert state.finding_count == 0


@settings(max_examples=400, deadline=None, database=None)
@given(corrupted())
def test_corrupted_histories_fold_alike_and_no_transition_writes_before_rejecting(
    history: list[ControlEvent],
) -> None:
    # Folder raises HalfWrittenError if a transition is rejected after writing
    assert_same(Folder().apply_all(history).state(), stepwise(history))


@FAST
@given(corrupted(), st.data())
def test_state_may_be_taken_anywhere_and_is_never_changed_later(
    history: list[ControlEvent], data: st.DataObject
) -> None:
    cuts = sorted(data.draw(st.lists(st.integers(0, len(history)), max_size=4)))
    folder = Folder()
    taken: list[tuple[ClusterState, str, ClusterState]] = []
    done = 0
    for cut in [*cuts, len(history)]:
        folder.apply_all(history[done:cut])
        done = cut
        state = folder.state()
        taken.append((state, state_digest(state), stepwise(history[:cut])))
    for state, digest, expected in taken:
        assert_same(state, expected)
        assert state_digest(state) == digest  # later batches wrote nothing into it


@FAST
@given(histories(), st.data())
def test_folding_on_from_a_state_is_fold_from(
    history: list[ControlEvent], data: st.DataObject
) -> None:
    cut = data.draw(st.integers(0, len(history)))
    prefix = stepwise(history[:cut])
    assert_same(Folder(prefix).apply_all(history[cut:]).state(), stepwise(history))
    assert_same(fold(history), stepwise(history))


def _event(cls: type[ControlEvent], seq: int, **fields: object) -> ControlEvent:
    at = datetime(2026, 1, 1, tzinfo=UTC) + timedelta(seconds=seq)
    return cls(id=f"e{seq}", source="test", time=at, seq=seq, epoch=1, **fields)


def _registered(seq: int, server: str, *, max_streams: int) -> ControlEvent:
    """``server`` (incarnation ``<server>1``) joins with room for ``max_streams``."""
    return _event(
        InstanceRegistered,
        seq,
        server_id=server,
        incarnation=f"{server}1",
        ip="127.0.0.1",
        port=seq,
        max_streams=max_streams,
    )


def test_stream_assigned_checks_the_new_owners_capacity_before_releasing_the_old() -> None:
    """StreamAssigned releases the old (failed) owner's hold and takes the new owner's: the
    new owner's capacity is checked before the release, so a rejection leaves no trace."""
    from events.control import InstanceFailed

    events = [
        _event(LeaderElected, 1, leader_id="o"),
        _registered(2, "a", max_streams=1),
        _registered(3, "b", max_streams=1),
        _event(StreamRegistered, 4, stream_id="s1"),
        _event(StreamRegistered, 5, stream_id="s2"),
        _event(
            StreamAssigned, 6, stream_id="s1", server_id="a", incarnation="a1", reason="new_stream"
        ),
        _event(StreamStarted, 7, stream_id="s1", server_id="a", incarnation="a1"),
        _event(
            StreamAssigned, 8, stream_id="s2", server_id="b", incarnation="b1", reason="new_stream"
        ),
        _event(InstanceFailed, 9, server_id="a", incarnation="a1"),
        # b is full: rejected after s1's hold on a was released
        _event(
            StreamAssigned,
            10,
            stream_id="s1",
            server_id="b",
            incarnation="b1",
            reason="instance_failed",
        ),
    ]
    more = [_event(StreamRegistered, 11, stream_id="s3")]
    folder = Folder().apply_all(events)
    state = folder.apply_all(more).state()
    assert_same(state, stepwise(events + more))
    assert [f.kind for f in state.findings] == [FindingKind.CAPACITY_EXCEEDED]
    assert state.streams["s1"].server_id == "a"  # untouched by the rejected event
    assert state.instances["a"].load == 1 and dict(state.held["a"]) == {"s1": True}


def _writes_then_rejects(d: Draft, e: StreamStarted) -> None:
    """A transition breaking the rule: it writes, then it is rejected."""
    inst = d.instances["a"]
    d.update_instance(inst, last_heartbeat=e.time)
    raise Rejected(FindingKind.INVALID_TRANSITION, "rejected after a write")


def half_written_history() -> list[ControlEvent]:
    """A history whose ``StreamStarted`` (seq 5) meets :func:`_writes_then_rejects` when
    that is patched in, with an event after it."""
    return [
        _event(LeaderElected, 1, leader_id="o"),
        _registered(2, "a", max_streams=2),
        _event(StreamRegistered, 3, stream_id="s1"),
        _event(
            StreamAssigned, 4, stream_id="s1", server_id="a", incarnation="a1", reason="new_stream"
        ),
        _event(StreamStarted, 5, stream_id="s1", server_id="a", incarnation="a1"),
        _event(StreamRegistered, 6, stream_id="s2"),
    ]


def test_a_transition_that_writes_before_rejecting_breaks_the_folder_not_the_fold() -> None:
    events = half_written_history()
    with patch.dict(TRANSITIONS, {StreamStarted: _writes_then_rejects}):
        folder = Folder()
        with pytest.raises(HalfWrittenError, match=r"StreamStarted \(seq 5\) wrote before"):
            folder.apply_all(events)
        with pytest.raises(HalfWrittenError, match="state was lost"):
            folder.state()
        with pytest.raises(HalfWrittenError, match="state was lost"):
            folder.apply_all([])
        expected = stepwise(events)  # the persistent draft drops the rejected write
        assert_same(fold(events), expected)  # fold falls back to apply, event by event
        assert_same(fold(iter(events)), expected)  # an iterator too
    assert [f.kind for f in expected.findings] == [FindingKind.INVALID_TRANSITION]
    assert expected.instances["a"].last_heartbeat == events[1].time
    assert "s2" in expected.streams


def test_a_half_writing_transition_leaves_no_trace_in_apply() -> None:
    events = [
        _event(LeaderElected, 1, leader_id="o"),
        _registered(2, "a", max_streams=2),
        _event(StreamRegistered, 3, stream_id="s1"),
        _event(
            StreamAssigned, 4, stream_id="s1", server_id="a", incarnation="a1", reason="new_stream"
        ),
    ]
    before = stepwise(events)
    started = _event(StreamStarted, 5, stream_id="s1", server_id="a", incarnation="a1")
    with patch.dict(TRANSITIONS, {StreamStarted: _writes_then_rejects}):
        after = apply(before, started)
    assert [(f.kind, f.seq, f.detail) for f in after.findings] == [
        (FindingKind.INVALID_TRANSITION, 5, "rejected after a write")
    ]
    assert (after.seq, after.last_event_time) == (5, started.time)
    assert after.instances == before.instances and after.streams == before.streams


# --- the draft's working copies -----------------------------------------------------------


@pytest.mark.parametrize(
    ("mutable", "frozen"),
    [(MutableInstance, EnhancedInstance), (MutableStream, StreamAssignment)],
)
def test_the_working_copies_have_exactly_the_fields_of_the_records(
    mutable: type, frozen: type
) -> None:
    fields = {f.name: f.type for f in dataclasses.fields(frozen)}
    assert mutable.__annotations__ == fields  # names, order and types


def _records(state: ClusterState) -> list[object]:
    return [*state.instances.values(), *state.streams.values()]


@FAST
@given(corrupted())
def test_every_state_apply_returns_holds_values_only_and_never_changes(
    history: list[ControlEvent],
) -> None:
    states, state = [], ClusterState()
    for event in history:
        state = apply(state, event)
        states.append((state, state_digest(state)))
    for state, digest in states:
        assert state_digest(state) == digest  # later events wrote nothing into it
        kinds = {type(r) for r in _records(state)}
        assert kinds <= {EnhancedInstance, StreamAssignment}, kinds


def test_a_draft_refuses_fields_the_state_does_not_have() -> None:
    state = stepwise([_event(LeaderElected, 1, leader_id="o"), _registered(2, "a", max_streams=1)])
    d = Draft(state)
    with pytest.raises(TypeError, match="not a settable ClusterState field"):
        d.set(no_such_field=1)
    with pytest.raises(TypeError, match="not a settable ClusterState field"):
        d.set(instances=None)  # the maps change through their own methods
    with pytest.raises(TypeError, match="EnhancedInstance has no field"):
        d.update_instance(d.instances["a"], no_such_field=1)
    assert Draft(state).finish() == state


def test_a_dropped_streams_working_copy_is_let_go() -> None:
    """Working copies are kept by key until the next state: a replay registers and drops
    thousands of streams, and holding on to each copy grew its memory by tens of MB."""
    events = [_event(LeaderElected, 1, leader_id="o"), _event(StreamRegistered, 2, stream_id="s1")]
    d = Draft(stepwise(events))
    d.update_stream(d.streams["s1"], priority=5)
    copy = d.streams["s1"]
    assert isinstance(copy, MutableStream) and copy.priority == 5
    gone = weakref.ref(copy)
    del copy
    d.drop_stream("s1")
    assert gone() is None
    assert "s1" not in d.finish().streams


# --- folding up to a point ------------------------------------------------------------------


@FAST
@given(histories(), st.data())
def test_fold_until_folds_exactly_the_prefix_before_the_bound(
    history: list[ControlEvent], data: st.DataObject
) -> None:
    cut = data.draw(st.integers(0, len(history)))  # generated seqs run 1..n
    done = data.draw(st.integers(0, cut))
    start, rest = stepwise(history[:done]), history[done:]
    by_seq = fold_until(start, rest, seq=cut)
    assert by_seq == (stepwise(history[:cut]), cut - done)
    if cut < len(history):
        when = history[cut].time - timedelta(microseconds=1)  # times rise strictly
        assert fold_until(start, rest, time=when) == by_seq
        assert fold_until(start, iter(rest), seq=cut, time=history[-1].time) == by_seq
    assert fold_until(start, rest) == (stepwise(history), len(rest))
