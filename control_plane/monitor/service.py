"""The monitor process: the seed's HealthMonitor feeding its AlertManager.

Every ``monitor_interval`` seconds :meth:`HealthMonitor.evaluate`:

1. catches up with the control log (:class:`projections.io.follow.LogFollower`, the one log
   follower: the fold is the engine's ``state``; the events the engine reads are kept for
   its ``Observation``);
2. gathers the metric samples (:mod:`control_plane.monitor.sources`; each source bounded by
   ``monitor_source_timeout``, a failing one left out);
3. runs :meth:`control_plane.alerts.AlertManager.evaluate` (pure) with ``now``;
4. publishes each transition to ``<prefix>.alerts`` (idempotent producer, ``acks=all``; key:
   the alert key), then logs it and offers it to the webhooks, which deliver on their own.

The engine's new state is kept only once the transitions are on the topic. A publish that
fails ends the session (:func:`control_plane.monitor.runner.run_monitor` starts a new one
after a back-off), and every session begins by reading ``<prefix>.alerts`` back
(:func:`control_plane.monitor.messages.restore`): what the topic says fires, fires in the
engine, so a restart never fires an alert twice and never loses a transition it decided.

Several monitors may run: one publishes, the others stand by and take over when it dies
(:mod:`control_plane.monitor.leadership`); a session runs only while this one publishes.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from aiokafka import AIOKafkaProducer
from aiokafka import errors as kafka_errors

from control_plane.alerts import Alert, AlertManager, AlertStatus, Observation
from control_plane.alerts.model import (
    DEAD_LETTERS,
    FAILOVER_RATE,
    HEARTBEAT_LATENCY,
    PROJECTION_LAG,
    Refusal,
)
from control_plane.monitor import webhooks
from control_plane.monitor.derive import FailoverWindow, SeqIndex, quantile, remembered
from control_plane.monitor.leadership import Leadership, group_id, joined
from control_plane.monitor.messages import restore, to_message
from control_plane.monitor.metrics import MonitorMetrics, Seen
from control_plane.monitor.refusals import RefusalReader
from control_plane.monitor.settings import MonitorSettings
from control_plane.monitor.sources import DatabaseSignals, HeartbeatLatency, KafkaSignals, Scraper
from events.base import ControlEvent
from events.codec import encode
from events.topics import ALERTS, DLQ, EVENTS, HEARTBEATS, Topics
from projections.errors import ProjectionError
from projections.io.alerts import read_alerts
from projections.io.follow import LogFollower, skip_undecodable
from projections.io.kafka import kafka_error, make_producer, started
from projections.io.topics import ensure_topics

log = logging.getLogger("streamplane.monitor")
Samples = dict[str, float]


@dataclass
class _Session:
    """What one connection to Kafka holds (a new session after a failure starts afresh)."""

    follower: LogFollower
    producer: AIOKafkaProducer
    kafka: KafkaSignals
    latency: HeartbeatLatency
    database: DatabaseSignals | None
    scraper: Scraper | None
    index: SeqIndex
    failovers: FailoverWindow
    refusals: RefusalReader
    #: events for the engine not yet in an evaluation that was published
    pending: list[ControlEvent] = field(default_factory=list)


class _Deposed(Exception):
    """Another monitor publishes now: its producer fenced this one's."""


#: the topics the monitor reads or writes (created as the contract says when missing)
MONITORED = (EVENTS, HEARTBEATS, DLQ, ALERTS)


class HealthMonitor:
    """The seed's HealthMonitor (see the module docstring); :meth:`run` runs one session."""

    def __init__(
        self,
        settings: MonitorSettings,
        *,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        new_id: Callable[[], str] = lambda: uuid.uuid4().hex,
    ) -> None:
        self.settings = s = settings
        self.topics = Topics(s.topic_prefix)
        self.config = s.alert_config()
        self.manager = AlertManager(self.config)
        #: the last sample of every signal fed to the engine
        self.signals: Samples = {}
        self.evaluations = 0
        #: whether this monitor publishes (another one may, while this one stands by)
        self.publishing = False
        self._clock, self._new_id = clock, new_id
        self._stop = asyncio.Event()
        self.http = webhooks.client(s) if s.monitor_webhooks else None
        #: delivered by their own tasks (:func:`control_plane.monitor.runner.run_monitor`)
        self.webhooks = (
            [webhooks.Webhook(url, s, self.http) for url in s.monitor_webhooks] if self.http else []
        )
        self.metrics = MonitorMetrics(self._seen)

    def _seen(self) -> Seen:
        outcomes = sum((w.outcomes for w in self.webhooks), start=collections.Counter[str]())
        queued = sum(w.pending() for w in self.webhooks)
        return Seen(self.manager.firing(), dict(self.signals), outcomes, queued, self.publishing)

    def stop(self) -> None:
        self._stop.set()

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    async def wait_stopped(self) -> None:
        await self._stop.wait()

    async def close(self) -> None:
        """Deliver what the webhooks hold (bounded), then close their client."""
        for hook in self.webhooks:
            await hook.drain(self.settings.monitor_webhook_timeout)
        if self.http is not None:
            await self.http.aclose()

    # --- a session -----------------------------------------------------------------------

    async def run(self) -> None:
        """Join the monitors' group; while this monitor publishes, run a session (connect,
        restore the firing set from the alerts topic, evaluate every interval until
        :meth:`stop`); stand by while another one does. Kafka errors are raised (the
        runner retries)."""
        s = self.settings
        net = s.monitor_kafka_timeout
        await ensure_topics(s.kafka_access, self.topics, MONITORED, kafka_timeout=net)
        async with joined(s, self.topics) as lead:
            while not self._stop.is_set():
                self.publishing = await lead.holds()
                if not self.publishing:
                    log.info("standing by: another monitor publishes to %s", self.topics.alerts)
                    if not await lead.wait(self._stop):
                        return
                    self.publishing = True
                await self._session(lead)
                self.publishing = False

    async def _session(self, lead: Leadership) -> None:
        async with contextlib.AsyncExitStack() as stack:
            session = await self._open(stack)
            log.info(
                "monitor on %s: %d alert(s) firing as the topic says; evaluating every %g s",
                self.topics.alerts,
                len(self.manager.firing()),
                self.settings.monitor_interval,
            )
            failure: ProjectionError | None = None
            async with asyncio.TaskGroup() as tasks:
                background = [
                    tasks.create_task(_forever(session.latency.run, "heartbeat latency")),
                    tasks.create_task(self.metrics.loop_lag.run()),
                ]
                try:
                    await self._loop(session, lead)
                except ProjectionError as exc:
                    failure = exc  # raised as itself below, not in the group's ExceptionGroup
                except _Deposed:
                    log.warning("another monitor publishes now (this one was fenced); standing by")
                    lead.lost()
                finally:
                    for task in background:
                        task.cancel()
            if failure is not None:
                raise failure

    async def _open(self, stack: contextlib.AsyncExitStack) -> _Session:
        s, net = self.settings, self.settings.monitor_kafka_timeout
        # transactional: starting it fences any monitor that published before this one
        tid = group_id(self.topics)
        producer = make_producer(s.kafka_access, linger_ms=0, transactional_id=tid)
        await stack.enter_async_context(started(producer, kafka_timeout=net, what="alerts writer"))
        latest = await read_alerts(s.kafka_access, self.topics, kafka_timeout=net)
        self.manager = restore(latest, self.config)
        follower = LogFollower(
            s.kafka_access,
            self.topics,
            on_undecodable=skip_undecodable,  # the orchestrator and projectors dead-letter them
            kafka_timeout=net,
            max_records=2000,
            fetch_max_wait_ms=100,
            what="monitor log follower",
        )
        await stack.enter_async_context(follower)
        kafka = await stack.enter_async_context(KafkaSignals(s, self.topics))
        database = DatabaseSignals(s, s.database_url) if s.database_url else None
        if database is not None:
            stack.push_async_callback(database.close)
        scraper = Scraper(s) if s.monitor_scrape_urls else None
        if scraper is not None:
            stack.push_async_callback(scraper.close)
        index = SeqIndex(s.monitor_seq_index)
        index.note(follower.position, follower.state.seq)
        window = FailoverWindow(timedelta(seconds=s.monitor_failover_window))
        latency = HeartbeatLatency(s, self.topics)
        refusals = RefusalReader(s.kafka_access, self.topics, timeout=net)
        await stack.enter_async_context(started(refusals.consumer, kafka_timeout=net, what="dlq"))
        return _Session(
            follower, producer, kafka, latency, database, scraper, index, window, refusals
        )

    async def _loop(self, session: _Session, lead: Leadership) -> None:
        interval = self.settings.monitor_interval
        while not self._stop.is_set():
            if not await lead.holds():
                log.warning("another monitor publishes now; standing by")
                return
            began = time.monotonic()
            await self.evaluate(session)
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(max(0.0, interval - (time.monotonic() - began))):
                    await self._stop.wait()

    # --- one evaluation ------------------------------------------------------------------

    async def evaluate(self, session: _Session) -> tuple[Alert, ...]:
        """Catch up, gather, judge, publish; returns the transitions published."""
        with self.metrics.evaluation.time():
            await self._catch_up(session)
            now = self._clock()
            samples = await self._gather(session, now)
            self.signals.update(samples)
            refused = await self._refused(session)
            observation = Observation(
                session.follower.state, tuple(session.pending), samples, refused
            )
            manager, out = self.manager.evaluate(observation, now=now)
            records = [encode(to_message(a, message_id=self._new_id())) for a in out]
            await self._publish(session.producer, out, records)
            self.manager = manager
            session.pending.clear()
            self.evaluations += 1
        self.metrics.published(out)
        for alert, record in zip(out, records, strict=True):
            _log_transition(alert)
            for hook in self.webhooks:
                hook.offer(record)
        return out

    async def _catch_up(self, session: _Session) -> None:
        follower = session.follower
        end = await follower.end_offset()
        while follower.position < end:
            events = await follower.poll(timeout_ms=100)
            session.index.note(follower.position, follower.state.seq)
            session.pending.extend(remembered(events))
            session.failovers.observe(events)

    async def _gather(self, session: _Session, now: datetime) -> Samples:
        samples: Samples = {FAILOVER_RATE: session.failovers.rate(now)}
        latency = quantile(session.latency.take(), self.settings.monitor_heartbeat_quantile)
        if latency is not None:
            samples[HEARTBEAT_LATENCY] = latency
        seq = session.follower.state.seq
        calls = [
            self._bounded("dead_letters", _dead_letters(session.kafka)),
            self._bounded("projector", _projector_lag(session, seq)),
        ]
        if session.database is not None:
            calls.append(self._bounded("database", session.database.sample(seq)))
        derived = await asyncio.gather(*calls)
        scraped = (
            await self._bounded("scrape", session.scraper.sample(seq)) if session.scraper else {}
        )
        for part in derived:
            samples.update(part)
        return {**scraped, **samples}  # what the monitor derived wins over a scrape

    async def _refused(self, session: _Session) -> tuple[Refusal, ...]:
        """The heartbeats refused since the last evaluation (none when the DLQ is away)."""
        try:
            return await session.refusals.take()
        except ProjectionError as exc:
            self.metrics.source_errors.labels("refusals").inc()
            log.warning("signal source refusals failed, left out: %s", exc)
            return ()

    async def _bounded(self, source: str, call: Awaitable[Samples]) -> Samples:
        try:
            async with asyncio.timeout(self.settings.monitor_source_timeout):
                return await call
        except (ProjectionError, TimeoutError) as exc:
            self.metrics.source_errors.labels(source).inc()
            log.warning("signal source %s failed, left out: %s", source, exc)
            return {}

    async def _publish(
        self, producer: AIOKafkaProducer, alerts: tuple[Alert, ...], records: list[bytes]
    ) -> None:
        if not alerts:
            return
        topic = self.topics.alerts
        try:
            async with asyncio.timeout(self.settings.monitor_kafka_timeout):
                async with producer.transaction():  # all of an evaluation, or none
                    sent = [
                        await producer.send(topic, record, key=alert.key.encode())
                        for alert, record in zip(alerts, records, strict=True)
                    ]
                    await asyncio.gather(*sent)
        except kafka_errors.ProducerFenced as exc:
            raise _Deposed from exc
        except (TimeoutError, kafka_errors.KafkaError) as exc:
            raise kafka_error(exc, f"publish {len(alerts)} alert(s) to {topic}") from exc


async def _dead_letters(kafka: KafkaSignals) -> Samples:
    total = await kafka.dead_letters()
    return {} if total is None else {DEAD_LETTERS: total}


async def _projector_lag(session: _Session, seq: int) -> Samples:
    offset = await session.kafka.projector_offset()
    lag = None if offset is None else session.index.lag(offset, seq)
    return {} if lag is None else {PROJECTION_LAG: float(lag)}


async def _forever(run: Callable[[], Awaitable[None]], what: str, pause: float = 2.0) -> None:
    """Run a background reader again whenever Kafka fails it (the evaluation loop reports
    Kafka's state; a reader of one signal must not end the session)."""
    while True:
        try:
            await run()
        except ProjectionError as exc:
            log.warning("%s: %s; again in %.0f s", what, exc, pause)
            await asyncio.sleep(pause)


def _log_transition(alert: Alert) -> None:
    extra = {"seq": alert.seq}
    if alert.status is AlertStatus.FIRING:
        log.warning(
            "alert firing: %s [%s] %s; action: %s",
            alert.key,
            alert.severity.value,
            alert.summary,
            alert.action,
            extra=extra,
        )
    else:
        log.info(
            "alert resolved: %s [%s] %s",
            alert.key,
            alert.severity.value,
            alert.summary,
            extra=extra,
        )
