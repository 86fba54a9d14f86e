"""A Faust transport with the project's safe Kafka settings, without ``exactly_once``.

faust-streaming 0.15.3 reads its source topics with ``isolation_level="read_uncommitted"``
unless ``processing_guarantee="exactly_once"``, and only makes its producer idempotent in that
mode too. ``exactly_once`` has open duplicate bugs (DESIGN), so we stay at-least-once and
change just the two settings:

- the worker consumer reads ``read_committed``: the control log is written in transactions, and
  a ``read_uncommitted`` reader would fold records of aborted transactions (events that never
  happened, e.g. from a fenced zombie leader);
- the producer (assignment records, table changelogs, dead letters) uses ``acks="all"`` and
  idempotence.

aiokafka has no public setter for the isolation level of a built consumer; it reads the private
``_isolation_level`` when ``start()`` builds the fetcher, so it is set right after Faust builds
the consumer and before it starts. ``tests/integration/test_faust_projector.py`` proves it: an
aborted transaction on the control log leaves the projector's state untouched.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import aiokafka
import faust
from faust.transport.drivers import aiokafka as faust_aiokafka
from faust.types import TransportT

READ_COMMITTED = "read_committed"


class ReadCommittedConsumerThread(faust_aiokafka.AIOKafkaConsumerThread):
    """Builds the worker consumer as Faust does, then makes it read committed records only."""

    def _create_worker_consumer(self, transport: Any) -> aiokafka.AIOKafkaConsumer:
        consumer = super()._create_worker_consumer(transport)
        consumer._isolation_level = READ_COMMITTED
        return consumer


class ReadCommittedConsumer(faust_aiokafka.Consumer):
    def _new_consumer_thread(self) -> ReadCommittedConsumerThread:
        return ReadCommittedConsumerThread(self, loop=self.loop, beacon=self.beacon)


class IdempotentProducer(faust_aiokafka.Producer):
    def _settings_extra(self) -> Mapping[str, Any]:
        return {**super()._settings_extra(), "acks": "all", "enable_idempotence": True}


class SafeTransport(faust_aiokafka.Transport):
    """aiokafka transport with the two overrides above."""

    Consumer = ReadCommittedConsumer
    Producer = IdempotentProducer


class SafeApp(faust.App):
    """``faust.App`` whose consumer and producer transports are :class:`SafeTransport`."""

    def _new_transport(self) -> TransportT:
        return SafeTransport(self.conf.broker_consumer, self)

    def _new_producer_transport(self) -> TransportT:
        return SafeTransport(self.conf.broker_producer, self)


__all__ = ["IdempotentProducer", "ReadCommittedConsumer", "SafeApp", "SafeTransport"]
