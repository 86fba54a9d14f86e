"""The control log as the holder reads it: one aiokafka consumer of its own, not Faust's stream.

Faust still decides who holds the log (its group hands partition 0 of ``<prefix>.events`` to
one member, and that member's tables with it), but once a member has taken the log over
(:mod:`projections.projector.takeover`) it pauses that partition in Faust's consumer and reads
it here: ``getmany`` from the offset its fold has reached, in batches of up to
``projector_batch_max`` records, ``read_committed``, no group, nothing committed. Faust's
per-record stream machinery (an event, a message, an acknowledgement and an offset to track
per record) was a third of the projector's CPU at a few thousand events a second, and the
projector never used what it buys: a takeover starts from the fold's own offset, not from the
group's committed one.

The reader stops, before anything else happens, when the group takes the partition away
(:meth:`ControlLogReader.stop` in ``on_partitions_revoked``): nothing is folded or written
after a revocation.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from aiokafka import AIOKafkaConsumer, TopicPartition

from events.topics import Topics
from projections.io.kafka import make_consumer, make_producer, started
from projections.projector.outputs import Outputs
from projections.projector.settings import ProjectorSettings

log = logging.getLogger(__name__)

#: a control-log record: offset, key, value
RawRecord = tuple[int, bytes | None, bytes | None]
Handler = Callable[[list[RawRecord], Outputs], Awaitable[None]]
#: what the reader writes before its first record (a takeover's resync)
First = Callable[[Outputs], Awaitable[None]]
#: what the reader does when the handler fails (the projector stops its worker)
OnFailure = Callable[[BaseException], Awaitable[None]]


class ControlLogReader:
    """Reads the control log from an offset and hands each batch to ``handler``, with the
    :class:`~projections.projector.outputs.Outputs` it writes through."""

    def __init__(
        self, settings: ProjectorSettings, topics: Topics, handler: Handler, on_failure: OnFailure
    ) -> None:
        self.settings = settings
        self.topics = topics
        self.tp = TopicPartition(topics.events, 0)
        self._handler = handler
        self._on_failure = on_failure
        self._task: asyncio.Task[None] | None = None
        self._consumer: AIOKafkaConsumer | None = None
        self.batches = 0

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    def start(self, offset: int, *, first: First | None = None) -> None:
        """Read from ``offset`` on, in a task of its own, after ``first`` (a takeover's
        resync) has written through the same producer."""
        if self.running:
            raise RuntimeError("control-log reader already running")
        self._task = asyncio.create_task(self._run(offset, first), name="projector:control-log")

    async def stop(self) -> None:
        """Stop reading; returns once no batch is being handled."""
        task, self._task = self._task, None
        if task is None or task.done():
            return
        task.cancel()
        try:
            await task
        except asyncio.CancelledError:
            current = asyncio.current_task()
            if current is not None and current.cancelling():
                raise  # we are cancelled ourselves, not only the reader

    async def lag(self) -> tuple[int | None, int | None]:
        """The partition's high watermark and this reader's position (None: unknown), as
        Faust's consumer would say them for a partition it reads."""
        consumer = self._consumer
        if consumer is None or not self.running:
            return None, None
        try:
            return consumer.highwater(self.tp), await consumer.position(self.tp)
        except Exception:  # revoked or stopping meanwhile: measured again next time
            return None, None

    async def _run(self, offset: int, first: First | None) -> None:
        s = self.settings
        consumer = make_consumer(
            s.kafka_access,
            auto_offset_reset="none",
            request_timeout_ms=int(s.projector_kafka_timeout * 1000),
        )
        producer = make_producer(
            s.kafka_access,
            linger_ms=int(s.projector_producer_linger * 1000),
            request_timeout_ms=int(s.projector_kafka_timeout * 1000),
        )
        timeout = s.projector_kafka_timeout
        try:
            async with (
                started(consumer, kafka_timeout=timeout, what="control-log reader"),
                started(producer, kafka_timeout=timeout, what="projector producer"),
            ):
                out = Outputs(producer, self.topics.assignments)
                if first is not None:
                    await first(out)
                consumer.assign([self.tp])
                consumer.seek(self.tp, offset)
                self._consumer = consumer
                wait_ms = max(1, int(s.projector_batch_within * 1000))
                while True:
                    fetched = await consumer.getmany(
                        self.tp, timeout_ms=wait_ms, max_records=s.projector_batch_max
                    )
                    raw = fetched.get(self.tp)
                    if raw:
                        self.batches += 1
                        await self._handler([(r.offset, r.key, r.value) for r in raw], out)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.exception("control-log reader failed; the projector stops")
            await self._on_failure(exc)
        finally:
            self._consumer = None


__all__ = ["ControlLogReader", "RawRecord"]
