"""The orchestrator as a process: signals, and retrying while Kafka is unreachable."""

from __future__ import annotations

import asyncio
import logging
import signal

from control_plane.orchestrator.service import EnhancedStreamOrchestrator
from control_plane.orchestrator.settings import OrchestratorSettings
from projections.errors import KafkaIOError
from telemetry.metrics import serving

log = logging.getLogger("streamplane.orchestrator")


async def run_orchestrator(settings: OrchestratorSettings) -> None:
    """Run one orchestrator until SIGTERM/SIGINT (SIGUSR1 toggles heartbeat consumption),
    with its ``/metrics`` endpoint when ``metrics_address`` is set."""
    orchestrator = EnhancedStreamOrchestrator(settings)
    if settings.open_enrollment:
        log.warning(
            "open enrollment (STREAMPLANE_OPEN_ENROLLMENT): heartbeats of server ids without "
            "an enrolled key count unsigned; anyone who can write the heartbeats topic can "
            "register an instance under such an id"
        )
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, orchestrator.stop)
    loop.add_signal_handler(signal.SIGINT, orchestrator.stop)

    def toggle() -> None:
        heartbeats = orchestrator.heartbeats
        heartbeats.paused = not heartbeats.paused
        log.warning("heartbeat consumption %s", "paused" if heartbeats.paused else "resumed")

    loop.add_signal_handler(signal.SIGUSR1, toggle)
    # the endpoint lives as long as the process: it answers while Kafka is away, too
    with serving(orchestrator.metrics.registry, settings.metrics_address):
        lag = asyncio.create_task(orchestrator.metrics.loop_lag.run(), name="loop-lag")
        try:
            await run_until_stopped(orchestrator, settings.startup_retry_max)
        finally:
            lag.cancel()


async def run_until_stopped(orchestrator: EnhancedStreamOrchestrator, retry_max: float) -> None:
    """Run; while Kafka is unreachable, say so and retry with back-off until stopped.

    A daemon must not die because the broker is still starting (or briefly gone); an error
    that retrying cannot fix (bad settings, a topic with the wrong partition count) is raised.
    """
    delay = 1.0
    while True:
        try:
            await orchestrator.run()
            return
        except KafkaIOError as exc:
            if not exc.retriable:
                raise
            log.warning("Kafka unavailable (%s); retrying in %.0f s", exc, delay)
        try:
            async with asyncio.timeout(delay):
                await orchestrator.wait_stopped()
            return  # stopped while waiting
        except TimeoutError:
            delay = min(delay * 2, retry_max)
