"""Webhooks: each alert transition POSTed to every configured URL, never in the way.

Every URL has its own bounded queue and its own task, so a slow or dead endpoint delays only
its own deliveries: :meth:`Webhook.offer` never waits (when the queue is full, the oldest
waiting transition is dropped and counted). A delivery is the alert's CloudEvent (the very
bytes written to ``<prefix>.alerts``, ``Content-Type: application/cloudevents+json``), tried
up to ``monitor_webhook_attempts`` times with full-jitter back-off
(:class:`resilience.backoff.Backoff`), each try bounded by ``monitor_webhook_timeout``. A
circuit breaker per URL (:class:`resilience.breaker.CircuitBreaker`) stops trying an endpoint
that keeps failing: while it is open, transitions are skipped (counted, logged) instead of
piling up, and a probe goes through after ``monitor_webhook_breaker_reset``.

A 2xx answer is a delivery. A 4xx other than 408/429 says the endpoint refuses this payload:
not retried, and not held against the endpoint's breaker. URLs are logged without their path
and query, which often carry the endpoint's secret token.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections import Counter
from collections.abc import Awaitable, Callable

import httpx

from control_plane.monitor.settings import MonitorSettings, quiet_http_logs, redact
from resilience.backoff import Backoff
from resilience.breaker import BreakerPolicy, CircuitBreaker

log = logging.getLogger("streamplane.monitor.webhooks")

CONTENT_TYPE = "application/cloudevents+json"
#: 4xx answers worth another try (the others refuse the payload itself)
RETRY_4XX = frozenset({408, 429})
#: outcomes counted per webhook
OUTCOMES = ("delivered", "failed", "refused", "dropped", "skipped")


class Webhook:
    """One URL: its queue, breaker and delivery loop (:meth:`run`, as a task)."""

    def __init__(
        self,
        url: str,
        settings: MonitorSettings,
        client: httpx.AsyncClient,
        *,
        rand: Callable[[], float] = random.random,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.url = url
        self.name = redact(url)
        self.timeout = settings.monitor_webhook_timeout
        self.attempts = settings.monitor_webhook_attempts
        self.backoff = Backoff(
            settings.monitor_webhook_backoff_base, settings.monitor_webhook_backoff_cap
        )
        self.breaker = CircuitBreaker(
            BreakerPolicy(
                settings.monitor_webhook_breaker_threshold, settings.monitor_webhook_breaker_reset
            ),
            clock,
            name=self.name,
        )
        self.outcomes: Counter[str] = Counter()
        self._client = client
        self._rand = rand
        self._sleep = sleep
        self._queue: asyncio.Queue[bytes] = asyncio.Queue(maxsize=settings.monitor_webhook_queue)

    def offer(self, body: bytes) -> None:
        """Queue one transition for delivery; never waits."""
        if self._queue.full():
            self._queue.get_nowait()
            self.outcomes["dropped"] += 1
            log.warning("webhook %s: queue full, dropped the oldest transition", self.name)
        self._queue.put_nowait(body)

    def pending(self) -> int:
        return self._queue.qsize()

    async def run(self) -> None:
        while True:
            body = await self._queue.get()
            self.outcomes[await self.deliver(body)] += 1

    async def drain(self, grace: float) -> None:
        """Deliver what is queued, for at most ``grace`` seconds (at shutdown)."""
        try:
            async with asyncio.timeout(grace):
                while not self._queue.empty():
                    self.outcomes[await self.deliver(self._queue.get_nowait())] += 1
        except TimeoutError:
            log.warning("webhook %s: %d transition(s) not delivered", self.name, self.pending())

    async def deliver(self, body: bytes) -> str:
        """One transition, with retries: the outcome (one of :data:`OUTCOMES`)."""
        problem, tries = "", 0
        while tries < self.attempts:
            if not self.breaker.allow():  # open (or a failed probe just opened it again)
                if not tries:
                    log.warning("webhook %s: circuit open, transition skipped", self.name)
                    return "skipped"
                break
            if tries:
                pause = self.backoff.delay(tries - 1, self._rand)
                log.info("webhook %s: %s; retry in %.2f s", self.name, problem, pause)
                await self._sleep(pause)
            tries += 1
            status, failure = await self._post(body)
            if failure is None:
                self.breaker.success()
                return "delivered"
            problem = failure
            if status is not None and 400 <= status < 500 and status not in RETRY_4XX:
                self.breaker.success()  # it answered: the endpoint works, the payload not
                log.warning("webhook %s refused the transition: %s", self.name, problem)
                return "refused"
            self.breaker.failure()
        log.warning("webhook %s: giving up after %d tries: %s", self.name, tries, problem)
        return "failed"

    async def _post(self, body: bytes) -> tuple[int | None, str | None]:
        """(HTTP status or None, what went wrong or None)."""
        try:
            async with asyncio.timeout(self.timeout):
                response = await self._client.post(
                    self.url, content=body, headers={"Content-Type": CONTENT_TYPE}
                )
        except (httpx.HTTPError, TimeoutError) as exc:
            return None, type(exc).__name__  # the message may hold the URL: not logged
        if response.is_success:
            return response.status_code, None
        return response.status_code, f"HTTP {response.status_code}"


def client(settings: MonitorSettings) -> httpx.AsyncClient:
    """The HTTP client every webhook shares (no redirects: a webhook answers itself)."""
    quiet_http_logs()
    return httpx.AsyncClient(timeout=settings.monitor_webhook_timeout, follow_redirects=False)
