"""The PostgreSQL read model on real Kafka and PostgreSQL: its rows equal the fold of a
generated history (aborted transactions excluded), re-applying a batch is a no-op (tracking
row), a new projector resumes from the tracking row, ``rebuild`` repairs a damaged table, and
an unreachable PostgreSQL gives a clear error."""

from __future__ import annotations

import socket
from typing import Any

import asyncpg
import pytest

from events import control as ev
from events import encode
from events.base import ControlEvent
from events.topics import EVENTS, Topics
from projections.fold import fold
from projections.fold.assignments import instance_value, stream_value
from projections.fold.rows import health_data
from projections.fold.state import ClusterState
from projections.io.kafka import make_producer, publish, started
from projections.io.postgres import DatabaseSettings, DatabaseUnavailableError
from projections.io.read_store import ReadModelSettings
from projections.io.topics import ensure_topics
from projections.read_model import ReadModelProjector
from projections.testing.synthetic import generate_history

pytestmark = pytest.mark.integration


def _settings(bootstrap: str, prefix: str, **extra: Any) -> ReadModelSettings:
    return ReadModelSettings(
        kafka_bootstrap=bootstrap,
        topic_prefix=prefix,
        read_model_batch_max=250,
        read_model_dead_letters=False,
        **extra,
    )


async def _publish(bootstrap: str, topic: str, events: list[ControlEvent]) -> None:
    async with started(make_producer(bootstrap)) as producer:
        await publish(producer, topic, [encode(e) for e in events])


async def _rows(url: str, schema: str, sql: str) -> list[asyncpg.Record]:
    conn = await asyncpg.connect(url, server_settings={"search_path": schema})
    try:
        await conn.set_type_codec(
            "jsonb", encoder=str, decoder=__import__("orjson").loads, schema="pg_catalog"
        )
        return list(await conn.fetch(sql))
    finally:
        await conn.close()


def _without(data: dict[str, Any], *keys: str) -> dict[str, Any]:
    return {k: v for k, v in data.items() if k not in keys}


async def _assert_equals_fold(url: str, schema: str, state: ClusterState, offset: int) -> None:
    streams = {r["stream_id"]: r for r in await _rows(url, schema, "SELECT * FROM streams")}
    assert set(streams) == set(state.streams)
    for sid, stream in state.streams.items():
        row = streams[sid]
        assert (row["server_id"], row["incarnation"], row["status"]) == (
            stream.server_id,
            stream.incarnation,
            stream.status.value,
        )
        assert row["data"] == stream_value(stream), sid
    instances = {r["server_id"]: r for r in await _rows(url, schema, "SELECT * FROM instances")}
    assert set(instances) == set(state.instances)
    for server_id, inst in state.instances.items():
        expected = _without(instance_value(inst, seq=0), "as_of_seq")
        assert _without(instances[server_id]["data"], "as_of_seq") == expected, server_id
    (cluster,) = await _rows(url, schema, "SELECT * FROM cluster")
    assert (cluster["seq"], cluster["epoch"]) == (state.seq, state.epoch)
    assert cluster["health"] == health_data(state)
    (tracking,) = await _rows(url, schema, "SELECT * FROM projection_tracking")
    assert (tracking["next_offset"], tracking["last_seq"]) == (offset, state.seq)
    in_flight = await _rows(
        url, schema, "SELECT stream_id FROM migrations WHERE outcome = 'in_flight'"
    )
    assert {r["stream_id"] for r in in_flight} == set(state.in_flight)


async def test_read_model_equals_the_fold_and_reprocessing_is_a_no_op(
    kafka_bootstrap: str, topic_prefix: str, database_url: str, pg_schema: str
) -> None:
    history = generate_history(3000, seed=13, instances=8, streams=60)
    head, tail = history[:1500], history[1500:]
    topics = Topics(topic_prefix)
    await ensure_topics(kafka_bootstrap, topics, (EVENTS,))
    await _publish(kafka_bootstrap, topics.events, head)
    # an aborted transaction between the two halves: a read_committed reader never sees it
    victim = sorted(set(fold(head).streams) & set(fold(history).streams))[0]
    bogus = ev.StreamDeregistered(
        id="aborted", source="zombie", time=tail[0].time, seq=tail[0].seq,
        epoch=tail[0].epoch, stream_id=victim,
    )  # fmt: skip
    assert fold([*head, bogus, *tail]).streams != fold(history).streams
    txn = make_producer(kafka_bootstrap, transactional_id=f"{topic_prefix}-zombie")
    async with started(txn) as zombie:
        await zombie.begin_transaction()
        await zombie.send_and_wait(topics.events, encode(bogus), partition=0)
        await zombie.abort_transaction()
    await _publish(kafka_bootstrap, topics.events, tail)

    settings = _settings(kafka_bootstrap, topic_prefix)
    async with ReadModelProjector(database_url, schema=pg_schema, settings=settings) as p:
        assert await p.catch_up() == len(history)
        end = p.offset
        assert p.state == fold(history)
        await _assert_equals_fold(database_url, pg_schema, fold(history), end)
        events = await _rows(database_url, pg_schema, "SELECT seq, finding FROM events")
        assert sorted(r["seq"] for r in events) == list(range(1, len(history) + 1))
        assert all(r["finding"] is None for r in events)

        # the same events again: the tracking row makes it a no-op
        before = await _rows(database_url, pg_schema, "SELECT * FROM streams ORDER BY 1")
        p.state, p.offset = ClusterState(), 0
        records = list(enumerate(history[:100]))
        assert await p.apply_records(records, end=100) == 0
        after = await _rows(database_url, pg_schema, "SELECT * FROM streams ORDER BY 1")
        assert before == after
        await _assert_equals_fold(database_url, pg_schema, fold(history), end)


async def test_a_new_projector_resumes_from_the_tracking_row_and_rebuild_repairs(
    kafka_bootstrap: str, topic_prefix: str, database_url: str, pg_schema: str
) -> None:
    history = generate_history(2000, seed=17, instances=6, streams=40)
    topics = Topics(topic_prefix)
    await ensure_topics(kafka_bootstrap, topics, (EVENTS,))
    await _publish(kafka_bootstrap, topics.events, history[:1200])
    settings = _settings(kafka_bootstrap, topic_prefix)
    async with ReadModelProjector(database_url, schema=pg_schema, settings=settings) as first:
        await first.catch_up()
        assert first.offset == 1200
    await _publish(kafka_bootstrap, topics.events, history[1200:])

    async with ReadModelProjector(database_url, schema=pg_schema, settings=settings) as second:
        assert (second.offset, second.state) == (1200, fold(history[:1200]))  # resumed
        assert await second.catch_up() == 800
        await _assert_equals_fold(database_url, pg_schema, fold(history), 2000)

        conn = await asyncpg.connect(database_url, server_settings={"search_path": pg_schema})
        try:
            await conn.execute("UPDATE streams SET status = 'bogus'")
            await conn.execute("DELETE FROM instances")
        finally:
            await conn.close()
        assert await second.rebuild() == 2000
        await _assert_equals_fold(database_url, pg_schema, fold(history), 2000)


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


async def test_an_unreachable_database_gives_a_clear_error(
    kafka_bootstrap: str, topic_prefix: str
) -> None:
    await ensure_topics(kafka_bootstrap, Topics(topic_prefix), (EVENTS,))
    port = _closed_port()
    fast = DatabaseSettings(attempts=3, backoff_base=0.01, backoff_cap=0.05, connect_timeout=2)
    settings = _settings(kafka_bootstrap, topic_prefix, database=fast)
    url = f"postgresql://postgres:hunter2@127.0.0.1:{port}/nowhere"
    with pytest.raises(DatabaseUnavailableError) as caught:
        async with ReadModelProjector(url, schema="public", settings=settings):
            pass
    message = str(caught.value)
    assert f"127.0.0.1:{port}/nowhere" in message and "unreachable" in message
    assert "hunter2" not in message
    assert caught.value.retriable
