"""What the fold's property tests share: generated histories, and the invariants every
state of a valid history keeps (``test_fold_properties.py``, ``test_fold_rejections.py``)."""

from __future__ import annotations

from dataclasses import replace

from hypothesis import settings
from hypothesis import strategies as st

from events import ControlEvent
from projections.fold.state import AssignmentStatus, ClusterState
from projections.testing.synthetic import generate_history

# no example database: stored examples go stale whenever the generator changes, and a
# stale one replays as "inconsistent data generation" instead of being dropped
FAST = settings(max_examples=50, deadline=None, database=None)
FEW = settings(max_examples=15, deadline=None, database=None)


@st.composite
def histories(draw: st.DrawFn, min_size: int = 1, max_size: int = 400) -> list[ControlEvent]:
    """A valid generated history of varied length, cluster size and seed."""
    return generate_history(
        draw(st.integers(min_size, max_size)),
        seed=draw(st.integers(0, 2**32 - 1)),
        instances=draw(st.integers(1, 8)),
        streams=draw(st.integers(0, 40)),
    )


def content(state: ClusterState) -> ClusterState:
    """``state`` without findings: what a rejected or ignored event must leave untouched."""
    return replace(state, findings=(), finding_count=0)


def assert_invariants(state: ClusterState) -> None:
    """DESIGN.md invariants 5 (one owner, capacity) and the fold's own indexes."""
    expected_load: dict[str, int] = {}
    expected_owned: dict[str, int] = {}
    expected_held: dict[str, set[str]] = {}
    for sid, s in state.streams.items():
        assert sid == s.stream_id
        owned = s.status in (
            AssignmentStatus.ASSIGNED,
            AssignmentStatus.RUNNING,
            AssignmentStatus.MIGRATING,
        )
        assert owned == (s.server_id is not None), s
        assert (s.status is AssignmentStatus.MIGRATING) == (s.migration_state is not None), s
        holders = [s.server_id] if s.server_id is not None else []
        if s.migration_state is not None:
            assert s.migration_state.to_server != s.server_id, s
            assert s.migration_state.from_server == s.server_id, s
            holders.append(s.migration_state.to_server)
        for server_id in holders:
            expected_load[server_id] = expected_load.get(server_id, 0) + s.weight
            expected_held.setdefault(server_id, set()).add(sid)
        if s.server_id is not None:
            expected_owned[s.server_id] = expected_owned.get(s.server_id, 0) + 1
    for server_id, inst in state.instances.items():
        assert inst.load == expected_load.get(server_id, 0), (server_id, inst)
        assert inst.current_streams == expected_owned.get(server_id, 0), (server_id, inst)
        assert inst.load <= inst.max_streams, inst
    held = {server_id: set(streams) for server_id, streams in state.held.items()}
    assert held == expected_held
    assert set(expected_held) <= set(state.instances)
    in_flight = {
        sid: s.migration_state.migration_id
        for sid, s in state.streams.items()
        if s.migration_state is not None
    }
    assert dict(state.in_flight.items()) == in_flight
    waiting = {sid for sid, s in state.streams.items() if s.status is AssignmentStatus.UNASSIGNED}
    assert set(state.unplaced) == waiting
    assert state.finding_count == 0, state.findings
