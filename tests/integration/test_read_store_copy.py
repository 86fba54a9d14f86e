"""The read model's batch writer on a real PostgreSQL: the ``events`` rows go in by binary COPY
with every column as the fold gave it (jsonb included); a batch whose rows are partly there
already (a tracking row set back by hand) is written again without an error and without
doubling a row."""

from __future__ import annotations

import pytest

from projections.fold.rows import fold_batch
from projections.fold.state import ClusterState
from projections.io.postgres import ResilientDatabaseManager
from projections.io.read_store import create_tables, write_batch
from projections.testing.synthetic import generate_history

pytestmark = pytest.mark.integration


async def test_events_rows_go_in_by_copy_and_a_replayed_batch_skips_what_is_there(
    database_url: str, pg_schema: str
) -> None:
    history = generate_history(600, seed=7, instances=5, streams=30)
    records = list(enumerate(history))
    first = fold_batch(ClusterState(), records[:400])
    second = fold_batch(first.state, records[400:])
    async with ResilientDatabaseManager(database_url, schema=pg_schema) as db:
        await db.execute_with_retry(lambda c: create_tables(c, "rm"), what="create")

        async def apply(batch: object, start: int, end: int) -> bool:
            return await db.execute_with_retry(
                lambda c: write_batch(c, "rm", batch, start, end),  # type: ignore[arg-type]
                what="write",
            )

        assert await apply(first, 0, 400)
        assert await apply(second, 400, 600)
        rows = await db.execute_with_retry(
            lambda c: c.fetch("SELECT * FROM events ORDER BY log_offset"), what="read"
        )
        assert len(rows) == 600
        for row, expected in zip(rows, first.events + second.events, strict=True):
            assert tuple(row.values()) == expected
        assert any(row["finding"] is None for row in rows)
        assert all(isinstance(row["data"], dict) for row in rows)

        # the tracking row set back: the second batch again meets its own rows
        await db.execute_with_retry(
            lambda c: c.execute(
                "UPDATE projection_tracking SET next_offset = 400 WHERE projection = 'rm'"
            ),
            what="set back",
        )
        assert await apply(second, 400, 600)
        count = await db.execute_with_retry(
            lambda c: c.fetchval("SELECT count(*) FROM events"), what="count"
        )
        assert count == 600
