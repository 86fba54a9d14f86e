"""A connection lost in the middle of a large COPY or ``executemany``, on a real PostgreSQL:
``execute_with_retry`` says at once that the server is unreachable, where asyncpg alone waits
for a paused transport that never drains until the operation timeout
(:func:`projections.io.pg_failures.unless_lost`).

The backend is ended with ``pg_terminate_backend`` (what a fast shutdown does to every
session) once the statement shows as active in ``pg_stat_activity``. The manager's operation
timeout is set far beyond the test's own bound, so without the guard the test fails on that
bound instead of passing on a timeout."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import asyncpg
import pytest

from projections.io.postgres import (
    DatabaseSettings,
    DatabaseUnavailableError,
    ResilientDatabaseManager,
)

pytestmark = pytest.mark.integration

ROWS = [(i, "x" * 100) for i in range(1_000_000)]
#: how long the test waits for the manager's answer (its own operation timeout is 600 s)
BOUND = 60.0


async def _terminate_when_active(killer: asyncpg.Connection, pid: int, prefix: str) -> None:
    while True:
        query = await killer.fetchval(
            "SELECT query FROM pg_stat_activity WHERE pid = $1 AND state = 'active'", pid
        )
        if query is not None and query.lstrip().upper().startswith(prefix):
            await killer.execute("SELECT pg_terminate_backend($1)", pid)
            return
        await asyncio.sleep(0.005)


Statement = Callable[[asyncpg.Connection], Awaitable[object]]


def _copy(conn: asyncpg.Connection) -> Awaitable[object]:
    return conn.copy_records_to_table("bulk", records=ROWS, columns=["a", "b"])


def _many(conn: asyncpg.Connection) -> Awaitable[object]:
    return conn.executemany("INSERT INTO bulk VALUES ($1, $2)", ROWS)


@pytest.mark.parametrize(("statement", "prefix"), [(_copy, "COPY"), (_many, "INSERT")])
async def test_a_connection_lost_mid_statement_fails_at_once_as_unreachable(
    database_url: str, pg_schema: str, statement: Statement, prefix: str
) -> None:
    settings = DatabaseSettings(attempts=1, operation_timeout=600, statement_timeout=600)
    killer = await asyncpg.connect(database_url)
    try:
        async with ResilientDatabaseManager(
            database_url, schema=pg_schema, settings=settings
        ) as db:
            await db.execute_with_retry(
                lambda c: c.execute("CREATE TABLE bulk (a int, b text)"), what="create"
            )
            killed: list[asyncio.Task[None]] = []

            async def doomed(conn: asyncpg.Connection) -> object:
                pid = conn.get_server_pid()
                killed.append(asyncio.create_task(_terminate_when_active(killer, pid, prefix)))
                return await statement(conn)

            # not asyncio.timeout: its cancellation would end in the same error on the way out
            write = asyncio.create_task(db.execute_with_retry(doomed, what="bulk write"))
            done, _ = await asyncio.wait({write}, timeout=BOUND)
            if not done:
                write.cancel()
                pytest.fail(f"still waiting {BOUND:.0f}s after the connection was lost")
            with pytest.raises(DatabaseUnavailableError, match="unreachable"):
                write.result()
            await asyncio.wait_for(killed[0], 5)  # it was the kill that ended it

            # the manager is usable again: a fresh connection, nothing of the lost write
            count = await db.execute_with_retry(
                lambda c: c.fetchval("SELECT count(*) FROM bulk"), what="count"
            )
            assert count == 0
    finally:
        await killer.close()
