"""Poisoned records in the middle of a control log are dead-lettered with their origin and
error, and the replay goes on: the state equals the fold of the good events (DESIGN,
invariant 7: nothing is lost, nothing is dropped silently)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from functools import reduce
from unittest.mock import patch

import orjson
import pytest
from aiokafka import TopicPartition
from support.read_modes import READ_MODES, check_reader

from events.codec import encode
from events.commands import DrainInstance
from events.control import StreamStarted
from events.topics import DLQ, EVENTS, Topics
from projections.fold import apply, fold
from projections.fold.canonical import state_digest
from projections.fold.state import ClusterState, FindingKind
from projections.fold.transitions import TRANSITIONS, Draft, Rejected
from projections.io.dlq import DeadLetter, DeadLetterWriter, decode_dead_letter
from projections.io.kafka import make_consumer, make_producer, publish, started
from projections.io.replay import ReplaySettings, replay
from projections.io.topics import ensure_topics
from projections.testing.synthetic import generate_history

pytestmark = pytest.mark.integration


@pytest.fixture(params=list(READ_MODES))
def read_in(request: pytest.FixtureRequest) -> ReplaySettings:
    """Every replay here runs in each of the ways a replay reads (tests/support/read_modes)."""
    return READ_MODES[request.param]


def _future_version(raw: bytes) -> bytes:
    wire = orjson.loads(raw)
    wire["schemaversion"] = 99
    return orjson.dumps(wire)


def _command(raw: bytes) -> bytes:
    """A valid command, on the events topic where it does not belong."""
    event = orjson.loads(raw)
    return encode(
        DrainInstance(
            id="cmd-1", source="test", time=event["time"], command_id="c-1", server_id="w-1"
        )
    )


def _unknown_type(raw: bytes) -> bytes:
    wire = orjson.loads(raw)
    wire["type"] = "StreamTeleported"
    return orjson.dumps(wire)


#: offset in the log -> (poisoned bytes maker, expected error type, expected field)
POISON: dict[int, tuple[Callable[[bytes], bytes], str, str | None]] = {
    0: (lambda raw: b"\xff\xfenot json at all", "MalformedMessageError", None),
    57: (_unknown_type, "UnknownTypeError", "type"),
    58: (_future_version, "UnsupportedVersionError", "schemaversion"),
    200: (_command, "WrongFamilyError", "type"),
    398: (lambda raw: raw[: len(raw) // 2], "MalformedMessageError", None),
}


async def _read_dead_letters(bootstrap: str, topic: str, count: int) -> list[DeadLetter]:
    tp = TopicPartition(topic, 0)
    letters: list[DeadLetter] = []
    async with started(make_consumer(bootstrap)) as consumer:
        consumer.assign([tp])
        consumer.seek(tp, 0)
        async with asyncio.timeout(30):
            while len(letters) < count:
                batches = await consumer.getmany(tp, timeout_ms=500)
                letters += [decode_dead_letter(r.value) for r in batches.get(tp, [])]
    return letters


async def test_poisoned_records_go_to_the_dlq_and_the_fold_goes_on(
    kafka_bootstrap: str, topic_prefix: str, read_in: ReplaySettings
) -> None:
    good = generate_history(900, seed=3)  # clean chunks after the poison, too
    values = [encode(e) for e in good]
    log: list[bytes] = []
    for offset in range(len(good) + len(POISON)):
        if offset in POISON:
            make, _, _ = POISON[offset]
            log.append(make(values[0]))
        else:
            log.append(values[offset - sum(1 for p in POISON if p < offset)])
    assert len(log) == len(good) + len(POISON)

    topics = Topics(topic_prefix)
    await ensure_topics(kafka_bootstrap, topics, (EVENTS, DLQ))
    async with started(make_producer(kafka_bootstrap)) as producer:
        await publish(producer, topics.events, log)
    async with DeadLetterWriter(kafka_bootstrap, topics.dlq) as dlq:
        result = await replay(kafka_bootstrap, topics.events, dlq=dlq, settings=read_in)
        assert dlq.written == len(POISON)

    expected = fold(good)
    assert (result.events, result.rejected) == (len(good), len(POISON))
    check_reader(result, read_in)
    assert result.offset == len(log)
    assert result.state == expected
    assert state_digest(result.state) == state_digest(expected)
    assert expected.finding_count == 0

    letters = await _read_dead_letters(kafka_bootstrap, topics.dlq, len(POISON))
    assert [letter.origin_offset for letter in letters] == sorted(POISON)
    assert [letter.origin_offset for letter in result.rejections] == sorted(POISON)
    for letter in letters:
        _, error_type, field = POISON[letter.origin_offset]
        assert (letter.origin_topic, letter.origin_partition) == (topics.events, 0)
        assert letter.error_type == error_type
        assert letter.error_field == field
        assert letter.error_message
        assert letter.raw_value() == log[letter.origin_offset]  # the exact bytes, kept
    binary = next(letter for letter in letters if letter.origin_offset == 0)
    assert binary.value_encoding == "base64"
    assert next(x for x in letters if x.origin_offset == 57).message_type == "StreamTeleported"


async def test_without_a_dlq_bad_records_are_still_counted_and_kept(
    kafka_bootstrap: str, topic_prefix: str, read_in: ReplaySettings
) -> None:
    good = generate_history(20, seed=4)
    values = [encode(e) for e in good]
    log = [*values[:10], b"{}", *values[10:]]
    topics = Topics(topic_prefix)
    await ensure_topics(kafka_bootstrap, topics, (EVENTS,))
    async with started(make_producer(kafka_bootstrap)) as producer:
        await publish(producer, topics.events, log)

    result = await replay(kafka_bootstrap, topics.events, settings=read_in)
    assert (result.events, result.rejected, result.offset) == (20, 1, 21)
    check_reader(result, read_in, clean_chunks=False)
    assert result.state == fold(good)
    (letter,) = result.rejections
    assert (letter.origin_offset, letter.error_type) == (10, "MalformedMessageError")
    assert letter.error_field == "specversion"


def _writes_then_rejects(d: Draft, e: StreamStarted) -> None:
    """A transition breaking the rule the in-place fold relies on (check before writing)."""
    d.update_stream(d.streams[e.stream_id], failure_count=99)
    raise Rejected(FindingKind.INVALID_TRANSITION, "rejected after a write")


async def test_a_broken_in_place_fold_replays_again_event_by_event(
    kafka_bootstrap: str,
    topic_prefix: str,
    read_in: ReplaySettings,
    caplog: pytest.LogCaptureFixture,
) -> None:
    good = generate_history(300, seed=5)
    started_at = next(i for i, e in enumerate(good) if isinstance(e, StreamStarted))
    poison = {0: b"not json", started_at + 40: b"{}"}  # one before the break, one after
    log = [encode(e) for e in good]
    for offset in sorted(poison):
        log.insert(offset, poison[offset])
    topics = Topics(topic_prefix)
    await ensure_topics(kafka_bootstrap, topics, (EVENTS, DLQ))
    async with started(make_producer(kafka_bootstrap)) as producer:
        await publish(producer, topics.events, log)

    with patch.dict(TRANSITIONS, {StreamStarted: _writes_then_rejects}):
        expected = reduce(apply, good, ClusterState())  # the persistent reference
        async with DeadLetterWriter(kafka_bootstrap, topics.dlq) as dlq:
            result = await replay(kafka_bootstrap, topics.events, dlq=dlq, settings=read_in)
            assert dlq.written == len(poison)  # not written again by the second pass

    assert "in-place fold failed" in caplog.text
    assert (result.events, result.rejected, result.offset) == (len(good), 2, len(log))
    assert result.state == expected
    assert expected.finding_count > 0  # every StreamStarted was rejected, and nothing else
    assert {f.kind for f in expected.findings} == {FindingKind.INVALID_TRANSITION}
    letters = await _read_dead_letters(kafka_bootstrap, topics.dlq, len(poison))
    assert [letter.origin_offset for letter in letters] == sorted(poison)
