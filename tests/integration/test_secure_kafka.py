"""Secure mode (issue 11, section 1) on a real SASL/SCRAM broker with ACLs: each role may
write only its own topics, and the whole stack runs as least-privileged principals, through
a failover of the leader and of a worker, with the projector, the read model, the monitor and
the API (as an operator) beside them.

One secure cluster per size for the module, one node then three (tests/support/secure.py);
each test uses its own topic prefix and grants the roles' ACLs on it, as ``streamplane
infra up --secure`` does. On three nodes the topics get three replicas and two in sync.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
from aiokafka.admin import NewTopic
from aiokafka.errors import TopicAuthorizationFailedError
from support.alerts import free_port, start_monitor
from support.cluster import open_cluster
from support.secure import passwords, role_env, secure_broker

from control_plane.cli.drift import read_assignments
from control_plane.client import send_command
from control_plane.tools.harness import CLI
from control_plane.tools.infra import secure
from control_plane.tools.infra.config import KafkaCluster
from events import commands as cmd
from events.topics import ALL_TOPICS, Topics
from kafka_auth import KafkaAccess
from projections.errors import TopicContractError, TopicSetupError
from projections.io.kafka import make_admin, make_producer, started
from projections.io.topics import ensure_topics, topic_config

pytestmark = [pytest.mark.integration, pytest.mark.slow]

NET = 30.0


@pytest.fixture(scope="module", params=[1, 3], ids=["1-broker", "3-brokers"])
def cluster(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[KafkaCluster]:
    brokers = request.param
    yield from secure_broker(tmp_path_factory.mktemp(f"secure-kafka-{brokers}"), brokers)


async def _granted(cluster: KafkaCluster, prefix: str) -> Topics:
    """The roles' ACLs on ``prefix``, and its topics created by the orchestrator principal
    (what its start, or `streamplane topics` with its credentials, does)."""
    await secure.grant(cluster, prefix)
    topics = Topics(prefix)
    await ensure_topics(secure.access(cluster, "orchestrator"), topics, kafka_timeout=NET)
    return topics


async def _write(cluster: KafkaCluster, principal: str, topic: str) -> None:
    producer = make_producer(secure.access(cluster, principal), linger_ms=0)
    async with started(producer, kafka_timeout=NET, what=f"{principal} producer"):
        async with asyncio.timeout(NET):
            await producer.send_and_wait(topic, b"{}", key=b"k")


async def test_each_role_writes_only_its_own_topics(
    cluster: KafkaCluster, topic_prefix: str
) -> None:
    topics = await _granted(cluster, topic_prefix)
    described = await _describe(cluster, topics.events)
    assert len(described["partitions"][0]["replicas"]) == min(cluster.size, 3)
    for principal, topic in (
        ("worker", topics.events),
        ("worker", topics.desired),
        ("worker", topics.commands),
        ("operator", topics.events),
        ("operator", topics.desired),
        ("read-model", topics.events),
    ):
        with pytest.raises(TopicAuthorizationFailedError):
            await _write(cluster, principal, topic)
    # what each may write goes through (the denials above are the ACLs, not a broken login)
    await _write(cluster, "worker", topics.heartbeats)
    await _write(cluster, "operator", topics.commands)
    # only the orchestrator creates topics: another role is told so, in one sentence
    fresh = f"{topic_prefix}-fresh"
    await secure.grant(cluster, fresh)
    with pytest.raises(TopicSetupError, match="this principal may not create it"):
        await ensure_topics(secure.access(cluster, "operator"), Topics(fresh), kafka_timeout=NET)


async def test_a_control_log_against_the_contract_stops_the_orchestrator(
    cluster: KafkaCluster, topic_prefix: str
) -> None:
    """One node: a finite retention; three nodes: one replica, or one in sync of three."""
    await secure.grant(cluster, topic_prefix)
    topics, orchestrator = Topics(topic_prefix), secure.access(cluster, "orchestrator")
    if cluster.size == 1:
        await _create(cluster, topics.events, 1, {"retention.ms": "604800000"})
        expected = [f"topic {topics.events} has retention.ms=604800000"]
    else:
        await _create(cluster, topics.events, 1, {})
        await _create(cluster, topics.desired, 3, {"min.insync.replicas": "1"})
        expected = [
            f"topic {topics.events} has replication factor 1, the contract says 3",
            f"topic {topics.desired} has min.insync.replicas=1, the contract says 2",
        ]
    with pytest.raises(TopicContractError) as refused:
        await ensure_topics(orchestrator, topics, kafka_timeout=NET)
    for problem in expected:
        assert problem in str(refused.value)


async def _create(cluster: KafkaCluster, name: str, replicas: int, config: dict[str, str]) -> None:
    spec = next(s for s in ALL_TOPICS if name.endswith(f".{s.suffix}"))
    admin = make_admin(secure.access(cluster, secure.ADMIN))
    async with started(admin, kafka_timeout=NET, what="admin"):
        configs = topic_config(spec, replicas) | config
        await admin.create_topics(
            [NewTopic(name, spec.partitions, replicas, topic_configs=configs)]
        )


async def test_the_stack_runs_as_least_privileged_principals_and_fails_over(
    request: pytest.FixtureRequest,
    cluster: KafkaCluster,
    topic_prefix: str,
    tmp_path: Path,
    database_url: str,
    pg_schema: str,
) -> None:
    topics, schema = await _granted(cluster, topic_prefix), pg_schema
    kinds = {
        # a snapshot every few events: the store must be allowed to set up its topic
        "orchestrator": role_env(cluster, "orchestrator") | {"STREAMPLANE_SNAPSHOT_EVERY": "5"},
        "worker": role_env(cluster, "worker"),
    }
    admin = secure.access(cluster, secure.ADMIN)  # the harness observes as the super user
    async with open_cluster(request, admin, topic_prefix, tmp_path, credentials=kinds) as c:
        active, [standby] = await c.start_orchestrator_pair("o1", "o2")
        workers = [c.start_worker(w, max_streams=8) for w in ("w1", "w2")]  # one holds all
        read_model_env = role_env(cluster, "read-model") | {
            "STREAMPLANE_DATABASE_URL": database_url,
            "STREAMPLANE_DATABASE_SCHEMA": schema,
        }
        c.children.spawn("read-model", "read-model", [*CLI, "read-model"], read_model_env)
        projector_env = role_env(cluster, "projector")
        c.children.spawn("projector", "projector", [*CLI, "projector"], projector_env)
        port = free_port()  # the API as an operator, reading the read model's tables
        api_env = role_env(cluster, "operator") | {
            "STREAMPLANE_DATABASE_URL": database_url,
            "STREAMPLANE_DATABASE_SCHEMA": schema,
        }
        api_args = [*CLI, "api", "--host", "127.0.0.1", "--port", str(port)]
        c.children.spawn("api", "api", [*api_args, "--no-with-read-model"], api_env)
        monitor = start_monitor(c, **role_env(cluster, "monitor"))

        operator = secure.access(cluster, "operator")
        streams = [f"s{i}" for i in range(6)]
        for stream in streams:
            await send_command(operator, topics, cmd.RegisterStream, stream_id=stream, wait_s=NET)
        await c.wait_until(lambda: c.running_once(streams), 40, "every stream runs once")

        c.kill(active)
        await c.wait_until(lambda: c.leader() is standby, 40, "the standby took over")
        c.kill(workers[0])
        await c.wait_until(lambda: c.running_once(streams), 40, "w1's streams run on w2")
        assert c.streams_on("w2") >= set(streams)

        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=NET) as api:
            posted = await api.post("/streams", json={"stream_id": "via-api"})
            assert posted.status_code == 200, posted.text  # the operator's command went through
            streams.append("via-api")
            await c.wait_until(lambda: c.running_once(streams), 40, "the API's stream runs")
            seq = c.fold().seq
            await c.wait_until(
                lambda: _tracked(database_url, schema, seq), 60, "read model caught up"
            )
            listed = (await api.get("/streams", params={"limit": 100})).json()
            assert {s["stream_id"] for s in listed["streams"]} == set(streams), listed
        await c.wait_until(lambda: _projected(admin, topics, streams), 60, "projector wrote")
        await c.wait_for_log_line(monitor, "evaluating every", 30)

        texts = {p.name: p.log_text() for p in c.children.all}
    for name, text in texts.items():
        assert "AuthorizationFailed" not in text, f"{name} was denied something it needs"
        assert "authorization failed" not in text.lower(), f"{name} was denied something"
        for principal, password in passwords(cluster).items():
            assert password not in text, f"{name}'s log shows the password of {principal}"
    written = [n for n in ("o1", "o2") if "written at" in texts[n] and "snapshot at" in texts[n]]
    assert written, "no orchestrator wrote a snapshot"


async def _describe(cluster: KafkaCluster, topic: str) -> dict[str, Any]:
    admin = make_admin(secure.access(cluster, secure.ADMIN))
    async with started(admin, kafka_timeout=NET, what="admin"):
        [described] = await admin.describe_topics([topic])
    return dict(described)


async def _tracked(url: str, schema: str, seq: int) -> str:
    try:
        conn = await asyncpg.connect(url, server_settings={"search_path": schema})
    except (OSError, asyncpg.PostgresError) as exc:
        return f"database: {exc}"
    try:
        row = await conn.fetchrow("SELECT max(last_seq) AS seq FROM projection_tracking")
    except asyncpg.PostgresError as exc:
        return f"no tracking table yet: {exc}"
    finally:
        await conn.close()
    got = row["seq"] if row else None
    return "" if got is not None and got >= seq else f"read model at seq {got}, log at {seq}"


async def _projected(admin: KafkaAccess, topics: Topics, streams: list[str]) -> str:
    view = await read_assignments(admin, topics.assignments, kafka_timeout=NET)
    missing = sorted(set(streams) - set(view.latest))
    return f"no assignment record for {missing}" if missing else ""
