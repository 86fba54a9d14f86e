"""A secure Kafka (SASL/SCRAM, ACLs; one or three nodes) of the test module's own, from the same
code as ``streamplane infra up --secure`` (control_plane.tools.infra.secure).

Its ports are picked free by the operating system when the module starts (as the
testcontainers broker's are), so it can clash neither with the shared brokers nor with
another session; its directory is under pytest's tmp dir and is deleted after the module.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from control_plane.tools.infra import kafka, secure
from control_plane.tools.infra.config import KafkaCluster, KafkaNode
from support.ports import free_ports


def secure_broker(home: Path, brokers: int = 1) -> Iterator[KafkaCluster]:
    """Start a secure cluster of ``brokers`` nodes under ``home``; stop and delete it
    afterwards."""
    ports = free_ports(2 * brokers)
    nodes = tuple(
        KafkaNode(i + 1, ports[i], ports[brokers + i], home / f"node-{i + 1}")
        for i in range(brokers)
    )
    cluster = KafkaCluster(f"kafka-secure-test{brokers}", nodes, home, secure=True)
    try:
        kafka.cluster_up(cluster)
        yield cluster
    finally:
        kafka.cluster_down(cluster, purge=True)


def passwords(cluster: KafkaCluster) -> dict[str, str]:
    """principal -> its password (for tests that look for one where it must not be)."""
    return {p: secure.access(cluster, p).password() for p in secure.PRINCIPALS}


role_env = secure.role_env
