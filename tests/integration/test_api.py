"""The HTTP API over a read model built from a generated history (real Kafka, PostgreSQL and
HTTP on loopback). Commands are answered by a minimal responder on the real topics: it plays
the orchestrator's part of the contract (an outcome event with ``causationid`` = the command
id) so the API's 200/409/504 mapping is tested without the whole orchestrator."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from control_plane.api import SEQ_HEADER, ApiSettings, create_app
from events import control as ev
from events import encode
from events.codec import decode_command
from events.topics import ALL_TOPICS, Topics
from projections.fold import fold
from projections.fold.rows import health_data
from projections.io.kafka import ensure_topics, make_consumer, make_producer, publish, started
from projections.read_model import ReadModelProjector
from projections.testing.synthetic import generate_history

pytestmark = pytest.mark.integration

N = 1500


async def _respond(bootstrap: str, topics: Topics, first_seq: int) -> None:
    """Answer each command: RegisterStream completes, anything else is rejected."""
    seq = first_seq
    consumer = make_consumer(bootstrap, topics.commands, group_id=f"{topics.prefix}-responder")
    async with started(consumer), started(make_producer(bootstrap)) as producer:
        while True:
            batches = await consumer.getmany(timeout_ms=200)
            for records in batches.values():
                for record in records:
                    command = decode_command(record.value)
                    seq += 1
                    common = {
                        "id": uuid.uuid4().hex, "source": "responder", "time": command.time,
                        "seq": seq, "epoch": 9, "causationid": command.command_id,
                        "command_id": command.command_id, "command_type": type(command).__name__,
                    }  # fmt: skip
                    if type(command).__name__ == "RegisterStream":
                        event: Any = ev.CommandCompleted(**common)
                    else:
                        event = ev.CommandRejected(**common, reason="unknown_stream", detail="no")
                    await producer.send_and_wait(topics.events, encode(event), partition=0)


@pytest.fixture
async def client(
    kafka_bootstrap: str, topic_prefix: str, database_url: str, pg_schema: str
) -> AsyncIterator[TestClient[Any, Any]]:
    topics = Topics(topic_prefix)
    await ensure_topics(kafka_bootstrap, topics, ALL_TOPICS)
    history = generate_history(N, seed=31, instances=5, streams=30)
    async with started(make_producer(kafka_bootstrap)) as producer:
        await publish(producer, topics.events, [encode(e) for e in history])
    settings = ApiSettings(
        kafka_bootstrap=kafka_bootstrap,
        topic_prefix=topic_prefix,
        database_url=database_url,
        database_schema=pg_schema,
        api_command_wait=5.0,
    )
    async with ReadModelProjector(settings=settings.read_model_settings()) as projector:
        assert await projector.catch_up() == N
    async with TestClient(TestServer(create_app(settings))) as test_client:
        yield test_client


async def _json(response: Any, status: int = 200) -> dict[str, Any]:
    assert response.status == status, await response.text()
    body: dict[str, Any] = await response.json()
    assert int(response.headers[SEQ_HEADER]) == body["as_of_seq"]
    return body


async def test_reads_match_the_fold(client: TestClient[Any, Any]) -> None:
    history = generate_history(N, seed=31, instances=5, streams=30)
    state = fold(history)

    health = await _json(await client.get("/health"))
    assert health["as_of_seq"] == N
    assert health["health"] == health_data(state)

    instances = (await _json(await client.get("/instances")))["instances"]
    assert [i["server_id"] for i in instances] == sorted(state.instances)

    listed = await _json(await client.get("/streams", params={"limit": "10000"}))
    assert {s["stream_id"]: s["status"] for s in listed["streams"]} == {
        sid: s.status.value for sid, s in state.streams.items()
    }
    running = await _json(await client.get("/streams", params={"status": "running"}))
    assert {s["stream_id"] for s in running["streams"]} == {
        sid for sid, s in state.streams.items() if s.status.value == "running"
    }

    sid, stream = sorted(state.streams.items())[0]
    one = await _json(await client.get(f"/streams/{sid}"))
    assert one["stream"]["server_id"] == stream.server_id
    assert one["stream"]["status"] == stream.status.value
    await _json(await client.get("/streams/no-such-stream"), status=404)

    history_body = await _json(await client.get(f"/streams/{sid}/history"))
    expected = [e.seq for e in history if e.subject == sid]
    assert [e["seq"] for e in history_body["events"]] == expected
    assert history_body["events"][0]["type"] == "StreamRegistered"
    assert all("reason" in e and "causationid" in e for e in history_body["events"])


async def test_time_travel_folds_the_log_up_to_a_time(client: TestClient[Any, Any]) -> None:
    history = generate_history(N, seed=31, instances=5, streams=30)
    at = history[700].time
    expected = fold(e for e in history if e.time <= at)
    body = await _json(await client.get("/state", params={"at": at.isoformat()}))
    assert body["as_of_seq"] == expected.seq
    assert {s["stream_id"]: s["server_id"] for s in body["streams"]} == {
        sid: s.server_id for sid, s in expected.streams.items()
    }
    before_all = history[0].time - timedelta(days=1)
    empty = await _json(await client.get("/state", params={"at": before_all.isoformat()}))
    assert (empty["as_of_seq"], empty["streams"]) == (0, [])
    await _json(await client.get("/state", params={"at": "yesterday"}), status=400)
    await _json(await client.get("/state", params={"at": "2026-01-01T00:00:00"}), status=400)


async def test_commands_map_outcomes_to_status_codes(
    client: TestClient[Any, Any], kafka_bootstrap: str, topic_prefix: str
) -> None:
    # nobody answers yet: 504
    timeout = await _json(await client.post("/rebalance", params={"dry_run": "true"}), 504)
    assert timeout["error"] == "no_answer"
    await _json(await client.post("/streams", data=b"[1]"), status=400)
    await _json(await client.post("/streams", json={"stream_id": "x", "colour": 1}), status=400)
    await _json(await client.post("/streams", json={"stream_id": "x", "weight": 0}), status=400)

    topics = Topics(topic_prefix)
    responder = asyncio.create_task(_respond(kafka_bootstrap, topics, first_seq=N))
    try:
        done = await _json(await client.post("/streams", json={"stream_id": "new-1"}))
        assert done["outcome"]["type"] == "CommandCompleted"
        assert done["as_of_seq"] == done["outcome"]["seq"] > N
        rejected = await _json(await client.delete("/streams/ghost"), status=409)
        assert (rejected["error"], rejected["reason"]) == ("rejected", "unknown_stream")
        await _json(await client.post("/instances/w-1/drain"), status=409)
    finally:
        responder.cancel()
        await asyncio.gather(responder, return_exceptions=True)
