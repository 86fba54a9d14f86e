"""What an event changed, known from its writes: :func:`projections.fold.apply_tracked` and the
read model's :func:`projections.fold.rows.fold_batch` (one ``TrackingDraft`` per batch) agree
with folding a persistent state per event and comparing the two states, on valid and
corrupted histories cut into batches anywhere, and fall back when a transition breaks its
rule."""

from __future__ import annotations

from typing import Any
from unittest.mock import patch

from hypothesis import given, settings
from hypothesis import strategies as st

from events import ControlEvent
from events.control import StreamStarted
from projections.fold import apply, apply_tracked
from projections.fold.assignments import changes, event_reason
from projections.fold.rows import BatchOutcome, event_row, fold_batch, fold_batch_stepwise
from projections.fold.state import ClusterState
from projections.fold.transitions import TRANSITIONS
from tests.unit.test_fold_in_place import (
    _writes_then_rejects,
    assert_same,
    corrupted,
    half_written_history,
    histories,
)

MANY = settings(max_examples=150, deadline=None, database=None)


def _full_diff(before: Any, after: Any) -> tuple[str, ...]:
    keys = set(before) | set(after)
    return tuple(sorted(k for k in keys if before.get(k) is not after.get(k)))


@MANY
@given(corrupted())
def test_apply_tracked_is_apply_and_names_exactly_what_changed(
    history: list[ControlEvent],
) -> None:
    state = ClusterState()
    for event in history:
        after, changed = apply_tracked(state, event)
        assert_same(after, apply(state, event))
        assert changed.streams == _full_diff(state.streams, after.streams), event
        assert changed.instances == _full_diff(state.instances, after.instances), event
        assert changed == changes(state, after, event)
        state = after


def _reference(state: ClusterState, records: list[tuple[int, ControlEvent]]) -> BatchOutcome:
    """The read model's batch as it was first written: ``apply`` per event and the changed
    keys by comparing states (:func:`changes`)."""
    out = BatchOutcome(state, {}, set(), [], [], [])
    for offset, event in records:
        before, state = state, apply(state, event)
        finding = None
        if state.finding_count != before.finding_count:
            finding = state.findings[-1].kind.value
        out.events.append(event_row(offset, event, finding))
        changed = changes(before, state, event)
        out.instances.update(changed.instances)
        for sid in changed.streams:
            out.streams[sid] = (event_reason(event), event.seq)
            old, new = before.in_flight.get(sid), state.in_flight.get(sid)
            if old == new:
                continue
            if old is not None:
                outcome = {"MigrationCompleted": "completed", "MigrationAborted": "aborted"}
                how = outcome.get(type(event).__name__, "cancelled")
                out.migrations_ended.append((old, how, event_reason(event), event.time, event.seq))
            if new is not None:
                m = state.streams[sid].migration_state
                assert m is not None
                out.migrations_started.append(
                    (m.migration_id, sid, m.from_server, m.to_server, m.reason, m.plan_id,
                     m.started_at, m.deadline, event.seq)
                )  # fmt: skip
    return out._replace(state=state)


def _same(a: BatchOutcome, b: BatchOutcome) -> None:
    assert_same(a.state, b.state)
    assert a._replace(state=None) == b._replace(state=None)


@MANY
@given(st.one_of(corrupted(), histories()), st.data())
def test_fold_batch_gives_the_rows_of_a_state_per_event_for_any_cut_into_batches(
    history: list[ControlEvent], data: st.DataObject
) -> None:
    records = list(enumerate(history))
    cuts = sorted(data.draw(st.lists(st.integers(0, len(records)), max_size=4)))
    state = ClusterState()
    for start, end in zip([0, *cuts], [*cuts, len(records)], strict=True):
        batch = records[start:end]
        got = fold_batch(state, batch)
        _same(got, _reference(state, batch))
        _same(got, fold_batch_stepwise(state, batch))
        state = got.state


@MANY
@given(histories())
def test_every_migration_of_a_valid_history_has_its_rows(history: list[ControlEvent]) -> None:
    rows = fold_batch(ClusterState(), list(enumerate(history)))
    assert rows.state.finding_count == 0
    kinds = [type(e).__name__ for e in history]
    assert len(rows.migrations_started) == kinds.count("MigrationStarted")
    ended = {row[1] for row in rows.migrations_ended}
    assert sum(row[1] == "completed" for row in rows.migrations_ended) == kinds.count(
        "MigrationCompleted"
    )
    assert ended <= {"completed", "aborted", "cancelled"}


def test_a_half_writing_transition_folds_the_batch_again_event_by_event() -> None:
    events = half_written_history()
    records = list(enumerate(events))
    with patch.dict(TRANSITIONS, {StreamStarted: _writes_then_rejects}):
        got = fold_batch(ClusterState(), records)
        _same(got, _reference(ClusterState(), records))
    assert [row[10] for row in got.events] == [None] * 4 + ["invalid_transition", None]
    assert set(got.streams) == {"s1", "s2"}
    assert got.state.instances["a"].last_heartbeat == events[1].time  # the write was dropped
