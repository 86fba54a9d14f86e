"""The read model's PostgreSQL side: its settings, schema (``read_model.sql``) and batch writer.

The rows come from :mod:`projections.fold.rows` (pure); the process that keeps them in step
with the log is :class:`projections.read_model.ReadModelProjector`.
"""

from __future__ import annotations

from importlib import resources

import asyncpg
from pydantic import Field
from pydantic_settings import SettingsConfigDict

from events.topics import DEFAULT_BOOTSTRAP, DEFAULT_PREFIX
from kafka_auth import KafkaClientSettings
from projections.fold.rows import BatchOutcome, health_data, instance_row, stream_row
from projections.fold.text import row_without_nul
from projections.io.postgres import (
    DatabaseSettings,
    TrackingConflictError,
)
from telemetry.metrics import MetricsAddress

TABLES = ("events", "migrations", "streams", "instances", "cluster", "projection_tracking")


class ReadModelSettings(KafkaClientSettings):
    """The read-model projector (env prefix ``STREAMPLANE_``)."""

    model_config = SettingsConfigDict(env_prefix="STREAMPLANE_", frozen=True, extra="ignore")

    kafka_bootstrap: str = DEFAULT_BOOTSTRAP
    topic_prefix: str = DEFAULT_PREFIX
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
    #: TEST ONLY, never set in production: SIGKILL the process right after its Nth batch
    #: commits (0: never); the crash tests prove that nothing is lost or applied twice there
    read_model_crash_after_batches: int = Field(default=0, ge=0)
    database: DatabaseSettings = DatabaseSettings()
    #: serve Prometheus metrics on ``host:port`` (empty: no endpoint); docs/metrics.md
    metrics_address: MetricsAddress = ""


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
EVENT_COLUMNS = (
    "log_offset", "seq", "epoch", "id", "type", "time", "subject", "reason", "causationid",
    "correlationid", "finding", "data",
)  # fmt: skip
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
    return resources.files("projections.io").joinpath("read_model.sql").read_text("utf-8")


async def create_tables(conn: asyncpg.Connection, name: str) -> None:
    """Create the tables (idempotent) and this projection's tracking row."""
    await conn.execute(schema_sql())
    await conn.execute(
        "INSERT INTO projection_tracking (projection, next_offset, last_seq) VALUES ($1, 0, 0) "
        "ON CONFLICT DO NOTHING",
        name,
    )


async def _insert_events(conn: asyncpg.Connection, rows: list[tuple[object, ...]]) -> None:
    """The ``events`` rows by binary COPY (several times the rate of an INSERT per row).
    The tracking row says none of them is there yet; should one be (a tracking row set
    back by hand), the batch is inserted row by row instead, skipping the rows present."""
    if not rows:
        return
    try:
        async with conn.transaction():  # a savepoint: a failed COPY leaves the batch usable
            await conn.copy_records_to_table("events", records=rows, columns=EVENT_COLUMNS)
    except asyncpg.UniqueViolationError:
        await conn.executemany(INSERT_EVENT, rows)


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
    # every text field without NUL, which PostgreSQL cannot hold (projections.fold.text)
    stream_rows = [row_without_nul(stream_row(state.streams[s], *rq)) for s, rq in kept]
    await conn.executemany(UPSERT_STREAM, stream_rows)
    lost = [i for i in batch.instances if i not in state.instances]
    if lost:
        await conn.execute("DELETE FROM instances WHERE server_id = ANY($1::text[])", lost)
    insts = [state.instances[i] for i in sorted(batch.instances) if i in state.instances]
    instance_rows = [row_without_nul(instance_row(i, state.seq)) for i in insts]
    await conn.executemany(UPSERT_INSTANCE, instance_rows)
    await _insert_events(conn, [row_without_nul(r) for r in batch.events])
    await conn.executemany(START_MIGRATION, [row_without_nul(r) for r in batch.migrations_started])
    await conn.executemany(END_MIGRATION, [row_without_nul(r) for r in batch.migrations_ended])
    cluster = (
        name,
        state.seq,
        state.epoch,
        state.leader_id,
        state.maintenance,
        state.last_event_time,
        state.finding_count,
        health_data(state),
    )
    await conn.execute(UPSERT_CLUSTER, *row_without_nul(cluster))
    await conn.execute(TRACKING_SET, name, end, state.seq)
    return True
