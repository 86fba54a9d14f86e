"""The dashboard's server side: one reader of the log for every browser, and a bounded queue
per browser.

:class:`Hub` follows the control log with the project's one follower
(:class:`projections.io.follow.LogFollower`, which folds each event with
:func:`projections.fold.apply`'s driver) and turns each batch into one delta
(:class:`~control_plane.api.dashboard.view.DashboardView`); it follows ``<prefix>.alerts``
too (with :class:`projections.io.alerts.AlertLog`), once that topic exists, keeping the alerts
whose latest record is an ``AlertFired``. Every message is encoded once and put on each
browser's queue.

A browser that connects gets the snapshot and its queue in one step with no ``await`` in
between (:meth:`Hub.subscribe`), so it misses no delta and sees none twice. The queues are
bounded (``client_queue``): a browser that falls that far behind is **dropped**: its queue is
emptied and given one last message telling it so, its stream ends, and its page reconnects
and starts again from a fresh snapshot. A slow page costs the server one full queue at most.

When Kafka fails, the readers tell the pages (a ``status`` message), wait a jittered back-off
and go on from where they stood.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import Callable
from typing import Any

import orjson
from aiokafka import errors as kafka_errors

from control_plane.api.dashboard.settings import DashboardSettings
from control_plane.api.dashboard.view import DashboardView, Json
from events.alerts import AlertMessage
from events.topics import Topics
from kafka_auth import Brokers
from projections.errors import ProjectionError, UnknownTopicError
from projections.fold.assignments import iso
from projections.io.alerts import AlertLog
from projections.io.follow import LogFollower, skip_undecodable
from projections.io.kafka import check_topic, kafka_error, make_consumer, started
from resilience.backoff import Backoff

log = logging.getLogger(__name__)


def frame(message: Json) -> bytes:
    """One server-sent event carrying ``message`` as JSON."""
    return b"data: " + orjson.dumps(message) + b"\n\n"


#: the last message of a dropped browser, and of every browser when the server stops
DROPPED = frame({"kind": "bye", "why": "too slow: reconnect for a fresh snapshot"})
CLOSED = frame({"kind": "bye", "why": "the server is stopping"})


def alert_view(alert: AlertMessage) -> Json:
    """One firing alert as the page lists it."""
    return {
        "key": alert.key,
        "rule": alert.rule,
        "about": alert.about,
        "severity": alert.severity.value,
        "summary": alert.summary,
        "action": alert.action,
        "evidence": dict(alert.evidence),
        "seq": alert.seq,
        "at": iso(alert.time),
    }


class TooManyClientsError(Exception):
    """``max_clients`` browsers are connected already (the route answers 503)."""


class Subscriber:
    """One browser: its queue of encoded messages, ended by :data:`DROPPED` or :data:`CLOSED`."""

    def __init__(self, size: int) -> None:
        self.queue: asyncio.Queue[bytes] = asyncio.Queue(maxsize=size)
        self.ended = False

    def offer(self, data: bytes) -> bool:
        """Queue ``data``; False (and the queue ends with :data:`DROPPED`) when it is full."""
        try:
            self.queue.put_nowait(data)
            return True
        except asyncio.QueueFull:
            self.end(DROPPED)
            return False

    def end(self, last: bytes) -> None:
        """Empty the queue and leave ``last`` as its only message."""
        while not self.queue.empty():
            self.queue.get_nowait()
        self.queue.put_nowait(last)
        self.ended = True


class Hub:
    """See the module docstring. ``run()`` is the readers' task; ``subscribe`` per browser."""

    def __init__(
        self,
        bootstrap: Brokers,
        topics: Topics,
        settings: DashboardSettings,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.bootstrap, self.topics, self.settings = bootstrap, topics, settings
        self.view = DashboardView(settings)
        #: alert key -> the firing alert (its latest record on the alerts topic)
        self.alerts: dict[str, Json] = {}
        self.connected = False
        self.problem: str | None = None
        #: browsers dropped for being too slow, since start
        self.dropped = 0
        self._subscribers: set[Subscriber] = set()
        #: where the log follower stands (a restart after a Kafka failure goes on from there)
        self._position = 0
        self._clock = clock
        self._health_at = float("-inf")
        self._backoff = Backoff(settings.retry_base, settings.retry_cap)
        self._rand = random.Random()

    # --- browsers -----------------------------------------------------------------------

    @property
    def clients(self) -> int:
        return len(self._subscribers)

    def subscribe(self) -> tuple[Json, Subscriber]:
        """The snapshot as of now and the queue of everything after it."""
        if len(self._subscribers) >= self.settings.max_clients:
            raise TooManyClientsError(f"{len(self._subscribers)} dashboards are connected")
        sub = Subscriber(self.settings.client_queue)
        self._subscribers.add(sub)
        snapshot = self.view.snapshot(self.alerts)
        snapshot["connected"], snapshot["problem"] = self.connected, self.problem
        return snapshot, sub

    def unsubscribe(self, sub: Subscriber) -> None:
        self._subscribers.discard(sub)

    def publish(self, message: Json) -> None:
        """Encode ``message`` once and queue it for every browser; drop the ones that are full."""
        data = frame(message)
        for sub in list(self._subscribers):
            if not sub.offer(data):
                self._subscribers.discard(sub)
                self.dropped += 1
                log.warning("dashboard: dropped a browser %d messages behind", sub.queue.maxsize)

    def close(self) -> None:
        """End every browser's stream (the server is stopping)."""
        for sub in self._subscribers:
            sub.end(CLOSED)
        self._subscribers.clear()

    def stopped(self, task: asyncio.Task[None]) -> None:
        """The readers' task ended: say so on every page rather than show a frozen state."""
        if not task.cancelled() and task.exception() is not None:
            log.error("dashboard: the readers stopped", exc_info=task.exception())
            self._status(False, f"the dashboard's reader stopped: {task.exception()!r}")

    def _status(self, connected: bool, problem: str | None) -> None:
        if (connected, problem) != (self.connected, self.problem):
            self.connected, self.problem = connected, problem
            self.publish({"kind": "status", "connected": connected, "problem": problem})

    # --- the readers ----------------------------------------------------------------------

    async def run(self) -> None:
        """Follow the log and the alerts until cancelled."""
        async with asyncio.TaskGroup() as tasks:
            tasks.create_task(self._again(self._follow_log, "control log"))
            tasks.create_task(self._again(self._follow_alerts, "alerts topic"))

    async def _again(self, read: Callable[[], Any], what: str) -> None:
        """Run ``read`` again after each Kafka failure, with a jittered back-off."""
        attempt = 0
        while True:
            try:
                await read()
            except ProjectionError as exc:
                pause = self._backoff.delay(attempt, self._rand.random)
                log.warning(
                    "dashboard: reading the %s failed (%s); again in %.1fs", what, exc, pause
                )
                if what == "control log":
                    self._status(False, f"cannot read the {what}: {exc}")
                attempt += 1
                await asyncio.sleep(pause)
            else:
                attempt = 0

    async def _follow_log(self) -> None:
        s, state = self.settings, self.view.state
        await self._check_log()
        follower = LogFollower(
            self.bootstrap,
            self.topics,
            from_state=state if state.seq else None,
            from_offset=self._position if state.seq else None,
            on_undecodable=skip_undecodable,  # the orchestrator dead-letters them
            kafka_timeout=s.kafka_timeout,
            fetch_max_wait_ms=s.poll_ms,
            what="dashboard log follower",
        )
        async with follower:
            self._status(True, None)
            while True:
                events = await follower.poll(timeout_ms=s.poll_ms)
                self._position = follower.position
                if events:
                    self.publish(self.view.advance(follower.state, events, with_health=self._due()))

    async def _check_log(self) -> None:
        """Raise :class:`~projections.errors.UnknownTopicError` unless the log exists: a
        follower's first fetch would ask for it by name, which a broker that auto-creates
        topics answers by creating a wrong one (and aiokafka logs an error per fetch)."""
        consumer = make_consumer(self.bootstrap)
        async with started(consumer, kafka_timeout=self.settings.kafka_timeout, what="dashboard"):
            await self._bounded(check_topic(consumer, self.topics.events), "look for the log")

    def _due(self) -> bool:
        """Whether the health summary goes with this delta (at most once per interval)."""
        now = self._clock()
        if now - self._health_at < self.settings.health_interval:
            return False
        self._health_at = now
        return True

    async def _follow_alerts(self) -> None:
        """Keep :attr:`alerts` = what fires by the latest record of each key (the project's
        alerts reader, :class:`~projections.io.alerts.AlertLog`, does the reading)."""
        s = self.settings
        reader = AlertLog(self.bootstrap, self.topics, kafka_timeout=s.kafka_timeout)
        try:
            async with reader:
                while True:
                    await reader.poll(timeout_ms=s.poll_ms)
                    self._firing({m.key: alert_view(m) for m in reader.firing()})
        except UnknownTopicError:
            # no alerts topic yet: no alert was ever raised (not a failure to report)
            await asyncio.sleep(s.alerts_lookup)

    def _firing(self, now: dict[str, Json]) -> None:
        """Publish what changed in the firing set (``None``: resolved or gone)."""
        changed: dict[str, Json | None] = {k: v for k, v in now.items() if self.alerts.get(k) != v}
        changed.update({k: None for k in self.alerts if k not in now})
        if changed:
            self.alerts = now
            self.publish({"kind": "alerts", "alerts": changed})

    async def _bounded(self, call: Any, what: str) -> Any:
        try:
            async with asyncio.timeout(self.settings.kafka_timeout):
                return await call
        except (TimeoutError, kafka_errors.KafkaError) as exc:
            raise kafka_error(exc, f"dashboard: {what}") from exc


@contextlib.asynccontextmanager
async def running(hub: Hub) -> Any:
    """Run the hub's readers while the block runs; end every stream and stop them after."""
    task = asyncio.create_task(hub.run(), name="dashboard hub")
    task.add_done_callback(hub.stopped)
    try:
        yield hub
    finally:
        hub.close()
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
