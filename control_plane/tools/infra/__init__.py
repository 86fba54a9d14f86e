"""Local real infrastructure without Docker: Kafka in KRaft mode from the Apache jars and a
private PostgreSQL, started on loopback ports under a cache dir (see docs/infra.md).

Importing this package is cheap and starts nothing.
"""

from control_plane.tools.infra.api import (
    ComponentStatus,
    down,
    ensure_up,
    kill_broker,
    running_brokers,
    start_broker,
    status,
    status_lines,
)
from control_plane.tools.infra.config import InfraEndpoints, InfraError, database_url, kafka_cluster

__all__ = [
    "ComponentStatus",
    "InfraEndpoints",
    "InfraError",
    "database_url",
    "down",
    "ensure_up",
    "kafka_cluster",
    "kill_broker",
    "running_brokers",
    "start_broker",
    "status",
    "status_lines",
]
