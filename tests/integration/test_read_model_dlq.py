"""The read model's dead-letter path on real Kafka and PostgreSQL: records of the events
topic that do not decode (garbage bytes, an unknown type, a tombstone) go to ``<prefix>.dlq``
with their reason and origin, are counted, and the read model goes on with the next events:
its tables end equal to the fold of the good events. An event that decodes but whose row
PostgreSQL refuses is not dead-lettered: the read model stops at the last whole batch."""

from __future__ import annotations

import asyncio

import asyncpg
import orjson
import pytest
from aiokafka import TopicPartition

from control_plane.drift_io import check_read_model
from events import encode
from events.topics import DLQ, EVENTS, Topics
from projections.fold import fold
from projections.io.dlq import DeadLetter, decode_dead_letter
from projections.io.kafka import make_consumer, make_producer, publish, started
from projections.io.postgres import DatabaseQueryError
from projections.io.read_store import ReadModelSettings
from projections.io.topics import ensure_topics
from projections.read_model import ReadModelProjector
from projections.testing.synthetic import generate_history

pytestmark = pytest.mark.integration


def _unknown_type(raw: bytes) -> bytes:
    wire = orjson.loads(raw)
    wire["type"] = "StreamTeleported"
    return orjson.dumps(wire)


async def _letters(bootstrap: str, topic: str, count: int) -> list[DeadLetter]:
    tp = TopicPartition(topic, 0)
    letters: list[DeadLetter] = []
    async with started(make_consumer(bootstrap)) as consumer:
        consumer.assign([tp])
        consumer.seek(tp, 0)
        async with asyncio.timeout(30):
            while len(letters) < count:
                got = await consumer.getmany(tp, timeout_ms=300)
                letters += [decode_dead_letter(r.value) for r in got.get(tp, [])]
            extra = await consumer.getmany(tp, timeout_ms=1000)  # and no more than that
    assert not extra.get(tp)
    return letters


async def test_undecodable_records_are_dead_lettered_and_the_read_model_goes_on(
    kafka_bootstrap: str, topic_prefix: str, database_url: str, pg_schema: str
) -> None:
    good = generate_history(700, seed=43, instances=6, streams=40)
    values = [encode(e) for e in good]
    topics = Topics(topic_prefix)
    await ensure_topics(kafka_bootstrap, topics, (EVENTS, DLQ))
    async with started(make_producer(kafka_bootstrap)) as producer:
        await publish(producer, topics.events, values[:300])
        await producer.send_and_wait(topics.events, b"\xff\xfenot json", partition=0)
        await producer.send_and_wait(topics.events, _unknown_type(values[0]), partition=0)
        await publish(producer, topics.events, values[300:600])
        await producer.send_and_wait(topics.events, None, key=b"k", partition=0)  # tombstone
        await publish(producer, topics.events, values[600:])
    settings = ReadModelSettings(
        kafka_bootstrap=kafka_bootstrap,
        topic_prefix=topic_prefix,
        database_url=database_url,
        database_schema=pg_schema,
        read_model_batch_max=200,
    )
    async with ReadModelProjector(settings=settings) as p:
        assert await p.catch_up() == len(good)  # every good event, around the bad ones
        assert p.rejected == 3 and p.state == fold(good)
        dead = p.metrics.registry.get_sample_value(
            "streamplane_dead_letters_total", {"origin": "events"}
        )
        assert dead == 3

    letters = await _letters(kafka_bootstrap, topics.dlq, 3)
    assert [x.error_type for x in letters] == [
        "MalformedMessageError",
        "UnknownTypeError",
        "MalformedMessageError",
    ]
    assert all(x.origin_topic == topics.events and x.error_message for x in letters)
    assert letters[1].message_type == "StreamTeleported" and letters[1].error_field == "type"
    assert letters[0].raw_value() == b"\xff\xfenot json"  # the exact bytes, kept
    assert "tombstone" in letters[2].error_message and letters[2].raw_key() == b"k"

    conn = await asyncpg.connect(database_url, server_settings={"search_path": pg_schema})
    try:
        rows = await conn.fetch("SELECT log_offset, seq FROM events ORDER BY log_offset")
    finally:
        await conn.close()
    bad = {x.origin_offset for x in letters}
    assert [r["seq"] for r in rows] == [e.seq for e in good]  # each good event once
    assert not bad & {r["log_offset"] for r in rows}  # no row for a dead letter
    report = await check_read_model(settings)
    assert report.clean and report.as_of_seq == len(good), report


async def test_a_row_postgresql_refuses_stops_the_read_model_without_a_half_batch(
    kafka_bootstrap: str, topic_prefix: str, database_url: str, pg_schema: str
) -> None:
    """The other way an event cannot be applied: it decodes, but PostgreSQL refuses its row
    (here a CHECK constraint the test adds; text PostgreSQL cannot hold is written as U+FFFD
    instead, ``test_read_model_text.py``). That is not a dead letter: the read model stops
    with a clear, non-retriable error and its tables stay at the last whole batch, rather
    than go on and differ from the log's fold."""
    good = generate_history(400, seed=47, instances=4, streams=20)
    poisoned = [*good[:300], good[300].model_copy(update={"id": "refused-301"}), *good[301:]]
    topics = Topics(topic_prefix)
    await ensure_topics(kafka_bootstrap, topics, (EVENTS, DLQ))
    async with started(make_producer(kafka_bootstrap)) as producer:
        await publish(producer, topics.events, [encode(e) for e in poisoned[:300]])
        await publish(producer, topics.events, [encode(e) for e in poisoned[300:]])
    settings = ReadModelSettings(
        kafka_bootstrap=kafka_bootstrap,
        topic_prefix=topic_prefix,
        database_url=database_url,
        database_schema=pg_schema,
        read_model_batch_max=300,
    )
    async with ReadModelProjector(settings=settings) as p:
        conn = await asyncpg.connect(database_url, server_settings={"search_path": pg_schema})
        try:  # the tables exist once the projector has started
            await conn.execute(
                "ALTER TABLE events ADD CONSTRAINT no_refused CHECK (id NOT LIKE 'refused-%')"
            )
        finally:
            await conn.close()
        with pytest.raises(DatabaseQueryError) as caught:
            await p.catch_up()
        assert not caught.value.retriable
        stopped = p.offset
        assert f"apply offsets {stopped}.." in str(caught.value) and 0 < stopped <= 300
    report = await check_read_model(settings)  # the whole batches before it, nothing more
    assert report.clean and report.as_of_seq == stopped, report
