"""The replay's batch step (``projections.replay._Run.fold_batch``) without Kafka: clean
chunks fold whole, a bad record anywhere (first chunk or a later one) is dead-lettered at its
own offset and the rest still folds, ``stop`` and ``until`` cut where they must."""

from __future__ import annotations

from datetime import UTC, datetime
from functools import reduce

import pytest

from events.codec import encode
from projections.fold import apply
from projections.prefetch import Columns
from projections.replay import DECODE_CHUNK, _Run
from projections.state import ClusterState
from projections.synthetic import generate_history

NOW = datetime(2026, 11, 28, tzinfo=UTC)


def _columns(values: list[bytes | None], first: int = 0) -> Columns:
    offsets = list(range(first, first + len(values)))
    return Columns(first + len(values), offsets, [0] * len(values), [b"k"] * len(values), values)


def _run() -> _Run:
    return _Run("t.events", 0, ClusterState(), lambda: NOW)


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
