"""The fold's fast ``replace`` must behave exactly like ``dataclasses.replace``."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime

import pytest

from projections.fold import fold
from projections.fold import state as st
from projections.testing.synthetic import generate_history

T = datetime(2026, 1, 1, tzinfo=UTC)


def _pairs() -> list[tuple[object, object]]:
    """Two different values of every state class: the second lends fields to the first."""
    a = fold(generate_history(400, seed=3, instances=4, streams=20))
    b = fold(generate_history(300, seed=8, instances=3, streams=12))
    ia, ib = list(a.instances.values()), list(b.instances.values())
    sa, sb = list(a.streams.values()), list(b.streams.values())
    return [
        (a, b),
        (st.ClusterState(), a),
        (ia[0], ib[1]),
        (sa[0], sb[1]),
        (
            st.MigrationState("m", "a", "b", "i", T, T, "rebalance"),
            st.MigrationState("n", "c", "d", "j", T, T, "drain", "p"),
        ),
        (
            st.Finding(1, st.FindingKind.SEQ_GAP, "e1", "StreamAssigned", "gap"),
            st.Finding(2, st.FindingKind.STALE_EPOCH, "e2", "LeaderElected", "old"),
        ),
    ]


@pytest.mark.parametrize("pair", _pairs(), ids=lambda p: type(p[0]).__name__)
def test_fast_replace_equals_dataclasses_replace(pair: tuple[object, object]) -> None:
    base, donor = pair
    names = [f.name for f in dataclasses.fields(base)]  # type: ignore[arg-type]
    for chosen in (names[::2], names[1::2], names):
        changes = {n: getattr(donor, n) for n in chosen}
        expected = dataclasses.replace(base, **changes)  # type: ignore[type-var]
        assert st.replace(base, **changes) == expected  # type: ignore[type-var]
        assert st.replacer(type(base))(base, **changes) == expected
    assert st.replace(base) == base  # type: ignore[type-var]
    assert st.replace(base, **{n: getattr(donor, n) for n in names}) == donor  # type: ignore[type-var]


def test_fast_replace_changes_only_the_named_fields() -> None:
    inst = next(iter(fold(generate_history(200, seed=1, instances=2)).instances.values()))
    moved = st.replace(inst, load=inst.load + 1, draining=not inst.draining)
    assert moved.load == inst.load + 1 and moved.draining is not inst.draining
    assert dataclasses.replace(moved, load=inst.load, draining=inst.draining) == inst


def test_fast_replace_rejects_an_unknown_field() -> None:
    with pytest.raises(TypeError):
        st.replace(st.ClusterState(), no_such_field=1)  # type: ignore[call-arg]


@pytest.mark.parametrize("pair", _pairs()[:4], ids=lambda p: type(p[0]).__name__)
def test_builder_makes_the_value_the_constructor_makes(pair: tuple[object, object]) -> None:
    value = pair[0]
    fields = {f.name: getattr(value, f.name) for f in dataclasses.fields(value)}  # type: ignore[arg-type]
    built = st.builder(type(value))(dict(fields))
    assert type(built) is type(value) and built == type(value)(**fields) == value
    with pytest.raises(TypeError, match="fields"):
        st.builder(type(value))({**fields, "no_such_field": 1})


def test_builder_refuses_a_slotted_class() -> None:
    with pytest.raises(TypeError, match="slotted"):
        st.builder(st.Finding)
