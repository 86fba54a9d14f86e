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
numbers matter. A process that already serves HTTP (the API) mounts :func:`asgi_app` instead.

:class:`Derived` is how a process exports what it already keeps (plain ``int`` counters, the
folded state): the values are read when Prometheus scrapes, so the hot path pays nothing. Its
``read`` function runs on the server thread: it must only read (the folded state is
immutable, a counter is an ``int``), never await or change anything.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Annotated, Any, Literal, NamedTuple

from prometheus_client import (
    GC_COLLECTOR,
    PLATFORM_COLLECTOR,
    CollectorRegistry,
    Gauge,
    Histogram,
    ProcessCollector,
    make_asgi_app,
    start_http_server,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.gc_collector import GCCollector
from prometheus_client.platform_collector import PlatformCollector
from prometheus_client.registry import Collector
from pydantic import AfterValidator

del GC_COLLECTOR, PLATFORM_COLLECTOR  # the default registry's; each process makes its own

log = logging.getLogger("streamplane.metrics")

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


def free_address(host: str = "127.0.0.1") -> str:
    """``host:port`` with a port free now (for a child process to listen on: the demo and
    the tests give each child its own; another process may take it first, rarely)."""
    with socket.socket() as probe:
        probe.bind((host, 0))
        return f"{host}:{probe.getsockname()[1]}"


def _checked(text: str) -> str:
    if text.strip():
        parse_address(text)
    return text.strip()


#: a settings field: ``host:port``, ``:port``, ``port``, or empty (no endpoint); a bad value
#: is a validation error naming the field
MetricsAddress = Annotated[str, AfterValidator(_checked)]


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
        """Listen on ``address`` (port 0: any free port); returns where it listens.
        An address that cannot be bound is a :class:`MetricsAddressError` naming it."""
        host, port = parse_address(address)
        try:
            self._server, self._thread = start_http_server(port, addr=host, registry=self.registry)
        except OSError as exc:
            raise MetricsAddressError(
                f"metrics_address: cannot listen on {address!r}: {exc.strerror or exc}"
            ) from exc
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


def serve(registry: CollectorRegistry, address: str | None) -> MetricsServer:
    """A server for ``registry`` listening on ``address`` now (empty or None: a server that
    never listens); :meth:`MetricsServer.stop` it. For a process that must know at once,
    before it starts anything, that its address is usable."""
    server = MetricsServer(registry)
    if address:
        host, port = server.start(address)
        log.info("metrics on http://%s:%d/metrics", host, port)
    return server


@contextlib.contextmanager
def serving(registry: CollectorRegistry, address: str | None) -> Iterator[MetricsServer | None]:
    """``with serving(registry, settings.metrics_address) as server:`` (None: no endpoint)."""
    if not address:
        yield None
        return
    server = serve(registry, address)
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


def asgi_app(registry: CollectorRegistry) -> Callable[..., Any]:
    """An ASGI app serving ``registry`` in the text format, to mount at ``/metrics`` in a
    process that has its own HTTP server (``app.mount("/metrics", asgi_app(registry))``)."""
    return make_asgi_app(registry)


# --- metrics read at scrape time ------------------------------------------------------------

Kind = Literal["gauge", "counter"]
#: a value, or values by label values (in the order of the spec's ``labels``)
Value = float | Mapping[tuple[str, ...], float]


class Spec(NamedTuple):
    """One metric of a :class:`Derived` collector (a counter's ``name`` without ``_total``)."""

    name: str
    kind: Kind
    doc: str
    labels: tuple[str, ...] = ()


class Derived(Collector):
    """Metrics whose values ``read()`` returns at each scrape: ``{spec name: value}``.

    A name missing from what ``read`` returns is exported without a sample (for example a
    state not known yet). Registered in ``registry`` at once; ``describe`` lets the registry
    check names without calling ``read``."""

    def __init__(
        self,
        specs: Iterable[Spec],
        read: Callable[[], Mapping[str, Value]],
        registry: CollectorRegistry,
    ) -> None:
        self.specs = tuple(specs)
        self._read = read
        registry.register(self)

    def describe(self) -> list[Metric]:
        return [_family(spec) for spec in self.specs]

    def collect(self) -> list[Metric]:
        values = self._read()
        families: list[Metric] = []
        for spec in self.specs:
            family = _family(spec)
            value = values.get(spec.name)
            if isinstance(value, Mapping):
                for labels, number in sorted(value.items()):
                    family.add_metric(list(labels), float(number))
            elif value is not None:
                family.add_metric([], float(value))
            families.append(family)
        return families


def _family(spec: Spec) -> CounterMetricFamily | GaugeMetricFamily:
    if spec.kind == "counter":
        return CounterMetricFamily(spec.name, spec.doc, labels=spec.labels)
    return GaugeMetricFamily(spec.name, spec.doc, labels=spec.labels)


def topic_label(topic: str, prefix: str) -> str:
    """A topic as a label value: its role without the deployment's prefix
    (``streamplane.heartbeats`` -> ``heartbeats``), so dashboards work for any prefix."""
    return topic.removeprefix(f"{prefix}.")


def state_set(current: str | None, states: Iterable[str]) -> dict[tuple[str, ...], float]:
    """A state as a gauge per possible state, 1 for the current one and 0 for the others
    (``breaker_state{state="open"} 1``): an alert reads ``== 1``, a graph stacks them."""
    return {(state,): float(state == current) for state in states}
