"""How values travel between Python and PostgreSQL on every pooled connection of
:class:`projections.io.postgres.ResilientDatabaseManager`: ``jsonb`` as Python data, in
PostgreSQL's binary format, with no NUL (which PostgreSQL refuses: projections.fold.text)."""

from __future__ import annotations

import asyncpg
import orjson

from projections.fold.text import without_nul

#: jsonb's binary wire format: a version byte, then the JSON text
_JSONB_VERSION = b"\x01"


def _jsonb_encode(value: object) -> bytes:
    data = orjson.dumps(value)
    if b"\\u0000" in data:  # PostgreSQL refuses a NUL in jsonb: projections.fold.text
        data = orjson.dumps(without_nul(value))
    return _JSONB_VERSION + data


def _jsonb_decode(data: bytes) -> object:
    return orjson.loads(data[1:])


async def init_connection(conn: asyncpg.Connection) -> None:
    """Set up a new pooled connection: jsonb as Python data."""
    # jsonb as Python data, encoded by orjson both ways. Binary, not text: binary COPY
    # (the read model's ``events`` rows) needs a binary encoder for every column.
    await conn.set_type_codec(
        "jsonb",
        encoder=_jsonb_encode,
        decoder=_jsonb_decode,
        schema="pg_catalog",
        format="binary",
    )


__all__ = ["init_connection"]
