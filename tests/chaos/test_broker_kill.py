"""A broker crash loses no acknowledged message (RF 3, min ISR 2, acks=all, idempotence)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import KafkaError

pytestmark = [pytest.mark.chaos, pytest.mark.slow]

TOTAL = 2000
BATCH = 100
PARTITIONS = 3
NET = 60  # seconds: bound for one network step; a leader failover takes ~10 s


async def leader_of_partition_0(bootstrap: str, topic: str) -> int:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    try:
        async with asyncio.timeout(NET):
            await admin.start()
            described = await admin.describe_topics([topic])
    finally:
        await admin.close()
    leaders = {p["partition"]: p["leader"] for p in described[0]["partitions"]}
    return int(leaders[0])


async def send_until_acked(producer: AIOKafkaProducer, topic: str, values: list[bytes]) -> None:
    """Send a batch; resend whatever was not acknowledged until all of it is."""
    pending = list(values)
    deadline = time.monotonic() + 3 * NET
    while pending:
        assert time.monotonic() < deadline, f"{len(pending)} messages never acknowledged"
        async with asyncio.timeout(NET):
            futures = [await producer.send(topic, value, key=value) for value in pending]
            results = await asyncio.gather(*futures, return_exceptions=True)
        failed = [v for v, r in zip(pending, results, strict=True) if isinstance(r, BaseException)]
        unexpected = [r for r in results if isinstance(r, BaseException | None) and r is not None]
        assert all(isinstance(r, KafkaError) for r in unexpected), unexpected
        pending = failed
        if pending:
            await asyncio.sleep(0.5)


async def read_everything(bootstrap: str, topic: str) -> list[bytes]:
    """Every record of the topic, from the beginning to the current end of each partition."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        isolation_level="read_committed",
    )
    tps = [TopicPartition(topic, p) for p in range(PARTITIONS)]
    values: list[bytes] = []
    async with asyncio.timeout(NET):
        await consumer.start()
    try:
        consumer.assign(tps)
        async with asyncio.timeout(NET):
            await consumer.seek_to_beginning(*tps)
            ends = await consumer.end_offsets(tps)
        deadline = time.monotonic() + NET
        while [tp for tp in tps if await consumer.position(tp) < ends[tp]]:
            assert time.monotonic() < deadline, "could not read the topic to its end"
            async with asyncio.timeout(NET):
                batches = await consumer.getmany(timeout_ms=1000)
            values += [m.value for msgs in batches.values() for m in msgs if m.value is not None]
    finally:
        await consumer.stop()
    return values


async def test_killing_a_broker_loses_no_acknowledged_message(
    three_broker_cluster: object,
    unique_topic: Callable[[str], str],
    create_topic: Callable[..., Awaitable[None]],
) -> None:
    cluster = three_broker_cluster
    bootstrap: str = cluster.bootstrap  # type: ignore[attr-defined]
    topic = unique_topic("kill")
    config = {"min.insync.replicas": "2", "unclean.leader.election.enable": "false"}
    await create_topic(topic, PARTITIONS, 3, config, bootstrap=bootstrap)
    victim = await leader_of_partition_0(bootstrap, topic)

    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap,
        acks="all",
        enable_idempotence=True,
        request_timeout_ms=15_000,
        retry_backoff_ms=200,
        metadata_max_age_ms=5_000,
    )
    acked: list[bytes] = []
    async with asyncio.timeout(NET):
        await producer.start()
    try:
        for start in range(0, TOTAL, BATCH):
            if start == TOTAL // 2:
                cluster.kill(victim)  # type: ignore[attr-defined]
                assert victim not in cluster.running()  # type: ignore[attr-defined]
            batch = [b"m-%05d" % i for i in range(start, start + BATCH)]
            await send_until_acked(producer, topic, batch)
            acked += batch
    finally:
        await producer.stop()
        restart = asyncio.to_thread(cluster.start, victim)  # type: ignore[attr-defined]
        await asyncio.wait_for(restart, timeout=180)

    stored = await read_everything(bootstrap, topic)
    missing = set(acked) - set(stored)
    assert len(acked) == TOTAL
    assert not missing, f"{len(missing)} acknowledged messages lost, e.g. {sorted(missing)[:5]}"
