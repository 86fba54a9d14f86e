"""Session fixtures for real Kafka and PostgreSQL, plus per-test isolation helpers.

Where the services come from, first match wins:
1. STREAMPLANE_KAFKA_BOOTSTRAP / STREAMPLANE_DATABASE_URL from the environment;
2. testcontainers, when a Docker engine answers;
3. the local infrastructure of control_plane.tools.infra (Kafka jars + Debian's PostgreSQL).

Everything is lazy: only a test that requests a fixture starts anything, so the unit tests
run without Kafka or PostgreSQL. Names are unique per test (topics, groups, schemas), so
tests never see each other's data even though they share one broker and one database.
"""

from __future__ import annotations

import os
import re
import socket
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest

# Keep in step with control_plane.tools.infra.config.DEFAULT_KAFKA_VERSION and docker-compose.yml.
KAFKA_IMAGE = "apache/kafka:4.4.0"
POSTGRES_IMAGE = "postgres:15"


def _docker_answers() -> bool:
    """True when a Docker engine responds within ~2 s (never raises)."""
    sock = "/var/run/docker.sock"
    if not os.environ.get("DOCKER_HOST") and not os.path.exists(sock):
        return False  # the common no-Docker case, without importing the docker SDK
    try:
        import docker

        client = docker.from_env(timeout=2)
        try:
            return bool(client.ping())
        finally:
            client.close()
    except Exception:
        return False


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _kafka_container() -> Any:
    """apache/kafka in KRaft mode; the host port is fixed up front so it can be advertised.
    (testcontainers' KafkaContainer only knows Confluent's images.)"""
    from testcontainers.core.container import DockerContainer
    from testcontainers.core.wait_strategies import LogMessageWaitStrategy

    port = _free_port()
    env = {
        "KAFKA_NODE_ID": "1",
        "KAFKA_PROCESS_ROLES": "broker,controller",
        "KAFKA_LISTENERS": "PLAINTEXT://:9092,CONTROLLER://:9093",
        "KAFKA_ADVERTISED_LISTENERS": f"PLAINTEXT://127.0.0.1:{port}",
        "KAFKA_CONTROLLER_LISTENER_NAMES": "CONTROLLER",
        "KAFKA_LISTENER_SECURITY_PROTOCOL_MAP": "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
        "KAFKA_CONTROLLER_QUORUM_VOTERS": "1@localhost:9093",
        "KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR": "1",
        "KAFKA_TRANSACTION_STATE_LOG_REPLICATION_FACTOR": "1",
        "KAFKA_TRANSACTION_STATE_LOG_MIN_ISR": "1",
        "KAFKA_SHARE_COORDINATOR_STATE_TOPIC_REPLICATION_FACTOR": "1",
        "KAFKA_SHARE_COORDINATOR_STATE_TOPIC_MIN_ISR": "1",
        "KAFKA_GROUP_INITIAL_REBALANCE_DELAY_MS": "0",
        "KAFKA_AUTO_CREATE_TOPICS_ENABLE": "false",  # as every broker the project ships
    }
    container = DockerContainer(KAFKA_IMAGE).with_envs(**env).with_bind_ports(9092, port)
    container.waiting_for(LogMessageWaitStrategy("Kafka Server started").with_startup_timeout(120))
    return container.start(), f"127.0.0.1:{port}"


@pytest.fixture(scope="session")
def kafka_bootstrap() -> Iterator[str]:
    """bootstrap.servers of a single Kafka broker (KRaft), e.g. "127.0.0.1:19092"."""
    if address := os.environ.get("STREAMPLANE_KAFKA_BOOTSTRAP"):
        yield address
    elif _docker_answers():
        container, address = _kafka_container()
        try:
            yield address
        finally:
            container.stop()
    else:
        from control_plane.tools.infra import ensure_up

        # Left running at the end: the next test run (or a developer) reuses it.
        bootstrap = ensure_up(brokers=1, postgres=False).kafka_bootstrap
        assert bootstrap is not None
        yield bootstrap


@pytest.fixture(scope="session")
def database_url() -> Iterator[str]:
    """libpq/asyncpg URL of a PostgreSQL database, e.g. "postgresql://postgres@...:15432/..."."""
    if url := os.environ.get("STREAMPLANE_DATABASE_URL"):
        yield url
    elif _docker_answers():
        from testcontainers.postgres import PostgresContainer

        container = PostgresContainer(POSTGRES_IMAGE, driver=None).start()
        try:
            yield container.get_connection_url()
        finally:
            container.stop()
    else:
        from control_plane.tools.infra import ensure_up

        endpoints = ensure_up(brokers=0, postgres=True)
        assert endpoints.database_url is not None and endpoints.pgpass is not None
        # the local cluster takes passwords (SCRAM) from the pgpass file: this process and
        # the processes it starts find them there (a URL never carries one)
        os.environ.setdefault("PGPASSFILE", str(endpoints.pgpass))
        yield endpoints.database_url


@dataclass(frozen=True)
class ThreeBrokerCluster:
    """The local three-node KRaft cluster (RF 3, min ISR 2) with crash/restart controls."""

    bootstrap: str
    node_ids: tuple[int, ...]

    def kill(self, node_id: int) -> None:
        """SIGKILL one node: a crash, no controlled shutdown."""
        from control_plane.tools.infra import kill_broker

        kill_broker(node_id, brokers=3)

    def start(self, node_id: int) -> None:
        """Start a killed node again and wait until it is a live broker."""
        from control_plane.tools.infra import start_broker

        start_broker(node_id, brokers=3)

    def running(self) -> list[int]:
        """Node ids whose broker process runs."""
        from control_plane.tools.infra import running_brokers

        return running_brokers(brokers=3)


@pytest.fixture(scope="session")
def three_broker_cluster() -> Iterator[ThreeBrokerCluster]:
    """Local three-node cluster on its own ports (never the single broker's); stopped at the
    end of the session when this session started it. Chaos tests kill and restart nodes."""
    from control_plane.tools.infra import down, ensure_up, running_brokers

    was_running = bool(running_brokers(brokers=3))
    endpoints = ensure_up(brokers=3, postgres=False)
    assert endpoints.kafka_bootstrap is not None
    try:
        yield ThreeBrokerCluster(endpoints.kafka_bootstrap, (1, 2, 3))
    finally:
        if not was_running:
            down(brokers=3, postgres=False)


def _slug(text: str, limit: int) -> str:
    return re.sub(r"[^a-zA-Z0-9]+", "-", text).strip("-")[:limit].lower()


@pytest.fixture
def topic_prefix(request: pytest.FixtureRequest) -> str:
    """A name unique to this test run of this test: "t-<testname>-<uuid8>". Use it for
    topics, consumer groups and transactional ids."""
    return f"t-{_slug(request.node.name, 60)}-{uuid.uuid4().hex[:8]}"


@pytest.fixture
def unique_topic(topic_prefix: str) -> Callable[[str], str]:
    """Factory of topic names unique to this test: unique_topic("events") ->
    "t-<testname>-<uuid8>-events"; unique_topic() numbers them 1, 2, 3..."""
    counter = iter(range(1, 1_000_000))

    def make(suffix: str = "") -> str:
        return f"{topic_prefix}-{_slug(suffix, 60) if suffix else next(counter)}"

    return make


@pytest.fixture
def create_topic(request: pytest.FixtureRequest) -> Callable[..., Awaitable[None]]:
    """`await create_topic(name, partitions=1, replication_factor=1, config=None,
    bootstrap=None)`: create a topic and wait until every partition has a leader.
    Without `bootstrap` it uses (and lazily starts) the `kafka_bootstrap` broker."""

    async def create(
        name: str,
        partitions: int = 1,
        replication_factor: int = 1,
        config: dict[str, str] | None = None,
        bootstrap: str | None = None,
    ) -> None:
        import asyncio

        from aiokafka.admin import AIOKafkaAdminClient, NewTopic

        servers = bootstrap or request.getfixturevalue("kafka_bootstrap")
        admin = AIOKafkaAdminClient(bootstrap_servers=servers)
        try:
            async with asyncio.timeout(30):
                await admin.start()
                topic = NewTopic(name, partitions, replication_factor, topic_configs=config or {})
                response = await admin.create_topics([topic])
                errors = [err for err in response.topic_errors if err[1] != 0]
                assert not errors, f"create_topics({name}) failed: {errors}"
                for _ in range(300):  # bounded by the timeout above anyway
                    if await _has_leaders(admin, name, partitions):
                        break
                    await asyncio.sleep(0.1)
        finally:
            await admin.close()

    return create


async def _has_leaders(admin: Any, name: str, partitions: int) -> bool:
    described = await admin.describe_topics([name])
    parts = described[0].get("partitions", []) if described else []
    return len(parts) == partitions and all(p.get("leader", -1) >= 0 for p in parts)


@pytest.fixture
async def pg_schema(database_url: str, request: pytest.FixtureRequest) -> AsyncIterator[str]:
    """A fresh PostgreSQL schema for this test (dropped afterwards); yields its name.
    Connect with server_settings={"search_path": pg_schema} or qualify table names."""
    import asyncpg

    schema = f"t_{_slug(request.node.name, 40).replace('-', '_')}_{uuid.uuid4().hex[:8]}"
    conn = await asyncpg.connect(database_url, timeout=30)
    try:
        await conn.execute(f'CREATE SCHEMA "{schema}"')
        yield schema
    finally:
        await conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        await conn.close()


def pytest_sessionfinish(session: pytest.Session) -> None:
    """Collect cyclic garbage now, before the terminal summary imports plugins lazily.

    A fenced aiokafka producer leaves futures holding ProducerFenced in reference cycles;
    finalised by a GC pass that happens to run inside the assertion rewriter's ast.parse
    (hypothesis' plugin imports it at summary time), CPython 3.11 aborts with
    "SystemError: AST constructor recursion depth mismatch".
    """
    import gc

    gc.collect()
