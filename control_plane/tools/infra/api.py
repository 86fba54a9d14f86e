"""Programmatic entry points: what the CLI, the test fixtures and chaos tests call."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from control_plane.tools.infra import kafka, pg_auth, process, secure
from control_plane.tools.infra import postgres as pg_server
from control_plane.tools.infra.config import (
    InfraEndpoints,
    InfraError,
    cache_dir,
    database_url,
    kafka_cluster,
    kafka_version,
)
from events.topics import DEFAULT_PREFIX


def _lock() -> Path:
    return cache_dir() / "infra.lock"


def ensure_up(
    brokers: int = 1,
    postgres: bool = True,
    *,
    secure_mode: bool = False,
    topic_prefix: str = DEFAULT_PREFIX,
) -> InfraEndpoints:
    """Start Kafka (`brokers` = 1 or 3 combined KRaft nodes, 0 for none) and PostgreSQL.

    ``secure_mode``: the SASL/SCRAM cluster with ACLs (its own ports and directory), its
    principals' credentials under :func:`credentials_dir`, and every role's ACLs on the
    topics of ``topic_prefix``. Idempotent and safe to call from several processes at
    once: what already runs is reused, what is missing is started, and the call returns
    once everything serves requests (bounded by timeouts; InfraError otherwise).
    """
    cluster = kafka_cluster(brokers, secure=secure_mode) if brokers else None
    with process.locked(_lock()):
        if cluster is not None:
            kafka.cluster_up(cluster)
            if secure_mode:
                kafka.run_async(secure.grant(cluster, topic_prefix))
        url = pg_server.up() if postgres else None
    logs = tuple(node.log_dir for node in cluster.nodes) if cluster else ()
    if postgres:
        logs += (pg_server.log_path(),)
    bootstrap = cluster.bootstrap if cluster else None
    pgpass = pg_auth.pgpass_path() if postgres else None
    return InfraEndpoints(
        kafka_bootstrap=bootstrap, database_url=url, log_paths=logs, pgpass=pgpass
    )


def credentials_dir(brokers: int = 1) -> Path:
    """Where `infra up --secure` keeps each principal's password and ``.env`` file."""
    return secure.credentials_dir(kafka_cluster(brokers, secure=True))


def down(purge: bool = False, brokers: int | None = None, postgres: bool = True) -> None:
    """Stop the Kafka cluster(s) (both sizes, plaintext and secure, when `brokers` is None)
    and PostgreSQL.

    purge also deletes their data (topics, databases, credentials); jars are kept.
    """
    sizes = (1, 3) if brokers is None else (brokers,)
    with process.locked(_lock()):
        for size in sizes:
            for secure_mode in (False, True):
                kafka.cluster_down(kafka_cluster(size, secure_mode), purge=purge)
        if postgres:
            pg_server.down(purge=purge)


def kill_broker(node_id: int, brokers: int = 3) -> None:
    """SIGKILL one node of the cluster (a crash: no controlled shutdown, no flush)."""
    kafka.kill_node(kafka_cluster(brokers), node_id)


def start_broker(node_id: int, brokers: int = 3) -> None:
    """Start a killed or stopped node again and wait until it is a live broker."""
    with process.locked(_lock()):
        kafka.restart_node(kafka_cluster(brokers), node_id)


def running_brokers(brokers: int = 3) -> list[int]:
    """Node ids of the cluster whose broker process is running."""
    cluster = kafka_cluster(brokers)
    return [n.node_id for n in cluster.nodes if kafka.node_pid(cluster, n) is not None]


@dataclass(frozen=True)
class ComponentStatus:
    """One line of `infra status`: what, whether it runs, where it listens, where it logs."""

    name: str
    running: bool
    address: str
    logs: tuple[Path, ...]
    detail: str = ""


def status() -> list[ComponentStatus]:
    """State of both Kafka clusters and PostgreSQL, without starting anything."""
    result = []
    for size, secure_mode in ((1, False), (3, False), (1, True), (3, True)):
        cluster = kafka_cluster(size, secure_mode)
        alive = [n.node_id for n in cluster.nodes if kafka.node_pid(cluster, n) is not None]
        running = len(alive) == cluster.size
        detail = f"only nodes {alive} run" if alive and not running else ""
        logs = tuple(node.log_dir / "server.log" for node in cluster.nodes)
        if secure_mode and running:
            detail = f"credentials in {secure.credentials_dir(cluster)}"
        result.append(ComponentStatus(cluster.name, running, cluster.bootstrap, logs, detail))
    try:
        pg_running = pg_server.server_pid() is not None
        pg_logs: tuple[Path, ...] = (pg_server.log_path(),)
    except InfraError:
        pg_running, pg_logs = False, ()
    result.append(ComponentStatus("postgres", pg_running, database_url(), pg_logs))
    return result


def status_lines(export: bool = False) -> list[str]:
    """Shell-evaluable status: variable lines for what runs, `#` comments for the rest."""
    components = {c.name: c for c in status()}
    single, trio = components["kafka-single"], components["kafka-cluster3"]
    pg = components["postgres"]
    prefix = "export " if export else ""
    lines = [f"# kafka version {kafka_version()}, cache {cache_dir()}"]
    main_kafka = single if single.running else trio
    if main_kafka.running:
        lines.append(f"{prefix}KAFKA_BOOTSTRAP={main_kafka.address}")
    if trio.running:
        lines.append(f"{prefix}KAFKA_BOOTSTRAP_CLUSTER3={trio.address}")
    for name, variable in (("kafka-secure1", "SECURE"), ("kafka-secure3", "SECURE_CLUSTER3")):
        if components[name].running:
            lines.append(f"{prefix}KAFKA_BOOTSTRAP_{variable}={components[name].address}")
    if pg.running:  # URLs without passwords; those are in the pgpass file (PGPASSFILE)
        lines.append(f"{prefix}DATABASE_URL={pg.address}")
        lines.append(f"{prefix}READ_MODEL_DATABASE_URL={pg_auth.role_url(pg_auth.READ_MODEL_ROLE)}")
        lines.append(f"{prefix}API_DATABASE_URL={pg_auth.role_url(pg_auth.API_ROLE)}")
        lines.append(f"{prefix}PGPASSFILE={pg_auth.pgpass_path()}")
    if export and main_kafka.running:
        lines.append(f"export STREAMPLANE_KAFKA_BOOTSTRAP={main_kafka.address}")
    if export and pg.running:
        lines.append(f"export STREAMPLANE_DATABASE_URL={pg.address}")
    for comp in components.values():
        state = "up" if comp.running else comp.detail or "down"
        more = f" ({comp.detail})" if comp.running and comp.detail else ""
        lines.append(f"# {comp.name}: {state} at {comp.address}{more}")
        lines.extend(f"# logs: {path}" for path in comp.logs)
    return lines
