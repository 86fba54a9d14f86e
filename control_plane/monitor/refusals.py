"""Refused heartbeats, as the monitor learns of them: the dead letters the orchestrator
writes for heartbeats that did not count (``UnauthenticatedError``; docs/orchestrator.md,
*Enrolled workers*), turned into :class:`~control_plane.alerts.model.Refusal` values for
the ``heartbeat_refused`` rule (one alert per claimed server id).

The reader starts at the end of ``<prefix>.dlq`` when it first finds the topic: letters
written before the monitor started fire nothing (as the dead-letter count's first sample).
The refused id and the reason are read from the letter's message, whose form the
orchestrator's gate writes (``heartbeat of 'ID' refused (REASON): ...``; a unit test ties
the two).
"""

from __future__ import annotations

import asyncio
import re

from aiokafka import TopicPartition
from aiokafka import errors as kafka_errors

from control_plane.alerts.model import Refusal
from events.topics import DLQ, Topics
from kafka_auth import Brokers
from projections.io.dlq import DeadLetter, decode_dead_letter
from projections.io.kafka import kafka_error, make_consumer

#: the message of an ``UnauthenticatedError`` (control_plane.orchestrator.enrollment)
_MESSAGE = re.compile(r"^heartbeat of '([A-Za-z0-9._:-]{1,128})' refused \(([a-z_]{1,32})\)")
#: dead letters read per evaluation at most (the rest waits for the next one)
MAX_LETTERS = 5_000


def refusal_of(letter: DeadLetter) -> Refusal | None:
    """The refusal a dead letter records, or None for any other dead letter."""
    if letter.error_type != "UnauthenticatedError" or letter.message_type != "Heartbeat":
        return None
    found = _MESSAGE.match(letter.error_message)
    if found is None:
        return None
    return Refusal(found.group(1), found.group(2), letter.dead_lettered_at)


class RefusalReader:
    """A group-less consumer of the dead-letter topic (``consumer``: the caller starts and
    stops it, e.g. with ``projections.io.kafka.started``)."""

    def __init__(self, bootstrap: Brokers, topics: Topics, *, timeout: float) -> None:
        self.timeout = timeout
        self._tps = [TopicPartition(topics.dlq, p) for p in range(DLQ.partitions)]
        self.consumer = make_consumer(
            bootstrap, auto_offset_reset="latest", request_timeout_ms=int(timeout * 1000)
        )

    async def take(self) -> tuple[Refusal, ...]:
        """The refusals dead-lettered since the last call."""
        consumer = self.consumer
        try:
            async with asyncio.timeout(self.timeout):
                if not consumer.assignment():
                    if self._tps[0].topic not in await consumer.topics():
                        return ()
                    consumer.assign(self._tps)
                    await consumer.seek_to_end(*self._tps)
                    return ()
                batches = await consumer.getmany(timeout_ms=0, max_records=MAX_LETTERS)
        except (TimeoutError, kafka_errors.KafkaError) as exc:
            raise kafka_error(exc, "monitor: read the dead letters") from exc
        out = []
        for records in batches.values():
            for r in records:
                refusal = _refusal(r.value)
                if refusal is not None:
                    out.append(refusal)
        return tuple(out)


def _refusal(raw: bytes | None) -> Refusal | None:
    if raw is None:
        return None
    try:
        return refusal_of(decode_dead_letter(raw))
    except ValueError:  # not a dead letter this build can read: not ours to judge
        return None
