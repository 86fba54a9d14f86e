"""The worker agent: the imperative shell around reconcile, heartbeats and the transport.

Five loops share one event loop: desired sets in, reconcile, heartbeats out, Kafka health
checks, and the periodic self-check (a sixth watches the heartbeat lease when one is set).
The streams never depend on Kafka: when it is away the agent keeps running what it runs
(local mode) and keeps only the latest heartbeat state, unless its lease says to stop them
(:mod:`worker_agent.connectivity`).
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import random
import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime

from events.codec import decode_desired, encode
from events.errors import EventError
from events.heartbeat import DesiredSet, Heartbeat, StreamReport, StreamRunState
from resilience.backoff import Backoff
from telemetry.metrics import serve
from worker_agent.connectivity import Link, Mode
from worker_agent.errors import TransportError
from worker_agent.handlers import StreamHandler, StreamHealth, load_handler
from worker_agent.metrics import WorkerMetrics, WorkerSnapshot, snapshot
from worker_agent.reconcile import (
    DesiredVerdict,
    Params,
    desired_streams,
    forget_retries,
    judge_desired,
    mismatch,
    reconcile,
)
from worker_agent.report import (
    Fingerprint,
    Identity,
    ProcessSampler,
    build_heartbeat,
    fingerprint,
    metrics_from,
    stream_reports,
)
from worker_agent.settings import WorkerSettings
from worker_agent.streams import StreamRunner
from worker_agent.transport import KafkaTransport, Transport

log = logging.getLogger("streamplane.worker")

_HEALTHY = (StreamRunState.RUNNING, StreamRunState.STARTING)


def new_incarnation() -> str:
    """A fresh incarnation id (uuid4 hex)."""
    return uuid.uuid4().hex


class WorkerAgent:
    """Runs the streams the control plane wants on this worker; see ``docs/worker.md``."""

    def __init__(
        self,
        settings: WorkerSettings,
        handler: StreamHandler | None = None,
        *,
        transport: Transport | None = None,
        clock: Callable[[], float] = time.monotonic,
        rand: Callable[[], float] | None = None,
    ):
        self.settings = settings
        self.handler = handler or load_handler(settings.handler, settings)
        self.transport = transport or KafkaTransport(settings, clock=clock)
        s = settings
        self.identity = Identity(s.server_id, s.ip, s.port, s.max_streams, s.zone, s.tags)
        self._clock = clock
        self._rand = rand or random.Random().random
        self._runner = StreamRunner(self.handler, settings, clock=clock, rand=self._rand)
        self._incarnation = new_incarnation()
        self._desired: dict[str, Params] = {}
        self._desired_seq = 0
        self._health: dict[str, StreamHealth] = {}
        self._mismatch: tuple[str, ...] = ()
        self._checked_mismatch: tuple[str, ...] = ()
        self._sent: Fingerprint | None = None
        self._link = Link(clock(), settings.heartbeat_lease)
        self._lock = asyncio.Lock()
        self._wake = asyncio.Event()
        self._beat = asyncio.Event()
        self._stop = asyncio.Event()
        self._done = asyncio.Event()
        self._sampler = ProcessSampler()
        #: the latest heartbeat built (sent or not): local mode keeps only this one
        self.last_heartbeat: Heartbeat | None = None
        self.heartbeats_sent = self.heartbeat_failures = self.fenced = self.lease_expiries = 0
        #: served by run() when ``metrics_address`` is set
        self.metrics = WorkerMetrics(self.metrics_snapshot)

    # --- observable state
    @property
    def incarnation(self) -> str:
        """The current incarnation (changes on every start and after being fenced)."""
        return self._incarnation

    @property
    def running_streams(self) -> frozenset[str]:
        """Streams the handler currently holds (started and not stopped)."""
        return frozenset(self._runner.running)

    @property
    def desired(self) -> frozenset[str]:
        """The desired set last applied for this incarnation."""
        return frozenset(self._desired)

    @property
    def mode(self) -> Mode:
        """``connected``, ``local`` (Kafka unreachable) or ``partial`` (one direction only)."""
        return self._link.mode

    @property
    def partial(self) -> str | None:
        """Which direction fails in partial mode ("cannot produce" / "cannot consume")."""
        return self._link.partial

    @property
    def mismatch(self) -> tuple[str, ...]:
        """The last self-check: desired but not healthy, or healthy but not desired."""
        return self._mismatch

    def metrics_snapshot(self) -> WorkerSnapshot:
        """What the metrics read, on the metrics server's thread: reads only."""
        counts = (self.heartbeats_sent, self.heartbeat_failures, self.fenced, self.lease_expiries)
        return snapshot(self._runner, len(self._desired), self.mode, self.transport, counts)

    # --- lifecycle
    async def run(self) -> None:
        """Run until :meth:`stop`; then leave gracefully (announce, stop streams, flush)."""
        log.info(
            "worker %s starting: incarnation %s, capacity %d, handler %s",
            self.identity.server_id,
            self._incarnation,
            self.identity.max_streams,
            self.settings.handler,
        )
        try:  # the metrics address first: a bad one fails before anything started
            server = serve(self.metrics.registry, self.settings.metrics_address)
        except BaseException:
            self._done.set()
            raise
        try:
            async with asyncio.TaskGroup() as group:
                loops = [
                    group.create_task(self._keep_running(loop), name=f"worker:{loop.__name__}")
                    for loop in (
                        self._desired_loop,
                        self._reconcile_loop,
                        self._heartbeat_loop,
                        self._health_loop,
                        self._self_check_loop,
                        *((self._lease_loop,) if self._link.lease is not None else ()),
                    )
                ]
                loops.append(group.create_task(self.metrics.loop_lag.run(), name="worker:lag"))
                await self._stop.wait()
                for task in loops:
                    task.cancel()
        finally:
            await self._shutdown()
            server.stop()
            self._done.set()

    async def _keep_running(self, loop: Callable[[], Awaitable[None]]) -> None:
        # A bug or a stray CancelledError from a client library must not end a loop silently
        # (a TaskGroup ignores a child that ends cancelled) nor take the streams down with it.
        backoff = Backoff(self.settings.connect_retry_base, self.settings.connect_retry_cap)
        for attempt in itertools.count():
            try:
                await loop()
            except asyncio.CancelledError:
                task = asyncio.current_task()
                if self._stop.is_set() or (task is not None and task.cancelling()):
                    raise
                log.error("%s was cancelled from inside; restarting it", loop.__name__)
            except Exception:  # shell: log loudly, keep the worker alive
                log.exception("%s crashed; restarting it", loop.__name__)
            await asyncio.sleep(backoff.delay(attempt, self._rand))

    async def stop(self) -> None:
        """Ask :meth:`run` to finish and wait until it has."""
        self._stop.set()
        await self._done.wait()

    def request_stop(self) -> None:
        """Ask :meth:`run` to finish without waiting (safe from a signal handler)."""
        self._stop.set()

    async def _shutdown(self) -> None:
        log.info("worker %s leaving: announcing, then stopping streams", self.identity.server_id)
        await self._send_heartbeat(leaving=True)
        try:
            async with asyncio.timeout(self.settings.shutdown_grace):
                await self._runner.stop_all()
        except TimeoutError:
            grace = self.settings.shutdown_grace
            log.error("grace period of %.1fs over; abandoning streams", grace)
        self._health = {}
        await self._send_heartbeat(leaving=True)
        await self.transport.close()
        log.info("worker %s stopped", self.identity.server_id)

    # --- desired sets in
    async def _desired_loop(self) -> None:
        backoff = Backoff(self.settings.connect_retry_base, self.settings.connect_retry_cap)
        failures = 0
        while True:
            try:
                records = await self.transport.poll_desired()
            except TransportError as exc:
                if not exc.circuit_open:
                    log.warning("reading desired sets failed: %s", exc)
                self._set_consume(False)
                await asyncio.sleep(backoff.delay(failures, self._rand))
                failures += 1
                continue
            failures = 0
            for raw in records:
                await self._on_desired(raw)

    async def _on_desired(self, raw: bytes) -> None:
        try:
            message = decode_desired(raw)
        except EventError as exc:
            log.warning("skipping a malformed desired set: %s", exc)
            return
        verdict = judge_desired(
            message,
            server_id=self.identity.server_id,
            incarnation=self._incarnation,
            applied_seq=self._desired_seq,
        )
        if verdict is DesiredVerdict.FENCE:
            await self._fence(message)
        elif verdict is DesiredVerdict.APPLY:
            self._desired = desired_streams(message)
            self._desired_seq = message.seq
            log.info("desired set seq %d: %d stream(s)", message.seq, len(self._desired))
            self._wake.set()

    async def _fence(self, message: DesiredSet) -> None:
        why = f"incarnation {self._incarnation} fenced (seq {message.seq})"
        await self._start_over(why)
        self.fenced += 1

    async def _lease_loop(self) -> None:
        lease = self._link.lease or 0.0
        while True:
            await asyncio.sleep(min(lease / 4, 0.25))
            now = self._clock()
            if self._link.lease_expired(now) and self._runner.running:
                silent = self._link.silent_for(now)
                await self._start_over(
                    f"no heartbeat delivered for {silent:.1f}s, over heartbeat_lease {lease}s "
                    "(the orchestrator fails this incarnation and runs its streams elsewhere)"
                )
                self.lease_expiries += 1

    async def _start_over(self, why: str) -> None:
        """Stop every stream and take a new incarnation (which registers anew)."""
        async with self._lock:
            log.warning("%s: stopping every stream, registering anew", why)
            await self._runner.stop_all()
            self._desired, self._desired_seq, self._health = {}, 0, {}
            self._incarnation = new_incarnation()
            log.info("new incarnation %s", self._incarnation)
        self._beat.set()

    # --- reconcile
    async def _reconcile_loop(self) -> None:
        while True:
            await _wait_for(self._wake, self.settings.reconcile_interval)
            async with self._lock:
                await self._reconcile_once()
            if self._current_fingerprint() != self._sent:
                self._beat.set()

    async def _reconcile_once(self) -> None:
        runner = self._runner
        runner.retries = forget_retries(runner.retries, self._desired)
        plan = reconcile(
            desired=self._desired,
            running=runner.running,
            retries=runner.retries,
            capacity=self.identity.max_streams,
            now=self._clock(),
        )
        if plan.over_capacity:
            log.warning("over capacity, not starting %s", ", ".join(plan.over_capacity))
        await runner.execute(plan)
        self._health = await runner.health()
        healthy = [sid for sid, h in self._health.items() if h.state in _HEALTHY]
        self._mismatch = mismatch(self._desired, healthy)

    async def _self_check_loop(self) -> None:
        while True:
            await asyncio.sleep(self.settings.self_check_interval)
            # Log what persisted across two checks: a mismatch seen once is usually just a
            # desired set that reconcile has not finished applying.
            if self._mismatch and self._mismatch == self._checked_mismatch:
                log.warning("self-check: running differs from desired: %s", self._mismatch)
            self._checked_mismatch = self._mismatch

    # --- heartbeats out
    def _current_fingerprint(self) -> Fingerprint:
        return fingerprint(self._incarnation, self._reports(), self._mismatch)

    def _reports(self) -> tuple[StreamReport, ...]:
        return stream_reports(self._health, self._runner.retries, self._desired)

    async def _heartbeat_loop(self) -> None:
        while True:
            await self._send_heartbeat(leaving=False)
            await _wait_for(self._beat, self.settings.heartbeat_interval)

    async def _send_heartbeat(self, *, leaving: bool) -> None:
        reports = self._reports()
        cpu, memory = self._sampler.sample()
        heartbeat = build_heartbeat(
            self.identity,
            incarnation=self._incarnation,
            reports=reports,
            metrics=metrics_from(reports, cpu_percent=cpu, memory_mb=memory),
            mismatch=self._mismatch,
            leaving=leaving,
            desired_seq=self._desired_seq,
            now=datetime.now(UTC),
            event_id=uuid.uuid4().hex,
        )
        self.last_heartbeat = heartbeat
        printed = fingerprint(self._incarnation, reports, self._mismatch)
        try:
            await self.transport.send_heartbeat(
                self.identity.server_id.encode(), encode(heartbeat), heartbeat.incarnation
            )
        except TransportError as exc:
            if not exc.circuit_open:
                log.warning("heartbeat not sent: %s", exc)
            self.heartbeat_failures += 1
            self._set_produce(False)
            return
        self._sent = printed
        self.heartbeats_sent += 1
        self._set_produce(True)

    # --- connectivity
    async def _health_loop(self) -> None:
        while True:
            await asyncio.sleep(self.settings.health_check_interval)
            try:
                await self.transport.check_consume()
            except TransportError:
                self._set_consume(False)
            else:
                self._set_consume(True)

    def _set_produce(self, ok: bool) -> None:
        previous = self._link.mode
        self._on_mode(self._link.produced(ok, self._clock()), previous)

    def _set_consume(self, ok: bool) -> None:
        previous = self._link.mode
        self._on_mode(self._link.consumed(ok), previous)

    def _on_mode(self, mode: Mode | None, previous: Mode) -> None:
        if mode is None:
            return
        if mode is Mode.LOCAL:
            log.warning(
                "local mode: Kafka unreachable; keeping %d stream(s) running",
                len(self._runner.running),
            )
        elif mode is Mode.PARTIAL:
            log.warning("partial connectivity: %s", self.partial)
        else:
            log.info("reconnected to Kafka (was %s); reconciling", previous)
            self._wake.set()
            self._beat.set()


async def _wait_for(event: asyncio.Event, seconds: float) -> None:
    """Wait for ``event`` or ``seconds``, whichever is first, and clear the event."""
    try:
        async with asyncio.timeout(seconds):
            await event.wait()
    except TimeoutError:
        pass
    event.clear()
