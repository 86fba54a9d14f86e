"""control_plane.orchestrator.snapshotter.Snapshotter: a snapshot the store refuses is tried
again after the policy's interval, not at the next commit (a store refused by an ACL used to
cost a conversion of the whole state per cycle), and a later success clears the hold. The
store is a stand-in that refuses or accepts: the scheduling is what is tested."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from control_plane.orchestrator.snapshotter import SnapshotPolicy, Snapshotter
from projections.errors import KafkaIOError
from projections.fold import fold
from projections.fold.snapshots import Snapshot
from projections.testing.synthetic import generate_history

T0 = datetime(2026, 3, 1, tzinfo=UTC)
HISTORY = generate_history(300, seed=5)


class Store:
    """Refuses every write while ``refuse`` is set; counts the attempts."""

    def __init__(self) -> None:
        self.refuse = True
        self.attempts: list[int] = []

    async def write(self, snapshot: Snapshot) -> int:
        self.attempts.append(snapshot.seq)
        if self.refuse:
            raise KafkaIOError("configure t.snapshots: error 29: Topic authorization failed")
        return len(self.attempts)


async def test_a_refused_snapshot_waits_for_the_interval_then_succeeds() -> None:
    store = Store()
    policy = SnapshotPolicy(every_events=50, interval=timedelta(minutes=5))
    taker = Snapshotter(store, policy, taken_by="o1", now=T0)  # type: ignore[arg-type]

    state = fold(HISTORY[:100])
    assert taker.after_commit(state, 100, T0)
    await taker.wait()
    assert (store.attempts, taker.failed, taker.written) == ([state.seq], 1, 0)

    # every later commit within the interval: due by events, but held
    for i, n in enumerate(range(110, 300, 10)):
        later = fold(HISTORY[:n])
        assert not taker.after_commit(later, n, T0 + timedelta(seconds=i + 1))
    assert len(store.attempts) == 1

    # after the interval it tries again, and a success clears the hold
    store.refuse = False
    state = fold(HISTORY[:200])
    assert taker.after_commit(state, 200, T0 + policy.interval)
    await taker.wait()
    assert (taker.failed, taker.written) == (1, 1)
    state = fold(HISTORY)
    assert taker.after_commit(state, 300, T0 + policy.interval + timedelta(seconds=1))
    await taker.wait()
    assert taker.written == 2
