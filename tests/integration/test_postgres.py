"""The PostgreSQL the read model uses is real and reachable through asyncpg."""

from __future__ import annotations

import asyncio

import asyncpg
import pytest

pytestmark = pytest.mark.integration


async def test_round_trip_in_own_schema(database_url: str, pg_schema: str) -> None:
    async with asyncio.timeout(30):
        conn = await asyncpg.connect(database_url, server_settings={"search_path": pg_schema})
    try:
        async with asyncio.timeout(30):
            await conn.execute("CREATE TABLE streams (id text PRIMARY KEY, weight int NOT NULL)")
            await conn.executemany(
                "INSERT INTO streams (id, weight) VALUES ($1, $2)", [("s1", 3), ("s2", 5)]
            )
            rows = await conn.fetch("SELECT id, weight FROM streams ORDER BY id")
            where = await conn.fetchval(
                "SELECT table_schema FROM information_schema.tables WHERE table_name = 'streams'"
                " AND table_schema = $1",
                pg_schema,
            )
    finally:
        await conn.close()
    assert [tuple(r) for r in rows] == [("s1", 3), ("s2", 5)]
    assert where == pg_schema  # the table landed in this test's schema, not in public


async def test_schemas_are_isolated_between_tests(database_url: str, pg_schema: str) -> None:
    async with asyncio.timeout(30):
        conn = await asyncpg.connect(database_url, server_settings={"search_path": pg_schema})
    try:
        async with asyncio.timeout(30):
            tables = await conn.fetch(
                "SELECT table_name FROM information_schema.tables WHERE table_schema = $1",
                pg_schema,
            )
    finally:
        await conn.close()
    assert tables == []  # a fresh schema: nothing left over from any other test
