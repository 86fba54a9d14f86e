"""The Kafka adapter: send heartbeats, read this worker's desired sets, check health.

Thin on purpose: no business rules, every network await under ``asyncio.timeout``, each
direction behind its own circuit breaker (so "can consume but not produce" shows up as one
breaker open and the other closed). Errors come out as :class:`TransportError`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Protocol

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.client import AIOKafkaClient
from aiokafka.errors import KafkaError
from aiokafka.partitioner import DefaultPartitioner

from events.topics import Topics
from resilience.breaker import BreakerPolicy, CircuitBreaker, CircuitOpenError
from worker_agent.errors import TransportError
from worker_agent.keys import Session, WorkerKey, load
from worker_agent.settings import WorkerSettings

log = logging.getLogger(__name__)

_IO_ERRORS = (KafkaError, OSError, TimeoutError)


class Transport(Protocol):
    """What the agent needs from the control plane's message bus."""

    async def send_heartbeat(self, key: bytes, value: bytes, incarnation: str) -> None: ...

    async def poll_desired(self) -> list[bytes]: ...

    async def check_consume(self) -> None: ...

    async def close(self) -> None: ...


def desired_partition(key: bytes, partitions: int) -> int:
    """The partition the orchestrator's producer (aiokafka's default partitioner) picks."""
    all_partitions = list(range(partitions))
    return int(DefaultPartitioner()(key, all_partitions, all_partitions))


class KafkaTransport:
    """aiokafka producer (heartbeats) and a group-less consumer on one desired partition."""

    def __init__(self, settings: WorkerSettings, *, clock: Callable[[], float] = time.monotonic):
        self.settings = settings
        self.topics = Topics(settings.topic_prefix)
        self.key = settings.server_id.encode()
        #: certifies a session per incarnation when a key file is set (read now: a bad one
        #: stops the start); every heartbeat then carries the certificate and a MAC
        self.signer: WorkerKey | None = (
            None if settings.worker_key_file is None else load(settings.worker_key_file)
        )
        self._session: Session | None = None
        if self.signer is None:
            log.info(
                "heartbeats unsigned (no worker_key_file): they count only where enrollment is open"
            )
        else:
            log.info("heartbeats signed with key %s", self.signer.key_id)
        policy = BreakerPolicy(
            settings.breaker_failure_threshold,
            settings.breaker_reset_timeout,
            settings.breaker_half_open_max_calls,
        )
        self.produce_breaker = CircuitBreaker(policy, clock, "produce")
        self.consume_breaker = CircuitBreaker(policy, clock, "consume")
        self._producer: AIOKafkaProducer | None = None
        self._consumer: AIOKafkaConsumer | None = None
        self._tp: TopicPartition | None = None

    @property
    def breakers(self) -> dict[str, CircuitBreaker]:
        """The breaker of each direction, by name (the metrics show their states)."""
        return {"produce": self.produce_breaker, "consume": self.consume_breaker}

    async def _guarded(
        self, breaker: CircuitBreaker, what: str, op: Callable[[], Awaitable[object]]
    ) -> None:
        try:
            breaker.check(what)
        except CircuitOpenError as exc:
            raise TransportError(str(exc), circuit_open=True) from exc
        try:
            async with asyncio.timeout(self.settings.kafka_timeout):
                await op()
        except TransportError:
            breaker.failure()
            raise
        except _IO_ERRORS as exc:
            breaker.failure()
            raise TransportError(f"{what}: {type(exc).__name__}: {exc}") from exc
        breaker.success()

    async def send_heartbeat(self, key: bytes, value: bytes, incarnation: str) -> None:
        """Produce one heartbeat of ``incarnation`` and wait for the broker's ack (acks=all)."""
        headers = self._headers(value, incarnation)
        await self._guarded(
            self.produce_breaker, "send heartbeat", lambda: self._send(key, value, headers)
        )

    def _headers(self, value: bytes, incarnation: str) -> list[tuple[str, bytes]] | None:
        """The envelope of a heartbeat: a new session (certificate) for a new incarnation."""
        if self.signer is None:
            return None
        current = self._session
        if current is None or current.incarnation != incarnation:
            current = self._session = self.signer.session(self.settings.server_id, incarnation)
            log.info(
                "session certificate for incarnation %s (key %s)", incarnation, self.signer.key_id
            )
        return current.headers(value)

    async def _send(
        self, key: bytes, value: bytes, headers: list[tuple[str, bytes]] | None
    ) -> None:
        if self._producer is None:
            # Never the first to name the topic: a broker that auto-creates topics would make
            # heartbeats with one partition, and the orchestrator then refuses to start.
            await self._partition_count(self.topics.heartbeats)
            producer = AIOKafkaProducer(
                **self.settings.kafka_access.client_kwargs(),
                acks="all",
                enable_idempotence=True,
                client_id=f"streamplane-worker-{self.settings.server_id}",
            )
            try:
                await producer.start()
            except BaseException:
                await _quietly_stop(producer, self.settings.kafka_timeout)
                raise
            self._producer = producer
        # An unsent heartbeat left in the producer's buffer during an outage is bounded (the
        # breaker stops new sends) and harmless: heartbeats are level-triggered reports.
        await self._producer.send_and_wait(self.topics.heartbeats, value, key=key, headers=headers)

    async def poll_desired(self) -> list[bytes]:
        """New desired-set records for this worker's key (the first call reads from offset 0)."""
        if self._consumer is None:
            await self._guarded(self.consume_breaker, "open desired consumer", self._open_consumer)
        consumer = self._consumer
        assert consumer is not None
        deadline = self.settings.kafka_timeout + self.settings.desired_poll_ms / 1000
        try:
            async with asyncio.timeout(deadline):
                batches = await consumer.getmany(
                    timeout_ms=self.settings.desired_poll_ms,
                    max_records=self.settings.desired_max_records,
                )
        except _IO_ERRORS as exc:
            self.consume_breaker.failure()
            raise TransportError(f"poll desired: {type(exc).__name__}: {exc}") from exc
        return [
            rec.value
            for records in batches.values()
            for rec in records
            if rec.key == self.key and rec.value is not None
        ]

    async def _open_consumer(self) -> None:
        consumer = AIOKafkaConsumer(
            **self.settings.kafka_access.client_kwargs(),
            group_id=None,
            enable_auto_commit=False,
            isolation_level="read_committed",
            auto_offset_reset="earliest",
            client_id=f"streamplane-worker-{self.settings.server_id}",
        )
        try:
            await consumer.start()
            count = await self._partition_count(self.topics.desired)
            tp = TopicPartition(self.topics.desired, desired_partition(self.key, count))
            consumer.assign([tp])
            # A compacted topic: reading the partition from the start yields the latest value
            # of every key, ours included, whatever happened while we were away.
            await consumer.seek_to_beginning(tp)
        except BaseException:
            await _quietly_stop(consumer, self.settings.kafka_timeout)
            raise
        self._consumer, self._tp = consumer, tp
        log.info("following %s partition %d", tp.topic, tp.partition)

    async def _partition_count(self, topic: str) -> int:
        # The consumer's bootstrap metadata lists no topics, and partitions_for_topic() has
        # no public way to ask for one; a short-lived client reads the whole cluster's.
        # (A metadata request for all topics never auto-creates one.)
        client = AIOKafkaClient(**self.settings.kafka_access.client_kwargs())
        try:
            await client.bootstrap()
            cluster = await client.fetch_all_metadata()
        finally:
            await client.close()
        partitions = cluster.partitions_for_topic(topic)
        if not partitions:
            raise TransportError(
                f"topic {topic} does not exist yet: start the orchestrator or run "
                "`streamplane topics`; retrying"
            )
        return len(partitions)

    async def check_consume(self) -> None:
        """Health check of the consuming side: ask the partition leader for its end offset."""
        consumer, tp = self._consumer, self._tp
        if consumer is None or tp is None:
            raise TransportError("desired consumer not open")
        await self._guarded(
            self.consume_breaker, "consume health check", lambda: consumer.end_offsets([tp])
        )

    async def close(self) -> None:
        """Flush and stop the producer, stop the consumer; bounded by ``kafka_timeout`` each."""
        producer, self._producer = self._producer, None
        consumer, self._consumer = self._consumer, None
        if producer is not None:
            with contextlib.suppress(*_IO_ERRORS):
                async with asyncio.timeout(self.settings.kafka_timeout):
                    await producer.flush()
            await _quietly_stop(producer, self.settings.kafka_timeout)
        if consumer is not None:
            await _quietly_stop(consumer, self.settings.kafka_timeout)


async def _quietly_stop(client: AIOKafkaProducer | AIOKafkaConsumer, seconds: float) -> None:
    # Stopping a client whose broker is gone can hang on a flush; give up after `seconds`.
    try:
        async with asyncio.timeout(seconds):
            await client.stop()
    except _IO_ERRORS:
        pass
    except asyncio.CancelledError:
        # aiokafka 0.14: stopping a group-less consumer right after start() re-raises the
        # CancelledError of an internal task. Swallow it unless *we* are being cancelled.
        task = asyncio.current_task()
        if task is not None and task.cancelling():
            raise
