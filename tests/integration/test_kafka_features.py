"""The Kafka features streamplane relies on, proven against a real broker through aiokafka.

Invariants 2 and 7 of the design (DESIGN.md) rest on these: idempotent acks=all produce, consumer
group commit/resume, transactions (commit visible, abort invisible to read_committed),
offsets committed atomically with a transaction, and fencing of a zombie producer.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import os
import sys
import time
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.errors import ProducerFenced

pytestmark = pytest.mark.integration

NET = 30  # seconds: upper bound for any single network operation in these tests
CreateTopic = Callable[..., Awaitable[None]]


def producer(bootstrap: str, **extra: Any) -> AIOKafkaProducer:
    return AIOKafkaProducer(
        bootstrap_servers=bootstrap, acks="all", enable_idempotence=True, **extra
    )


def consumer(
    bootstrap: str, topic: str, group: str | None = None, **extra: Any
) -> AIOKafkaConsumer:
    settings: dict[str, Any] = {
        "auto_offset_reset": "earliest",
        "enable_auto_commit": False,
        "isolation_level": "read_committed",
    }
    settings.update(extra)
    return AIOKafkaConsumer(topic, bootstrap_servers=bootstrap, group_id=group, **settings)


async def read(c: AIOKafkaConsumer, expected: int, settle: float = 1.0) -> list[bytes]:
    """Values until `expected` arrived, then keep polling `settle` seconds for extras."""
    values: list[bytes] = []
    deadline = time.monotonic() + NET
    while len(values) < expected and time.monotonic() < deadline:
        async with asyncio.timeout(NET):
            batches = await c.getmany(timeout_ms=500)
        values += [msg.value for msgs in batches.values() for msg in msgs]
    async with asyncio.timeout(NET):
        batches = await c.getmany(timeout_ms=int(settle * 1000))
    return values + [msg.value for msgs in batches.values() for msg in msgs]


async def committed_offset(c: AIOKafkaConsumer, tp: TopicPartition, want: int) -> int | None:
    """The group's committed offset once it equals `want` (or whatever it is after 10 s).

    Transaction markers reach __consumer_offsets asynchronously after commit_transaction()
    returns, and aiokafka's OffsetFetch predates `require_stable`, so a transactional
    commit becomes visible a few milliseconds later, not at once.
    """
    deadline = time.monotonic() + 10
    while True:
        async with asyncio.timeout(NET):
            value = await c.committed(tp)
        if value == want or time.monotonic() > deadline:
            return value
        await asyncio.sleep(0.1)


async def produce(bootstrap: str, topic: str, values: list[bytes]) -> None:
    p = producer(bootstrap)
    async with asyncio.timeout(NET):
        await p.start()
    try:
        async with asyncio.timeout(NET):
            for value in values:
                await p.send_and_wait(topic, value)
    finally:
        await p.stop()


async def test_idempotent_produce_acks_all(
    kafka_bootstrap: str, unique_topic: Callable[[str], str], create_topic: CreateTopic
) -> None:
    topic = unique_topic("idem")
    await create_topic(topic)
    p = producer(kafka_bootstrap)
    async with asyncio.timeout(NET):
        await p.start()
    try:
        async with asyncio.timeout(NET):
            futures = [await p.send(topic, b"%d" % i) for i in range(200)]
            metadata = [await f for f in futures]
    finally:
        await p.stop()
    assert [m.offset for m in metadata] == list(range(200))  # each acked once, in order

    c = consumer(kafka_bootstrap, topic)
    async with asyncio.timeout(NET):
        await c.start()
    try:
        assert await read(c, 200) == [b"%d" % i for i in range(200)]
    finally:
        await c.stop()


async def test_consumer_group_commit_and_resume(
    kafka_bootstrap: str,
    unique_topic: Callable[[str], str],
    topic_prefix: str,
    create_topic: CreateTopic,
) -> None:
    topic, group = unique_topic("group"), f"{topic_prefix}-g"
    await create_topic(topic)
    await produce(kafka_bootstrap, topic, [b"m%d" % i for i in range(10)])
    tp = TopicPartition(topic, 0)

    first = consumer(kafka_bootstrap, topic, group, max_poll_records=4)
    async with asyncio.timeout(NET):
        await first.start()
    try:
        seen = (await read(first, 4, settle=0))[:4]  # at most 4 per poll: exactly a prefix
        assert seen == [b"m0", b"m1", b"m2", b"m3"]
        async with asyncio.timeout(NET):
            await first.commit({tp: 4})  # effect done for m0..m3: commit "next is 4"
            assert await first.committed(tp) == 4
    finally:
        await first.stop()

    second = consumer(kafka_bootstrap, topic, group)
    async with asyncio.timeout(NET):
        await second.start()
    try:
        assert await read(second, 6) == [b"m%d" % i for i in range(4, 10)]
    finally:
        await second.stop()


async def test_transaction_commit_visible_abort_invisible(
    kafka_bootstrap: str,
    unique_topic: Callable[[str], str],
    topic_prefix: str,
    create_topic: CreateTopic,
) -> None:
    topic = unique_topic("txn")
    await create_topic(topic)
    p = producer(kafka_bootstrap, transactional_id=f"{topic_prefix}-tx")
    async with asyncio.timeout(NET):
        await p.start()
    try:
        for values, commit in (([b"a", b"b"], True), ([b"c"], False), ([b"d"], True)):
            async with asyncio.timeout(NET):
                await p.begin_transaction()
                for value in values:
                    await p.send_and_wait(topic, value)
                await (p.commit_transaction() if commit else p.abort_transaction())
    finally:
        await p.stop()

    committed = consumer(kafka_bootstrap, topic)
    uncommitted = consumer(kafka_bootstrap, topic, isolation_level="read_uncommitted")
    for c in (committed, uncommitted):
        async with asyncio.timeout(NET):
            await c.start()
    try:
        assert await read(committed, 3) == [b"a", b"b", b"d"]
        # The aborted record was really written: only the isolation level hides it.
        assert await read(uncommitted, 4) == [b"a", b"b", b"c", b"d"]
    finally:
        await committed.stop()
        await uncommitted.stop()


async def _process_in_transaction(
    p: AIOKafkaProducer, src: AIOKafkaConsumer, out: str, group: str, n: int, commit: bool
) -> None:
    """Consume n records, write transformed copies and the offsets in one transaction."""
    records = []
    while len(records) < n:
        async with asyncio.timeout(NET):
            batches = await src.getmany(timeout_ms=500, max_records=n - len(records))
        records += [m for msgs in batches.values() for m in msgs]
    async with asyncio.timeout(NET):
        await p.begin_transaction()
        for record in records:
            await p.send_and_wait(out, record.value.upper())
        last = records[-1]
        offsets = {TopicPartition(last.topic, last.partition): last.offset + 1}
        await p.send_offsets_to_transaction(offsets, group)
        await (p.commit_transaction() if commit else p.abort_transaction())


async def test_send_offsets_to_transaction_is_atomic(
    kafka_bootstrap: str,
    unique_topic: Callable[[str], str],
    topic_prefix: str,
    create_topic: CreateTopic,
) -> None:
    src_topic, out_topic, group = unique_topic("in"), unique_topic("out"), f"{topic_prefix}-g"
    await create_topic(src_topic)
    await create_topic(out_topic)
    await produce(kafka_bootstrap, src_topic, [b"x%d" % i for i in range(6)])
    tp = TopicPartition(src_topic, 0)

    p = producer(kafka_bootstrap, transactional_id=f"{topic_prefix}-tx")
    src = consumer(kafka_bootstrap, src_topic, group)
    for client in (p, src):
        async with asyncio.timeout(NET):
            await client.start()
    try:
        await _process_in_transaction(p, src, out_topic, group, 3, commit=True)
        assert await committed_offset(src, tp, 3) == 3
        await _process_in_transaction(p, src, out_topic, group, 3, commit=False)
        await asyncio.sleep(1)  # give a (wrong) commit of offset 6 the time to show up
        assert await committed_offset(src, tp, 3) == 3  # the aborted batch moved no offset
    finally:
        await src.stop()
        await p.stop()

    out = consumer(kafka_bootstrap, out_topic)
    resumed = consumer(kafka_bootstrap, src_topic, group)
    for c in (out, resumed):
        async with asyncio.timeout(NET):
            await c.start()
    try:
        assert await read(out, 3) == [b"X0", b"X1", b"X2"]
        assert await read(resumed, 3) == [b"x3", b"x4", b"x5"]  # redo what was aborted
    finally:
        await out.stop()
        await resumed.stop()


@contextlib.contextmanager
def fenced_futures_expected() -> Iterator[None]:
    """aiokafka leaves internal futures failed with ProducerFenced that nobody awaits; here
    that is the expected outcome, so keep the loop from logging them as never retrieved."""
    loop = asyncio.get_running_loop()
    previous = loop.get_exception_handler()

    def handler(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        if isinstance(context.get("exception"), ProducerFenced):
            return
        if previous is not None:
            previous(loop, context)
        else:
            loop.default_exception_handler(context)

    loop.set_exception_handler(handler)
    try:
        yield
    finally:
        gc.collect()  # finalise the fenced producer's futures while the handler is installed
        loop.set_exception_handler(previous)


async def test_second_producer_fences_the_first(
    kafka_bootstrap: str,
    unique_topic: Callable[[str], str],
    topic_prefix: str,
    create_topic: CreateTopic,
) -> None:
    topic, txid = unique_topic("fence"), f"{topic_prefix}-tx"
    await create_topic(topic)
    old = producer(kafka_bootstrap, transactional_id=txid)
    new = producer(kafka_bootstrap, transactional_id=txid)
    with fenced_futures_expected():
        await _fence(old, new, topic)
        del old, new

    c = consumer(kafka_bootstrap, topic)
    async with asyncio.timeout(NET):
        await c.start()
    try:
        assert await read(c, 2) == [b"old-1", b"new-1"]
    finally:
        await c.stop()


async def _fence(old: AIOKafkaProducer, new: AIOKafkaProducer, topic: str) -> None:
    """`old` commits, `new` starts with the same transactional id, `old` is fenced."""
    try:
        async with asyncio.timeout(NET):
            await old.start()
            async with old.transaction():
                await old.send_and_wait(topic, b"old-1")
            await new.start()  # InitProducerId bumps the epoch: `old` is now a zombie
        with pytest.raises(ProducerFenced):
            async with asyncio.timeout(NET):
                await old.begin_transaction()
                await old.send_and_wait(topic, b"zombie")
                await old.commit_transaction()
        async with asyncio.timeout(NET):
            async with new.transaction():
                await new.send_and_wait(topic, b"new-1")
    finally:
        await new.stop()
        async with asyncio.timeout(NET):
            await old.stop()


FAUST_APP = """
import asyncio, os, sys
import faust

app = faust.App(os.environ["APP_ID"], broker="kafka://" + os.environ["BOOTSTRAP"],
                store="memory://", web_enabled=False, topic_replication_factor=1)
topic = app.topic(os.environ["TOPIC"], value_serializer="raw")
counts = app.Table("counts", default=int, partitions=1)

@app.agent(topic)
async def count(stream):
    async for value in stream:
        counts["n"] += 1
        if counts["n"] == 5:
            print("FAUST_OK", flush=True)
            os._exit(0)

sys.argv = ["app", "worker", "-l", "warn", "--without-web"]
app.main()
"""


async def test_faust_agent_consumes_and_updates_a_table(
    kafka_bootstrap: str,
    unique_topic: Callable[[str], str],
    topic_prefix: str,
    create_topic: CreateTopic,
    tmp_path: Any,
) -> None:
    """Faust (over aiokafka) joins a group, consumes, and writes a table changelog."""
    topic = unique_topic("faust")
    await create_topic(topic)
    await produce(kafka_bootstrap, topic, [b"f%d" % i for i in range(5)])
    env = {**os.environ, "BOOTSTRAP": kafka_bootstrap, "TOPIC": topic, "APP_ID": topic_prefix}
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        FAUST_APP,
        cwd=tmp_path,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    try:
        async with asyncio.timeout(90):
            output, _ = await proc.communicate()
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    assert b"FAUST_OK" in output, output.decode(errors="replace")[-3000:]
