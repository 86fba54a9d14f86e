"""The worker agent's Prometheus metrics (every one is listed in docs/metrics.md).

All of them are read at scrape time from what the agent keeps anyway (how many streams it
runs and wants, its mode, its two circuit breakers, plain ``int`` counters of what it did),
through :class:`WorkerSnapshot`: the agent's loops never touch a Prometheus object. The
endpoint is served by :meth:`worker_agent.agent.WorkerAgent.run` when ``metrics_address`` is
set (``STREAMPLANE_METRICS_ADDRESS``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from enum import StrEnum
from typing import TYPE_CHECKING, NamedTuple

from prometheus_client import CollectorRegistry

from resilience.breaker import BreakerState
from telemetry.metrics import Derived, LoopLag, Spec, Value, process_registry, state_set

if TYPE_CHECKING:
    from worker_agent.streams import StreamRunner

#: the agent's modes (``worker_agent.agent.Mode``): Kafka reachable both ways, one, or none
MODES = ("connected", "partial", "local")
BREAKER_STATES = tuple(s.value for s in BreakerState)

SPECS = (
    Spec("streamplane_worker_streams_running", "gauge", "Streams the handler runs."),
    Spec("streamplane_worker_streams_desired", "gauge", "Streams the desired set asks for."),
    Spec(
        "streamplane_worker_reconcile_actions",
        "counter",
        "Stream starts, stops and failed starts carried out.",
        ("action",),
    ),
    Spec(
        "streamplane_worker_breaker_state",
        "gauge",
        "Circuit breaker around Kafka per direction: 1 for its current state.",
        ("direction", "state"),
    ),
    Spec("streamplane_worker_mode", "gauge", "1 for the agent's current mode.", ("mode",)),
    Spec("streamplane_worker_heartbeats_sent", "counter", "Heartbeats the broker acknowledged."),
    Spec(
        "streamplane_worker_heartbeat_failures",
        "counter",
        "Heartbeats not sent (Kafka error or open breaker).",
    ),
    Spec("streamplane_worker_fenced", "counter", "Times this worker was fenced and re-registered."),
    Spec(
        "streamplane_worker_lease_expired",
        "counter",
        "Times the heartbeat lease expired: every stream stopped, re-registered.",
    ),
)


class WorkerSnapshot(NamedTuple):
    """What the agent holds, as the metrics read it."""

    running: int
    desired: int
    mode: str
    #: direction ("produce", "consume") -> breaker state
    breakers: Mapping[str, str]
    started: int
    stopped: int
    start_failures: int
    heartbeats_sent: int
    heartbeat_failures: int
    fenced: int
    lease_expired: int = 0


def snapshot(
    runner: StreamRunner, desired: int, mode: StrEnum, transport: object, counts: tuple[int, ...]
) -> WorkerSnapshot:
    """The agent's snapshot: ``counts`` are heartbeats sent and failed, times fenced and
    leases expired; the breakers are the transport's ``breakers`` (a fake transport in a
    test may have none)."""
    breakers = getattr(transport, "breakers", {})
    sent, failed, fenced, expired = counts
    return WorkerSnapshot(
        len(runner.running),
        desired,
        mode.value,
        {direction: b.state.value for direction, b in breakers.items()},
        *(runner.started, runner.stopped, runner.start_failures),
        *(sent, failed, fenced, expired),
    )


def worker_samples(s: WorkerSnapshot) -> dict[str, Value]:
    """The samples of :data:`SPECS` for one snapshot (pure)."""
    breakers: dict[tuple[str, ...], float] = {
        (direction, state): value
        for direction, current in sorted(s.breakers.items())
        for (state,), value in state_set(current, BREAKER_STATES).items()
    }
    return {
        "streamplane_worker_streams_running": s.running,
        "streamplane_worker_streams_desired": s.desired,
        "streamplane_worker_reconcile_actions": {
            ("started",): s.started,
            ("stopped",): s.stopped,
            ("failed",): s.start_failures,
        },
        "streamplane_worker_breaker_state": breakers,
        "streamplane_worker_mode": state_set(s.mode, MODES),
        "streamplane_worker_heartbeats_sent": s.heartbeats_sent,
        "streamplane_worker_heartbeat_failures": s.heartbeat_failures,
        "streamplane_worker_fenced": s.fenced,
        "streamplane_worker_lease_expired": s.lease_expired,
    }


class WorkerMetrics:
    """The worker's registry: process metrics, event-loop lag and :data:`SPECS`."""

    def __init__(
        self, snapshot: Callable[[], WorkerSnapshot], registry: CollectorRegistry | None = None
    ) -> None:
        self.registry = registry or process_registry()
        self.loop_lag = LoopLag(self.registry)
        Derived(SPECS, lambda: worker_samples(snapshot()), self.registry)
