"""Hypothesis properties of the pure fold: determinism, composition, idempotency, invariants.

Pure: no event loop, no I/O. Histories come from :mod:`projections.testing.synthetic` (valid by
construction); corruption tests break them in one place and check that the fold notices.
"""

from __future__ import annotations

from dataclasses import replace

import immutables
from hypothesis import given, settings
from hypothesis import strategies as st

from events import ControlEvent, decode_event, encode
from events.control import (
    CommandCompleted,
    InstanceCapacityChanged,
    InstanceRegistered,
    InstanceSuspected,
    LeaderElected,
    MigrationStarted,
    StreamAssigned,
    StreamRegistered,
    StreamStarted,
)
from projections.fold import RECENT_WINDOW, apply, fold, fold_from
from projections.fold.canonical import state_digest, state_from_jsonable, state_to_jsonable
from projections.fold.state import AssignmentStatus, ClusterState, FindingKind
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


# --- determinism and composition ---------------------------------------------------------


@FAST
@given(histories())
def test_same_log_same_state_and_digest(history: list[ControlEvent]) -> None:
    a, b = fold(history), fold(iter(list(history)))
    assert a == b
    assert state_digest(a) == state_digest(b)
    decoded = fold(decode_event(encode(e)) for e in history)
    assert state_digest(decoded) == state_digest(a)


@FAST
@given(histories(), st.data())
def test_fold_of_concatenation_is_fold_from_of_the_prefix(
    history: list[ControlEvent], data: st.DataObject
) -> None:
    cut = data.draw(st.integers(0, len(history)), label="cut")
    a, b = history[:cut], history[cut:]
    assert fold(a + b) == fold_from(fold(a), b)
    # a snapshot of the prefix (canonical JSON and back) continues exactly the same way
    snapshot = state_from_jsonable(state_to_jsonable(fold(a)))
    assert fold_from(snapshot, b) == fold(history)


@FEW
@given(histories(max_size=120))
def test_every_split_point_composes(history: list[ControlEvent]) -> None:
    whole = fold(history)
    prefix_state = ClusterState()
    for cut in range(len(history) + 1):
        assert fold_from(prefix_state, history[cut:]) == whole
        if cut < len(history):
            prefix_state = apply(prefix_state, history[cut])
    assert prefix_state == whole


# --- duplicates ----------------------------------------------------------------------------


@FAST
@given(
    histories(min_size=2),
    st.lists(st.tuples(st.integers(0, 10**6), st.integers(0, 10**6)), min_size=1, max_size=20),
)
def test_injected_exact_duplicates_change_nothing(
    history: list[ControlEvent], picks: list[tuple[int, int]]
) -> None:
    corrupted = list(history)
    for pick, offset in picks:
        original = history[pick % len(history)]
        first = next(i for i, e in enumerate(corrupted) if e is original)
        # anywhere after its first occurrence (the histories are within the 4096 window)
        corrupted.insert(first + 1 + offset % (len(corrupted) - first), original)
    assert len(corrupted) == len(history) + len(picks)
    assert fold(corrupted) == fold(history)


# --- invariants ----------------------------------------------------------------------------


@FAST
@given(histories())
def test_valid_histories_keep_every_invariant_in_every_prefix(
    history: list[ControlEvent],
) -> None:
    state = ClusterState()
    for event in history:
        state = apply(state, event)
        assert_invariants(state)
    assert state.seq == len(history)


# --- corrupted histories are detected --------------------------------------------------------


@FAST
@given(histories(min_size=2), st.data())
def test_a_dropped_event_is_reported(history: list[ControlEvent], data: st.DataObject) -> None:
    i = data.draw(st.integers(0, len(history) - 2), label="dropped")
    dropped = history[i]
    state = fold(history[:i] + history[i + 1 :])
    assert state.finding_count >= 1
    first = state.findings[0]
    epoch_before = fold(history[:i]).epoch
    if isinstance(dropped, LeaderElected) and dropped.epoch > epoch_before:
        # the term's opening event is gone: its events name an epoch never elected
        assert first.kind is FindingKind.UNKNOWN_EPOCH
    else:
        assert first.kind is FindingKind.SEQ_GAP
        assert first.seq == dropped.seq + 1
        assert state.seq == history[-1].seq


@FAST
@given(histories(min_size=2), st.data())
def test_a_different_event_with_an_applied_seq_conflicts(
    history: list[ControlEvent], data: st.DataObject
) -> None:
    at = data.draw(st.integers(1, len(history)), label="at")
    before = fold(history[:at])
    victim = history[data.draw(st.integers(0, at - 1), label="victim")]
    impostor: ControlEvent
    if isinstance(victim, LeaderElected):  # a leader event is judged on its epoch first
        impostor = CommandCompleted(
            id="impostor",
            source="test",
            time=victim.time,
            seq=victim.seq,
            epoch=before.epoch,
            command_id="c-impostor",
            command_type="DrainInstance",
        )
    else:
        impostor = victim.model_copy(update={"id": "impostor", "epoch": before.epoch})
    state = fold([*history[:at], impostor, *history[at:]])
    assert [(f.kind, f.seq, f.event_id) for f in state.findings] == [
        (FindingKind.CONFLICTING_SEQ, victim.seq, "impostor")
    ]
    assert content(state) == fold(history)


@FAST
@given(histories(min_size=2), st.data())
def test_a_zombie_leaders_events_have_no_effect(
    history: list[ControlEvent], data: st.DataObject
) -> None:
    cut = data.draw(st.integers(1, len(history) - 1), label="cut")
    before = fold(history[:cut])
    leader = LeaderElected(
        id="new-term",
        source="streamplane/orchestrator",
        time=history[cut - 1].time,
        seq=before.seq + 1,
        epoch=before.epoch + 1,
        leader_id="orch-new",
    )
    elected = apply(before, leader)
    zombie_events = [
        # the old leader's next event, as it would write it: its own seq, its old epoch
        history[cut].model_copy(update={"id": "zombie-1", "seq": leader.seq}),
        # ...and one numbered after the new term's first event
        history[cut].model_copy(update={"id": "zombie-2", "seq": leader.seq + 1}),
    ]
    state = fold_from(elected, zombie_events)
    assert [f.kind for f in state.findings] == [FindingKind.STALE_EPOCH] * 2
    assert content(state) == elected


# --- content violations ------------------------------------------------------------------------


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


def test_a_replayed_seq_older_than_the_window_is_stale() -> None:
    history = generate_history(RECENT_WINDOW + 200, seed=2)
    state = fold(history)
    old = history[100]
    assert old.seq <= state.seq - RECENT_WINDOW and not isinstance(old, LeaderElected)
    replayed = old.model_copy(update={"epoch": state.epoch})
    after = apply(state, replayed)
    assert [(f.kind, f.seq) for f in after.findings] == [(FindingKind.STALE_SEQ, old.seq)]
    assert content(after) == state
    # inside the window the same event is an exact duplicate: silently ignored
    recent = history[-10]
    assert apply(state, recent) == state
