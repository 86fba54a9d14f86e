"""The monitor as a process: signals, its metrics endpoint, and retrying while Kafka is down."""

from __future__ import annotations

import asyncio
import logging
import signal

from control_plane.monitor.service import HealthMonitor
from control_plane.monitor.settings import MonitorSettings
from projections.errors import KafkaIOError
from telemetry.metrics import serving

log = logging.getLogger("streamplane.monitor")


async def run_monitor(settings: MonitorSettings) -> None:
    """Run the monitor until SIGTERM/SIGINT; queued webhook deliveries get a bounded grace."""
    monitor = HealthMonitor(settings)
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, monitor.stop)
    with serving(monitor.metrics.registry, settings.metrics_address):  # it logs where
        try:
            # the webhooks deliver for the whole life of the process, across Kafka sessions
            async with asyncio.TaskGroup() as tasks:
                hooks = [tasks.create_task(hook.run()) for hook in monitor.webhooks]
                try:
                    await run_until_stopped(monitor, settings.monitor_startup_retry_max)
                finally:
                    for task in hooks:
                        task.cancel()
        finally:
            await monitor.close()
    log.info("monitor stopped after %d evaluation(s)", monitor.evaluations)


async def run_until_stopped(monitor: HealthMonitor, retry_max: float) -> None:
    """Run sessions; while Kafka is unreachable, say so and retry with back-off until
    stopped. An error retrying cannot fix (a missing topic, bad settings) is raised."""
    delay = 1.0
    while not monitor.stopping:
        try:
            await monitor.run()
            return
        except KafkaIOError as exc:
            if not exc.retriable:
                raise
            log.warning("Kafka unavailable (%s); retrying in %.0f s", exc, delay)
        try:
            async with asyncio.timeout(delay):
                await monitor.wait_stopped()
            return
        except TimeoutError:
            delay = min(delay * 2, retry_max)
