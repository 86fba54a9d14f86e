"""The PostgreSQL read model: ``fold(control log)`` as tables, for the HTTP API and the CLI.

:class:`ReadModelProjector` reads ``<prefix>.events`` (aiokafka, read_committed, ``getmany``),
folds each batch with :func:`projections.fold.apply` (:func:`fold_batch`, pure) and writes the
changed rows of ``instances``, ``streams``, ``migrations``, the ``events`` audit copy, the
``cluster`` summary and the ``projection_tracking`` row **in one transaction** (schema in
``read_model.sql``). The tracking row holds the next log offset to apply and is checked
``FOR UPDATE`` first: a batch at or below it is a no-op (reprocessing is harmless), a batch that
does not start at it means another writer moved it (:class:`TrackingConflictError`).

On start (and after a conflict) the projector *resumes*: it reads the tracking row and
replays the log up to that offset with :func:`projections.replay.replay` (fold only, no
writes), so its in-memory state is exactly the state the rows reflect, then goes on from
there. A database that is down makes ``execute_with_retry`` back off and then fail with a clear
:class:`DatabaseUnavailableError`; ``run`` waits and tries again from its last committed batch.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import Sequence
from contextlib import AsyncExitStack
from datetime import UTC, datetime
from importlib import resources
from typing import Any, NamedTuple

import asyncpg
from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition
from aiokafka import errors as kafka_errors
from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from events import control as ev
from events.base import ControlEvent
from events.codec import decode_event, to_wire
from events.errors import EventError, MalformedMessageError
from events.topics import Topics
from projections.assignments import assignment_value, event_reason, instance_value, stream_value
from projections.assignments import changes as state_changes
from projections.db import (
    DatabaseError,
    DatabaseSettings,
    ResilientDatabaseManager,
    TrackingConflictError,
)
from projections.dlq import DeadLetterWriter, make_dead_letter
from projections.errors import kafka_error
from projections.fold import apply
from projections.health import system_health
from projections.kafka_io import end_offsets, make_consumer, started
from projections.replay import ReplaySettings, replay
from projections.state import ClusterState, EnhancedInstance, StreamAssignment

log = logging.getLogger(__name__)

TABLES = ("events", "migrations", "streams", "instances", "cluster", "projection_tracking")


class ReadModelSettings(BaseSettings):
    """The read-model projector (env prefix ``STREAMPLANE_``)."""

    model_config = SettingsConfigDict(env_prefix="STREAMPLANE_", frozen=True, extra="ignore")

    kafka_bootstrap: str = "127.0.0.1:19092"
    topic_prefix: str = "streamplane"
    database_url: str = "postgresql://postgres@127.0.0.1:15432/streamplane"
    database_schema: str = "public"
    #: name of the tracking row (several read models may share a schema)
    read_model_name: str = "read_model"
    read_model_batch_max: int = Field(default=5000, ge=1)
    read_model_poll_ms: int = Field(default=500, ge=1)
    kafka_timeout: float = Field(default=30.0, gt=0)
    #: pause after the database failed every retry, before trying the batch again
    read_model_recovery_pause: float = Field(default=2.0, gt=0)
    #: how often ``run`` looks for long transactions, seconds
    read_model_monitor_every: float = Field(default=60.0, gt=0)
    read_model_dead_letters: bool = True
    database: DatabaseSettings = DatabaseSettings()


# --- the pure part ----------------------------------------------------------------------


class BatchOutcome(NamedTuple):
    """What one batch did: the new state and the rows to write."""

    state: ClusterState
    #: stream_id -> (reason, seq) of the last event that changed it
    streams: dict[str, tuple[str, int]]
    instances: set[str]
    events: list[tuple[Any, ...]]
    migrations_started: list[tuple[Any, ...]]
    migrations_ended: list[tuple[Any, ...]]


def _finding(before: ClusterState, after: ClusterState) -> str | None:
    if after.finding_count == before.finding_count:
        return None
    return after.findings[-1].kind.value


def event_row(offset: int, event: ControlEvent, finding: str | None) -> tuple[Any, ...]:
    """The ``events`` audit row of one decoded record."""
    wire = to_wire(event)
    reason = getattr(event, "reason", None)
    return (
        offset,
        event.seq,
        event.epoch,
        event.id,
        wire["type"],
        event.time,
        event.subject,
        reason,
        event.causationid,
        event.correlationid,
        finding,
        wire["data"],
    )


def _migration_rows(
    out: BatchOutcome, before: ClusterState, after: ClusterState, event: ControlEvent, sid: str
) -> None:
    """Migration rows from the ``in_flight`` index: a migration that left it ended
    (``completed``/``aborted`` by its own event, else ``cancelled``, e.g. the stream failed
    or was deregistered); one that entered it started."""
    old, new = before.in_flight.get(sid), after.in_flight.get(sid)
    if old == new:
        return
    if old is not None:
        outcome = "cancelled"
        if isinstance(event, ev.MigrationCompleted | ev.MigrationAborted):
            outcome = "completed" if isinstance(event, ev.MigrationCompleted) else "aborted"
        out.migrations_ended.append((old, outcome, event_reason(event), event.time, event.seq))
    m = after.streams[sid].migration_state if new is not None else None
    if m is not None:
        out.migrations_started.append(
            (m.migration_id, sid, m.from_server, m.to_server, m.reason, m.plan_id,
             m.started_at, m.deadline, event.seq)
        )  # fmt: skip


def fold_batch(state: ClusterState, records: Sequence[tuple[int, ControlEvent]]) -> BatchOutcome:
    """Pure: fold ``(offset, event)`` pairs onto ``state`` and collect the rows they change."""
    out = BatchOutcome(state, {}, set(), [], [], [])
    for offset, event in records:
        before = state
        state = apply(before, event)
        finding = _finding(before, state)
        out.events.append(event_row(offset, event, finding))
        changed = state_changes(before, state, event)
        out.instances.update(changed.instances)
        reason = event_reason(event)
        for sid in changed.streams:
            out.streams[sid] = (reason, event.seq)
            _migration_rows(out, before, state, event, sid)
    return out._replace(state=state)


def stream_row(stream: StreamAssignment, reason: str, seq: int) -> tuple[Any, ...]:
    """One ``streams`` row."""
    record = assignment_value(stream, seq=seq, epoch=0, time=None, reason=reason)
    return (
        stream.stream_id,
        stream.server_id,
        stream.incarnation,
        stream.status.value,
        stream.weight,
        stream.priority,
        stream.assigned_at,
        record["migration"],
        reason,
        stream_value(stream),
        seq,
    )


def instance_row(inst: EnhancedInstance, seq: int) -> tuple[Any, ...]:
    """One ``instances`` row."""
    return (
        inst.server_id,
        inst.incarnation,
        inst.status.value,
        inst.draining,
        inst.max_streams,
        inst.current_streams,
        inst.load,
        inst.zone,
        inst.last_heartbeat,
        instance_value(inst, seq=seq),
        seq,
    )


def health_data(state: ClusterState) -> dict[str, Any]:
    """SystemHealth of ``state`` as JSON, with ``overall`` and ``needs_intervention``."""
    health = system_health(state)
    data = dataclasses.asdict(health)
    data["overall"] = health.overall_health().value
    data["needs_intervention"] = health.needs_intervention()
    return data


# --- SQL --------------------------------------------------------------------------------

UPSERT_STREAM = """
INSERT INTO streams (stream_id, server_id, incarnation, status, weight, priority, assigned_at,
                     migration, reason, data, as_of_seq)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)
ON CONFLICT (stream_id) DO UPDATE SET server_id = EXCLUDED.server_id,
  incarnation = EXCLUDED.incarnation, status = EXCLUDED.status, weight = EXCLUDED.weight,
  priority = EXCLUDED.priority, assigned_at = EXCLUDED.assigned_at,
  migration = EXCLUDED.migration, reason = EXCLUDED.reason, data = EXCLUDED.data,
  as_of_seq = EXCLUDED.as_of_seq
"""
UPSERT_INSTANCE = """
INSERT INTO instances (server_id, incarnation, status, draining, max_streams, current_streams,
                       load, zone, last_heartbeat, data, as_of_seq)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)
ON CONFLICT (server_id) DO UPDATE SET incarnation = EXCLUDED.incarnation,
  status = EXCLUDED.status, draining = EXCLUDED.draining, max_streams = EXCLUDED.max_streams,
  current_streams = EXCLUDED.current_streams, load = EXCLUDED.load, zone = EXCLUDED.zone,
  last_heartbeat = EXCLUDED.last_heartbeat, data = EXCLUDED.data, as_of_seq = EXCLUDED.as_of_seq
"""
INSERT_EVENT = """
INSERT INTO events (log_offset, seq, epoch, id, type, time, subject, reason, causationid,
                    correlationid, finding, data)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12) ON CONFLICT DO NOTHING
"""
START_MIGRATION = """
INSERT INTO migrations (migration_id, stream_id, from_server, to_server, reason, plan_id,
                        started_at, deadline, started_seq)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) ON CONFLICT DO NOTHING
"""
END_MIGRATION = """
UPDATE migrations SET outcome = $2, outcome_reason = $3, ended_at = $4, ended_seq = $5
WHERE migration_id = $1
"""
UPSERT_CLUSTER = """
INSERT INTO cluster (projection, seq, epoch, leader_id, maintenance, last_event_time,
                     finding_count, health)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
ON CONFLICT (projection) DO UPDATE SET seq = EXCLUDED.seq, epoch = EXCLUDED.epoch,
  leader_id = EXCLUDED.leader_id, maintenance = EXCLUDED.maintenance,
  last_event_time = EXCLUDED.last_event_time, finding_count = EXCLUDED.finding_count,
  health = EXCLUDED.health
"""
TRACKING_LOCK = "SELECT next_offset FROM projection_tracking WHERE projection = $1 FOR UPDATE"
TRACKING_SET = """
UPDATE projection_tracking SET next_offset = $2, last_seq = $3, updated_at = now()
WHERE projection = $1
"""


def schema_sql() -> str:
    """The DDL of the read model (``read_model.sql``, shipped as package data)."""
    return resources.files("projections").joinpath("read_model.sql").read_text("utf-8")


async def create_tables(conn: asyncpg.Connection, name: str) -> None:
    """Create the tables (idempotent) and this projection's tracking row."""
    await conn.execute(schema_sql())
    await conn.execute(
        "INSERT INTO projection_tracking (projection, next_offset, last_seq) VALUES ($1, 0, 0) "
        "ON CONFLICT DO NOTHING",
        name,
    )


async def write_batch(
    conn: asyncpg.Connection, name: str, batch: BatchOutcome, start: int, end: int
) -> bool:
    """Write ``batch`` (log offsets ``[start, end)``) in the caller's transaction; False
    when the tracking row says it was applied already."""
    current = await conn.fetchval(TRACKING_LOCK, name)
    if current is None:
        raise TrackingConflictError(f"no tracking row {name!r}: tables not set up")
    if current >= end:
        return False
    if current != start:
        raise TrackingConflictError(f"tracking row {name!r} is at {current}, batch starts {start}")
    state = batch.state
    gone = [sid for sid in batch.streams if sid not in state.streams]
    if gone:
        await conn.execute("DELETE FROM streams WHERE stream_id = ANY($1::text[])", gone)
    kept = sorted((s, rq) for s, rq in batch.streams.items() if s in state.streams)
    await conn.executemany(UPSERT_STREAM, [stream_row(state.streams[s], *rq) for s, rq in kept])
    lost = [i for i in batch.instances if i not in state.instances]
    if lost:
        await conn.execute("DELETE FROM instances WHERE server_id = ANY($1::text[])", lost)
    insts = [state.instances[i] for i in sorted(batch.instances) if i in state.instances]
    await conn.executemany(UPSERT_INSTANCE, [instance_row(i, state.seq) for i in insts])
    await conn.executemany(INSERT_EVENT, batch.events)
    await conn.executemany(START_MIGRATION, batch.migrations_started)
    await conn.executemany(END_MIGRATION, batch.migrations_ended)
    await conn.execute(
        UPSERT_CLUSTER,
        name,
        state.seq,
        state.epoch,
        state.leader_id,
        state.maintenance,
        state.last_event_time,
        state.finding_count,
        health_data(state),
    )
    await conn.execute(TRACKING_SET, name, end, state.seq)
    return True


# --- the shell --------------------------------------------------------------------------


class ReadModelProjector:
    """Keeps the read model in ``schema`` of ``database_url`` equal to the fold of the log.

    ``async with ReadModelProjector(url, schema=..., settings=...) as p:`` then
    ``await p.catch_up()`` (up to the end seen now), ``await p.run(stop)`` (forever) or
    ``await p.rebuild()`` (drop the tables and project the whole log again).
    """

    def __init__(
        self,
        database_url: str | None = None,
        *,
        schema: str | None = None,
        settings: ReadModelSettings | None = None,
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
        self.rejected = 0
        self._tp = TopicPartition(self.topics.events, 0)
        self._consumer: AIOKafkaConsumer | None = None
        self._dlq: DeadLetterWriter | None = None
        self._stack: AsyncExitStack | None = None

    async def __aenter__(self) -> ReadModelProjector:
        s = self.settings
        stack = AsyncExitStack()
        try:
            stack.push_async_callback(self.db.close)
            await self.setup()  # the database first: it gives the clearer error when down
            consumer = make_consumer(
                s.kafka_bootstrap,
                auto_offset_reset="none",
                request_timeout_ms=int(s.kafka_timeout * 1000),
            )
            what = "read-model consumer"
            self._consumer = await stack.enter_async_context(
                started(consumer, kafka_timeout=s.kafka_timeout, what=what)
            )
            consumer.assign([self._tp])
            if s.read_model_dead_letters:
                writer = DeadLetterWriter(s.kafka_bootstrap, self.topics.dlq)
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
                self.settings.kafka_bootstrap, self.topics.events, until_offset=offset, settings=cfg
            )
            state = result.state
        self.state, self.offset = state, offset
        assert self._consumer is not None
        self._consumer.seek(self._tp, offset)
        log.info("read model %r resumes at offset %d (seq %d)", name, offset, state.seq)

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
        self.state, self.offset = batch.state, end
        self.batches_written += int(written)
        return len(records) if written else 0

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
                self.rejected += 1
                log.warning("read model: undecodable record at %d: %s", record.offset, exc)
                if self._dlq is not None:
                    await self._dlq.write(self._letter(record, exc))
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
                self.settings.kafka_bootstrap,
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
            except TrackingConflictError as exc:
                log.warning("read model: %s; resuming from the tracking row", exc)
                await self.resume()
            except DatabaseError as exc:
                if not exc.retriable:
                    raise
                log.error("read model: %s; trying again in %.1fs", exc, s.read_model_recovery_pause)
                await asyncio.sleep(s.read_model_recovery_pause)
                assert self._consumer is not None
                self._consumer.seek(self._tp, self.offset)
