"""The consistency checker's reads: the views it compares ``fold(control log)`` with.

The comparison is pure (:mod:`control_plane.decide.checker`); these read, each with every
Kafka call bounded by ``kafka_timeout`` and read_committed:

- :func:`read_latest`: the newest record per key of a (compacted or not) keyed topic, from
  given offsets to the end seen when it starts; :func:`read_desired` (``<prefix>.desired``
  from its beginning, decoded) and :func:`read_heartbeats` (``<prefix>.heartbeats`` since a
  time, the newest per server with its record timestamp) build on it;
- :func:`read_acknowledged`: the log findings a repair already acknowledged (the ids its
  ``ConsistencyDivergenceRepaired`` events name), read from the oldest finding the state
  keeps onwards: nothing is read when the log has no findings.

Undecodable records are counted and skipped here: a checker reports, it does not stop at the
first bad record (the replay dead-letters them and the report says how many).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import NamedTuple

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka import errors as kafka_errors

from control_plane.decide.checker import LastHeartbeat, acknowledged_id
from events import control as ev
from events.codec import decode_desired, decode_heartbeat
from events.errors import EventError
from events.heartbeat import DesiredSet
from events.topics import Topics
from kafka_auth import Brokers
from projections.errors import UnknownTopicError
from projections.fold.state import ClusterState
from projections.io.history import read_events
from projections.io.kafka import end_offsets, kafka_error, make_consumer, started

log = logging.getLogger("streamplane.check")


class Record(NamedTuple):
    """A record's value (None: tombstone) and its timestamp in ms."""

    value: bytes | None
    timestamp_ms: int


async def read_latest(
    bootstrap: Brokers, topic: str, *, since: datetime | None = None, kafka_timeout: float
) -> dict[str, Record]:
    """key -> newest record of ``topic`` (every partition), from the beginning or from the
    first record at or after ``since``, to the end seen when it starts. An absent topic
    reads as empty; records without a key are skipped."""
    try:
        ends = await end_offsets(bootstrap, topic, kafka_timeout=kafka_timeout)
    except UnknownTopicError:
        return {}
    tps = {TopicPartition(topic, p): end for p, end in ends.items() if end > 0}
    latest: dict[str, Record] = {}
    if not tps:
        return latest
    consumer = make_consumer(bootstrap, auto_offset_reset="earliest")
    async with started(consumer, kafka_timeout=kafka_timeout, what=f"reader of {topic}"):
        consumer.assign(list(tps))
        try:
            pending = await _seek(consumer, tps, since, kafka_timeout)
            while pending:
                async with asyncio.timeout(kafka_timeout):
                    batch = await consumer.getmany(*pending, timeout_ms=500, max_records=20_000)
                    for tp, got in batch.items():
                        for r in got:
                            if r.key is not None and r.offset < tps[tp]:
                                latest[r.key.decode("utf-8", "replace")] = Record(
                                    r.value, r.timestamp
                                )
                    for tp in list(pending):
                        if await consumer.position(tp) >= tps[tp]:
                            pending.discard(tp)
        except (TimeoutError, kafka_errors.KafkaError) as exc:
            raise kafka_error(exc, f"read {topic}") from exc
    return latest


async def _seek(
    consumer: AIOKafkaConsumer,
    tps: Mapping[TopicPartition, int],
    since: datetime | None,
    kafka_timeout: float,
) -> set[TopicPartition]:
    """Position every partition; the ones with something left to read."""
    async with asyncio.timeout(kafka_timeout):
        if since is None:
            await consumer.seek_to_beginning(*tps)
            return set(tps)
        found = await consumer.offsets_for_times({tp: int(since.timestamp() * 1000) for tp in tps})
    pending = set()
    for tp, end in tps.items():
        at = found.get(tp)
        if at is None:  # nothing at or after ``since`` in this partition
            continue
        consumer.seek(tp, at.offset)
        if at.offset < end:
            pending.add(tp)
    return pending


async def read_desired(
    bootstrap: Brokers, topics: Topics, *, kafka_timeout: float
) -> dict[str, DesiredSet]:
    """server_id -> its newest desired set (tombstones and undecodable records left out)."""
    out: dict[str, DesiredSet] = {}
    bad = 0
    for key, record in (
        await read_latest(bootstrap, topics.desired, kafka_timeout=kafka_timeout)
    ).items():
        if record.value is None:
            continue
        try:
            out[key] = decode_desired(record.value)
        except EventError:
            bad += 1
    if bad:
        log.warning("%s: %d undecodable desired record(s) left out", topics.desired, bad)
    return out


async def read_heartbeats(
    bootstrap: Brokers, topics: Topics, *, since: datetime, kafka_timeout: float
) -> dict[str, LastHeartbeat]:
    """server_id -> its newest heartbeat sent since ``since``, with the record's timestamp
    as when it was heard (heartbeats are keyed by server_id)."""
    out: dict[str, LastHeartbeat] = {}
    records = await read_latest(
        bootstrap, topics.heartbeats, since=since, kafka_timeout=kafka_timeout
    )
    for key, record in records.items():
        if record.value is None:
            continue
        try:
            hb = decode_heartbeat(record.value)
        except EventError:
            continue
        heard = datetime.fromtimestamp(record.timestamp_ms / 1000, tz=UTC)
        out[hb.server_id or key] = LastHeartbeat(hb, heard)
    return out


async def read_acknowledged(
    bootstrap: Brokers, topics: Topics, state: ClusterState, *, kafka_timeout: float
) -> frozenset[str]:
    """Ids of the findings in ``state`` that a repair acknowledged. An event's offset is at
    least its seq - 1 (seqs start at 1 and never skip an offset backwards), so reading from
    the oldest kept finding's seq - 1 sees every acknowledgement written after it."""
    if not state.findings:
        return frozenset()
    start = max(0, min(min(f.seq for f in state.findings), state.seq) - 1)
    wanted = {f.event_id for f in state.findings}
    found: set[str] = set()
    async for events in read_events(
        bootstrap, topics.events, from_offset=start, kafka_timeout=kafka_timeout
    ):
        for e in events:
            if isinstance(e, ev.ConsistencyDivergenceRepaired):
                acked = acknowledged_id(e.action)
                if acked in wanted:
                    found.add(acked)
    return frozenset(found)


__all__ = ["Record", "read_acknowledged", "read_desired", "read_heartbeats", "read_latest"]
