"""A secure single-broker Kafka (SASL/SCRAM, ACLs) of the test module's own, from the same
code as ``streamplane infra up --secure`` (control_plane.tools.infra.secure).

Its ports are picked free by the operating system when the module starts (as the
testcontainers broker's are), so it can clash neither with the shared brokers nor with
another session; its directory is under pytest's tmp dir and is deleted after the module.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

from control_plane.tools.infra import kafka, secure
from control_plane.tools.infra.config import KafkaCluster, cluster_at


def _free_ports(count: int) -> list[int]:
    sockets = [socket.socket() for _ in range(count)]
    try:
        for sock in sockets:
            sock.bind(("127.0.0.1", 0))
        return [int(sock.getsockname()[1]) for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


def secure_broker(home: Path) -> Iterator[KafkaCluster]:
    """Start a one-node secure cluster under ``home``; stop and delete it afterwards."""
    port, controller = _free_ports(2)
    cluster = cluster_at("kafka-secure-test", home, port, controller, 1, secure=True)
    try:
        kafka.cluster_up(cluster)
        yield cluster
    finally:
        kafka.cluster_down(cluster, purge=True)


def role_env(cluster: KafkaCluster, principal: str) -> dict[str, str]:
    """The ``STREAMPLANE_KAFKA_*`` settings that make a process ``principal``."""
    access = secure.access(cluster, principal)
    return {
        "STREAMPLANE_KAFKA_BOOTSTRAP": access.bootstrap,
        "STREAMPLANE_KAFKA_SECURITY_PROTOCOL": access.security_protocol,
        "STREAMPLANE_KAFKA_SASL_MECHANISM": access.sasl_mechanism,
        "STREAMPLANE_KAFKA_SASL_USERNAME": access.sasl_username,
        "STREAMPLANE_KAFKA_SASL_PASSWORD_FILE": access.sasl_password_file,
    }


def passwords(cluster: KafkaCluster) -> dict[str, str]:
    """principal -> its password (for tests that look for one where it must not be)."""
    return {p: secure.access(cluster, p).password() for p in secure.PRINCIPALS}
