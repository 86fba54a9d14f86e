"""Reading ``<prefix>.alerts``: the latest record per alert key, and what arrives after it.

The monitor (on start, to rebuild what fires), ``streamplane alerts`` and the HTTP API all
need the same thing, so it is here, below the processes. :class:`AlertLog` assigns every
partition of the topic by hand (no group: a reader that lists alerts must not take records
away from another one), reads committed records only, and folds each record into
:attr:`AlertLog.latest` (:func:`events.alerts.fold_alerts`). A record that does not decode is
counted and logged, never raised: the topic is a view the monitor can always rewrite, and one
bad record must not hide every alert after it. A tombstone (``null`` value) removes its key.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable
from typing import Self, TypeVar

from aiokafka import ConsumerRecord, TopicPartition
from aiokafka import errors as kafka_errors

from events.alerts import AlertMessage, firing, fold_alerts
from events.codec import decode_alert
from events.errors import EventError
from events.topics import ALERTS, Topics
from kafka_auth import Brokers
from projections.io.kafka import DEFAULT_TIMEOUT, check_topic, kafka_error, make_consumer, started

log = logging.getLogger(__name__)
T = TypeVar("T")


class AlertLog:
    """``async with AlertLog(bootstrap, topics) as alerts:`` then ``await alerts.catch_up()``
    (everything up to the end seen now) and ``alerts.firing()``; ``await alerts.poll()`` for
    records written since. ``from_end=True`` skips the history (only what comes next)."""

    def __init__(
        self,
        bootstrap: Brokers,
        topics: Topics,
        *,
        from_end: bool = False,
        kafka_timeout: float = DEFAULT_TIMEOUT,
        max_records: int = 5000,
    ) -> None:
        self.topic = topics.alerts
        self.kafka_timeout = kafka_timeout
        self.max_records = max_records
        #: alert key -> its newest record
        self.latest: dict[str, AlertMessage] = {}
        #: records that did not decode (skipped)
        self.undecodable = 0
        self._from_end = from_end
        self._tps = [TopicPartition(self.topic, p) for p in range(ALERTS.partitions)]
        self._consumer = make_consumer(
            bootstrap,
            auto_offset_reset="latest" if from_end else "earliest",
            request_timeout_ms=int(kafka_timeout * 1000),
            fetch_max_wait_ms=200,
        )
        self._stack = contextlib.AsyncExitStack()

    async def __aenter__(self) -> Self:
        c = self._consumer
        await self._stack.enter_async_context(
            started(c, kafka_timeout=self.kafka_timeout, what="alerts reader")
        )
        try:
            await self._bounded("check the topic", check_topic(c, self.topic))
            c.assign(self._tps)
            await self._bounded(
                "seek", (c.seek_to_end if self._from_end else c.seek_to_beginning)(*self._tps)
            )
        except BaseException:
            await self._stack.aclose()
            raise
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self._stack.aclose()

    def firing(self) -> list[AlertMessage]:
        """The alerts whose latest record says they fire, worst first."""
        return list(firing(self.latest))

    async def poll(self, timeout_ms: int = 200) -> list[AlertMessage]:
        """The records since the last call (waiting up to ``timeout_ms`` for the first), in
        topic order; :attr:`latest` is updated."""
        batches = await self._bounded(
            "fetch",
            self._consumer.getmany(*self._tps, timeout_ms=timeout_ms, max_records=self.max_records),
            extra=timeout_ms / 1000,
        )
        out: list[AlertMessage] = []
        for records in batches.values():
            for record in records:
                if record.value is None:  # a tombstone: the key is gone
                    self.latest.pop(record.key.decode(errors="replace") if record.key else "", None)
                    continue
                message = self._decode(record)
                if message is not None:
                    self.latest = fold_alerts(self.latest, (message,))
                    out.append(message)
        return out

    async def catch_up(self) -> int:
        """Read up to the end of every partition as it is when called; returns how many
        alerts that was."""
        ends = await self._bounded("end offsets", self._consumer.end_offsets(self._tps))
        count = 0
        while not await self._reached(ends):
            count += len(await self.poll())
        return count

    async def _reached(self, ends: dict[TopicPartition, int]) -> bool:
        for tp, end in ends.items():
            if await self._bounded("position", self._consumer.position(tp)) < end:
                return False
        return True

    def _decode(self, record: ConsumerRecord[bytes, bytes]) -> AlertMessage | None:
        try:
            return decode_alert(record.value)
        except EventError as exc:
            self.undecodable += 1
            log.warning("skipped an undecodable alert at %s@%d: %s", self.topic, record.offset, exc)
            return None

    async def _bounded(self, what: str, call: Awaitable[T], *, extra: float = 0.0) -> T:
        """``await call`` within ``kafka_timeout`` (+ ``extra``), errors mapped to
        :mod:`projections.errors`."""
        try:
            async with asyncio.timeout(self.kafka_timeout + extra):
                return await call
        except (TimeoutError, kafka_errors.KafkaError) as exc:
            raise kafka_error(exc, f"alerts reader: {what} ({self.topic})") from exc


async def read_alerts(
    bootstrap: Brokers, topics: Topics, *, kafka_timeout: float = DEFAULT_TIMEOUT
) -> dict[str, AlertMessage]:
    """Every alert key's newest record, read to the end of ``<prefix>.alerts``."""
    async with AlertLog(bootstrap, topics, kafka_timeout=kafka_timeout) as alerts:
        await alerts.catch_up()
        return alerts.latest
