"""ResilientDatabaseManager on a real PostgreSQL: a genuine deadlock between two
connections is detected by the server (40P01), the losing transaction is rolled back and
``execute_with_retry`` runs it again, so both operations take effect exactly once; a statement
over ``statement_timeout`` is retried and then reported; long transactions are listed."""

from __future__ import annotations

import asyncio

import asyncpg
import pytest

from projections.io.postgres import DatabaseSettings, DatabaseTimeoutError, ResilientDatabaseManager

pytestmark = pytest.mark.integration


async def test_execute_with_retry_recovers_from_a_real_deadlock(
    database_url: str, pg_schema: str
) -> None:
    settings = DatabaseSettings(pool_min=0, pool_max=4, conflict_max_delay=0.05)
    async with ResilientDatabaseManager(database_url, schema=pg_schema, settings=settings) as db:

        async def create(conn: asyncpg.Connection) -> None:
            await conn.execute("CREATE TABLE accounts (id int PRIMARY KEY, n int NOT NULL)")
            await conn.execute("INSERT INTO accounts VALUES (1, 0), (2, 0)")

        await db.execute_with_retry(create, what="create")
        both_locked = asyncio.Barrier(2)
        attempts: list[str] = []

        def transfer(first: int, second: int, name: str):  # type: ignore[no-untyped-def]
            async def operation(conn: asyncpg.Connection) -> None:
                attempts.append(name)
                await conn.execute("SET LOCAL deadlock_timeout = '100ms'")
                await conn.execute("UPDATE accounts SET n = n + 1 WHERE id = $1", first)
                if attempts.count(name) == 1:  # only the first try waits: that makes the cycle
                    async with asyncio.timeout(10):
                        await both_locked.wait()
                await conn.execute("UPDATE accounts SET n = n + 1 WHERE id = $1", second)

            return operation

        async with asyncio.timeout(30):
            await asyncio.gather(
                db.execute_with_retry(transfer(1, 2, "a"), what="a"),
                db.execute_with_retry(transfer(2, 1, "b"), what="b"),
            )

        assert db.deadlocks == 1  # exactly one party lost and was re-run
        assert sorted(attempts) in (["a", "a", "b"], ["a", "b", "b"])

        async def totals(conn: asyncpg.Connection) -> list[tuple[int, int]]:
            return [tuple(r) for r in await conn.fetch("SELECT id, n FROM accounts ORDER BY id")]

        # each operation applied once: the deadlocked attempt was rolled back whole
        assert await db.execute_with_retry(totals, what="totals") == [(1, 2), (2, 2)]


async def test_statement_timeouts_are_retried_then_reported(
    database_url: str, pg_schema: str
) -> None:
    settings = DatabaseSettings(
        statement_timeout=0.2, attempts=2, backoff_base=0.01, backoff_cap=0.02
    )
    async with ResilientDatabaseManager(database_url, schema=pg_schema, settings=settings) as db:
        tries = 0

        async def slow(conn: asyncpg.Connection) -> None:
            nonlocal tries
            tries += 1
            await conn.execute("SELECT pg_sleep(2)")

        with pytest.raises(DatabaseTimeoutError, match="timed out 2 times"):
            await db.execute_with_retry(slow, what="slow query")
        assert tries == 2


async def test_monitor_long_transactions_sees_an_open_transaction(
    database_url: str, pg_schema: str
) -> None:
    idle = await asyncpg.connect(database_url, server_settings={"application_name": pg_schema})
    try:
        tx = idle.transaction()
        await tx.start()
        await idle.execute("SELECT 1")
        await asyncio.sleep(0.6)
        async with ResilientDatabaseManager(database_url, schema=pg_schema) as db:
            found = await db.monitor_long_transactions(threshold=0.5)
            mine = [t for t in found if t.application_name == pg_schema]
            assert len(mine) == 1 and mine[0].seconds >= 0.5
            assert mine[0].state == "idle in transaction"
            assert not [
                t for t in await db.monitor_long_transactions(threshold=3600)
                if t.application_name == pg_schema
            ]  # fmt: skip
        await tx.rollback()
    finally:
        await idle.close()
