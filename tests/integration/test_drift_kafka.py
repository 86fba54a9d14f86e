"""``streamplane audit drift`` on real Kafka and PostgreSQL: a read model and an assignments
topic built from a generated history; a corrupted row / a wrong record is found by key, a
projection that is merely behind is not called drift, and ``--repair`` puts it right."""

from __future__ import annotations

import asyncio
import json
import socket
from typing import Any

import asyncpg
import orjson
import pytest
import typer
from aiokafka import TopicPartition
from typer.testing import CliRunner

from control_plane.cli.drift import audit_drift, check_assignments, check_read_model
from events import encode
from events.base import ControlEvent
from events.topics import ASSIGNMENTS, EVENTS, Topics
from projections.fold import apply
from projections.fold.assignments import assignment_updates, changes
from projections.fold.drift import DRIFT_REPAIR_REASON, PROJECTION_DRIFT
from projections.fold.state import ClusterState
from projections.io.kafka import make_consumer, make_producer, publish, started
from projections.io.read_store import ReadModelSettings
from projections.io.topics import ensure_topics
from projections.read_model import ReadModelProjector
from projections.testing.synthetic import generate_history

pytestmark = pytest.mark.integration

app = typer.Typer()
app.command()(audit_drift)


def _settings(bootstrap: str, prefix: str, url: str, schema: str) -> ReadModelSettings:
    return ReadModelSettings(
        kafka_bootstrap=bootstrap,
        topic_prefix=prefix,
        database_url=url,
        database_schema=schema,
        read_model_batch_max=300,
        read_model_dead_letters=False,
    )


async def _publish(bootstrap: str, topic: str, events: list[ControlEvent]) -> None:
    async with started(make_producer(bootstrap)) as producer:
        await publish(producer, topic, [encode(e) for e in events])


async def _project_assignments(bootstrap: str, topic: str, events: list[ControlEvent]) -> None:
    """Publish what the Faust projector publishes for ``events`` (keyed by stream id,
    default partitioner, as Faust does)."""
    state = ClusterState()
    async with started(make_producer(bootstrap)) as producer:
        for event in events:
            before, state = state, apply(state, event)
            for u in assignment_updates(state, event, changes(before, state, event).streams):
                value = None if u.value is None else orjson.dumps(u.value)
                await producer.send(topic, value, key=u.key.encode())
        await producer.flush()


async def _execute(url: str, schema: str, sql: str, *args: Any) -> None:
    conn = await asyncpg.connect(url, server_settings={"search_path": schema})
    try:
        await conn.execute(sql, *args)
    finally:
        await conn.close()


async def _cli(*args: str) -> tuple[int, str]:
    # audit_drift calls asyncio.run: give it a thread of its own
    result = await asyncio.to_thread(CliRunner().invoke, app, list(args))
    return result.exit_code, result.output


async def test_read_model_drift_lag_and_repair(
    kafka_bootstrap: str, topic_prefix: str, database_url: str, pg_schema: str
) -> None:
    history = generate_history(1500, seed=21, instances=6, streams=40)
    topics = Topics(topic_prefix)
    await ensure_topics(kafka_bootstrap, topics, (EVENTS,))
    await _publish(kafka_bootstrap, topics.events, history[:1000])
    settings = _settings(kafka_bootstrap, topic_prefix, database_url, pg_schema)
    async with ReadModelProjector(settings=settings) as projector:
        await projector.catch_up()
        victim = sorted(projector.state.streams)[2]
    await _publish(kafka_bootstrap, topics.events, history[1000:])

    # behind by 500 records: reported as lag, not drift
    report = await check_read_model(settings)
    assert report.clean, report.drifts
    assert (report.as_of_seq, report.head_seq, report.lag) == (1000, 1500, 500)

    await _execute(
        database_url, pg_schema, "UPDATE streams SET status = 'bogus' WHERE stream_id = $1", victim
    )
    report = await check_read_model(settings)
    (drift,) = report.drifts
    assert (drift.kind, drift.table, drift.key, drift.fields) == (
        PROJECTION_DRIFT,
        "streams",
        victim,
        ("status",),
    )
    assert drift.found["status"] == "bogus" and drift.as_of_seq == 1000

    common = ["--database-url", database_url, "--schema", pg_schema]
    common += ["--bootstrap", kafka_bootstrap, "--topic-prefix", topic_prefix]
    code, out = await _cli(*common)
    assert code == 1 and victim in out and "lagging by 500" in out, out
    code, out = await _cli(*common, "--repair", "--json")
    assert code == 0, out
    summary = json.loads(out)
    assert summary["repairs"][0]["action"] == "rebuilt from the log"
    (after,) = summary["reports"]
    assert after["clean"] and (after["as_of_seq"], after["lag"]) == (1500, 0)
    assert (await check_read_model(settings)).clean


async def test_assignments_topic_drift_lag_and_repair(
    kafka_bootstrap: str, topic_prefix: str
) -> None:
    history = generate_history(1500, seed=22, instances=6, streams=40)
    topics = Topics(topic_prefix)
    await ensure_topics(kafka_bootstrap, topics, (EVENTS, ASSIGNMENTS))
    await _publish(kafka_bootstrap, topics.events, history)
    await _project_assignments(kafka_bootstrap, topics.assignments, history[:1100])

    # the projector stopped at seq 1100: lag, not drift
    report, at = await check_assignments(kafka_bootstrap, topics, kafka_timeout=30)
    assert report.clean, report.drifts
    assert report.as_of_seq <= 1100 and report.head_seq == 1500 and report.lag > 0

    victim = next(s for s in sorted(at.streams) if at.streams[s].server_id is not None)
    wrong = {"stream_id": victim, "server_id": "nowhere", "status": "running", "as_of_seq": 3}
    async with started(make_producer(kafka_bootstrap)) as producer:
        await producer.send_and_wait(topics.assignments, orjson.dumps(wrong), key=victim.encode())
    report, _ = await check_assignments(kafka_bootstrap, topics, kafka_timeout=30)
    assert [d.key for d in report.drifts] == [victim]
    assert report.drifts[0].found["server_id"] == "nowhere"

    common = ["--no-read-model", "--assignments"]
    common += ["--bootstrap", kafka_bootstrap, "--topic-prefix", topic_prefix]
    code, out = await _cli(*common)
    assert code == 1 and victim in out, out
    code, out = await _cli(*common, "--repair", "--json")
    assert code == 0, out
    summary = json.loads(out)
    assert summary["repairs"] == [
        {"projection": "assignments", "action": "republished records", "records": 1}
    ]
    report, _ = await check_assignments(kafka_bootstrap, topics, kafka_timeout=30)
    assert report.clean and report.lag > 0  # still behind, as the projector left it

    # the repair is the newest record of that key, in the same partition as the projector's
    records = await _records_of(kafka_bootstrap, topics.assignments, victim.encode())
    assert len({p for p, _ in records}) == 1
    assert orjson.loads(records[-1][1])["reason"] == DRIFT_REPAIR_REASON


async def _records_of(bootstrap: str, topic: str, key: bytes) -> list[tuple[int, bytes]]:
    consumer = make_consumer(bootstrap, auto_offset_reset="earliest")
    found: list[tuple[int, bytes]] = []
    async with started(consumer):
        tps = [TopicPartition(topic, p) for p in range(ASSIGNMENTS.partitions)]
        consumer.assign(tps)
        ends = await consumer.end_offsets(tps)
        await consumer.seek_to_beginning(*tps)
        async with asyncio.timeout(60):
            while [tp for tp in tps if await consumer.position(tp) < ends[tp]]:
                batch = await consumer.getmany(timeout_ms=500)
                for tp, got in batch.items():
                    found += [(tp.partition, r.value) for r in got if r.key == key and r.value]
    return found


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


async def test_unreachable_postgres_or_kafka_exits_3(
    kafka_bootstrap: str, topic_prefix: str, database_url: str, pg_schema: str
) -> None:
    await ensure_topics(kafka_bootstrap, Topics(topic_prefix), (EVENTS,))
    url = f"postgresql://postgres@127.0.0.1:{_closed_port()}/nowhere"
    code, out = await _cli(
        "--database-url", url, "--bootstrap", kafka_bootstrap, "--topic-prefix", topic_prefix
    )
    assert code == 3 and "unreachable" in out, out
    code, out = await _cli(
        "--database-url", database_url, "--schema", pg_schema,
        "--bootstrap", f"127.0.0.1:{_closed_port()}", "--topic-prefix", topic_prefix,
    )  # fmt: skip
    assert code == 3, out
