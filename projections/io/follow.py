"""Following the topics live: the control log folded as it grows, the latest heartbeats.

Every process that watches the cluster (the orchestrator's hot standby, ``streamplane demo``,
the benchmarks, the test harness) needs the same two readers, and each used to have its own
copy. They are here, once, with the house's rules for a consumer:

- :class:`LogFollower` reads the control log (``read_committed``, one partition assigned by
  hand, no group), decodes each record and folds each new event into :attr:`state` with the
  one fold; :meth:`LogFollower.poll` returns the new events, :attr:`position` is the offset
  after the last record read. It starts from the beginning or from a snapshot's state and
  offset, and :meth:`LogFollower.catch_up` reads up to the end offset seen when called.
- :class:`HeartbeatWatcher` keeps the latest heartbeat per server from every partition of
  the heartbeats topic.

Every Kafka call is bounded (``kafka_timeout``) and every read is a bounded ``getmany``.
A record that does not decode is handed to ``on_undecodable``: by default it is raised (with
its offset in a note) and the reader stops before it, so nothing is dropped by accident;
:func:`to_dead_letters` writes it to a dead-letter sink and goes on; :func:`skip_undecodable`
is for callers that say, explicitly, that another process dead-letters it.

The PostgreSQL read model (:mod:`projections.read_model.service`) reads the same log but not
with this follower: its state may move only together with its database transaction
(``fold_batch`` folds the batch and derives the changed rows in one pass, and a failed write
leaves state and offset where they were), so a reader that folds on read would fold twice
and have to be undone on every failed write.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime
from typing import Any, Self, TypeAlias, TypeVar

from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition
from aiokafka import errors as kafka_errors

from events.base import ControlEvent
from events.codec import decode_event, decode_heartbeat
from events.errors import EventError, MalformedMessageError
from events.heartbeat import Heartbeat
from events.topics import HEARTBEATS, Topics
from kafka_auth import Brokers
from projections.fold import fold_from
from projections.fold.state import ClusterState
from projections.io.dlq import DeadLetterSink, make_dead_letter
from projections.io.kafka import DEFAULT_TIMEOUT, fetch_batch, kafka_error, make_consumer, started

log = logging.getLogger(__name__)
T = TypeVar("T")

Record: TypeAlias = "ConsumerRecord[bytes, bytes]"
#: what a reader does with a record it cannot decode (after counting it)
OnUndecodable = Callable[[Record, EventError], Awaitable[None]]


async def raise_undecodable(record: Record, exc: EventError) -> None:
    """The default: stop at the record, loudly (the reader's position stays before it)."""
    exc.add_note(f"undecodable record at {record.topic}[{record.partition}]@{record.offset}")
    raise exc


async def skip_undecodable(record: Record, exc: EventError) -> None:
    """Ignore it: only for a caller whose records another process already dead-letters."""
    return None


def to_dead_letters(
    sink: DeadLetterSink,
    *,
    clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    logger: logging.Logger = log,
) -> OnUndecodable:
    """A handler that logs the record as a warning and writes it to ``sink``."""

    async def dead_letter(record: Record, exc: EventError) -> None:
        letter = make_dead_letter(
            topic=record.topic,
            partition=record.partition,
            offset=record.offset,
            key=record.key,
            value=record.value,
            error=exc,
            now=clock(),
            timestamp_ms=record.timestamp,
        )
        logger.warning(
            "dead-lettered %s[%d]@%d: %s", record.topic, record.partition, record.offset, exc
        )
        await sink.write(letter)

    return dead_letter


def _value(record: Record) -> bytes:
    value: bytes | None = record.value
    if value is None:
        raise MalformedMessageError("record has no value (a tombstone)")
    return value


class _Reader:
    """One started consumer with hand-assigned partitions (the part both readers share)."""

    def __init__(
        self,
        bootstrap: Brokers,
        *,
        on_undecodable: OnUndecodable,
        kafka_timeout: float,
        max_records: int,
        what: str,
        **consumer_settings: Any,
    ) -> None:
        self.on_undecodable = on_undecodable
        self.kafka_timeout = kafka_timeout
        self.max_records = max_records
        #: records that did not decode (handed to ``on_undecodable``)
        self.undecodable = 0
        self._what = what
        self._consumer = make_consumer(bootstrap, **consumer_settings)
        self._stack = contextlib.AsyncExitStack()

    @property
    def consumer(self) -> AIOKafkaConsumer:
        """The underlying consumer (for offset queries such as a snapshot's bounds)."""
        return self._consumer

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def start(self) -> None:
        raise NotImplementedError

    async def _start(self, tps: Sequence[TopicPartition]) -> None:
        await self._stack.enter_async_context(
            started(self._consumer, kafka_timeout=self.kafka_timeout, what=self._what)
        )
        self._consumer.assign(list(tps))

    async def stop(self) -> None:
        """Stop the consumer (bounded; errors while stopping are not raised)."""
        await self._stack.aclose()

    async def _bounded(self, what: str, call: Awaitable[T], *, extra: float = 0.0) -> T:
        """``await call`` within ``kafka_timeout`` (+ ``extra`` seconds of wanted waiting);
        Kafka's errors raised as :mod:`projections.errors` says."""
        try:
            async with asyncio.timeout(self.kafka_timeout + extra):
                return await call
        except (TimeoutError, kafka_errors.KafkaError) as exc:
            raise kafka_error(exc, f"{self._what}: {what}") from exc


class LogFollower(_Reader):
    """The control log, folded as it grows (see the module docstring).

    ``async with LogFollower(bootstrap, topics) as f:`` then ``await f.poll()`` for what is
    new, ``f.state`` for the fold so far, ``f.position`` for where it stands in the log.
    ``from_state``/``from_offset`` start from a snapshot (``from_state`` must be the fold of
    the log before ``from_offset``); without them it starts from the beginning.
    ``fetch_max_wait_ms`` bounds how long the broker holds an empty fetch: Kafka answers one
    request per connection at a time, so an offset query (:meth:`catch_up`) waits behind a
    pending fetch for up to that long (aiokafka's default is 500 ms).
    """

    def __init__(
        self,
        bootstrap: Brokers,
        topics: Topics,
        *,
        from_state: ClusterState | None = None,
        from_offset: int | None = None,
        on_undecodable: OnUndecodable = raise_undecodable,
        kafka_timeout: float = DEFAULT_TIMEOUT,
        max_records: int = 20_000,
        fetch_max_wait_ms: int = 500,
        what: str = "log follower",
    ) -> None:
        super().__init__(
            bootstrap,
            on_undecodable=on_undecodable,
            kafka_timeout=kafka_timeout,
            max_records=max_records,
            what=what,
            auto_offset_reset="earliest",
            fetch_max_wait_ms=fetch_max_wait_ms,
        )
        self.topics = topics
        self.tp = TopicPartition(topics.events, 0)
        self.state = from_state or ClusterState()
        #: the offset of the next record to read (valid once started)
        self.position = from_offset or 0
        self._from_offset = from_offset

    async def start(self) -> None:
        """Start the consumer and seek to the start point given to the constructor."""
        try:
            await self._start([self.tp])
            await self.rewind(self.state, self._from_offset)
        except BaseException:
            await self.stop()
            raise

    async def rewind(self, state: ClusterState, offset: int | None) -> None:
        """Go on from ``state``, the fold of the log before ``offset`` (``None``: from the
        beginning of the log, ``state`` then being empty)."""
        if offset is None:
            await self._bounded("seek to the beginning", self._consumer.seek_to_beginning(self.tp))
            offset = int(await self._bounded("position", self._consumer.position(self.tp)))
        else:
            self._consumer.seek(self.tp, offset)
        self.state, self.position = state, offset

    async def poll(self, timeout_ms: int = 200) -> list[ControlEvent]:
        """The events since the last call (waiting up to ``timeout_ms`` for the first), each
        already folded into :attr:`state`."""
        records, position = await fetch_batch(
            self._consumer,
            self.tp,
            kafka_timeout=self.kafka_timeout + timeout_ms / 1000,
            poll_timeout_ms=timeout_ms,
            max_records=self.max_records,
            where=f"{self._what}: fetch {self.tp.topic}",
        )
        events: list[ControlEvent] = []
        for record in records:
            try:
                events.append(decode_event(_value(record)))
            except EventError as exc:
                self.undecodable += 1
                try:
                    await self.on_undecodable(record, exc)
                except BaseException:
                    # what came before it is folded; the next read starts at it again
                    self._consumer.seek(self.tp, record.offset)
                    self._advance(events, record.offset)
                    raise
        self._advance(events, position)
        return events

    def _advance(self, events: list[ControlEvent], position: int) -> None:
        if events:
            # fold_from: the same state as apply event by event, reached in place
            self.state = fold_from(self.state, events)
        self.position = position

    async def end_offset(self) -> int:
        """Where the log ends now for this (read_committed) reader: its last stable offset."""
        ends = await self._bounded("end offset", self._consumer.end_offsets([self.tp]))
        return int(ends[self.tp])

    async def catch_up(
        self, *, timeout_ms: int = 200, into: list[ControlEvent] | None = None
    ) -> int:
        """Read and fold up to the end of the log as it is when called; returns how many
        events that was (``into`` collects them)."""
        end = await self.end_offset()
        count = 0
        while self.position < end:
            events = await self.poll(timeout_ms)
            count += len(events)
            if into is not None:
                into.extend(events)
        return count


class HeartbeatWatcher(_Reader):
    """The latest heartbeat per ``server_id``, from every partition of the heartbeats topic.

    Starts at the end of the topic (what is sent from now on), or at its beginning with
    ``from_start``. A batch with an undecodable record that ``on_undecodable`` raises for
    changes nothing: every partition goes back to where the batch began.
    """

    def __init__(
        self,
        bootstrap: Brokers,
        topics: Topics,
        *,
        from_start: bool = False,
        on_undecodable: OnUndecodable = raise_undecodable,
        kafka_timeout: float = DEFAULT_TIMEOUT,
        max_records: int = 20_000,
        what: str = "heartbeat watcher",
    ) -> None:
        super().__init__(
            bootstrap,
            on_undecodable=on_undecodable,
            kafka_timeout=kafka_timeout,
            max_records=max_records,
            what=what,
            auto_offset_reset="earliest" if from_start else "latest",
        )
        self.latest: dict[str, Heartbeat] = {}
        self.tps = [TopicPartition(topics.heartbeats, p) for p in range(HEARTBEATS.partitions)]
        self._from_start = from_start

    async def start(self) -> None:
        """Start the consumer at the beginning or the end of every partition."""
        try:
            await self._start(self.tps)
            c = self._consumer
            seek = c.seek_to_beginning if self._from_start else c.seek_to_end
            await self._bounded("seek", seek(*self.tps))
        except BaseException:
            await self.stop()
            raise

    async def poll(self, timeout_ms: int = 0) -> list[Heartbeat]:
        """The heartbeats since the last call, in the order read; :attr:`latest` updated."""
        batches = await self._bounded(
            "fetch heartbeats",
            self._consumer.getmany(timeout_ms=timeout_ms, max_records=self.max_records),
            extra=timeout_ms / 1000,
        )
        out: list[Heartbeat] = []
        for records in batches.values():
            for record in records:
                try:
                    out.append(decode_heartbeat(_value(record)))
                except EventError as exc:
                    self.undecodable += 1
                    try:
                        await self.on_undecodable(record, exc)
                    except BaseException:
                        for tp, batch in batches.items():
                            if batch:
                                self._consumer.seek(tp, batch[0].offset)
                        raise
        for hb in out:
            self.latest[hb.server_id] = hb
        return out
