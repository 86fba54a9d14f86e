"""The PostgreSQL read model: ``fold(control log)`` as tables, for the HTTP API and the CLI.

:class:`ReadModelProjector` reads ``<prefix>.events`` (aiokafka, read_committed, ``getmany``),
folds each batch with :func:`projections.fold.apply` (:func:`fold_batch`, pure) and writes the
changed rows of ``instances``, ``streams``, ``migrations``, the ``events`` audit copy, the
``cluster`` summary and the ``projection_tracking`` row **in one transaction** (schema in
``read_model.sql``). The tracking row holds the next log offset to apply and is checked
``FOR UPDATE`` first: a batch at or below it is a no-op (reprocessing is harmless), a batch that
does not start at it means another writer moved it (:class:`TrackingConflictError`).

On start (and after a conflict) the projector *resumes*: it reads the tracking row and
replays the log up to that offset with :func:`projections.io.replay.replay` (fold only, no
writes), so its in-memory state is exactly the state the rows reflect, then goes on from
there. A database that is down makes ``execute_with_retry`` back off and then fail with a clear
:class:`DatabaseUnavailableError`; ``run`` **pauses**: it logs once that it waits for
PostgreSQL (then a reminder every 10 s), sets ``streamplane_read_model_waiting_for_database``
to 1, tries the same batch again every ``read_model_recovery_pause`` seconds and, once a batch
commits, logs how long it waited and goes on. Nothing is skipped or applied twice: the
tracking row moves in the transaction that writes the rows, and the Kafka consumer commits
nothing (it seeks to the tracking row's offset on start and after each failure).
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
from collections.abc import Sequence
from contextlib import AsyncExitStack
from datetime import UTC, datetime
from typing import Any

import asyncpg
from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition
from aiokafka import errors as kafka_errors
from prometheus_client import CollectorRegistry

from events.base import ControlEvent
from events.codec import decode_event
from events.errors import EventError, MalformedMessageError
from events.topics import DLQ, EVENTS, Topics
from projections.fold.rows import fold_batch
from projections.fold.state import ClusterState
from projections.io.dlq import DeadLetterWriter, make_dead_letter
from projections.io.kafka import end_offsets, kafka_error, make_consumer, started
from projections.io.postgres import (
    DatabaseError,
    ResilientDatabaseManager,
    TrackingConflictError,
)
from projections.io.read_store import (
    TABLES,
    ReadModelSettings,
    create_tables,
    write_batch,
)
from projections.io.replay import ReplaySettings, replay
from projections.io.topics import ensure_topics
from projections.read_model.metrics import ReadModelMetrics, ReadModelSnapshot
from telemetry.metrics import serving, topic_label

log = logging.getLogger(__name__)

#: seconds between two "still waiting for PostgreSQL" lines while paused
REMIND_EVERY = 10.0


# --- the shell --------------------------------------------------------------------------


class ReadModelProjector:
    """Keeps the read model in ``schema`` of ``database_url`` equal to the fold of the log.

    ``async with ReadModelProjector(url, schema=..., settings=...) as p:`` then
    ``await p.catch_up()`` (up to the end seen now), ``await p.run(stop)`` (forever) or
    ``await p.rebuild()`` (drop the tables and project the whole log again).

    Its metrics (:attr:`metrics`) go to ``registry`` when given (the process it runs in
    serves them), else to its own, served on ``metrics_address`` while it is open.
    """

    def __init__(
        self,
        database_url: str | None = None,
        *,
        schema: str | None = None,
        settings: ReadModelSettings | None = None,
        registry: CollectorRegistry | None = None,
    ) -> None:
        base = settings or ReadModelSettings()
        overrides = {"database_url": database_url, "database_schema": schema}
        self.settings = s = base.model_copy(
            update={k: v for k, v in overrides.items() if v is not None}
        )
        self.topics = Topics(s.topic_prefix)
        self.db = ResilientDatabaseManager(
            s.database_url,
            schema=s.database_schema,
            settings=s.database,
            application_name="streamplane-read-model",
        )
        self.state = ClusterState()
        #: next log offset to apply (== the tracking row once a batch is committed)
        self.offset = 0
        self.batches_written = 0
        self.events_applied = 0
        self.rejected = 0
        #: records below this offset were dead-lettered already (a batch tried again after a
        #: database failure is fetched again: its bad records are not sent twice)
        self._lettered_until = 0
        #: loop time since when ``run`` waits for PostgreSQL (None: not waiting)
        self._waiting_since: float | None = None
        self._reminded_at = 0.0
        self.database_pauses = 0
        #: the consumer's position and the log's last stable offset after the last fetch
        self._position = 0
        self._log_end: int | None = None
        self.metrics = ReadModelMetrics(self._metrics_snapshot, self.db, registry)
        self._tp = TopicPartition(self.topics.events, 0)
        self._consumer: AIOKafkaConsumer | None = None
        self._dlq: DeadLetterWriter | None = None
        self._stack: AsyncExitStack | None = None

    async def __aenter__(self) -> ReadModelProjector:
        s = self.settings
        stack = AsyncExitStack()
        try:
            self._serve_metrics(stack)
            stack.push_async_callback(self.db.close)
            await self.setup()  # the database first: it gives the clearer error when down
            # the log (and the DLQ) as the contract says, never a broker's auto-created one
            await ensure_topics(
                s.kafka_access, self.topics, (EVENTS, DLQ), kafka_timeout=s.kafka_timeout
            )
            consumer = make_consumer(
                s.kafka_access,
                auto_offset_reset="none",
                request_timeout_ms=int(s.kafka_timeout * 1000),
            )
            what = "read-model consumer"
            self._consumer = await stack.enter_async_context(
                started(consumer, kafka_timeout=s.kafka_timeout, what=what)
            )
            consumer.assign([self._tp])
            if s.read_model_dead_letters:
                writer = DeadLetterWriter(s.kafka_access, self.topics.dlq)
                self._dlq = await stack.enter_async_context(writer)
            await self.resume()
        except BaseException:
            await stack.aclose()
            raise
        self._stack = stack
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        stack, self._stack = self._stack, None
        self._consumer = self._dlq = None
        if stack is not None:
            await stack.aclose()

    def _serve_metrics(self, stack: AsyncExitStack) -> None:
        """Serve our own registry while open (first: a long resume is worth watching)."""
        m = self.metrics
        if not m.owns_registry or m.loop_lag is None:
            return
        stack.enter_context(serving(m.registry, self.settings.metrics_address))
        stack.callback(asyncio.create_task(m.loop_lag.run(), name="read-model:lag").cancel)

    def _metrics_snapshot(self) -> ReadModelSnapshot:
        """What the metrics read, on the metrics server's thread: reads only."""
        return ReadModelSnapshot(
            self.state.seq,
            self.offset,
            self._position,
            self._log_end,
            self.events_applied,
            self.batches_written,
            self._waiting_since is not None,
            self.database_pauses,
        )

    async def setup(self) -> None:
        """Create the tables and the tracking row if missing."""
        name = self.settings.read_model_name
        await self.db.execute_with_retry(lambda c: create_tables(c, name), what="create tables")

    async def resume(self) -> None:
        """Fold the log up to the tracking row's offset and continue from there."""
        name = self.settings.read_model_name

        async def tracked(conn: asyncpg.Connection) -> int:
            return int(
                await conn.fetchval(
                    "SELECT next_offset FROM projection_tracking WHERE projection = $1", name
                )
            )

        offset = await self.db.execute_with_retry(tracked, what="read tracking row")
        state = ClusterState()
        if offset > 0:
            cfg = ReplaySettings(kafka_timeout=self.settings.kafka_timeout)
            result = await replay(
                self.settings.kafka_access, self.topics.events, until_offset=offset, settings=cfg
            )
            state = result.state
        self.state, self.offset = state, offset
        assert self._consumer is not None
        self._consumer.seek(self._tp, offset)
        log.info(
            "read model %r resumes at offset %d (seq %d)",
            name,
            offset,
            state.seq,
            extra={"seq": state.seq, "epoch": state.epoch},
        )

    async def step(self) -> int:
        """Fetch one batch, fold it and commit it; returns how many events it applied."""
        s = self.settings
        assert self._consumer is not None
        try:
            async with asyncio.timeout(s.kafka_timeout):
                fetched = await self._consumer.getmany(
                    self._tp, timeout_ms=s.read_model_poll_ms, max_records=s.read_model_batch_max
                )
                position = await self._consumer.position(self._tp)
        except (TimeoutError, kafka_errors.KafkaError) as exc:
            raise kafka_error(exc, f"fetch {self._tp.topic}") from exc
        self._position, self._log_end = position, self._consumer.last_stable_offset(self._tp)
        records = await self._decode(fetched.get(self._tp, []))
        if position <= self.offset:
            return 0
        return await self.apply_records(records, end=position)

    async def apply_records(self, records: Sequence[tuple[int, ControlEvent]], *, end: int) -> int:
        """Fold ``records`` (offsets from ``self.offset`` up to ``end``) and commit them with
        the tracking row; a batch the row already covers changes nothing."""
        batch = fold_batch(self.state, records)
        name, start = self.settings.read_model_name, self.offset

        async def write(conn: asyncpg.Connection) -> bool:
            return await write_batch(conn, name, batch, start, end)

        written = await self.db.execute_with_retry(write, what=f"apply offsets {start}..{end}")
        self._crash_point(written)
        self.state, self.offset = batch.state, end
        self._database_back()
        self.batches_written += int(written)
        self.events_applied += len(records) if written else 0
        return len(records) if written else 0

    def _crash_point(self, written: bool) -> None:
        """TEST ONLY (``read_model_crash_after_batches``): SIGKILL this process right after
        the Nth commit, before anything else happens, to prove a crash there loses nothing."""
        limit = self.settings.read_model_crash_after_batches
        if written and limit and self.batches_written + 1 >= limit:
            log.warning("read model: test crash point reached after %d batches", limit)
            os.kill(os.getpid(), signal.SIGKILL)

    async def _decode(
        self, raw: list[ConsumerRecord[bytes, bytes]]
    ) -> list[tuple[int, ControlEvent]]:
        out = []
        for record in raw:
            try:
                if record.value is None:
                    raise MalformedMessageError("record has no value (a tombstone)")
                out.append((record.offset, decode_event(record.value)))
            except EventError as exc:
                if record.offset < self._lettered_until:
                    continue  # sent already, before a database failure made us fetch it again
                self.rejected += 1
                log.warning("read model: undecodable record at %d: %s", record.offset, exc)
                if self._dlq is not None:
                    await self._dlq.write(self._letter(record, exc))
                    origin = topic_label(self._tp.topic, self.topics.prefix)
                    self.metrics.dead_letters.labels(origin).inc()
                self._lettered_until = record.offset + 1
        if self._dlq is not None and len(out) < len(raw):
            # acknowledged before the batch commits: a crash after the commit loses no letter
            await self._dlq.flush()
        return out

    def _letter(self, record: ConsumerRecord[bytes, bytes], exc: EventError) -> Any:
        return make_dead_letter(
            topic=self._tp.topic,
            partition=0,
            offset=record.offset,
            key=record.key,
            value=record.value,
            error=exc,
            now=datetime.now(UTC),
            timestamp_ms=record.timestamp,
        )

    async def catch_up(self) -> int:
        """Apply everything up to the end of the log as it is now; returns the events applied."""
        end = (
            await end_offsets(
                self.settings.kafka_access,
                self.topics.events,
                kafka_timeout=self.settings.kafka_timeout,
            )
        ).get(0, 0)
        applied = 0
        while self.offset < end:
            applied += await self.step()
        return applied

    async def rebuild(self) -> int:
        """Drop the read model's tables, recreate them and project the whole log again."""
        drop = "DROP TABLE IF EXISTS " + ", ".join(TABLES) + " CASCADE"
        await self.db.execute_with_retry(lambda c: c.execute(drop), what="drop read model")
        await self.setup()
        await self.resume()
        return await self.catch_up()

    async def run(self, stop: asyncio.Event | None = None) -> None:
        """Follow the log until ``stop`` is set. When the database fails every retry, wait
        and go on from the last committed batch (after a tracking conflict: resume)."""
        stop = stop or asyncio.Event()
        s = self.settings
        loop = asyncio.get_running_loop()
        next_check = loop.time() + s.read_model_monitor_every
        while not stop.is_set():
            try:
                await self.step()
                if loop.time() >= next_check:
                    next_check = loop.time() + s.read_model_monitor_every
                    await self.db.monitor_long_transactions()
                    self._database_back()
            except TrackingConflictError as exc:
                log.warning("read model: %s; resuming from the tracking row", exc)
                await self.resume()
            except DatabaseError as exc:
                if not exc.retriable:
                    raise
                self._database_failed(exc)
                await asyncio.sleep(s.read_model_recovery_pause)
                assert self._consumer is not None
                self._consumer.seek(self._tp, self.offset)

    def _database_failed(self, exc: DatabaseError) -> None:
        """Enter (or stay in) the paused state: one ERROR line on entry, then a reminder
        every ``REMIND_EVERY`` seconds."""
        pause, now = self.settings.read_model_recovery_pause, asyncio.get_running_loop().time()
        if self._waiting_since is None:
            self._waiting_since = now
            self.database_pauses += 1
            log.error(
                "read model paused at offset %d: waiting for PostgreSQL (%s); "
                "trying again every %.1fs",
                self.offset, exc, pause, extra={"seq": self.state.seq},
            )  # fmt: skip
            self._reminded_at = now
        elif now - self._reminded_at >= REMIND_EVERY:
            self._reminded_at = now
            waited = now - self._waiting_since
            log.warning("read model still waiting for PostgreSQL after %.0fs: %s", waited, exc)

    def _database_back(self) -> None:
        """Leave the paused state (after a statement that reached PostgreSQL)."""
        if self._waiting_since is None:
            return
        waited = asyncio.get_running_loop().time() - self._waiting_since
        self._waiting_since = None
        log.info(
            "read model resumed: PostgreSQL is back after %.1fs; at offset %d (seq %d)",
            waited, self.offset, self.state.seq, extra={"seq": self.state.seq},
        )  # fmt: skip
