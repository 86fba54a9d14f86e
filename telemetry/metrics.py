"""A ``/metrics`` endpoint per process, and the gauges every process has.

Each process builds its own :class:`prometheus_client.CollectorRegistry` (two components in
one interpreter, as in tests, must not collide on metric names) with
:func:`process_registry`, which adds the standard process collector (``process_*``: RSS, CPU,
open files) and the Python collectors, and serves it with :class:`MetricsServer` on the
address its settings give (``STREAMPLANE_METRICS_ADDRESS``, e.g. ``127.0.0.1:9101``; empty:
no endpoint). :class:`LoopLag` measures how late the asyncio loop runs a timer, the first sign
of a process that blocks its own loop.

prometheus-client's own HTTP server (a thread) is used rather than a route in each process's
asyncio code: a scrape then never waits behind a busy event loop, which is exactly when the
numbers matter.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Iterator
from typing import Any

from prometheus_client import (
    GC_COLLECTOR,
    PLATFORM_COLLECTOR,
    CollectorRegistry,
    Gauge,
    Histogram,
    ProcessCollector,
    start_http_server,
)
from prometheus_client.gc_collector import GCCollector
from prometheus_client.platform_collector import PlatformCollector

del GC_COLLECTOR, PLATFORM_COLLECTOR  # the default registry's; each process makes its own

#: seconds buckets for latencies of control-plane work (ms to a minute)
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)


class MetricsAddressError(ValueError):
    """``STREAMPLANE_METRICS_ADDRESS`` is not ``host:port``, ``:port`` or ``port``."""


def parse_address(text: str) -> tuple[str, int]:
    """``"127.0.0.1:9101"``, ``":9101"`` (loopback) or ``"9101"`` -> (host, port)."""
    host, sep, port = text.strip().rpartition(":")
    if not sep:
        host = ""
    host = host.strip("[]") or "127.0.0.1"
    try:
        number = int(port)
    except ValueError:
        raise MetricsAddressError(
            f"metrics_address: expected host:port, :port or port, got {text!r}"
        ) from None
    if not 0 <= number <= 65535:
        raise MetricsAddressError(f"metrics_address: port {number} is out of range")
    return host, number


def process_registry() -> CollectorRegistry:
    """A registry with the process and Python collectors (``process_resident_memory_bytes``,
    ``process_cpu_seconds_total``, ``python_gc_*``, ``python_info``)."""
    registry = CollectorRegistry(auto_describe=True)
    ProcessCollector(registry=registry)
    PlatformCollector(registry=registry)
    GCCollector(registry=registry)
    return registry


class MetricsServer:
    """Serves one registry on ``/metrics`` from a background thread until :meth:`stop`."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry
        self._server: Any = None
        self._thread: Any = None
        self.address: tuple[str, int] | None = None

    def start(self, address: str) -> tuple[str, int]:
        """Listen on ``address`` (port 0: any free port); returns where it listens."""
        host, port = parse_address(address)
        self._server, self._thread = start_http_server(port, addr=host, registry=self.registry)
        self.address = (host, int(self._server.server_port))
        return self.address

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> MetricsServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


@contextlib.contextmanager
def serving(registry: CollectorRegistry, address: str | None) -> Iterator[MetricsServer | None]:
    """``with serving(registry, settings.metrics_address) as server:`` (None: no endpoint)."""
    if not address:
        yield None
        return
    server = MetricsServer(registry)
    server.start(address)
    try:
        yield server
    finally:
        server.stop()


class LoopLag:
    """Event-loop lag: how late a timer set for ``interval`` seconds actually fires.

    ``streamplane_event_loop_lag_seconds`` (gauge: the last sample) and
    ``streamplane_event_loop_lag_seconds_histogram``. Run :meth:`run` as a task."""

    def __init__(self, registry: CollectorRegistry, *, interval: float = 0.5) -> None:
        self.interval = interval
        self.gauge = Gauge(
            "streamplane_event_loop_lag_seconds",
            "How late the asyncio event loop ran a timer, last sample.",
            registry=registry,
        )
        self.histogram = Histogram(
            "streamplane_event_loop_lag_histogram_seconds",
            "How late the asyncio event loop ran a timer.",
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )

    def sample(self, late: float) -> None:
        late = max(0.0, late)
        self.gauge.set(late)
        self.histogram.observe(late)

    async def run(self) -> None:
        while True:
            began = time.monotonic()
            await asyncio.sleep(self.interval)
            self.sample(time.monotonic() - began - self.interval)
