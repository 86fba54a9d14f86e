"""Where the local infrastructure lives and which ports it uses.

Everything is derived from environment variables with fixed defaults, so two shells (or a
shell and a pytest run) agree on the same addresses without talking to each other.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[3]
KAFKA_POM = REPO_ROOT / "infra" / "kafka" / "pom.xml"
KAFKA_LOG4J = REPO_ROOT / "infra" / "kafka" / "log4j2.properties"

# The newest Kafka against which aiokafka 0.14 passes tests/integration/test_kafka_features.py;
# docs/infra.md records the evidence. Keep docker-compose.yml's image tag in step.
DEFAULT_KAFKA_VERSION = "4.4.0"
DATABASE_NAME = "streamplane"
PG_USER = "postgres"


class InfraError(RuntimeError):
    """The local infrastructure cannot be started, stopped or reached; the message says why."""


def _env_int(name: str, default: int) -> int:
    raw = os.environ.get(name)
    if not raw:
        return default
    try:
        return int(raw)
    except ValueError as exc:
        raise InfraError(f"{name}={raw!r} is not an integer") from exc


def cache_dir() -> Path:
    """Root of everything the infrastructure downloads or writes (jars, data, logs, pids)."""
    raw = os.environ.get("STREAMPLANE_CACHE_DIR")
    return Path(raw).resolve() if raw else REPO_ROOT / ".cache" / "streamplane"


def kafka_version() -> str:
    """The Kafka broker version to run (`STREAMPLANE_KAFKA_VERSION` overrides the default)."""
    return os.environ.get("STREAMPLANE_KAFKA_VERSION") or DEFAULT_KAFKA_VERSION


@dataclass(frozen=True)
class KafkaNode:
    """One combined broker+controller process of a KRaft cluster."""

    node_id: int
    port: int
    controller_port: int
    home: Path

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def log_dir(self) -> Path:
        return self.home / "logs"

    @property
    def data_dir(self) -> Path:
        return self.home / "data"

    @property
    def properties(self) -> Path:
        return self.home / "server.properties"

    @property
    def pid_file(self) -> Path:
        return self.home / "kafka.pid"


@dataclass(frozen=True)
class KafkaCluster:
    """A KRaft cluster of 1 or 3 combined nodes; the two sizes use disjoint ports and dirs."""

    name: str
    nodes: tuple[KafkaNode, ...]
    home: Path
    #: SASL/SCRAM listeners and ACLs (control_plane.tools.infra.secure)
    secure: bool = False

    @property
    def size(self) -> int:
        return len(self.nodes)

    @property
    def bootstrap(self) -> str:
        return ",".join(node.address for node in self.nodes)

    def node(self, node_id: int) -> KafkaNode:
        for node in self.nodes:
            if node.node_id == node_id:
                return node
        raise InfraError(f"cluster {self.name} has no node {node_id}")


_K, _K3 = "STREAMPLANE_KAFKA", "STREAMPLANE_KAFKA3"
#: (brokers, secure) -> name, client port (variable, default), controller port (ditto)
_LAYOUTS = {
    (1, False): ("kafka-single", f"{_K}_PORT", 19092, f"{_K}_CONTROLLER_PORT", 19192),
    (3, False): ("kafka-cluster3", f"{_K3}_BASE_PORT", 19093, f"{_K3}_CONTROLLER_BASE_PORT", 19193),
    (1, True): ("kafka-secure1", f"{_K}_SECURE_PORT", 19096, f"{_K}_SECURE_CONTROLLER_PORT", 19196),
    (3, True): (
        "kafka-secure3",
        f"{_K3}_SECURE_BASE_PORT",
        19097,
        f"{_K3}_SECURE_CONTROLLER_BASE_PORT",
        19197,
    ),
}


def kafka_cluster(brokers: int, secure: bool = False) -> KafkaCluster:
    """Layout of the single-node (`brokers=1`) or three-node (`brokers=3`) cluster, the
    plaintext or the secure one (four layouts, disjoint ports and directories)."""
    if brokers not in (1, 3):
        raise InfraError(f"brokers must be 1 or 3, not {brokers}")
    name, port_var, port, controller_var, controller = _LAYOUTS[(brokers, secure)]
    port, controller = _env_int(port_var, port), _env_int(controller_var, controller)
    return cluster_at(name, cache_dir() / name, port, controller, brokers, secure=secure)


def cluster_at(
    name: str, home: Path, port: int, controller: int, brokers: int, *, secure: bool = False
) -> KafkaCluster:
    """A cluster of ``brokers`` nodes on consecutive ports from ``port`` / ``controller``
    under ``home`` (tests use it for a broker of their own)."""
    nodes = tuple(
        KafkaNode(i + 1, port + i, controller + i, home / f"node-{i + 1}") for i in range(brokers)
    )
    return KafkaCluster(name, nodes, home, secure)


def pg_port() -> int:
    """TCP port of the local PostgreSQL (`STREAMPLANE_PG_PORT`, default 15432)."""
    return _env_int("STREAMPLANE_PG_PORT", 15432)


def database_url() -> str:
    """asyncpg/libpq URL of the local `streamplane` database as the superuser; the password
    is in the pgpass file (`PGPASSFILE`, control_plane.tools.infra.pg_auth), never in a URL."""
    return f"postgresql://{PG_USER}@127.0.0.1:{pg_port()}/{DATABASE_NAME}"


@dataclass(frozen=True)
class InfraEndpoints:
    """Addresses of what `ensure_up` started; `None` for a component that was not asked for."""

    kafka_bootstrap: str | None
    database_url: str | None
    log_paths: tuple[Path, ...] = field(default=())
    #: the pgpass file with every role's password (set ``PGPASSFILE`` to it)
    pgpass: Path | None = None
