"""Canonical JSON of a ClusterState: order-independent, digestible, exactly invertible."""

from __future__ import annotations

import json
from dataclasses import replace

import immutables
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from projections.fold import fold
from projections.fold.canonical import (
    state_digest,
    state_dumps,
    state_from_jsonable,
    state_to_jsonable,
)
from projections.fold.state import ClusterState, EnhancedInstance
from projections.testing.synthetic import generate_history


@settings(max_examples=30, deadline=None)
@given(st.integers(0, 1500), st.integers(0, 2**32 - 1))
def test_round_trip_is_exact(n: int, seed: int) -> None:
    state = fold(generate_history(n, seed=seed, instances=4, streams=30))
    data = state_to_jsonable(state)
    back = state_from_jsonable(json.loads(json.dumps(data)))  # through real JSON text
    assert back == state
    assert state_digest(back) == state_digest(state)
    assert state_dumps(back) == state_dumps(state)


def test_empty_state_round_trips() -> None:
    assert state_from_jsonable(state_to_jsonable(ClusterState())) == ClusterState()


def test_map_insertion_order_does_not_matter() -> None:
    a = EnhancedInstance(server_id="a", incarnation="a.1", ip="10.0.0.1", port=1, max_streams=1)
    b = replace(a, server_id="b", incarnation="b.1")
    one = ClusterState(instances=immutables.Map({"a": a, "b": b}))
    two = ClusterState(instances=immutables.Map({"b": b, "a": a}))
    assert state_dumps(one) == state_dumps(two)
    assert state_digest(one) == state_digest(two)
    assert list(state_to_jsonable(one)["instances"]) == ["a", "b"]


def test_digest_tells_states_apart() -> None:
    state = fold(generate_history(300, seed=1))
    assert state_digest(state) != state_digest(replace(state, maintenance=not state.maintenance))
    assert len(state_digest(state)) == 64


def test_canonical_values() -> None:
    state = fold(generate_history(400, seed=6))
    data = state_to_jsonable(state)
    assert data["last_event_time"] == state.last_event_time.isoformat()  # type: ignore[union-attr]
    instance = next(iter(data["instances"].values()))
    assert instance["status"] in {"active", "suspected", "quarantined", "failed", "left"}
    assert isinstance(instance["performance_metrics"], dict)
    assert list(data["recent_ids"]) == sorted(data["recent_ids"], key=int)
    json.dumps(data)  # plain JSON: no datetimes, enums or maps left


def test_unknown_fields_are_refused() -> None:
    data = state_to_jsonable(ClusterState())
    data["surprise"] = 1
    with pytest.raises(ValueError, match="surprise"):
        state_from_jsonable(data)
