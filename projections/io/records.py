"""Reading a topic's records by position: every partition from its first retained offset (or
a given one) to the end captured when the read starts. Read-only.

Used by ``streamplane simulate`` (the heartbeats, commands and cycle marks a replay cites by
(partition, offset)), the drift checks (a Faust table's changelog) and ``bench/projection.py``.
Values are returned undecoded; the caller decodes.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Mapping

from aiokafka import ConsumerRecord, TopicPartition
from aiokafka import errors as kafka_errors

from kafka_auth import Brokers
from projections.io.kafka import (
    DEFAULT_TIMEOUT,
    check_topic,
    end_offsets,
    fetch_batch,
    kafka_error,
    make_consumer,
    started,
)

#: records per read
BATCH = 20_000


async def read_all(
    bootstrap: Brokers,
    topic: str,
    *,
    partitions: int | None = None,
    start: Mapping[int, int] | None = None,
    kafka_timeout: float = DEFAULT_TIMEOUT,
) -> list[ConsumerRecord[bytes, bytes]]:
    """Every committed record of ``topic`` from ``start[partition]`` (default: the first
    one retained) to the end as of now, partition after partition, each in offset order.
    ``partitions``: how many the topic has (default: as its metadata says). Raises
    :class:`~projections.errors.UnknownTopicError` when the topic does not exist."""
    consumer = make_consumer(bootstrap, auto_offset_reset="earliest")
    out: list[ConsumerRecord[bytes, bytes]] = []
    async with started(consumer, kafka_timeout=kafka_timeout, what=f"reader of {topic}"):
        try:
            async with asyncio.timeout(kafka_timeout):
                await check_topic(consumer, topic)
                numbers: Iterable[int] = range(partitions or 0)
                if partitions is None:  # as many as its metadata says
                    ends_now = await end_offsets(bootstrap, topic, kafka_timeout=kafka_timeout)
                    numbers = sorted(ends_now)
                tps = [TopicPartition(topic, p) for p in numbers]
                consumer.assign(tps)
                ends = await consumer.end_offsets(tps)
                firsts = await consumer.beginning_offsets(tps)
        except (TimeoutError, kafka_errors.KafkaError) as exc:
            raise kafka_error(exc, f"read {topic}") from exc
        for tp in tps:
            position = max(int(firsts[tp]), (start or {}).get(tp.partition, 0))
            end = int(ends[tp])
            if position >= end:
                continue
            consumer.seek(tp, position)
            while position < end:
                records, position = await fetch_batch(
                    consumer, tp, kafka_timeout=kafka_timeout, poll_timeout_ms=500,
                    max_records=BATCH, where=f"read {topic}",
                )  # fmt: skip
                out.extend(r for r in records if r.offset < end)
    return out


async def read_positions(
    bootstrap: Brokers,
    topic: str,
    *,
    partitions: int,
    start: Mapping[int, int] | None = None,
    kafka_timeout: float = DEFAULT_TIMEOUT,
) -> dict[tuple[int, int], bytes | None]:
    """``(partition, offset) -> value`` of every committed record of ``topic`` from
    ``start[partition]`` (default: the first one retained) to the end as of now
    (:func:`read_all`). ``partitions``: how many the topic has (its ``TopicSpec``, which
    ``ensure_topics`` checked)."""
    records = await read_all(
        bootstrap, topic, partitions=partitions, start=start, kafka_timeout=kafka_timeout
    )
    return {(r.partition, r.offset): r.value for r in records}


__all__ = ["read_all", "read_positions"]
