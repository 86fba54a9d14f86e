"""Where the monitor's metric samples come from (the I/O side of the seed's HealthMonitor).

Other processes may or may not serve ``/metrics``; the monitor derives what it can from the
systems themselves, so it works on a cluster where nothing is scraped:

- :class:`HeartbeatLatency`: every heartbeat read, *receive time minus the heartbeat's own
  time* (so it includes the worker's clock skew: a constant skew is learned as normal);
- :class:`KafkaSignals`: dead letters = the records in ``<prefix>.dlq`` (its end offset); the
  Faust projector's committed offset on the control log (its consumer group), which
  :class:`~control_plane.monitor.derive.SeqIndex` turns into a lag in ``seq``;
- :class:`DatabaseSignals`: the read model's tracking row (``last_seq``), the long
  transactions (``ResilientDatabaseManager.monitor_long_transactions``), and how long
  PostgreSQL has not answered;
- :class:`Scraper`: configured ``/metrics`` URLs, for the signals above that could not be
  derived (another deployment of the read model, a projector in another cluster).

A source that fails is logged and left out of that evaluation (the engine keeps a missing
signal's last sample); it never stops the monitor.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

import asyncpg
import httpx
from aiokafka import TopicPartition
from aiokafka import errors as kafka_errors
from prometheus_client.parser import text_string_to_metric_families

from control_plane.alerts.model import (
    DEAD_LETTERS,
    LONG_TRANSACTIONS,
    PROJECTION_LAG,
    READ_MODEL_LAG,
)
from control_plane.monitor.settings import (
    DATABASE_DOWN,
    MonitorSettings,
    quiet_http_logs,
    redact,
)
from events.topics import DLQ, Topics
from projections.io.follow import HeartbeatWatcher, skip_undecodable
from projections.io.kafka import kafka_error, make_admin, make_consumer, started
from projections.io.postgres import DatabaseError, DatabaseQueryError, ResilientDatabaseManager

log = logging.getLogger("streamplane.monitor")

#: latencies kept between two evaluations (the oldest go first)
LATENCY_SAMPLES = 50_000
TRACKING_SQL = "SELECT last_seq FROM projection_tracking WHERE projection = $1"

#: the Prometheus samples (docs/metrics.md) a scrape reads: a projection's lag in seq is the
#: head of the log (the monitor's own fold) minus the slowest instance's applied seq
APPLIED_SEQ = {
    "streamplane_projector_applied_seq": PROJECTION_LAG,
    "streamplane_read_model_applied_seq": READ_MODEL_LAG,
}
#: counters summed over labels and targets
SUMMED = {"streamplane_dead_letters_total": DEAD_LETTERS}


class HeartbeatLatency:
    """Follows the heartbeats from their end; :meth:`take` hands over the latencies seen
    since the last call. Run :meth:`run` as a task: read continuously, a heartbeat's receive
    time is when it arrived, not when the next evaluation came round."""

    def __init__(self, settings: MonitorSettings, topics: Topics) -> None:
        self._watcher = HeartbeatWatcher(
            settings.kafka_access,
            topics,
            on_undecodable=skip_undecodable,  # the orchestrator dead-letters them
            kafka_timeout=settings.monitor_kafka_timeout,
            what="monitor heartbeats",
        )
        self._samples: deque[float] = deque(maxlen=LATENCY_SAMPLES)

    async def run(self) -> None:
        async with self._watcher as watcher:
            while True:
                for hb in await watcher.poll(timeout_ms=200):
                    late = (datetime.now(UTC) - hb.time).total_seconds()
                    self._samples.append(max(0.0, late))

    def take(self) -> list[float]:
        out = list(self._samples)
        self._samples.clear()
        return out


class KafkaSignals:
    """One admin client and one consumer (no group) for offset queries, kept open."""

    def __init__(self, settings: MonitorSettings, topics: Topics) -> None:
        self.settings = settings
        self.timeout = settings.monitor_kafka_timeout
        self._dlq = [TopicPartition(topics.dlq, p) for p in range(DLQ.partitions)]
        self._events = TopicPartition(topics.events, 0)
        bootstrap = settings.kafka_access
        self._admin = make_admin(bootstrap, request_timeout_ms=int(self.timeout * 1000))
        self._consumer = make_consumer(bootstrap, request_timeout_ms=int(self.timeout * 1000))

    async def __aenter__(self) -> KafkaSignals:
        stack = contextlib.AsyncExitStack()
        try:
            for client, what in ((self._admin, "monitor admin"), (self._consumer, "offsets")):
                await stack.enter_async_context(
                    started(client, kafka_timeout=self.timeout, what=what)
                )
        except BaseException:
            await stack.aclose()
            raise
        self._stack = stack
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self._stack.aclose()

    async def dead_letters(self) -> float | None:
        """Records ever written to the dead-letter topic (None when it does not exist)."""
        topics = await self._call("list topics", self._consumer.topics())
        if self._dlq[0].topic not in topics:
            return None
        ends = await self._call("dlq end offsets", self._consumer.end_offsets(self._dlq))
        return float(sum(ends.values()))

    async def projector_offset(self) -> int | None:
        """The projector group's next offset on the control log (None: no such group)."""
        group = self.settings.projector_group
        offsets = await self._call(
            f"offsets of group {group}",
            self._admin.list_consumer_group_offsets(group, partitions=[self._events]),
        )
        found = offsets.get(self._events)
        return None if found is None or found.offset < 0 else int(found.offset)

    async def _call(self, what: str, call: Any) -> Any:
        try:
            async with asyncio.timeout(self.timeout):
                return await call
        except (TimeoutError, kafka_errors.KafkaError) as exc:
            raise kafka_error(exc, f"monitor: {what}") from exc


class DatabaseSignals:
    """PostgreSQL of the read model, asked once per evaluation with short bounds."""

    def __init__(self, settings: MonitorSettings, url: str) -> None:
        self.settings = settings
        self.db = ResilientDatabaseManager(
            url,
            schema=settings.database_schema,
            settings=settings.monitor_database,
            application_name="streamplane-monitor",
        )
        self._down_since: float | None = None
        self._no_read_model_said = False

    async def close(self) -> None:
        await self.db.close()

    async def sample(self, seq_now: int) -> dict[str, float]:
        """Long transactions, the read model's lag, and seconds unreachable (0 when up)."""
        out: dict[str, float] = {}
        try:
            long = await self.db.monitor_long_transactions(
                self.settings.monitor_long_transaction_after
            )
            out[LONG_TRANSACTIONS] = float(len(long))
            last_seq = await self._tracked_seq()
        except DatabaseError as exc:
            if not exc.retriable:
                raise
            now = time.monotonic()
            self._down_since = self._down_since if self._down_since is not None else now
            log.warning("PostgreSQL unreachable for %.0f s: %s", now - self._down_since, exc)
            out[DATABASE_DOWN] = now - self._down_since
            return out
        self._down_since = None
        out[DATABASE_DOWN] = 0.0
        if last_seq is not None:
            out[READ_MODEL_LAG] = float(max(0, seq_now - last_seq))
        return out

    async def _tracked_seq(self) -> int | None:
        name = self.settings.read_model_name

        async def read(conn: asyncpg.Connection) -> int | None:
            value = await conn.fetchval(TRACKING_SQL, name)
            return None if value is None else int(value)

        try:
            return await self.db.execute_with_retry(read, what="read model tracking row")
        except DatabaseQueryError as exc:  # no read model in this schema: nothing to watch
            if not self._no_read_model_said:
                self._no_read_model_said = True
                log.info("no read-model tracking row to watch (%s)", exc)
            return None


class Scraper:
    """Scrapes ``/metrics`` URLs (each bounded by ``monitor_scrape_timeout``)."""

    def __init__(self, settings: MonitorSettings) -> None:
        self.urls = settings.monitor_scrape_urls
        quiet_http_logs()
        self._client = httpx.AsyncClient(timeout=settings.monitor_scrape_timeout)

    async def close(self) -> None:
        await self._client.aclose()

    async def sample(self, seq_now: int) -> dict[str, float]:
        texts = await asyncio.gather(*(self._get(url) for url in self.urls))
        return signals_of([t for t in texts if t is not None], seq_now)

    async def _get(self, url: str) -> str | None:
        try:
            response = await self._client.get(url)
            response.raise_for_status()
        except httpx.HTTPError as exc:
            log.warning("scrape of %s failed: %s", redact(url), type(exc).__name__)
            return None
        return response.text


def signals_of(texts: Iterable[str], seq_now: int) -> dict[str, float]:
    """The signals in Prometheus text expositions (pure): lags in seq behind ``seq_now``
    (the slowest of several instances), dead letters summed."""
    applied: dict[str, float] = {}
    summed: dict[str, float] = {}
    for text in texts:
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                if (signal := APPLIED_SEQ.get(sample.name)) is not None:
                    applied[signal] = min(applied.get(signal, sample.value), sample.value)
                elif (signal := SUMMED.get(sample.name)) is not None:
                    summed[signal] = summed.get(signal, 0.0) + sample.value
    lags = {signal: max(0.0, seq_now - seq) for signal, seq in applied.items()}
    return {**summed, **lags}
