"""Executes reconcile plans against the handler and keeps the bookkeeping.

``running`` (stream -> params it was started with) and ``retries`` (failed starts) are the
inputs of the next :func:`~worker_agent.reconcile.reconcile`; this class only applies plans,
with a timeout on every handler call, and never lets a handler error escape.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

from events.heartbeat import StreamRunState
from resilience.backoff import Backoff
from worker_agent.handlers import StreamHandler, StreamHealth
from worker_agent.reconcile import Params, Plan, RetryState, Start, record_start_failure
from worker_agent.settings import WorkerSettings

log = logging.getLogger("streamplane.worker")


class StreamRunner:
    """Applies plans: stops first (concurrently), then starts (concurrently)."""

    def __init__(
        self,
        handler: StreamHandler,
        settings: WorkerSettings,
        *,
        clock: Callable[[], float] = time.monotonic,
        rand: Callable[[], float],
    ):
        self.handler = handler
        self.settings = settings
        self.backoff = Backoff(settings.start_retry_base, settings.start_retry_cap)
        self.running: dict[str, Params] = {}
        self.retries: dict[str, RetryState] = {}
        #: what was carried out since the process started (read by the metrics)
        self.started = self.stopped = self.start_failures = 0
        self._clock = clock
        self._rand = rand

    async def execute(self, plan: Plan) -> None:
        """Carry out ``plan``; failures are recorded in ``retries``, never raised."""
        if plan.stops:
            await asyncio.gather(*(self.stop(s.stream_id) for s in plan.stops))
        if plan.starts:
            await asyncio.gather(*(self._start(s) for s in plan.starts))

    async def _start(self, start: Start) -> None:
        sid = start.stream_id
        try:
            async with asyncio.timeout(self.settings.start_timeout):
                await self.handler.start(sid, start.params)
        except Exception as exc:  # a handler is third-party code: any error is a failed start
            error = str(exc) or type(exc).__name__
            if isinstance(exc, TimeoutError):
                error = f"start timed out after {self.settings.start_timeout}s"
                await self._stop_quietly(sid)  # a half-started stream must not linger
            retry = record_start_failure(
                self.retries.get(sid),
                error=error,
                now=self._clock(),
                backoff=self.backoff,
                rand=self._rand,
            )
            self.retries[sid] = retry
            self.start_failures += 1
            log.warning(
                "start of %s failed (attempt %d, next try in %.1fs): %s",
                sid,
                retry.attempts,
                retry.next_at - self._clock(),
                error,
            )
            return
        self.running[sid] = dict(start.params)
        self.retries.pop(sid, None)
        self.started += 1
        log.info("started stream %s", sid)

    async def stop(self, stream_id: str) -> None:
        """Stop one stream; it is forgotten even if the handler fails to stop it."""
        await self._stop_quietly(stream_id)
        self.running.pop(stream_id, None)
        self.stopped += 1
        log.info("stopped stream %s", stream_id)

    async def _stop_quietly(self, stream_id: str) -> None:
        try:
            async with asyncio.timeout(self.settings.stop_timeout):
                await self.handler.stop(stream_id)
        except Exception as exc:  # a handler is third-party code; the stream is gone for us
            log.error("stop of %s failed: %s", stream_id, exc)

    async def stop_all(self) -> None:
        """Stop every running stream concurrently and clear the retry bookkeeping."""
        await asyncio.gather(*(self.stop(sid) for sid in list(self.running)))
        self.retries.clear()

    async def health(self) -> dict[str, StreamHealth]:
        """Ask the handler about every running stream (a failing call counts as failed)."""
        result: dict[str, StreamHealth] = {}
        for sid in sorted(self.running):
            try:
                async with asyncio.timeout(self.settings.stop_timeout):
                    result[sid] = await self.handler.health(sid)
            except Exception as exc:  # a handler is third-party code
                result[sid] = StreamHealth(StreamRunState.FAILED, f"health check failed: {exc}")
        return result
