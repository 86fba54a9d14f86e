"""``control_plane.client.read_state`` starts from the latest valid snapshot and folds only
the tail, with the same result as a full replay; without a usable snapshot it folds from 0."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from control_plane.client import read_state
from events import encode
from events.base import ControlEvent
from events.topics import EVENTS, SNAPSHOTS, Topics
from projections.fold import fold
from projections.fold.snapshots import make_snapshot
from projections.io.kafka import make_producer, publish, started
from projections.io.replay import replay
from projections.io.snapshot_store import SnapshotStore
from projections.io.topics import ensure_topics
from projections.testing.synthetic import generate_history

pytestmark = pytest.mark.integration

NOW = datetime(2026, 5, 1, tzinfo=UTC)


async def _setup(bootstrap: str, prefix: str, events: list[ControlEvent]) -> Topics:
    topics = Topics(prefix)
    await ensure_topics(bootstrap, topics, (EVENTS, SNAPSHOTS))
    async with started(make_producer(bootstrap)) as producer:
        await publish(producer, topics.events, [encode(e) for e in events])
    return topics


async def test_read_state_uses_the_snapshot_and_equals_a_full_replay(
    kafka_bootstrap: str, topic_prefix: str
) -> None:
    history = generate_history(1200, seed=31, instances=6, streams=40)
    topics = await _setup(kafka_bootstrap, topic_prefix, history)
    without = await read_state(kafka_bootstrap, topics)
    assert without.events == 1200 and without.state == fold(history)

    snapshot = make_snapshot(fold(history[:800]), log_offset=800, taken_at=NOW, taken_by="t")
    async with SnapshotStore(kafka_bootstrap, topics) as store:
        await store.write(snapshot)
    full = await replay(kafka_bootstrap, topics.events)
    result = await read_state(kafka_bootstrap, topics)
    assert result.state == full.state == fold(history)
    assert (result.offset, result.events) == (1200, 400)  # only the tail was folded

    # an end before the snapshot: it is not used; after it: it is
    early = await read_state(kafka_bootstrap, topics, until_offset=500)
    assert (early.state, early.events) == (fold(history[:500]), 500)
    later = await read_state(kafka_bootstrap, topics, until_offset=1000)
    assert (later.state, later.events) == (fold(history[:1000]), 200)


async def test_a_snapshot_beyond_the_log_falls_back_to_offset_0(
    kafka_bootstrap: str, topic_prefix: str
) -> None:
    history = generate_history(300, seed=32, instances=4, streams=20)
    topics = await _setup(kafka_bootstrap, topic_prefix, history)
    stray = make_snapshot(fold(history[:100]), log_offset=5000, taken_at=NOW)
    async with SnapshotStore(kafka_bootstrap, topics) as store:
        await store.write(stray)
    result = await read_state(kafka_bootstrap, topics)
    assert (result.state, result.events) == (fold(history), 300)
