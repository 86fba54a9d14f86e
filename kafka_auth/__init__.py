"""How a process authenticates to Kafka: the connection settings every client shares.

A leaf (like ``resilience`` and ``telemetry``): the worker agent, the io layer and the tools
all import it, and it imports none of them. See :mod:`kafka_auth.access`.
"""

from kafka_auth.access import (
    Brokers,
    KafkaAccess,
    KafkaAccessError,
    KafkaClientSettings,
    as_access,
)

__all__ = ["Brokers", "KafkaAccess", "KafkaAccessError", "KafkaClientSettings", "as_access"]
