"""The shared readers of ``projections.io.follow`` on real Kafka: the log follower folds what
is new (from the start or from a snapshot) and never drops an undecodable record unless told
to; the heartbeat watcher keeps the latest heartbeat per server."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from aiokafka import ConsumerRecord

from events.base import ControlEvent
from events.codec import encode
from events.errors import EventError, MalformedMessageError
from events.heartbeat import Heartbeat
from events.topics import EVENTS, HEARTBEATS, Topics
from projections.fold import fold
from projections.io.dlq import DeadLetter
from projections.io.follow import (
    HeartbeatWatcher,
    LogFollower,
    skip_undecodable,
    to_dead_letters,
)
from projections.io.kafka import make_producer, publish, started
from projections.io.topics import ensure_topics
from projections.testing.synthetic import generate_history

pytestmark = pytest.mark.integration

T0 = datetime(2026, 6, 1, tzinfo=UTC)
BAD = b"\xff\xfenot an event"


async def _log(bootstrap: str, prefix: str, values: list[bytes]) -> Topics:
    topics = Topics(prefix)
    await ensure_topics(bootstrap, topics, (EVENTS, HEARTBEATS))
    async with started(make_producer(bootstrap)) as producer:
        # not transactional: offsets equal list indexes
        await publish(producer, topics.events, values)
    return topics


class Sink:
    """A dead-letter sink that keeps what it is given."""

    def __init__(self) -> None:
        self.letters: list[DeadLetter] = []

    async def write(self, letter: DeadLetter) -> None:
        self.letters.append(letter)

    async def flush(self) -> None:
        return None


async def test_the_follower_folds_the_log_and_then_what_is_new(
    kafka_bootstrap: str, topic_prefix: str
) -> None:
    history = generate_history(700, seed=11)
    topics = await _log(kafka_bootstrap, topic_prefix, [encode(e) for e in history[:500]])
    async with LogFollower(kafka_bootstrap, topics, max_records=120) as f:
        seen: list[ControlEvent] = []
        assert await f.catch_up(into=seen) == 500
        assert seen == history[:500] and f.position == 500
        assert f.state == fold(history[:500])
        async with started(make_producer(kafka_bootstrap)) as producer:
            await publish(producer, topics.events, [encode(e) for e in history[500:]])
        new: list[ControlEvent] = []
        while len(new) < 200:
            new += await f.poll(timeout_ms=500)
        assert new == history[500:] and f.position == 700
        assert f.state == fold(history)


async def test_the_follower_starts_from_a_snapshot(kafka_bootstrap: str, topic_prefix: str) -> None:
    history = generate_history(400, seed=12)
    topics = await _log(kafka_bootstrap, topic_prefix, [encode(e) for e in history])
    snapshot = fold(history[:250])
    async with LogFollower(kafka_bootstrap, topics, from_state=snapshot, from_offset=250) as f:
        assert f.position == 250
        assert await f.catch_up() == 150
        assert f.state == fold(history)
        await f.rewind(fold(history[:100]), 100)  # what a standby does on step-down
        assert await f.catch_up() == 300 and f.state == fold(history)


async def test_an_undecodable_record_stops_the_follower_by_default(
    kafka_bootstrap: str, topic_prefix: str
) -> None:
    history = generate_history(30, seed=13)
    values = [encode(e) for e in history]
    values.insert(20, BAD)
    topics = await _log(kafka_bootstrap, topic_prefix, values)
    async with LogFollower(kafka_bootstrap, topics) as f:
        for _ in range(2):  # raised again: the record is never skipped behind our back
            with pytest.raises(MalformedMessageError) as caught:
                await f.catch_up()
            assert any("@20" in note for note in caught.value.__notes__)
            assert f.position == 20 and f.state == fold(history[:20])
            assert f.undecodable >= 1


async def test_undecodable_records_go_where_the_caller_says(
    kafka_bootstrap: str, topic_prefix: str
) -> None:
    history = generate_history(30, seed=14)
    values = [encode(e) for e in history]
    values.insert(5, BAD)
    values.insert(17, b"{}")
    topics = await _log(kafka_bootstrap, topic_prefix, values)
    sink = Sink()
    dead_letters = to_dead_letters(sink, clock=lambda: T0)
    async with LogFollower(kafka_bootstrap, topics, on_undecodable=dead_letters) as f:
        assert await f.catch_up() == 30
        assert f.state == fold(history) and f.position == 32 and f.undecodable == 2
    assert [(x.origin_offset, x.origin_topic) for x in sink.letters] == [
        (5, topics.events),
        (17, topics.events),
    ]
    assert sink.letters[0].raw_value() == BAD and sink.letters[0].dead_lettered_at == T0

    calls: list[tuple[int, str]] = []

    async def count(record: ConsumerRecord[bytes, bytes], exc: EventError) -> None:
        calls.append((record.offset, type(exc).__name__))

    async with LogFollower(kafka_bootstrap, topics, on_undecodable=count) as f:
        assert await f.catch_up() == 30 and f.state == fold(history)
    assert [offset for offset, _ in calls] == [5, 17]
    async with LogFollower(kafka_bootstrap, topics, on_undecodable=skip_undecodable) as f:
        assert await f.catch_up() == 30 and f.undecodable == 2


def _heartbeat(server_id: str, n: int) -> Heartbeat:
    return Heartbeat(
        id=f"hb-{server_id}-{n}",
        source="test",
        time=T0,
        server_id=server_id,
        incarnation=f"inc-{n}",
        ip="127.0.0.1",
        port=8000,
        max_streams=10,
    )


async def test_the_heartbeat_watcher_keeps_the_latest_per_server(
    kafka_bootstrap: str, topic_prefix: str
) -> None:
    topics = await _log(kafka_bootstrap, topic_prefix, [])
    beats = [_heartbeat(f"w{i % 5}", i) for i in range(40)]

    async def send(values: list[tuple[str, bytes]]) -> None:
        async with started(make_producer(kafka_bootstrap)) as producer:
            for key, value in values:
                await producer.send_and_wait(topics.heartbeats, value, key=key.encode())

    await send([(hb.server_id, encode(hb)) for hb in beats])
    async with HeartbeatWatcher(kafka_bootstrap, topics, from_start=True) as w:
        got: list[Heartbeat] = []
        while len(got) < 40:
            got += await w.poll(timeout_ms=500)
        assert sorted(hb.id for hb in got) == sorted(hb.id for hb in beats)
        assert {s: hb.incarnation for s, hb in w.latest.items()} == {
            f"w{i}": f"inc-{35 + i}" for i in range(5)
        }
        await send([("w1", BAD)])
        with pytest.raises(MalformedMessageError):
            while True:
                await w.poll(timeout_ms=500)
        assert w.latest["w1"].incarnation == "inc-36"  # the failed batch changed nothing
        assert w.undecodable == 1
