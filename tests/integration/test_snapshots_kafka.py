"""Snapshots on real Kafka: the latest snapshot plus a replay of the tail equals a full
replay; corrupt snapshots are skipped; a big snapshot fits; and the orchestrator writes
snapshots as leader and starts from them as a standby."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime

import pytest

from control_plane.client import send_command
from control_plane.orchestrator import EnhancedStreamOrchestrator
from control_plane.orchestrator.settings import OrchestratorSettings
from events import commands as cmd
from events.codec import encode
from events.topics import EVENTS, SNAPSHOTS, Topics
from projections.fold import fold
from projections.fold.canonical import state_digest
from projections.fold.snapshots import (
    SNAPSHOT_KEY,
    make_snapshot,
    restore_state,
)
from projections.io.kafka import make_producer, publish, started
from projections.io.replay import replay
from projections.io.snapshot_store import SnapshotSettings, SnapshotStore
from projections.io.topics import ensure_topics
from projections.testing.synthetic import generate_history

pytestmark = pytest.mark.integration

T0 = datetime(2026, 6, 1, tzinfo=UTC)


async def _setup(bootstrap: str, prefix: str, n_events: int, seed: int = 3) -> list:  # type: ignore[type-arg]
    history = generate_history(n_events, seed=seed)
    topics = Topics(prefix)
    await ensure_topics(bootstrap, topics, (EVENTS, SNAPSHOTS))
    async with started(make_producer(bootstrap)) as producer:
        # not transactional: offsets equal list indexes, so log_offset = events covered
        await publish(producer, topics.events, [encode(e) for e in history])
    return history


async def _write_raw(bootstrap: str, topic: str, value: bytes) -> None:
    async with started(make_producer(bootstrap)) as producer:
        await producer.send_and_wait(topic, value, key=SNAPSHOT_KEY, partition=0)


async def test_latest_snapshot_plus_tail_equals_full_replay(
    kafka_bootstrap: str, topic_prefix: str
) -> None:
    history = await _setup(kafka_bootstrap, topic_prefix, 5000)
    topics = Topics(topic_prefix)
    async with SnapshotStore(kafka_bootstrap, topics) as store:
        assert await store.latest() is None
        older = make_snapshot(fold(history[:1000]), log_offset=1000, taken_at=T0)
        newer = make_snapshot(fold(history[:3210]), log_offset=3210, taken_at=T0, taken_by="o")
        first = await store.write(older)
        assert await store.write(newer) == first + 1
        latest = await store.latest()
    assert latest == newer

    tail = await replay(
        kafka_bootstrap,
        topics.events,
        from_state=restore_state(latest),
        from_offset=latest.log_offset,
    )
    full = await replay(kafka_bootstrap, topics.events)
    assert tail.events == 5000 - 3210 and full.events == 5000
    assert tail.state == full.state == fold(history)
    assert state_digest(tail.state) == state_digest(full.state)


async def test_a_corrupt_latest_snapshot_is_skipped(
    kafka_bootstrap: str, topic_prefix: str
) -> None:
    history = await _setup(kafka_bootstrap, topic_prefix, 600)
    topics = Topics(topic_prefix)
    good = make_snapshot(fold(history[:400]), log_offset=400, taken_at=T0)
    async with SnapshotStore(kafka_bootstrap, topics) as store:
        await store.write(good)
        await _write_raw(kafka_bootstrap, topics.snapshots, b"\x78\x9cgarbage")
        skipped: list[str] = []
        assert await store.latest(skipped=skipped) == good
    assert len(skipped) == 1 and "zlib" in skipped[0]


async def test_only_corrupt_snapshots_give_none(kafka_bootstrap: str, topic_prefix: str) -> None:
    await _setup(kafka_bootstrap, topic_prefix, 10)
    topics = Topics(topic_prefix)
    await _write_raw(kafka_bootstrap, topics.snapshots, b"not a snapshot")
    async with SnapshotStore(kafka_bootstrap, topics) as store:
        assert await store.latest() is None


async def test_no_topic_means_no_snapshot(kafka_bootstrap: str, topic_prefix: str) -> None:
    async with SnapshotStore(kafka_bootstrap, Topics(topic_prefix)) as store:
        assert await store.latest() is None


async def test_a_snapshot_bigger_than_a_default_kafka_record_fits(
    kafka_bootstrap: str, topic_prefix: str
) -> None:
    history = await _setup(kafka_bootstrap, topic_prefix, 4000)
    topics = Topics(topic_prefix)
    state = fold(generate_history(30_000, seed=5, instances=200, streams=3000))
    snapshot = make_snapshot(state, log_offset=4000, taken_at=T0)
    # level 0 stores the JSON uncompressed: several MB, over Kafka's 1 MB default
    settings = SnapshotSettings(compression_level=0)
    async with SnapshotStore(kafka_bootstrap, topics, settings=settings) as store:
        await store.write(snapshot)
        latest = await store.latest()
    assert latest is not None and latest.digest == snapshot.digest
    assert restore_state(latest) == state
    assert len(history) == 4000


# --- the orchestrator hook ----------------------------------------------------------------


@contextlib.asynccontextmanager
async def _orchestrator(
    settings: OrchestratorSettings,
) -> AsyncIterator[EnhancedStreamOrchestrator]:
    orch = EnhancedStreamOrchestrator(settings)
    task = asyncio.create_task(orch.run())
    try:
        yield orch
    finally:
        orch.stop()
        async with asyncio.timeout(60):
            await task


async def _until(predicate: Callable[[], bool], within: float = 60.0) -> None:
    for _ in range(int(within * 10)):
        if predicate():
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"not true within {within:.0f}s")


@pytest.mark.slow
async def test_the_leader_snapshots_and_a_standby_starts_from_it(
    kafka_bootstrap: str, topic_prefix: str
) -> None:
    topics = Topics(topic_prefix)

    def settings(node: str) -> OrchestratorSettings:
        return OrchestratorSettings(
            kafka_bootstrap=kafka_bootstrap,
            topic_prefix=topic_prefix,
            node_id=node,
            snapshot_every=5,
            snapshot_interval=3600,
            session_timeout_ms=6000,
        )

    async with _orchestrator(settings("o1")) as o1:
        for i in range(6):  # each: StreamRegistered (+ StreamUnassigned) + CommandCompleted
            await send_command(
                kafka_bootstrap, topics, cmd.RegisterStream, stream_id=f"cam-{i}", wait_s=60
            )
        assert o1.active and o1._snapshotter is not None
        await _until(lambda: o1._snapshotter.written >= 1)  # type: ignore[union-attr]
        await o1._snapshotter.wait()
        async with SnapshotStore(kafka_bootstrap, topics) as store:
            snapshot = await store.latest()
        assert snapshot is not None and snapshot.taken_by == "o1" and snapshot.seq >= 5
        full = await replay(kafka_bootstrap, topics.events)
        tail = await replay(
            kafka_bootstrap,
            topics.events,
            from_state=restore_state(snapshot),
            from_offset=snapshot.log_offset,
        )
        assert tail.state == full.state
        assert tail.events == full.state.seq - snapshot.seq

        async with _orchestrator(settings("o2")) as o2:
            # the standby starts from the snapshot, then follows the tail to the same state
            await _until(lambda: o2.state.seq >= full.state.seq)
            loaded = o2._snapshotter.loaded if o2._snapshotter else None
            assert loaded is not None and loaded.seq >= snapshot.seq  # o1 may have taken more
            assert not o2.active
            assert o2.state == full.state
            o1.stop()  # o2 takes over, opening a new term right after o1's last event
            await _until(lambda: o2.active)
            assert o2.state.leader_id == "o2" and o2.state.epoch == full.state.epoch + 1
            await send_command(
                kafka_bootstrap, topics, cmd.RegisterStream, stream_id="cam-after", wait_s=60
            )
    final = await replay(kafka_bootstrap, topics.events)
    assert final.state.finding_count == 0
    assert "cam-after" in final.state.streams
