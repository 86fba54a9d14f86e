"""The newest record per key of a keyed topic (compacted or not), read to the end seen when
the read starts, read_committed, every Kafka call bounded by ``kafka_timeout``.

Used by the consistency checker (``control_plane.checker_io``: desired sets, heartbeats) and by
the Faust projector when it takes the control log over (what ``<prefix>.assignments`` shows).
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from datetime import datetime
from typing import NamedTuple

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka import errors as kafka_errors

from kafka_auth import Brokers
from projections.errors import UnknownTopicError
from projections.io.kafka import end_offsets, kafka_error, make_consumer, started


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


__all__ = ["Record", "read_latest"]
