"""Who leads, and the leader's only way to write: one Kafka transaction per decision.

Leadership is the consumer group of the single-partition commands topic: the member holding
partition 0 leads (:class:`projections.io.membership.Membership` tracks what this member
holds). The leader writes
through :class:`ControlWriter`, a transactional producer with a ``transactional_id`` fixed
per cluster, so that a new leader's ``init_transactions`` fences the old one: a zombie's
next commit fails, and it steps down.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping, Sequence

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka import errors as kafka_errors
from aiokafka.structs import OffsetAndMetadata

from events import Command, EventError, decode_command, encode
from events.base import ControlEvent
from events.heartbeat import DesiredSet
from events.topics import Topics
from kafka_auth import Brokers
from projections.io.follow import OnUndecodable
from projections.io.kafka import make_producer
from projections.io.membership import Membership

log = logging.getLogger("streamplane.orchestrator")


#: the transactional producer's pause before a retry. A cycle's transaction often starts
#: while the broker still completes the previous one; the broker then answers the produce
#: with a retriable error (older produce versions see CONCURRENT_TRANSACTIONS as
#: NOT_ENOUGH_REPLICAS) and the producer's default pause, 100 ms, went onto every command's
#: latency. Kafka's Java producer retries that case after 20 ms for the same reason.
TXN_RETRY_BACKOFF_MS = 10


class ControlWriter:
    """The leader's transactional producer: :meth:`open` fences any older leader,
    :meth:`commit` writes one decision atomically, :meth:`close` lets go."""

    def __init__(
        self,
        bootstrap: Brokers,
        topics: Topics,
        *,
        transactional_id: str,
        group_id: str,
        request_timeout: float,
    ) -> None:
        self.bootstrap = bootstrap
        self.topics = topics
        self.transactional_id = transactional_id
        self.group_id = group_id
        self.request_timeout = request_timeout
        self._producer: AIOKafkaProducer | None = None

    @property
    def is_open(self) -> bool:
        return self._producer is not None

    async def open(self) -> None:
        """Start the producer: ``init_transactions`` fences every older producer of the same
        ``transactional_id`` (the caller bounds the time; on failure nothing stays open)."""
        producer = make_producer(
            self.bootstrap,
            transactional_id=self.transactional_id,
            linger_ms=0,
            retry_backoff_ms=TXN_RETRY_BACKOFF_MS,
        )
        self._producer = producer
        await producer.start()

    async def close(self) -> None:
        """Stop the producer, if open (bounded; a failure is logged, never raised)."""
        producer, self._producer = self._producer, None
        if producer is None:
            return
        try:
            async with asyncio.timeout(self.request_timeout):
                await producer.stop()
        except (TimeoutError, kafka_errors.KafkaError) as exc:
            log.warning("stopping the producer failed: %s", exc)

    async def commit(
        self,
        events: Sequence[ControlEvent],
        desired: Sequence[DesiredSet],
        offsets: Mapping[TopicPartition, OffsetAndMetadata],
        marks: bytes | None = None,
    ) -> int | None:
        """Events, desired sets, consumed command offsets and the cycle marks
        (:mod:`control_plane.decide.marks`) in ONE transaction, within
        ``request_timeout``. Returns the log offset after the last event (``None``: no event);
        raises ``TimeoutError`` or a Kafka error when the transaction was lost."""
        producer = self._producer
        assert producer is not None, "commit without an open writer"
        async with asyncio.timeout(self.request_timeout):
            last = None
            async with producer.transaction():
                for e in events:
                    last = await producer.send(self.topics.events, encode(e), partition=0)
                for d in desired:
                    await producer.send(self.topics.desired, encode(d), key=d.server_id.encode())
                if marks is not None:
                    await producer.send(self.topics.cycles, marks, partition=0)
                if offsets:
                    await producer.send_offsets_to_transaction(dict(offsets), self.group_id)
            if last is None:
                return None
            return int((await last).offset) + 1


async def poll_commands(
    consumer: AIOKafkaConsumer, on_undecodable: OnUndecodable
) -> tuple[list[Command], dict[TopicPartition, OffsetAndMetadata], tuple[int, int] | None]:
    """The leader's read of the commands partition: the commands, the offsets its
    transaction commits, and their span ``[first, next)`` (for the cycle mark). An
    undecodable command goes to ``on_undecodable`` and is consumed all the same."""
    batches = await consumer.getmany(timeout_ms=0, max_records=500)
    commands: list[Command] = []
    offsets: dict[TopicPartition, OffsetAndMetadata] = {}
    span: tuple[int, int] | None = None
    for tp, records in batches.items():
        if records:
            span = (records[0].offset, records[-1].offset + 1)
        for r in records:
            try:
                commands.append(decode_command(r.value))
            except EventError as exc:
                await on_undecodable(r, exc)
            offsets[tp] = OffsetAndMetadata(r.offset + 1, "")
    return commands, offsets, span


__all__ = ["TXN_RETRY_BACKOFF_MS", "ControlWriter", "Membership", "poll_commands"]
