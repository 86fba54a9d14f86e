"""The API when something it needs is missing (real Kafka and PostgreSQL, no mocks): no
orchestrator (504 with the command id, and the command really is on the topic), the request
bound (504), an unreachable database (503, and its password nowhere in the answer), a read
model without tables (503 naming what to run). Every one in the one error shape."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import subprocess
from typing import Any

import httpx
import pytest
from support.api import running_api

from control_plane.api import ApiSettings
from control_plane.tools.harness import CLI
from events.codec import decode_command
from events.topics import ALL_TOPICS, Topics
from projections.io.kafka import make_consumer, started
from projections.io.postgres import DatabaseSettings
from projections.io.topics import ensure_topics

pytestmark = pytest.mark.integration


def _settings(kafka_bootstrap: str, topic_prefix: str, url: str, schema: str, **kw: Any) -> Any:
    return ApiSettings(
        kafka_bootstrap=kafka_bootstrap,
        topic_prefix=topic_prefix,
        database_url=url,
        database_schema=schema,
        **kw,
    )


async def _commands_on_topic(bootstrap: str, topics: Topics) -> list[str]:
    consumer = make_consumer(bootstrap, topics.commands, auto_offset_reset="earliest",
                             group_id=f"{topics.prefix}-reader")  # fmt: skip
    ids: list[str] = []
    async with started(consumer), asyncio.timeout(30):
        while len(ids) < 2:
            for records in (await consumer.getmany(timeout_ms=500)).values():
                ids += [decode_command(r.value).command_id for r in records]
    return ids


async def test_no_orchestrator_is_504_and_the_command_stays_sent(
    kafka_bootstrap: str, topic_prefix: str, database_url: str, pg_schema: str
) -> None:
    topics = Topics(topic_prefix)
    await ensure_topics(kafka_bootstrap, topics, ALL_TOPICS)
    settings = _settings(kafka_bootstrap, topic_prefix, database_url, pg_schema,
                         api_command_wait=1.5)  # fmt: skip
    async with running_api(settings) as api:
        waited = await api.post("/rebalance", 504)
        assert waited["error"] == "no_answer"
        assert "orchestrator" in waited["message"]
        accepted = await api.post("/recover", 202, params={"wait": "false"})
        assert (accepted["status"], accepted["command_type"]) == ("accepted", "EmergencyRecovery")
        assert await _commands_on_topic(kafka_bootstrap, topics) == [
            waited["command_id"],
            accepted["command_id"],
        ]
        health = await api.get("/health")  # reads still answer: the read model is there
        assert (health["as_of_seq"], health["leader_id"]) == (0, None)


async def test_a_request_over_its_bound_is_504(
    kafka_bootstrap: str, topic_prefix: str, database_url: str, pg_schema: str
) -> None:
    await ensure_topics(kafka_bootstrap, Topics(topic_prefix), ALL_TOPICS)
    settings = _settings(kafka_bootstrap, topic_prefix, database_url, pg_schema,
                         api_request_timeout=1.0, api_command_wait=20.0)  # fmt: skip
    async with running_api(settings) as api:
        body = await api.post("/check", 504)
        assert body["error"] == "timeout"
        assert "1s" in body["message"]


async def test_unreachable_database_is_503_without_its_password(
    kafka_bootstrap: str, topic_prefix: str
) -> None:
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    url = f"postgresql://postgres:s3cret-pw@127.0.0.1:{port}/streamplane"
    fast = DatabaseSettings(attempts=2, backoff_base=0.05, backoff_cap=0.1, connect_timeout=2)
    settings = _settings(kafka_bootstrap, topic_prefix, url, "public", database=fast)
    async with running_api(settings, read_model=False) as api:
        for path in ("/health", "/streams", "/instances/w1", "/streams/s1/history"):
            body = await api.get(path, 503)
            assert body["error"] == "unavailable"
            assert "s3cret-pw" not in body["message"]
            assert f"127.0.0.1:{port}" in body["message"]


async def test_a_read_model_without_tables_is_503_naming_what_to_run(
    kafka_bootstrap: str, topic_prefix: str, database_url: str, pg_schema: str
) -> None:
    settings = _settings(kafka_bootstrap, topic_prefix, database_url, pg_schema)
    async with running_api(settings, read_model=False) as api:
        body = await api.get("/streams", 503)
        assert "streamplane read-model" in body["message"]


async def test_the_api_process_stops_on_sigterm_and_names_a_taken_port(
    kafka_bootstrap: str, topic_prefix: str, database_url: str, pg_schema: str
) -> None:
    await ensure_topics(kafka_bootstrap, Topics(topic_prefix), ALL_TOPICS)
    env = {k: v for k, v in os.environ.items() if not k.startswith("STREAMPLANE_")}
    env |= {
        "STREAMPLANE_KAFKA_BOOTSTRAP": kafka_bootstrap,
        "STREAMPLANE_TOPIC_PREFIX": topic_prefix,
        "STREAMPLANE_DATABASE_URL": database_url,
        "STREAMPLANE_DATABASE_SCHEMA": pg_schema,
    }
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        args = [*CLI, "api", "--port", str(port)]
        refused = await asyncio.to_thread(
            subprocess.run, args, env=env, capture_output=True, text=True, timeout=60
        )
    assert refused.returncode == 2, refused.stderr
    assert refused.stderr.strip().splitlines() == [
        f"error: api_port: cannot listen on 127.0.0.1:{port}: Address already in use"
    ]
    proc = await asyncio.create_subprocess_exec(
        *args, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:
            async with asyncio.timeout(60):
                while True:  # up, with its own read model
                    with contextlib.suppress(httpx.HTTPError):
                        if (await client.get("/health")).status_code == 200:
                            break
                    await asyncio.sleep(0.2)
        proc.send_signal(signal.SIGTERM)
        async with asyncio.timeout(30):
            output, _ = await proc.communicate()
        assert proc.returncode == 0, output.decode(errors="replace")[-3000:]
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
