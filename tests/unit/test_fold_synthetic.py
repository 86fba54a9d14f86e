"""The synthetic history generator: deterministic, well-formed, and never breaks a rule."""

from __future__ import annotations

import itertools
from collections import Counter
from datetime import UTC, datetime

import pytest

from events import ControlEvent, decode_event, encode
from events.control import CONTROL_EVENT_TYPES, LeaderElected
from projections.fold import apply, fold
from projections.fold.state import ClusterState
from projections.testing.synthetic import generate_history, iter_history


def test_same_arguments_give_the_same_history() -> None:
    a = generate_history(3000, seed=5)
    b = generate_history(3000, seed=5)
    assert [encode(e) for e in a] == [encode(e) for e in b]


def test_different_seeds_give_different_histories() -> None:
    a = generate_history(500, seed=1)
    b = generate_history(500, seed=2)
    assert [encode(e) for e in a] != [encode(e) for e in b]


def test_a_shorter_history_is_a_prefix_of_a_longer_one() -> None:
    assert generate_history(700, seed=3) == generate_history(1500, seed=3)[:700]
    assert list(iter_history(700, seed=3)) == generate_history(700, seed=3)


def test_history_shape() -> None:
    start = datetime(2030, 5, 1, 12, tzinfo=UTC)
    history = generate_history(5000, seed=9, start=start)
    assert len(history) == 5000
    first = history[0]
    assert isinstance(first, LeaderElected) and first.epoch == 1 and first.seq == 1
    assert [e.seq for e in history] == list(range(1, 5001))
    assert len({e.id for e in history}) == 5000
    assert first.time > start
    assert all(a.time < b.time for a, b in itertools.pairwise(history))
    epochs = [e.epoch for e in history]
    assert epochs == sorted(epochs)
    assert all(
        isinstance(e, LeaderElected) for a, e in itertools.pairwise(history) if e.epoch != a.epoch
    )


def test_zero_events() -> None:
    assert generate_history(0) == []


@pytest.mark.parametrize("seed", range(24))
def test_every_prefix_of_a_generated_history_folds_without_findings(seed: int) -> None:
    # small clusters run out of capacity often; big ones churn more: vary both
    instances, streams = [(10, 100), (2, 15), (5, 80), (30, 60)][seed % 4]
    state = ClusterState()
    for event in iter_history(2000, seed=seed, instances=instances, streams=streams):
        state = apply(state, event)
        assert state.finding_count == 0, state.findings
    assert state.seq == 2000


def test_a_long_history_uses_every_control_event_type() -> None:
    history = generate_history(10_000, seed=0)
    counts = Counter(type(e) for e in history)
    missing = [t.__name__ for t in CONTROL_EVENT_TYPES if counts[t] == 0]
    assert missing == []
    assert fold(history).finding_count == 0


def test_generated_events_survive_the_codec() -> None:
    history: list[ControlEvent] = generate_history(4000, seed=11)
    decoded = [decode_event(encode(e)) for e in history]
    assert decoded == history
    assert fold(decoded) == fold(history)


def test_a_generated_cluster_reaches_its_target_size() -> None:
    state = fold(generate_history(6000, seed=4, instances=8, streams=60))
    live = [i for i in state.instances.values() if i.status.value not in ("failed", "left")]
    assert 4 <= len(live) <= 12
    assert 30 <= len(state.streams) <= 80
    assert sum(1 for s in state.streams.values() if s.server_id is not None) >= 30
