"""Small aiokafka helpers shared by replay, the dead-letter writer and the projectors.

They exist so that every client in the project gets the safe settings without repeating
them: producers with ``acks="all"`` and idempotence, consumers that never auto-commit,
read only committed transactions and say explicitly where to start. Network calls are
bounded by ``asyncio.timeout`` and aiokafka errors are mapped to :mod:`projections.errors`.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import AsyncIterator, Iterable, Sequence
from contextlib import asynccontextmanager
from typing import Any, Literal, TypeVar

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord, TopicPartition
from aiokafka import errors as kafka_errors
from aiokafka.admin import AIOKafkaAdminClient

from kafka_auth import Brokers, as_access
from projections.errors import (
    KafkaIOError,
    KafkaUnavailableError,
    UnknownTopicError,
)

#: seconds any single network operation may take (start, metadata, offsets, admin calls)
DEFAULT_TIMEOUT = 30.0

OffsetReset = Literal["earliest", "latest", "none"]


C = TypeVar("C", AIOKafkaProducer, AIOKafkaConsumer, AIOKafkaAdminClient)


def kafka_error(exc: BaseException, what: str) -> KafkaIOError:
    """Map an aiokafka (or timeout) exception to this tree; use as ``raise kafka_error(e, ..)
    from e``. ``what`` names the operation, e.g. ``"fetch end offset of streamplane.events"``.
    """
    if isinstance(exc, TimeoutError | kafka_errors.KafkaConnectionError):
        return KafkaUnavailableError(f"{what}: {type(exc).__name__}: {exc}")
    if isinstance(exc, kafka_errors.KafkaTimeoutError | kafka_errors.NoBrokersAvailable):
        return KafkaUnavailableError(f"{what}: {type(exc).__name__}: {exc}")
    retriable = bool(getattr(exc, "retriable", False))
    return KafkaIOError(f"{what}: {type(exc).__name__}: {exc}", retriable=retriable)


def make_producer(
    bootstrap: Brokers, *, transactional_id: str | None = None, **overrides: Any
) -> AIOKafkaProducer:
    """An unstarted producer with ``acks="all"`` and idempotence on (never lose or
    duplicate a record on retry). ``transactional_id`` makes it transactional (and fences
    an older producer with the same id). ``overrides`` go to ``AIOKafkaProducer``.
    ``bootstrap`` is a :class:`kafka_auth.KafkaAccess` (credentials) or a plaintext address."""
    settings: dict[str, Any] = {
        **as_access(bootstrap).client_kwargs(),
        "acks": "all",
        "enable_idempotence": True,
        # Bigger batches and a short linger: throughput for bulk appends at ~no latency cost.
        "max_batch_size": 256 * 1024,
        "linger_ms": 5,
        "request_timeout_ms": int(DEFAULT_TIMEOUT * 1000),
    }
    if transactional_id is not None:
        settings["transactional_id"] = transactional_id
    settings.update(overrides)
    return AIOKafkaProducer(**settings)


def make_consumer(
    bootstrap: Brokers,
    *topics: str,
    group_id: str | None = None,
    auto_offset_reset: OffsetReset = "earliest",
    **overrides: Any,
) -> AIOKafkaConsumer:
    """An unstarted consumer that never auto-commits and reads only committed records.

    Without ``topics`` nothing is subscribed: ``assign`` partitions and ``seek`` yourself
    (what replay does). ``auto_offset_reset`` is explicit on purpose: the library default
    ("latest") silently skips history.
    """
    settings: dict[str, Any] = {
        **as_access(bootstrap).client_kwargs(),
        "group_id": group_id,
        "enable_auto_commit": False,
        "isolation_level": "read_committed",
        "auto_offset_reset": auto_offset_reset,
        "request_timeout_ms": int(DEFAULT_TIMEOUT * 1000),
    }
    settings.update(overrides)
    return AIOKafkaConsumer(*topics, **settings)


def make_admin(bootstrap: Brokers, **overrides: Any) -> AIOKafkaAdminClient:
    """An unstarted admin client with this process's credentials."""
    settings = {**as_access(bootstrap).client_kwargs(), **overrides}
    settings.setdefault("request_timeout_ms", int(DEFAULT_TIMEOUT * 1000))
    return AIOKafkaAdminClient(**settings)


@asynccontextmanager
async def started(
    client: C, *, kafka_timeout: float = DEFAULT_TIMEOUT, what: str = ""
) -> AsyncIterator[C]:
    """``async with started(make_consumer(...)) as c:`` start (bounded), always stop."""
    label = what or type(client).__name__
    try:
        async with asyncio.timeout(kafka_timeout):
            await client.start()
    except (TimeoutError, kafka_errors.KafkaError) as exc:
        await _stop_quietly(client, kafka_timeout)
        raise kafka_error(exc, f"start {label}") from exc
    try:
        yield client
    finally:
        await _stop_quietly(client, kafka_timeout)


async def _stop_quietly(
    client: AIOKafkaProducer | AIOKafkaConsumer | AIOKafkaAdminClient, kafka_timeout: float
) -> None:
    # Stopping must not mask the error that brought us here, and must not hang.
    try:
        async with asyncio.timeout(kafka_timeout):
            if isinstance(client, AIOKafkaAdminClient):
                await client.close()
            else:
                await client.stop()
    except (TimeoutError, kafka_errors.KafkaError):
        pass


async def end_offsets(
    bootstrap: Brokers, topic: str, *, kafka_timeout: float = DEFAULT_TIMEOUT
) -> dict[int, int]:
    """partition -> end offset of ``topic`` as a read_committed reader sees it (the last
    stable offset: records of open transactions lie beyond it)."""
    admin = make_admin(bootstrap)
    async with started(admin, kafka_timeout=kafka_timeout, what="Kafka admin client"):
        try:
            async with asyncio.timeout(kafka_timeout):
                described = await admin.describe_topics([topic])
        except (TimeoutError, kafka_errors.KafkaError) as exc:
            raise kafka_error(exc, f"describe {topic}") from exc
    if not described or described[0].get("error_code", 0) or not described[0]["partitions"]:
        raise UnknownTopicError(f"topic {topic} does not exist")
    tps = [TopicPartition(topic, p["partition"]) for p in described[0]["partitions"]]
    consumer = make_consumer(bootstrap)
    async with started(consumer, kafka_timeout=kafka_timeout, what=f"consumer for {topic}"):
        try:
            async with asyncio.timeout(kafka_timeout):
                ends = await consumer.end_offsets(tps)
        except (TimeoutError, kafka_errors.KafkaError) as exc:
            raise kafka_error(exc, f"end offsets of {topic}") from exc
    return {tp.partition: int(offset) for tp, offset in ends.items()}


async def fetch_batch(
    consumer: AIOKafkaConsumer,
    tp: TopicPartition,
    *,
    kafka_timeout: float,
    poll_timeout_ms: int,
    max_records: int,
    where: str,
) -> tuple[Sequence[ConsumerRecord[bytes, bytes]], int]:
    """One ``getmany`` of ``tp`` and the consumer's position after it, bounded by
    ``kafka_timeout``; a timeout or a Kafka error is raised as :mod:`projections.errors`
    says (``where`` names the call)."""
    try:
        async with asyncio.timeout(kafka_timeout):
            batches = await consumer.getmany(
                tp, timeout_ms=poll_timeout_ms, max_records=max_records
            )
            position = await consumer.position(tp)
    except (TimeoutError, kafka_errors.KafkaError) as exc:
        raise kafka_error(exc, where) from exc
    return batches.get(tp, []), position


async def check_topic(consumer: AIOKafkaConsumer, topic: str) -> None:
    """Raise :class:`UnknownTopicError` unless ``topic`` exists (fresh metadata)."""
    if topic not in await consumer.topics():
        raise UnknownTopicError(f"topic {topic} does not exist")


#: record batches in flight in :func:`publish` before it waits for the oldest ack
PUBLISH_WINDOW = 32


async def publish(
    producer: AIOKafkaProducer,
    topic: str,
    values: Iterable[bytes],
    *,
    partition: int = 0,
    kafka_timeout: float = DEFAULT_TIMEOUT,
) -> int:
    """Append ``values`` in order to one partition in large record batches (much faster
    than one ``send`` per record); returns how many once all are acknowledged. Inside a
    transaction, the caller begins and commits it around this call."""
    pending: deque[asyncio.Future[object]] = deque()
    count = 0
    try:
        async with asyncio.timeout(kafka_timeout) as deadline:
            batch = producer.create_batch()
            for value in values:
                if batch.append(key=None, value=value, timestamp=None) is None:
                    pending.append(await producer.send_batch(batch, topic, partition=partition))
                    batch = producer.create_batch()
                    if batch.append(key=None, value=value, timestamp=None) is None:
                        raise KafkaIOError(f"a record of {len(value)} bytes exceeds a batch")
                    if len(pending) >= PUBLISH_WINDOW:
                        await pending.popleft()
                        # each acknowledged batch renews the budget: the bound is per step
                        deadline.reschedule(asyncio.get_running_loop().time() + kafka_timeout)
                count += 1
            if batch.record_count():
                pending.append(await producer.send_batch(batch, topic, partition=partition))
            while pending:
                await pending.popleft()
    except (TimeoutError, kafka_errors.KafkaError) as exc:
        raise kafka_error(exc, f"publish to {topic}[{partition}]") from exc
    return count
