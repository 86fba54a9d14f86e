"""The replay's batch step (``projections.io.replay_batch.Run.fold_batch``) without Kafka: clean
chunks fold whole, a bad record anywhere (first chunk or a later one) is dead-lettered at its
own offset and the rest still folds, ``stop`` and ``until`` cut where they must; the same for
batches the reader process packed (only the chunk holding a bad record goes over raw)."""

from __future__ import annotations

from datetime import UTC, datetime
from functools import reduce

import pytest

from events.codec import encode
from projections.fold import apply
from projections.fold.state import ClusterState
from projections.io.prefetch import pack_chunks
from projections.io.replay_batch import DECODE_CHUNK, Columns, Run
from projections.testing.synthetic import generate_history

NOW = datetime(2026, 11, 28, tzinfo=UTC)


def _columns(values: list[bytes | None], first: int = 0) -> Columns:
    offsets = list(range(first, first + len(values)))
    return Columns(first + len(values), offsets, [0] * len(values), [b"k"] * len(values), values)


def _run() -> Run:
    return Run("t.events", 0, ClusterState(), lambda: NOW)


@pytest.mark.parametrize("bad_at", [None, 0, 5, DECODE_CHUNK - 1, DECODE_CHUNK + 7, 699])
def test_bad_records_anywhere_are_dead_lettered_and_the_rest_folds(bad_at: int | None) -> None:
    history = generate_history(700, seed=5)
    values: list[bytes | None] = [encode(e) for e in history]
    good = list(history)
    if bad_at is not None:
        values.insert(bad_at, b'{"not": "an event"}')
    run = _run()
    letters, ended = run.fold_batch(_columns(values), stop=10**9, until=None)
    assert ended is None
    assert [letter.origin_offset for letter in letters] == ([] if bad_at is None else [bad_at])
    assert run.events == len(good) and run.rejected == len(letters)
    assert run.state == reduce(apply, good, ClusterState())


def test_a_tombstone_is_a_dead_letter() -> None:
    history = generate_history(40, seed=6)
    values: list[bytes | None] = [encode(e) for e in history]
    values.insert(10, None)
    run = _run()
    letters, _ = run.fold_batch(_columns(values), stop=10**9, until=None)
    assert [(x.origin_offset, x.error_type) for x in letters] == [(10, "MalformedMessageError")]
    assert run.state == reduce(apply, history, ClusterState())


def test_stop_and_until_cut_the_batch() -> None:
    history = generate_history(600, seed=8)
    values: list[bytes | None] = [encode(e) for e in history]
    run = _run()
    letters, ended = run.fold_batch(_columns(values, first=100), stop=100 + 300, until=None)
    assert (letters, ended, run.events) == ([], None, 300)
    assert run.state == reduce(apply, history[:300], ClusterState())

    until = history[449].time
    run = _run()
    letters, ended = run.fold_batch(_columns(values), stop=10**9, until=until)
    later = next(i for i, e in enumerate(history) if e.time > until)
    assert ended == later
    assert run.state == reduce(apply, history[:later], ClusterState())


def test_decode_events_fast_is_all_or_nothing() -> None:
    from events.codec import decode_event, decode_events_fast

    history = generate_history(300, seed=9)
    values = [encode(e) for e in history]
    assert decode_events_fast(values) == [decode_event(v) for v in values] == history
    unusual = [*values[:5], values[5].replace(b'"epoch":1', b'"epoch":"1"'), *values[6:10]]
    assert decode_events_fast(unusual) is None  # the full decode takes it (lax int)
    assert decode_event(unusual[5]) == history[5]
    assert decode_events_fast([*values[:3], b"{}"]) is None


# --- batches the reader process packed (events._fast.handover) -----------------------------------


def _packed(values: list[bytes | None], first: int = 0) -> Columns:
    """A batch as the reader sends it with ``pack_chunk``: keys and timestamps only when a
    chunk had to go raw."""
    chunks = pack_chunks(values, DECODE_CHUNK)
    raw = not all(isinstance(chunk, bytes) for chunk in chunks)
    offsets = list(range(first, first + len(values)))
    stamps, keys = ([0] * len(values), [b"k"] * len(values)) if raw else ([], [])
    return Columns(first + len(values), offsets, stamps, keys, [], chunks)


def test_a_packed_batch_folds_like_the_raw_one() -> None:
    history = generate_history(3 * DECODE_CHUNK + 17, seed=11)
    values: list[bytes | None] = [encode(e) for e in history]
    batch = _packed(values)
    assert all(isinstance(chunk, bytes) for chunk in batch.chunks) and not batch.keys
    run = _run()
    assert run.fold_batch(batch, stop=10**9, until=None) == ([], None)
    assert (run.events, run.prechecked) == (len(history), len(history))
    assert run.state == reduce(apply, history, ClusterState())


@pytest.mark.parametrize("bad_at", [0, DECODE_CHUNK + 7, 2 * DECODE_CHUNK + 3])
def test_a_bad_record_sends_its_chunk_raw_and_only_it_is_dead_lettered(bad_at: int) -> None:
    history = generate_history(3 * DECODE_CHUNK, seed=12)
    values: list[bytes | None] = [encode(e) for e in history]
    values.insert(bad_at, None if bad_at == 0 else b'{"not": "an event"}')
    batch = _packed(values)
    raw = [i for i, chunk in enumerate(batch.chunks) if not isinstance(chunk, bytes)]
    assert raw == [bad_at // DECODE_CHUNK]
    run = _run()
    letters, ended = run.fold_batch(batch, stop=10**9, until=None)
    assert ended is None
    assert [letter.origin_offset for letter in letters] == [bad_at]
    assert letters[0].key == "k" and letters[0].origin_timestamp_ms == 0
    assert run.prechecked == len(values) - DECODE_CHUNK
    assert (run.events, run.rejected) == (len(history), 1)
    assert run.state == reduce(apply, history, ClusterState())


def test_stop_and_until_cut_a_packed_batch_inside_a_chunk() -> None:
    history = generate_history(2 * DECODE_CHUNK + 50, seed=13)
    values: list[bytes | None] = [encode(e) for e in history]
    run = _run()
    stop = 100 + DECODE_CHUNK + 30
    assert run.fold_batch(_packed(values, first=100), stop=stop, until=None) == ([], None)
    assert run.events == run.prechecked == DECODE_CHUNK + 30
    assert run.state == reduce(apply, history[: DECODE_CHUNK + 30], ClusterState())

    until = history[DECODE_CHUNK + 60].time
    later = next(i for i, e in enumerate(history) if e.time > until)
    run = _run()
    letters, ended = run.fold_batch(_packed(values, first=100), stop=10**9, until=until)
    assert (letters, ended, run.events, run.prechecked) == ([], 100 + later, later, later)
    assert run.state == reduce(apply, history[:later], ClusterState())
