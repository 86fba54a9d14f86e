"""How the orchestrator reads heartbeats: every one into :class:`Liveness`, and how far
behind it is.

This is not :class:`projections.io.follow.HeartbeatWatcher` (the latest heartbeat per server,
for views): the orchestrator needs every heartbeat at the time it read it (phi accrual learns
from the arrival rhythm), it drains a backlog within one cycle, and it must tell its own
blindness (Kafka away, a backlog) from the workers' silence, which is what ``last_poll``
(the observer lag handed to ``decide``) measures.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from datetime import datetime, timedelta

from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition
from aiokafka import errors as kafka_errors

from control_plane.decide.liveness import Liveness
from control_plane.decide.marks import Batch
from control_plane.orchestrator.enrollment import HeartbeatGate
from events import EventError, decode_heartbeat
from events.heartbeat import Heartbeat
from events.topics import HEARTBEATS, Topics
from kafka_auth import Brokers
from projections.fold.state import ClusterState
from projections.io.follow import OnUndecodable
from projections.io.kafka import make_consumer

log = logging.getLogger("streamplane.orchestrator")

#: heartbeats per read while draining: small enough to check the time budget often
HB_BATCH = 2_000


class HeartbeatPoller:
    """The heartbeats topic as the orchestrator reads it (see the module docstring).

    Lives as long as the orchestrator (its clocks survive a restart of :meth:`start` after a
    Kafka outage); the consumer is made anew by each :meth:`start`.
    """

    def __init__(
        self,
        topics: Topics,
        *,
        interval: float,
        request_timeout: float,
        observer_max_lag: timedelta,
        clock: Callable[[], datetime],
        gate: HeartbeatGate,
    ) -> None:
        self.topics = topics
        #: which heartbeats count (signatures of enrolled workers)
        self.gate = gate
        self.interval = interval
        self.request_timeout = request_timeout
        self.observer_max_lag = observer_max_lag
        self.clock = clock
        #: a fault-injection switch (SIGUSR1): read nothing, as a blind observer would
        self.paused = False
        #: as of when the observer has seen every heartbeat sent (``decide``'s observer lag)
        self.last_poll = clock()
        #: when the topic was last read to its end
        self._caught_up_at = clock()
        self._blind = False
        self._consumer: AIOKafkaConsumer | None = None
        #: heartbeats read and decoded since the process started (a metric)
        self.received = 0
        #: the reads of the last poll, by position (a leader's cycle mark cites them)
        self.batches: list[Batch] = []
        #: server_id -> (partition, offset) of the latest heartbeat observed from it
        self.where: dict[str, tuple[int, int]] = {}

    @property
    def consumer(self) -> AIOKafkaConsumer:
        assert self._consumer is not None, "HeartbeatPoller used before start()"
        return self._consumer

    async def start(self, bootstrap: Brokers) -> None:
        """A new consumer at the end of every partition (the caller bounds the time)."""
        self._consumer = consumer = make_consumer(bootstrap, auto_offset_reset="latest")
        await consumer.start()
        # ensure_topics checked the partition count, so the spec is the truth
        tps = [TopicPartition(self.topics.heartbeats, p) for p in range(HEARTBEATS.partitions)]
        consumer.assign(tps)
        await consumer.seek_to_end(*tps)

    async def stop(self) -> None:
        consumer, self._consumer = self._consumer, None
        if consumer is None:
            return
        try:
            async with asyncio.timeout(self.request_timeout):
                await consumer.stop()
        except (TimeoutError, kafka_errors.KafkaError) as exc:
            log.warning("stopping the heartbeat consumer failed: %s", exc)

    async def poll(
        self, liveness: Liveness, on_undecodable: OnUndecodable, state: ClusterState
    ) -> list[Heartbeat]:
        """Drain the topic for at most ``interval`` (the rest waits a cycle); every heartbeat
        that counts (``gate``, against ``state``'s enrolled keys) goes into ``liveness``;
        returns the latest of each server. One that does not goes to ``on_undecodable``.

        Draining, rather than one bounded read, keeps a backlog (after a long cycle) from
        leaving partitions unread, whose instances would look silent. While a backlog is
        left, the observer counts as lagging since it was last caught up, so a slow
        orchestrator enters the mass-failure guard instead of suspecting live instances."""
        self.batches = []
        if self.paused:
            await asyncio.sleep(self.interval)
            return []
        deadline = time.monotonic() + self.interval
        timeout_ms = int(self.interval * 1000)
        latest: dict[str, Heartbeat] = {}
        check, enrolled = self.gate.check, state.enrolled
        while True:
            batches = await self.consumer.getmany(timeout_ms=timeout_ms, max_records=HB_BATCH)
            now = self.clock()
            refused: list[tuple[int, int]] = []
            for tp, records in batches.items():
                for r in records:
                    try:
                        hb = decode_heartbeat(r.value)
                        check(r, hb, enrolled, now)
                    except EventError as exc:  # UnauthenticatedError too
                        await on_undecodable(r, exc)
                        refused.append((tp.partition, r.offset))
                        continue
                    liveness.observe(hb, now)
                    latest[hb.server_id] = hb
                    self.where[hb.server_id] = (tp.partition, r.offset)
                    self.received += 1
            self._note(batches, now, refused)
            caught_up = await self._caught_up()
            timeout_ms = int((deadline - time.monotonic()) * 1000)
            if caught_up or timeout_ms <= 0:
                break
        if caught_up:
            self._caught_up_at = now
        self.last_poll = min(self._fetched_at(now), self._caught_up_at)
        self._rebaseline_after_blindness(liveness, now)
        return list(latest.values())

    def _note(
        self,
        batches: dict[TopicPartition, list[ConsumerRecord]],
        now: datetime,
        refused: list[tuple[int, int]],
    ) -> None:
        """Remember this read by position: its time, where each partition now stands, and
        which records did not count."""
        read = tuple((tp.partition, rs[-1].offset + 1) for tp, rs in batches.items() if rs)
        if read:
            self.batches.append(Batch(now, read, tuple(refused)))

    async def positions(self) -> tuple[tuple[int, int], ...]:
        """Where the consumer stands in every partition (a term mark starts from there)."""
        consumer = self.consumer
        out = []
        for tp in sorted(consumer.assignment(), key=lambda tp: tp.partition):
            out.append((tp.partition, int(await consumer.position(tp))))
        return tuple(out)

    async def _caught_up(self) -> bool:
        """Whether every partition is read up to its end as of its last fetch."""
        consumer = self.consumer
        try:
            async with asyncio.timeout(self.request_timeout):
                for tp in consumer.assignment():
                    end = consumer.last_stable_offset(tp)  # read_committed reads up to it
                    if end is not None and await consumer.position(tp) < end:
                        return False
        except (TimeoutError, kafka_errors.KafkaError) as exc:
            log.warning("heartbeat positions unknown: %s", exc)
            return False
        return True

    def _fetched_at(self, now: datetime) -> datetime:
        """When every partition last got a fetch answer (the oldest of them).

        ``getmany`` returns nothing, without an error, while Kafka is away: only the fetch
        times show that this observer went blind rather than the workers silent."""
        consumer = self.consumer
        stamps = [consumer.last_poll_timestamp(tp) for tp in consumer.assignment()]
        if not stamps or None in stamps:
            return now  # nothing fetched yet: the start-up watch period covers us
        return now - timedelta(milliseconds=max(0.0, time.time() * 1000 - min(stamps)))

    def _rebaseline_after_blindness(self, liveness: Liveness, now: datetime) -> None:
        """After a blind spot, judge no one silent before watching for a whole fail_after:
        workers reconnecting after a Kafka outage must not be failed for Kafka's silence."""
        blind = now - self.last_poll > self.observer_max_lag
        if self._blind and not blind:
            liveness.watch_started_at = now
            log.warning("heartbeats flow again: judging no one silent for fail_after")
        self._blind = blind
