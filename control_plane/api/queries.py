"""The SQL of the API's reads over the read model (``projections/io/read_model.sql``).

Each function takes the connection of the caller's one read-only transaction, so an answer
made of several queries is still one snapshot.
"""

from __future__ import annotations

from typing import Any

import asyncpg

STREAM_COLUMNS = (
    "stream_id, server_id, incarnation, status, weight, priority, assigned_at, migration,"
    " reason, as_of_seq"
)
EVENT_COLUMNS = (
    "log_offset, seq, epoch, id, type, time, subject, reason, causationid, correlationid,"
    " finding, data"
)
_STREAM_FILTER = "($1::text IS NULL OR status = $1) AND ($2::text IS NULL OR server_id = $2)"

#: The InstanceFailed behind each move of a stream with reason ``instance_failed``: the
#: nearest earlier InstanceFailed of a server the stream was on (owner or migration target).
#: The orchestrator writes a failure and the moves it causes in one transaction, one after
#: the other, so "nearest earlier" is that failure; the server condition keeps a move made
#: for an older failure (a new leader cleaning up a past term) from naming an unrelated one.
OWNER_FAILURES = f"""
SELECT DISTINCT ON (f.log_offset) {", ".join("f." + c for c in EVENT_COLUMNS.split(", "))}
FROM events moved
CROSS JOIN LATERAL (
    SELECT * FROM events f
    WHERE f.type = 'InstanceFailed' AND f.finding IS NULL AND f.log_offset < moved.log_offset
      AND f.subject IN (
          SELECT s.data ->> k FROM events s, unnest(ARRAY['server_id', 'to_server']) AS k
          WHERE s.subject = moved.subject AND s.log_offset < moved.log_offset)
    ORDER BY f.log_offset DESC LIMIT 1
) f
WHERE moved.subject = $1 AND moved.reason = 'instance_failed' AND moved.finding IS NULL
ORDER BY f.log_offset
"""


def _dicts(rows: list[Any]) -> list[dict[str, Any]]:
    return [dict(r) for r in rows]


async def cluster_row(conn: asyncpg.Connection, name: str) -> dict[str, Any] | None:
    row = await conn.fetchrow("SELECT * FROM cluster WHERE projection = $1", name)
    return None if row is None else dict(row)


async def instances(conn: asyncpg.Connection, status: str | None) -> list[dict[str, Any]]:
    sql = "SELECT data FROM instances WHERE ($1::text IS NULL OR status = $1) ORDER BY server_id"
    return [r["data"] for r in await conn.fetch(sql, status)]


async def instance(conn: asyncpg.Connection, server_id: str) -> dict[str, Any] | None:
    row = await conn.fetchrow("SELECT data FROM instances WHERE server_id = $1", server_id)
    return None if row is None else dict(row["data"])


async def streams(
    conn: asyncpg.Connection, status: str | None, server_id: str | None, limit: int, offset: int
) -> tuple[list[dict[str, Any]], int]:
    """One page of streams sorted by id, and how many match the filters."""
    sql = f"SELECT {STREAM_COLUMNS} FROM streams WHERE {_STREAM_FILTER}"
    rows = await conn.fetch(f"{sql} ORDER BY stream_id LIMIT $3 OFFSET $4", status, server_id,
                            limit, offset)  # fmt: skip
    total = await conn.fetchval(f"SELECT count(*) FROM streams WHERE {_STREAM_FILTER}",
                                status, server_id)  # fmt: skip
    return _dicts(rows), int(total)


async def stream(conn: asyncpg.Connection, stream_id: str) -> dict[str, Any] | None:
    sql = "SELECT data, migration, reason, as_of_seq FROM streams WHERE stream_id = $1"
    row = await conn.fetchrow(sql, stream_id)
    return None if row is None else dict(row)


async def stream_events(
    conn: asyncpg.Connection, stream_id: str, limit: int, offset: int
) -> list[dict[str, Any]]:
    sql = (
        f"SELECT {EVENT_COLUMNS} FROM events WHERE subject = $1"
        " ORDER BY log_offset LIMIT $2 OFFSET $3"
    )
    return _dicts(await conn.fetch(sql, stream_id, limit, offset))


async def owner_failures(conn: asyncpg.Connection, stream_id: str) -> list[dict[str, Any]]:
    return _dicts(await conn.fetch(OWNER_FAILURES, stream_id))


async def stream_migrations(
    conn: asyncpg.Connection, stream_id: str, limit: int
) -> list[dict[str, Any]]:
    sql = "SELECT * FROM migrations WHERE stream_id = $1 ORDER BY started_seq LIMIT $2"
    return _dicts(await conn.fetch(sql, stream_id, limit))


async def migrations_in_flight(
    conn: asyncpg.Connection, stream_id: str | None, server_id: str | None, limit: int, offset: int
) -> list[dict[str, Any]]:
    sql = (
        "SELECT * FROM migrations WHERE outcome = 'in_flight'"
        " AND ($1::text IS NULL OR stream_id = $1)"
        " AND ($2::text IS NULL OR from_server = $2 OR to_server = $2)"
        " ORDER BY started_seq, migration_id LIMIT $3 OFFSET $4"
    )
    return _dicts(await conn.fetch(sql, stream_id, server_id, limit, offset))


async def tracking(conn: asyncpg.Connection, name: str) -> dict[str, Any] | None:
    sql = "SELECT next_offset, last_seq, updated_at FROM projection_tracking WHERE projection = $1"
    row = await conn.fetchrow(sql, name)
    return None if row is None else dict(row)
