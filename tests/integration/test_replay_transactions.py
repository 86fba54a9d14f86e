"""Replay on a transactional control log (how the orchestrator writes it): aborted events
are invisible, commit/abort markers make offsets non-contiguous without confusing the end
detection, and a transaction still open when the replay starts is not waited for."""

from __future__ import annotations

import asyncio

import pytest
from support.read_modes import READ_MODES, check_reader

from events.codec import encode
from events.topics import EVENTS, Topics
from projections.fold import fold
from projections.io.kafka import end_offsets, make_producer, publish, started
from projections.io.replay import ReplaySettings, replay
from projections.io.topics import ensure_topics
from projections.testing.synthetic import generate_history

pytestmark = pytest.mark.integration


@pytest.fixture(params=list(READ_MODES))
def read_in(request: pytest.FixtureRequest) -> ReplaySettings:
    """Every replay here runs in each of the ways a replay reads (tests/support/read_modes)."""
    return READ_MODES[request.param]


async def test_aborted_transactions_are_invisible_to_the_replay(
    kafka_bootstrap: str, topic_prefix: str, read_in: ReplaySettings
) -> None:
    history = generate_history(300, seed=11)
    good = [encode(e) for e in history]
    # What a zombie leader might have tried to append: another history's events (which
    # would conflict with seq 101.. and 201..) and bytes that are not even JSON.
    zombie = [encode(e) for e in generate_history(60, seed=12)] + [b"\x00junk"] * 5
    topics = Topics(topic_prefix)
    topic = topics.events
    await ensure_topics(kafka_bootstrap, topics, (EVENTS,))

    ends = []
    producer = make_producer(kafka_bootstrap, transactional_id=f"{topic_prefix}-orchestrator")
    async with started(producer):
        for chunk, commit in (
            (good[:100], True),
            (zombie, False),
            (good[100:200], True),
            (zombie[:7], False),
        ):
            await producer.begin_transaction()
            await publish(producer, topic, chunk)
            if commit:
                await producer.commit_transaction()
            else:
                await producer.abort_transaction()
            ends.append((await end_offsets(kafka_bootstrap, topic))[0])
    # 100 + 65 + 100 + 7 records and one marker per transaction: offsets have holes.
    assert ends[-1] == 272 + 4

    result = await replay(kafka_bootstrap, topic, settings=read_in)
    assert (result.events, result.rejected, result.offset) == (200, 0, ends[-1])
    check_reader(result, read_in)
    assert result.state == fold(history[:200])
    assert result.state.finding_count == 0

    # Stopping inside the aborted region gives the committed prefix before it.
    inside = await replay(kafka_bootstrap, topic, until_offset=ends[0] + 30, settings=read_in)
    assert (inside.events, inside.offset) == (100, ends[0] + 30)
    assert inside.state == fold(history[:100])


async def test_an_open_transaction_is_not_waited_for_then_read_once_committed(
    kafka_bootstrap: str, topic_prefix: str, read_in: ReplaySettings
) -> None:
    history = generate_history(150, seed=13)
    good = [encode(e) for e in history]
    topics = Topics(topic_prefix)
    topic = topics.events
    await ensure_topics(kafka_bootstrap, topics, (EVENTS,))
    producer = make_producer(kafka_bootstrap, transactional_id=f"{topic_prefix}-orchestrator")
    async with started(producer):
        async with producer.transaction():
            await publish(producer, topic, good[:100])
        await producer.begin_transaction()
        await publish(producer, topic, good[100:])  # in the log, not yet committed
        try:
            async with asyncio.timeout(20):  # the replay must not wait for the transaction
                before = await replay(kafka_bootstrap, topic, settings=read_in)
            assert (before.events, before.offset) == (100, 101)  # 100 records + 1 marker
            assert before.state == fold(history[:100])
        finally:
            await producer.commit_transaction()

    after = await replay(
        kafka_bootstrap,
        topic,
        from_state=before.state,
        from_offset=before.offset,
        settings=read_in,
    )
    assert after.events == 50
    check_reader(after, read_in)
    assert after.state == fold(history)
