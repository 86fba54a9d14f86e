"""``demo``: simulated work with a CPU cost per tick and failure injection.

Each stream is an asyncio task that burns ``demo_cpu_ms`` of CPU every
``demo_tick_interval`` seconds. Failure injection, for tests and benchmarks:

- ``demo_fail_streams``: ids that always fail to start ("poison streams");
- ``demo_fail_probability``: the chance that any start fails (seeded by ``demo_seed``);
- a stream param ``fail_after`` (seconds): the stream crashes that long after starting.

``demo_start_delay`` makes a started stream report ``starting`` for that many seconds
before ``running`` (``start`` itself returns at once), like a feed that takes a while to
connect: it keeps a make-before-break migration in flight long enough to act on it.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from collections.abc import Callable, Mapping

from events.heartbeat import StreamPerformance, StreamRunState
from worker_agent.errors import StreamStartError
from worker_agent.handlers import StreamHealth
from worker_agent.settings import WorkerSettings


class _Stream:
    def __init__(self) -> None:
        self.task: asyncio.Task[None] | None = None
        self.ticks = 0
        self.started = time.monotonic()
        self.latency_ms: float | None = None


class DemoHandler:
    """Simulated streams; see the module docstring for the knobs."""

    def __init__(self, settings: WorkerSettings, *, rand: Callable[[], float] | None = None):
        self.cpu_s = settings.demo_cpu_ms / 1000.0
        self.tick = settings.demo_tick_interval
        self.fail_probability = settings.demo_fail_probability
        self.fail_streams = frozenset(settings.demo_fail_streams)
        self._rand = rand or random.Random(settings.demo_seed).random
        self.start_delay = settings.demo_start_delay
        self._streams: dict[str, _Stream] = {}

    async def start(self, stream_id: str, params: Mapping[str, str]) -> None:
        """Start the simulated stream, or raise an injected :class:`StreamStartError`."""
        if stream_id in self.fail_streams:
            raise StreamStartError(f"demo: {stream_id} is a poison stream", stream_id=stream_id)
        if self.fail_probability and self._rand() < self.fail_probability:
            raise StreamStartError(f"demo: injected start failure for {stream_id}")
        fail_after = float(params.get("fail_after", "0") or 0)
        old = self._streams.pop(stream_id, None)
        if old is not None:
            await self._cancel(old)
        stream = _Stream()
        stream.task = asyncio.create_task(self._work(stream, fail_after), name=f"demo:{stream_id}")
        self._streams[stream_id] = stream

    async def _work(self, stream: _Stream, fail_after: float) -> None:
        while True:
            began = time.perf_counter()
            # Burn CPU on purpose: this is the simulated per-tick cost of real stream work.
            while time.perf_counter() - began < self.cpu_s:
                pass
            stream.ticks += 1
            stream.latency_ms = (time.perf_counter() - began) * 1000.0
            if fail_after and time.monotonic() - stream.started >= fail_after:
                raise RuntimeError(f"demo: injected crash after {fail_after}s")
            await asyncio.sleep(self.tick)

    async def stop(self, stream_id: str) -> None:
        """Cancel the stream's task; unknown ids are ignored."""
        stream = self._streams.pop(stream_id, None)
        if stream is not None:
            await self._cancel(stream)

    @staticmethod
    async def _cancel(stream: _Stream) -> None:
        if stream.task is not None:
            stream.task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await stream.task

    async def health(self, stream_id: str) -> StreamHealth:
        """``running`` while the task lives; ``failed`` with the crash reason once it died."""
        stream = self._streams.get(stream_id)
        if stream is None or stream.task is None:
            return StreamHealth(StreamRunState.FAILED, "not running")
        if stream.task.done():
            exc = None if stream.task.cancelled() else stream.task.exception()
            return StreamHealth(StreamRunState.FAILED, str(exc) if exc else "stopped")
        elapsed = max(time.monotonic() - stream.started, 1e-9)
        if elapsed < self.start_delay:
            return StreamHealth(StreamRunState.STARTING)
        perf = StreamPerformance(latency_ms=stream.latency_ms, throughput=stream.ticks / elapsed)
        return StreamHealth(StreamRunState.RUNNING, None, perf)
