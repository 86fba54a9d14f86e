"""projections.fold.canonical.JsonMemo: a state converted with the memo of the previous one
gives exactly the form it gives without (on a whole history, converted every few events), and
reuses the records that did not change; the memo holds only the last conversion's records."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime

from projections.fold import apply
from projections.fold.canonical import JsonMemo, state_dumps, state_to_jsonable
from projections.fold.snapshots import (
    decode_snapshot,
    encode_snapshot,
    make_snapshot,
    restore_state,
)
from projections.fold.state import ClusterState
from projections.testing.synthetic import generate_history

_T0 = datetime(2026, 3, 1, 12, tzinfo=UTC)


def _states(n: int, every: int) -> list[ClusterState]:
    state, out = ClusterState(), []
    for i, event in enumerate(generate_history(n, seed=11, instances=12, streams=60)):
        state = apply(state, event)
        if i % every == 0:
            out.append(state)
    return out


def test_a_memo_changes_nothing_in_the_form() -> None:
    memo = JsonMemo()
    for state in _states(1500, 37):
        assert state_to_jsonable(state, memo) == state_to_jsonable(state)


def test_unchanged_records_are_reused_and_only_the_last_conversion_is_held() -> None:
    state = _states(600, 599)[-1]
    memo = JsonMemo()
    state_to_jsonable(state, memo)
    assert memo.hits == 0
    held = len(memo._last)
    stream_id = next(iter(state.streams))
    changed = dataclasses.replace(
        state,
        streams=state.streams.set(stream_id, dataclasses.replace(state.streams[stream_id])),
    )
    assert state_to_jsonable(changed, memo) == state_to_jsonable(changed)
    # every record but the replaced stream and the states holding it is reused
    assert memo.hits >= len(state.streams) - 1
    assert len(memo._last) <= held + 1


def test_a_snapshot_made_with_a_memo_is_the_same_snapshot() -> None:
    memo = JsonMemo()
    for state in _states(900, 300):
        with_memo = make_snapshot(state, log_offset=state.seq, taken_at=_T0, memo=memo)
        plain = make_snapshot(state, log_offset=state.seq, taken_at=_T0)
        assert with_memo == plain
        assert encode_snapshot(with_memo) == encode_snapshot(plain)
        decoded = decode_snapshot(encode_snapshot(with_memo))
        assert state_dumps(restore_state(decoded)) == state_dumps(state)
