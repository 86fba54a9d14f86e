"""Snapshots (pure part): fold_from(snapshot, tail) == fold(log) wherever the log is cut,
the wire form round-trips, and a damaged or foreign snapshot is refused, never used."""

from __future__ import annotations

import hashlib
import zlib
from datetime import UTC, datetime, timedelta

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from control_plane.orchestrator.snapshotter import (
    SnapshotMark,
    SnapshotPolicy,
    snapshot_due,
    start_point,
)
from events import ControlEvent
from projections.fold import fold, fold_from
from projections.fold.canonical import state_digest, state_to_jsonable
from projections.fold.snapshots import (
    SNAPSHOT_FORMAT,
    InvalidSnapshotError,
    Snapshot,
    UnsupportedSnapshotFormatError,
    decode_snapshot,
    encode_snapshot,
    make_snapshot,
    restore_state,
)
from projections.fold.state import ClusterState
from projections.testing.synthetic import generate_history

T0 = datetime(2026, 3, 1, 12, tzinfo=UTC)


@st.composite
def histories(draw: st.DrawFn) -> list[ControlEvent]:
    return generate_history(
        draw(st.integers(1, 600)),
        seed=draw(st.integers(0, 2**32 - 1)),
        instances=draw(st.integers(1, 8)),
        streams=draw(st.integers(0, 40)),
    )


def _through_the_wire(state: ClusterState, log_offset: int) -> ClusterState:
    snapshot = make_snapshot(state, log_offset=log_offset, taken_at=T0, taken_by="orch-a")
    decoded = decode_snapshot(encode_snapshot(snapshot))
    assert decoded == snapshot
    return restore_state(decoded)


@settings(max_examples=40, deadline=None)
@given(history=histories(), cut=st.floats(0, 1))
def test_fold_from_a_snapshot_equals_the_fold_of_the_whole_log(
    history: list[ControlEvent], cut: float
) -> None:
    k = int(cut * len(history))
    restored = _through_the_wire(fold(history[:k]), log_offset=k)
    whole = fold(history)
    resumed = fold_from(restored, history[k:])
    assert resumed == whole
    assert state_digest(resumed) == state_digest(whole)


def test_a_big_history_cut_in_the_middle() -> None:
    history = generate_history(20_000, seed=11, instances=40, streams=600)
    restored = _through_the_wire(fold(history[:12_345]), log_offset=12_345)
    assert fold_from(restored, history[12_345:]) == fold(history)


def test_snapshot_fields_describe_the_state() -> None:
    history = generate_history(3000, seed=4)
    state = fold(history)
    snapshot = make_snapshot(state, log_offset=3007, taken_at=T0)
    assert (snapshot.seq, snapshot.epoch, snapshot.log_offset) == (state.seq, state.epoch, 3007)
    assert snapshot.digest == state_digest(state)
    assert snapshot.format == SNAPSHOT_FORMAT
    assert snapshot.state == state_to_jsonable(state)
    assert restore_state(snapshot) == state


def test_the_empty_state_round_trips() -> None:
    assert _through_the_wire(ClusterState(), 0) == ClusterState()


# --- refusals ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def snapshot() -> Snapshot:
    return make_snapshot(fold(generate_history(800, seed=2)), log_offset=805, taken_at=T0)


def _raw(snapshot: Snapshot, **changes: object) -> bytes:
    obj = snapshot.model_dump(mode="json") | changes
    return zlib.compress(orjson.dumps(obj))


def test_a_flipped_byte_is_refused(snapshot: Snapshot) -> None:
    data = bytearray(encode_snapshot(snapshot))
    data[len(data) // 2] ^= 0xFF
    with pytest.raises(InvalidSnapshotError):
        decode_snapshot(bytes(data))


def test_a_state_that_does_not_match_its_digest_is_refused(snapshot: Snapshot) -> None:
    tampered = dict(snapshot.state, maintenance=not snapshot.state["maintenance"])
    with pytest.raises(InvalidSnapshotError, match="digest"):
        decode_snapshot(_raw(snapshot, state=tampered))


def test_a_digest_that_does_not_match_is_refused(snapshot: Snapshot) -> None:
    with pytest.raises(InvalidSnapshotError, match="digest"):
        decode_snapshot(_raw(snapshot, digest="0" * 64))


def test_an_unknown_format_is_refused(snapshot: Snapshot) -> None:
    with pytest.raises(UnsupportedSnapshotFormatError, match="format 2"):
        decode_snapshot(_raw(snapshot, format=SNAPSHOT_FORMAT + 1))


def test_seq_must_match_the_state(snapshot: Snapshot) -> None:
    with pytest.raises(InvalidSnapshotError, match="seq"):
        decode_snapshot(_raw(snapshot, seq=snapshot.seq + 1))


@pytest.mark.parametrize(
    "raw", [b"", b"not zlib", zlib.compress(b"[1, 2]"), zlib.compress(b"{not json")]
)
def test_garbage_is_refused(raw: bytes) -> None:
    with pytest.raises(InvalidSnapshotError):
        decode_snapshot(raw)


def test_a_missing_field_is_refused(snapshot: Snapshot) -> None:
    obj = snapshot.model_dump(mode="json")
    del obj["log_offset"]
    with pytest.raises(InvalidSnapshotError, match="log_offset"):
        decode_snapshot(zlib.compress(orjson.dumps(obj)))


def test_a_state_this_build_cannot_rebuild_is_refused(snapshot: Snapshot) -> None:
    # as if written by a build with another ClusterState field: digest consistent, yet foreign
    state = dict(snapshot.state, future_field=1)
    foreign = Snapshot.model_validate(
        snapshot.model_dump() | {"state": state, "digest": _digest(state)}
    )
    decoded = decode_snapshot(encode_snapshot(foreign))  # the bytes themselves are intact
    with pytest.raises(InvalidSnapshotError, match="cannot be rebuilt"):
        restore_state(decoded)


def test_a_state_missing_a_field_of_this_build_is_refused(snapshot: Snapshot) -> None:
    # an older build's snapshot without a field: the default would be a guess, so refuse
    state = dict(snapshot.state)
    del state["divergences_found"]
    older = Snapshot.model_validate(
        snapshot.model_dump() | {"state": state, "digest": _digest(state)}
    )
    with pytest.raises(InvalidSnapshotError, match="differs"):
        restore_state(decode_snapshot(encode_snapshot(older)))


def _digest(state: dict[str, object]) -> str:
    return hashlib.sha256(orjson.dumps(state, option=orjson.OPT_SORT_KEYS)).hexdigest()


# --- where a standby starts --------------------------------------------------------------


def test_start_point_uses_a_valid_snapshot_inside_the_log(snapshot: Snapshot) -> None:
    point = start_point(snapshot, begin=0, end=900)
    assert point.offset == 805 and point.snapshot == snapshot
    assert state_digest(point.state) == snapshot.digest


@pytest.mark.parametrize(("begin", "end"), [(0, 800), (806, 2000)])
def test_start_point_ignores_a_snapshot_outside_the_log(
    snapshot: Snapshot, begin: int, end: int
) -> None:
    assert start_point(snapshot, begin=begin, end=end) == (ClusterState(), None, None)


def test_start_point_ignores_an_unrebuildable_snapshot(snapshot: Snapshot) -> None:
    state = dict(snapshot.state, future_field=1)
    foreign = Snapshot.model_validate(
        snapshot.model_dump() | {"state": state, "digest": _digest(state)}
    )
    assert start_point(foreign, begin=0, end=900) == (ClusterState(), None, None)


def test_start_point_without_a_snapshot_is_the_beginning() -> None:
    assert start_point(None, begin=0, end=10) == (ClusterState(), None, None)


# --- the policy --------------------------------------------------------------------------

POLICY = SnapshotPolicy(every_events=100, interval=timedelta(seconds=60))


@pytest.mark.parametrize(
    ("seq", "after", "due"),
    [
        (150, 1, False),  # 50 events, 1 s: not yet
        (250, 1, True),  # 150 events since the last one
        (200, 1, True),  # exactly every_events
        (151, 61, True),  # the interval passed and events arrived
        (150, 3600, True),
        (50, 3600, False),  # nothing new (seq not beyond the mark): never
        (50, 1, False),
    ],
)
def test_snapshot_due(seq: int, after: int, due: bool) -> None:
    last = SnapshotMark(seq=100 if seq != 50 else 50, at=T0)
    assert snapshot_due(POLICY, last, seq=seq, now=T0 + timedelta(seconds=after)) is due
