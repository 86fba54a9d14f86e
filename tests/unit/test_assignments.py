"""projections.fold.assignments: the changed keys and the record values, checked against a full
comparison of the states on generated histories."""

from __future__ import annotations

from datetime import UTC, datetime

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from events import control as ev
from projections.fold import apply, fold
from projections.fold.assignments import (
    RESYNC_REASON,
    Update,
    assignment_updates,
    assignment_value,
    changes,
    event_reason,
    instance_value,
    iso,
    resync_assignments,
    resync_instances,
    same_assignment,
    same_instance,
)
from projections.fold.state import ClusterState, StreamAssignment
from projections.testing.synthetic import generate_history

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def _full_diff(before: dict[str, object], after: dict[str, object]) -> tuple[str, ...]:
    keys = set(before) | set(after)
    return tuple(sorted(k for k in keys if before.get(k) is not after.get(k)))


@settings(max_examples=15, deadline=None)
@given(seed=st.integers(0, 10_000), instances=st.integers(1, 12), streams=st.integers(1, 60))
def test_changes_equal_a_full_comparison_on_every_event(
    seed: int, instances: int, streams: int
) -> None:
    history = generate_history(600, seed=seed, instances=instances, streams=streams)
    state = ClusterState()
    for event in history:
        after = apply(state, event)
        got = changes(state, after, event)
        assert got.streams == _full_diff(dict(state.streams), dict(after.streams)), event
        assert got.instances == _full_diff(dict(state.instances), dict(after.instances)), event
        state = after


def test_a_duplicate_changes_nothing() -> None:
    history = generate_history(200, seed=3)
    state = fold(history)
    again = apply(state, history[-1])
    assert again is state
    assert changes(state, again, history[-1]) == ((), ())


def test_assignment_records_follow_the_shape_and_tombstone_deregistered_streams() -> None:
    history = generate_history(3000, seed=11)
    state = ClusterState()
    seen_tombstone = seen_migration = False
    for event in history:
        after = apply(state, event)
        for update in assignment_updates(after, event, changes(state, after, event).streams):
            if update.value is None:
                assert update.key not in after.streams
                seen_tombstone = True
                continue
            value = update.value
            assert list(value) == [
                "stream_id",
                "server_id",
                "incarnation",
                "status",
                "migration",
                "reason",
                "assigned_at",
                "as_of_seq",
                "epoch",
                "time",
            ]
            stream = after.streams[update.key]
            assert value["stream_id"] == update.key
            assert value["server_id"] == stream.server_id
            assert value["status"] == stream.status.value
            assert value["as_of_seq"] == event.seq and value["epoch"] == after.epoch
            assert value["reason"] == event_reason(event)
            assert orjson.loads(orjson.dumps(value)) == value  # plain JSON
            if stream.migration_state is not None:
                seen_migration = True
                assert value["migration"]["to_server"] == stream.migration_state.to_server
        state = after
    assert seen_tombstone and seen_migration


def test_event_reason_uses_the_field_or_the_type_name() -> None:
    started = ev.StreamStarted(
        id="e1", source="t", time=T0, seq=2, epoch=1, stream_id="s", server_id="w",
        incarnation="w.1",
    )  # fmt: skip
    assert event_reason(started) == "stream_started"
    unassigned = ev.StreamUnassigned(
        id="e2", source="t", time=T0, seq=3, epoch=1, stream_id="s", reason="no_capacity"
    )
    assert event_reason(unassigned) == "no_capacity"


def test_iso_writes_utc_with_z() -> None:
    assert iso(datetime(2026, 1, 2, 3, 4, 5, 6000, tzinfo=UTC)) == "2026-01-02T03:04:05.006000Z"
    assert iso(None) is None


def test_same_assignment_ignores_when_and_why() -> None:
    stream = StreamAssignment("s1", server_id="w1", incarnation="w1.a")
    a = assignment_value(stream, seq=5, epoch=1, time=T0, reason="rebalance")
    b = assignment_value(stream, seq=9, epoch=2, time=None, reason="other")
    assert same_assignment(a, b)
    moved = assignment_value(
        StreamAssignment("s1", server_id="w2"), seq=9, epoch=2, time=T0, reason="x"
    )
    assert not same_assignment(a, moved)
    assert same_assignment(None, None) and not same_assignment(a, None)


def test_resync_publishes_only_differences_and_tombstones() -> None:
    state = fold(generate_history(1500, seed=5))
    assert len(state.streams) > 3
    published = {
        sid: assignment_value(s, seq=1, epoch=1, time=T0, reason="old")
        for sid, s in state.streams.items()
    }
    assert resync_assignments(state, published) == []
    first = sorted(state.streams)[0]
    published[first] = {**published[first], "server_id": "somewhere-else"}
    published["ghost"] = {"stream_id": "ghost"}
    updates = resync_assignments(state, published)
    assert [u.key for u in updates] == [first, "ghost"]
    assert updates[0].value is not None and updates[0].value["reason"] == RESYNC_REASON
    assert updates[0].value["as_of_seq"] == state.seq
    assert updates[1] == Update("ghost", None)


def test_instance_values_and_resync() -> None:
    state = fold(generate_history(1500, seed=5))
    values = {k: instance_value(i, seq=1) for k, i in state.instances.items()}
    assert resync_instances(state, values) == []
    some = sorted(values)[0]
    inst = state.instances[some]
    assert values[some]["max_streams"] == inst.max_streams
    assert values[some]["status"] == inst.status.value
    assert values[some]["load_factor"] == pytest.approx(inst.calculate_load_factor())
    assert same_instance(values[some], instance_value(inst, seq=99))
    values[some] = {**values[some], "load": -1}
    assert [u.key for u in resync_instances(state, values)] == [some]
