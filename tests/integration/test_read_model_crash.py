"""A real ``streamplane read-model`` killed with SIGKILL, on real Kafka and PostgreSQL: no
event is applied twice or skipped.

The read model's Kafka position *is* its tracking row, written in the transaction that writes
the rows (the consumer commits nothing to Kafka). Two ways to show it:

- at a controlled point: the test-only fault hook ``READ_MODEL_CRASH_AFTER_BATCHES`` kills
  the process right after its Nth commit (the moment a separate Kafka commit would still be
  missing); after each kill the tables hold whole batches only, equal to the replay up to the
  tracking row, and the next process resumes exactly there;
- at random points, while events are being written: after each kill the same holds.
"""

from __future__ import annotations

import asyncio
import random
import re
from pathlib import Path

import asyncpg
import pytest

from control_plane.drift_io import check_read_model
from control_plane.tools.harness import CLI, Child, Children, child_env
from events import encode
from events.topics import EVENTS, Topics
from projections.io.kafka import make_producer, publish, started
from projections.io.read_store import ReadModelSettings
from projections.io.topics import ensure_topics
from projections.testing.synthetic import generate_history

pytestmark = [pytest.mark.integration, pytest.mark.chaos, pytest.mark.slow]

RESUMES = re.compile(r"read model 'read_model' resumes at offset (\d+)")


async def _publish(bootstrap: str, topic: str, values: list[bytes]) -> None:
    async with started(make_producer(bootstrap)) as producer:
        await publish(producer, topic, values)


async def _offsets(url: str, schema: str) -> tuple[int, list[int], list[int]]:
    """The tracking row's next offset, and the offsets and seqs in the ``events`` copy."""
    conn = await asyncpg.connect(url, server_settings={"search_path": schema})
    try:
        tracked = await conn.fetchval("SELECT next_offset FROM projection_tracking")
        rows = await conn.fetch("SELECT log_offset, seq FROM events ORDER BY log_offset")
    finally:
        await conn.close()
    return int(tracked), [r["log_offset"] for r in rows], [r["seq"] for r in rows]


async def _assert_whole(settings: ReadModelSettings, schema: str, seq_of: dict[int, int]) -> int:
    """The tables equal the replay up to the tracking row, and hold each event up to it once:
    returns the tracking row's offset."""
    tracked, offsets, seqs = await _offsets(settings.database_url, schema)
    expected = [o for o in sorted(seq_of) if o < tracked]
    assert offsets == expected  # none skipped, none beyond the position
    assert seqs == [seq_of[o] for o in expected]  # and each once (log_offset is the key)
    report = await check_read_model(settings)
    assert report.clean, report.drifts
    assert report.as_of_seq == (seqs[-1] if seqs else 0)
    return tracked


async def _seq_by_offset(url: str, schema: str, count: int) -> dict[int, int]:
    """Offsets of the log's records, from a read model run to the end with ``--once``."""
    _, offsets, seqs = await _offsets(url, schema)
    assert len(offsets) == count
    return dict(zip(offsets, seqs, strict=True))


def _resumed_at(child: Child) -> int:
    found = RESUMES.findall(child.log_text())
    assert found, child.log_tail()
    return int(found[-1])


async def test_a_kill_right_after_the_commit_loses_nothing_and_repeats_nothing(
    kafka_bootstrap: str, topic_prefix: str, database_url: str, pg_schema: str, tmp_path: Path
) -> None:
    history = generate_history(1500, seed=31, instances=6, streams=50)
    topics = Topics(topic_prefix)
    await ensure_topics(kafka_bootstrap, topics, (EVENTS,))
    # in chunks, as an orchestrator writes them
    values = [encode(e) for e in history]
    for i in range(0, len(values), 100):
        await _publish(kafka_bootstrap, topics.events, values[i : i + 100])
    env = child_env(
        kafka_bootstrap,
        topic_prefix,
        DATABASE_URL=database_url,
        DATABASE_SCHEMA=pg_schema,
        READ_MODEL_BATCH_MAX="120",
        READ_MODEL_DEAD_LETTERS="false",
    )
    settings = ReadModelSettings(
        kafka_bootstrap=kafka_bootstrap,
        topic_prefix=topic_prefix,
        database_url=database_url,
        database_schema=pg_schema,
    )
    children = Children(tmp_path / "logs", env)
    positions = [0]
    seen: list[tuple[int, list[int], list[int]]] = []
    try:
        for crash_after in (1, 3, 2, 4):
            child = children.spawn(
                "read-model",
                "read-model",
                [*CLI, "read-model"],
                env={"STREAMPLANE_READ_MODEL_CRASH_AFTER_BATCHES": str(crash_after)},
            )
            assert await child.wait(60) == -9, child.log_tail()  # SIGKILL, by its own hand
            assert "test crash point reached" in child.log_text()
            assert _resumed_at(child) == positions[-1]  # where the previous one stopped
            seen.append(await _offsets(database_url, pg_schema))
            tracked, offsets, _ = seen[-1]
            assert tracked > positions[-1]  # each run committed its batches ...
            assert offsets and offsets[-1] < tracked  # ... wholly, position included
            report = await check_read_model(settings)  # rows == replay up to the position
            assert report.clean, report.drifts
            positions.append(tracked)
        final = children.spawn("read-model", "read-model", [*CLI, "read-model", "--once"])
        assert await final.wait(60) == 0, final.log_tail()
        assert _resumed_at(final) == positions[-1]
    finally:
        await asyncio.to_thread(children.stop_all, 10.0)
    seq_of = await _seq_by_offset(database_url, pg_schema, len(history))
    assert sorted(seq_of.values()) == [e.seq for e in history]
    for tracked, offsets, seqs in seen:  # after every kill: exactly the log up to the position
        expected = [o for o in sorted(seq_of) if o < tracked]
        assert (offsets, seqs) == (expected, [seq_of[o] for o in expected])
    assert await _assert_whole(settings, pg_schema, seq_of) > max(seq_of)


async def test_kills_at_random_points_under_load_leave_whole_batches(
    kafka_bootstrap: str, topic_prefix: str, database_url: str, pg_schema: str, tmp_path: Path
) -> None:
    history = generate_history(3000, seed=37, instances=8, streams=60)
    values = [encode(e) for e in history]
    topics = Topics(topic_prefix)
    await ensure_topics(kafka_bootstrap, topics, (EVENTS,))

    async def load() -> None:
        for i in range(0, len(values), 60):
            await _publish(kafka_bootstrap, topics.events, values[i : i + 60])
            await asyncio.sleep(0.1)

    env = child_env(
        kafka_bootstrap,
        topic_prefix,
        DATABASE_URL=database_url,
        DATABASE_SCHEMA=pg_schema,
        READ_MODEL_BATCH_MAX="50",
        READ_MODEL_POLL_MS="50",
        READ_MODEL_DEAD_LETTERS="false",
    )
    settings = ReadModelSettings(
        kafka_bootstrap=kafka_bootstrap,
        topic_prefix=topic_prefix,
        database_url=database_url,
        database_schema=pg_schema,
    )
    children = Children(tmp_path / "logs", env)
    chance = random.Random(37)
    writer = asyncio.create_task(load())
    kills = 0
    midway: list[bool] = []  # killed with part of the log applied
    try:
        while not writer.done() or kills < 3:
            child = children.spawn("read-model", "read-model", [*CLI, "read-model"])
            await asyncio.sleep(2.5 + chance.random() * 2)
            assert child.alive, child.log_tail()
            children.kill(child)
            kills += 1
            tracked, offsets, seqs = await _offsets(database_url, pg_schema)
            assert offsets == sorted(set(offsets)) and seqs == sorted(set(seqs))
            assert seqs == list(range(1, len(seqs) + 1))  # a prefix of the log: none skipped
            assert not offsets or offsets[-1] < tracked  # and nothing past the position
            midway.append(0 < tracked < len(history))
            report = await check_read_model(settings)
            assert report.clean, (kills, report.drifts)
        await writer
        final = children.spawn("read-model", "read-model", [*CLI, "read-model", "--once"])
        assert await final.wait(60) == 0, final.log_tail()
    finally:
        writer.cancel()
        await asyncio.to_thread(children.stop_all, 10.0)
    assert any(midway), midway
    _, offsets, seqs = await _offsets(database_url, pg_schema)
    assert seqs == [e.seq for e in history]
    report = await check_read_model(settings)
    assert report.clean and report.as_of_seq == len(history) and report.lag == 0, report
