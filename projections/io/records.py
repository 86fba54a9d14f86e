"""Reading a topic's records by position: every partition from its first retained offset (or
a given one) to the end captured when the read starts. Read-only.

Used by ``streamplane simulate``: the heartbeats, commands and cycle marks a replay cites
by (partition, offset). Values are returned undecoded; the caller decodes.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping

from aiokafka import TopicPartition
from aiokafka import errors as kafka_errors

from kafka_auth import Brokers
from projections.io.kafka import (
    DEFAULT_TIMEOUT,
    check_topic,
    fetch_batch,
    kafka_error,
    make_consumer,
    started,
)

#: records per read
BATCH = 20_000


async def read_positions(
    bootstrap: Brokers,
    topic: str,
    *,
    partitions: int,
    start: Mapping[int, int] | None = None,
    kafka_timeout: float = DEFAULT_TIMEOUT,
) -> dict[tuple[int, int], bytes | None]:
    """``(partition, offset) -> value`` of every committed record of ``topic`` from
    ``start[partition]`` (default: the first one retained) to the end as of now.
    ``partitions``: how many the topic has (its ``TopicSpec``, which ``ensure_topics``
    checked)."""
    consumer = make_consumer(bootstrap, auto_offset_reset="earliest")
    out: dict[tuple[int, int], bytes | None] = {}
    async with started(consumer, kafka_timeout=kafka_timeout, what=f"reader of {topic}"):
        try:
            async with asyncio.timeout(kafka_timeout):
                await check_topic(consumer, topic)
                tps = [TopicPartition(topic, p) for p in range(partitions)]
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
                for r in records:
                    if r.offset < end:
                        out[(tp.partition, r.offset)] = r.value
    return out


__all__ = ["read_positions"]
