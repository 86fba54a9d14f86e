"""Hypothesis properties of the pure fold: determinism, composition, idempotency, invariants.

Pure: no event loop, no I/O. Histories come from :mod:`projections.testing.synthetic` (valid by
construction); corruption tests break them in one place and check that the fold notices.
"""

from __future__ import annotations

from fold_histories import FAST, FEW, assert_invariants, content, histories
from hypothesis import given
from hypothesis import strategies as st

from events import ControlEvent, decode_event, encode
from events.control import CommandCompleted, LeaderElected
from projections.fold import RECENT_WINDOW, apply, fold, fold_from
from projections.fold.canonical import state_digest, state_from_jsonable, state_to_jsonable
from projections.fold.state import ClusterState, FindingKind
from projections.testing.synthetic import generate_history

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
