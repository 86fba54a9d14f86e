"""Round trip on real Kafka: a generated history of >= 100k control events, published to a
topic and replayed through aiokafka, the codec and the fold, folds to exactly the state the
same events fold to in memory (issue 2, section 6)."""

from __future__ import annotations

import asyncio
import os
from datetime import timedelta
from functools import reduce

import pytest

from events.codec import encode
from events.topics import EVENTS, Topics
from projections.errors import OffsetOutOfRangeError, UnknownTopicError
from projections.fold import apply, fold, fold_from, fold_until
from projections.fold.canonical import state_digest
from projections.fold.state import ClusterState
from projections.io.kafka import end_offsets, make_producer, publish, started
from projections.io.replay import (
    ReplayProgress,
    ReplaySettings,
    replay,
    replay_to_time,
)
from projections.io.topics import ensure_topics
from projections.testing.synthetic import generate_history

pytestmark = pytest.mark.integration

N_EVENTS = 100_000
SEED = 7


async def _publish(bootstrap: str, topic: str, values: list[bytes]) -> None:
    async with started(make_producer(bootstrap)) as producer:
        assert await publish(producer, topic, values) == len(values)


@pytest.mark.slow
async def test_replay_of_100k_events_equals_the_in_memory_fold(
    kafka_bootstrap: str, topic_prefix: str
) -> None:
    history = generate_history(N_EVENTS, seed=SEED)
    expected = reduce(apply, history, ClusterState())  # event by event, the reference
    assert expected.seq == N_EVENTS and expected.finding_count == 0
    topics = Topics(topic_prefix)
    await ensure_topics(kafka_bootstrap, topics, (EVENTS,))
    await _publish(kafka_bootstrap, topics.events, [encode(e) for e in history])
    assert await end_offsets(kafka_bootstrap, topics.events) == {0: N_EVENTS}

    progress: list[ReplayProgress] = []
    settings = ReplaySettings(progress_every=25_000)
    result = await replay(
        kafka_bootstrap, topics.events, on_progress=progress.append, settings=settings
    )

    assert (result.events, result.rejected, result.offset) == (N_EVENTS, 0, N_EVENTS)
    # a long replay reads in a child process by default where there is a core to spare
    assert result.reader == ("child" if (os.cpu_count() or 1) > 1 else "process")
    if result.reader == "child":  # and checked there, every record
        assert result.prechecked == N_EVENTS
    assert result.state == expected
    assert state_digest(result.state) == state_digest(expected)
    assert len(progress) >= 4
    assert [p.events for p in progress] == sorted(p.events for p in progress)
    assert progress[-1] == ReplayProgress(N_EVENTS, N_EVENTS, N_EVENTS, 0)

    # Resuming from a checkpoint is fold_from(fold(prefix), rest), on Kafka too.
    cut = 41_234
    head = await replay(kafka_bootstrap, topics.events, until_offset=cut)
    assert (head.offset, head.events) == (cut, cut)
    assert head.state == fold(history[:cut])
    tail = await replay(
        kafka_bootstrap, topics.events, from_state=head.state, from_offset=head.offset
    )
    assert tail.events == N_EVENTS - cut
    assert tail.state == expected == fold_from(head.state, history[cut:])


async def test_replay_until_time_stops_at_the_first_later_event(
    kafka_bootstrap: str, topic_prefix: str
) -> None:
    history = generate_history(2_000, seed=SEED)
    topics = Topics(topic_prefix)
    await ensure_topics(kafka_bootstrap, topics, (EVENTS,))
    await _publish(kafka_bootstrap, topics.events, [encode(e) for e in history])
    when = history[1_234].time + timedelta(microseconds=1)
    expected, count = fold_until(ClusterState(), history, time=when)
    assert 0 < count < len(history)

    result = await replay(kafka_bootstrap, topics.events, until_time=when)
    assert result.state == expected
    assert (result.events, result.offset) == (count, count)
    # The blocking variant for audits gives the same answer (run off the event loop).
    blocking = await asyncio.to_thread(replay_to_time, kafka_bootstrap, topics.events, when)
    assert blocking == result


async def test_replay_refuses_offsets_outside_the_log_and_unknown_topics(
    kafka_bootstrap: str, topic_prefix: str
) -> None:
    history = generate_history(10, seed=SEED)
    topics = Topics(topic_prefix)
    await ensure_topics(kafka_bootstrap, topics, (EVENTS,))
    await _publish(kafka_bootstrap, topics.events, [encode(e) for e in history])

    with pytest.raises(OffsetOutOfRangeError, match="outside the log"):
        await replay(kafka_bootstrap, topics.events, from_offset=11)
    empty = await replay(kafka_bootstrap, topics.events, from_offset=10)
    assert (empty.events, empty.offset) == (0, 10)
    with pytest.raises(UnknownTopicError) as caught:
        await replay(kafka_bootstrap, f"{topic_prefix}.missing")
    assert caught.value.retriable is False
