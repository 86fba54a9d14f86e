"""The fold refuses content that breaks an invariant (rule 4): each refused event becomes a
finding of its kind, and only the log position moves on (docs/projections.md).

Pure: no event loop, no I/O. The refused events are built on top of generated histories
(:mod:`projections.testing.synthetic`) or of a few legal events made here.
"""

from __future__ import annotations

from dataclasses import replace

import immutables
from fold_histories import FAST, assert_invariants, content, histories
from hypothesis import given

from events import ControlEvent
from events.control import (
    InstanceCapacityChanged,
    InstanceRegistered,
    InstanceSuspected,
    MigrationStarted,
    StreamAssigned,
    StreamRegistered,
    StreamStarted,
)
from projections.fold import apply, fold
from projections.fold.state import ClusterState, FindingKind
from projections.testing.synthetic import generate_history


def _next(state: ClusterState, cls: type[ControlEvent], **fields: object) -> ControlEvent:
    """The legal-looking next event of ``state``'s log (right seq and epoch)."""
    seq = state.seq + 1
    time = state.last_event_time
    assert time is not None
    return cls(id=f"t{seq}", source="test", time=time, seq=seq, epoch=state.epoch, **fields)


def _rejected(state: ClusterState, event: ControlEvent, kind: FindingKind) -> None:
    """``event`` is refused with a ``kind`` finding; only the log position moves on."""
    after = apply(state, event)
    assert after.finding_count == state.finding_count + 1
    finding = after.findings[-1]
    assert (finding.kind, finding.seq, finding.event_id) == (kind, event.seq, event.id)
    assert after.seq == event.seq
    assert _without_position(after) == _without_position(state)


def _without_position(state: ClusterState) -> ClusterState:
    return replace(content(state), seq=0, last_event_time=None, recent_ids=immutables.Map())


def _setup(
    state: ClusterState, *events: tuple[type[ControlEvent], dict[str, object]]
) -> ClusterState:
    """Apply legal events built with :func:`_next`; they must not produce findings."""
    for cls, fields in events:
        state = apply(state, _next(state, cls, **fields))
        assert state.finding_count == 0, state.findings
    return state


def _register(server_id: str, capacity: int) -> tuple[type[ControlEvent], dict[str, object]]:
    fields: dict[str, object] = {
        "server_id": server_id,
        "incarnation": f"{server_id}.1",
        "ip": "10.9.9.9",
        "port": 9000,
        "max_streams": capacity,
    }
    return InstanceRegistered, fields


def _assign(stream_id: str, server_id: str) -> tuple[type[ControlEvent], dict[str, object]]:
    fields: dict[str, object] = {
        "stream_id": stream_id,
        "server_id": server_id,
        "incarnation": f"{server_id}.1",
        "reason": "new_stream",
    }
    return StreamAssigned, fields


def _stream(stream_id: str, weight: int = 1) -> tuple[type[ControlEvent], dict[str, object]]:
    fields: dict[str, object] = {"stream_id": stream_id, "weight": weight}
    return StreamRegistered, fields


@FAST
@given(histories())
def test_assigning_to_a_full_instance_is_capacity_exceeded(history: list[ControlEvent]) -> None:
    state = _setup(
        fold(history),
        _register("cap-w", 2),
        _stream("cap-a", 2),
        _stream("cap-b"),
        _assign("cap-a", "cap-w"),
    )
    cls, fields = _assign("cap-b", "cap-w")
    _rejected(state, _next(state, cls, **fields), FindingKind.CAPACITY_EXCEEDED)
    shrink = _next(state, InstanceCapacityChanged, server_id="cap-w", max_streams=1)
    _rejected(state, shrink, FindingKind.CAPACITY_EXCEEDED)
    # an instance of the generated cluster, filled up exactly, takes nothing more
    active = sorted(i.server_id for i in state.instances.values() if i.should_receive_streams())
    if active:
        inst = state.instances[active[0]]
        state = _setup(
            state,
            (InstanceCapacityChanged, {"server_id": inst.server_id, "max_streams": inst.load}),
            _stream("cap-c"),
        )
        assigned = _next(
            state,
            StreamAssigned,
            stream_id="cap-c",
            server_id=inst.server_id,
            incarnation=inst.incarnation,
            reason="new_stream",
        )
        _rejected(state, assigned, FindingKind.CAPACITY_EXCEEDED)


@FAST
@given(histories())
def test_assigning_an_owned_stream_again_is_two_owners(history: list[ControlEvent]) -> None:
    state = _setup(
        fold(history),
        _register("own-1", 5),
        _register("own-2", 5),
        _stream("own-s"),
        _assign("own-s", "own-1"),
    )
    cls, fields = _assign("own-s", "own-2")
    _rejected(state, _next(state, cls, **fields), FindingKind.TWO_OWNERS)
    # any stream of the generated cluster with a live owner, or in migration
    for stream in sorted(state.streams.values(), key=lambda s: s.stream_id):
        owner = state.instances.get(stream.server_id or "")
        live = owner is not None and owner.status.value not in ("failed", "left")
        if live and stream.stream_id != "own-s" and stream.weight <= 4:
            cls, fields = _assign(stream.stream_id, "own-2")
            _rejected(state, _next(state, cls, **fields), FindingKind.TWO_OWNERS)
            break


def test_assigning_a_migrating_stream_is_two_owners() -> None:
    state = fold(generate_history(50, seed=1))
    state = _setup(
        state,
        _register("mig-1", 5),
        _register("mig-2", 5),
        _register("mig-3", 5),
        _stream("mig-s"),
        _assign("mig-s", "mig-1"),
        (StreamStarted, {"stream_id": "mig-s", "server_id": "mig-1", "incarnation": "mig-1.1"}),
    )
    deadline = state.last_event_time
    state = _setup(
        state,
        (
            MigrationStarted,
            {
                "stream_id": "mig-s",
                "migration_id": "m-test",
                "from_server": "mig-1",
                "to_server": "mig-2",
                "to_incarnation": "mig-2.1",
                "deadline": deadline,
                "reason": "rebalance",
            },
        ),
    )
    cls, fields = _assign("mig-s", "mig-3")
    _rejected(state, _next(state, cls, **fields), FindingKind.TWO_OWNERS)
    assert_invariants(state)


@FAST
@given(histories())
def test_unknown_streams_and_instances_are_reported(history: list[ControlEvent]) -> None:
    state = _setup(fold(history), _register("unk-1", 5), _stream("unk-s"))
    cls, fields = _assign("no-such-stream", "unk-1")
    _rejected(state, _next(state, cls, **fields), FindingKind.UNKNOWN_STREAM)
    cls, fields = _assign("unk-s", "no-such-server")
    _rejected(state, _next(state, cls, **fields), FindingKind.UNKNOWN_INSTANCE)
    stale_incarnation = _next(
        state,
        StreamAssigned,
        stream_id="unk-s",
        server_id="unk-1",
        incarnation="unk-1.0",
        reason="new_stream",
    )
    _rejected(state, stale_incarnation, FindingKind.UNKNOWN_INSTANCE)
    started = _next(
        state,
        StreamStarted,
        stream_id="no-such-stream",
        server_id="unk-1",
        incarnation="unk-1.1",
    )
    _rejected(state, started, FindingKind.UNKNOWN_STREAM)
    suspected = _next(state, InstanceSuspected, server_id="nobody", incarnation="nobody.1")
    _rejected(state, suspected, FindingKind.UNKNOWN_INSTANCE)
