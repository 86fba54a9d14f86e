"""Lock waits on a real PostgreSQL: every connection of a ``ResilientDatabaseManager`` carries
``lock_timeout`` and ``idle_in_transaction_session_timeout``; a read model whose batch needs a
lock another session holds gets ``LockNotAvailableError``, retries (counted), and proceeds
once the lock is released; a session left idle in a transaction is ended by the server."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import asyncpg
import pytest

from events import encode
from events.topics import EVENTS, Topics
from projections.fold import fold
from projections.io.kafka import make_producer, publish, started
from projections.io.postgres import DatabaseSettings, ResilientDatabaseManager
from projections.io.read_store import ReadModelSettings
from projections.io.topics import ensure_topics
from projections.read_model import ReadModelProjector
from projections.testing.synthetic import generate_history

pytestmark = pytest.mark.integration


async def _until(predicate: Callable[[], bool], within: float = 30.0) -> None:
    for _ in range(int(within * 20)):
        if predicate():
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"not true within {within:.0f}s")


async def test_connections_carry_the_lock_and_idle_timeouts(
    database_url: str, pg_schema: str
) -> None:
    settings = DatabaseSettings(lock_timeout=0.25, idle_in_transaction_session_timeout=7)
    async with ResilientDatabaseManager(database_url, schema=pg_schema, settings=settings) as db:

        async def show(conn: asyncpg.Connection) -> tuple[str, str]:
            lock = await conn.fetchval("SHOW lock_timeout")
            idle = await conn.fetchval("SHOW idle_in_transaction_session_timeout")
            return str(lock), str(idle)

        assert await db.execute_with_retry(show, what="show") == ("250ms", "7s")


async def test_an_idle_transaction_is_ended_by_the_server_and_retried(
    database_url: str, pg_schema: str
) -> None:
    settings = DatabaseSettings(
        idle_in_transaction_session_timeout=0.3, attempts=3, backoff_base=0.05, backoff_cap=0.1
    )
    async with ResilientDatabaseManager(database_url, schema=pg_schema, settings=settings) as db:
        await db.execute_with_retry(lambda c: c.execute("CREATE TABLE t (n int)"), what="create")
        tries = 0

        async def stalls_once(conn: asyncpg.Connection) -> None:
            nonlocal tries
            tries += 1
            await conn.execute("INSERT INTO t VALUES ($1)", tries)
            if tries == 1:
                await asyncio.sleep(1.5)  # a client stuck inside its transaction
            await conn.execute("INSERT INTO t VALUES ($1)", tries)

        await db.execute_with_retry(stalls_once, what="stalls once")
        assert tries == 2 and db.retries == 1
        rows = await db.execute_with_retry(lambda c: c.fetch("SELECT n FROM t"), what="read")
        assert sorted(r["n"] for r in rows) == [2, 2]  # the ended session's insert rolled back


async def test_the_read_model_retries_a_held_lock_then_proceeds(
    kafka_bootstrap: str, topic_prefix: str, database_url: str, pg_schema: str
) -> None:
    history = generate_history(900, seed=41, instances=6, streams=40)
    topics = Topics(topic_prefix)
    await ensure_topics(kafka_bootstrap, topics, (EVENTS,))
    async with started(make_producer(kafka_bootstrap)) as producer:
        await publish(producer, topics.events, [encode(e) for e in history[:500]])
    db = DatabaseSettings(lock_timeout=0.3, attempts=3, backoff_base=0.05, backoff_cap=0.2)
    settings = ReadModelSettings(
        kafka_bootstrap=kafka_bootstrap,
        topic_prefix=topic_prefix,
        read_model_dead_letters=False,
        read_model_recovery_pause=0.3,
        read_model_poll_ms=100,
        database=db,
    )
    async with ReadModelProjector(database_url, schema=pg_schema, settings=settings) as p:
        await p.catch_up()
        at = p.offset
        holder = await asyncpg.connect(database_url, server_settings={"search_path": pg_schema})
        tx = holder.transaction()
        await tx.start()
        # what every batch locks first: the tracking row
        await holder.execute("SELECT * FROM projection_tracking FOR UPDATE")
        async with started(make_producer(kafka_bootstrap)) as producer:
            await publish(producer, topics.events, [encode(e) for e in history[500:]])
        stop = asyncio.Event()
        runner = asyncio.create_task(p.run(stop))
        try:
            await _until(lambda: p.db.lock_timeouts >= 3)
            assert p.offset == at  # held back, not failed: still running, nothing written
            assert not runner.done()
            await tx.rollback()  # the lock goes
            await _until(lambda: p.state.seq == len(history))
        finally:
            await holder.close()
            stop.set()
            await asyncio.wait_for(runner, 30)
        registry = p.metrics.registry
        assert registry.get_sample_value("streamplane_db_lock_timeouts_total") == float(
            p.db.lock_timeouts
        )
        assert registry.get_sample_value("streamplane_read_model_waiting_for_database") == 0
        assert p.state == fold(history)
        conn = await asyncpg.connect(database_url, server_settings={"search_path": pg_schema})
        try:
            seqs = [r["seq"] for r in await conn.fetch("SELECT seq FROM events ORDER BY seq")]
            tracked = await conn.fetchval("SELECT last_seq FROM projection_tracking")
        finally:
            await conn.close()
        assert seqs == [e.seq for e in history] and tracked == len(history)
