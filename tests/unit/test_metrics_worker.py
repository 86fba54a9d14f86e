"""The worker agent's metrics: derived from what the agent holds (a running agent with the
demo handler over an in-memory bus), and the pure derivation from a snapshot."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime

import pytest

from events.codec import encode
from events.heartbeat import DesiredSet
from resilience.breaker import BreakerPolicy, CircuitBreaker
from telemetry.metrics import MetricsAddressError, MetricsServer, process_registry
from worker_agent.agent import WorkerAgent
from worker_agent.errors import TransportError
from worker_agent.handlers.demo import DemoHandler
from worker_agent.metrics import WorkerSnapshot, worker_samples
from worker_agent.settings import WorkerSettings

T0 = datetime(2026, 12, 2, tzinfo=UTC)


class Bus:
    """The Transport protocol in memory, with breakers like the Kafka transport's."""

    def __init__(self) -> None:
        self.inbox: list[bytes] = []
        self.produce_up = True
        policy = BreakerPolicy(1, 60.0)
        self.breakers = {
            "produce": CircuitBreaker(policy, lambda: 0.0, "produce"),
            "consume": CircuitBreaker(policy, lambda: 0.0, "consume"),
        }

    async def send_heartbeat(self, key: bytes, value: bytes, incarnation: str) -> None:
        if not self.produce_up:
            self.breakers["produce"].failure()
            raise TransportError("produce down")

    async def poll_desired(self) -> list[bytes]:
        await asyncio.sleep(0.01)
        out, self.inbox = self.inbox, []
        return out

    async def check_consume(self) -> None:
        return None

    async def close(self) -> None:
        return None


def desired(agent: WorkerAgent, streams: list[str], *, seq: int, fenced: bool = False) -> bytes:
    return encode(
        DesiredSet(
            id=f"d{seq}",
            source="streamplane/orchestrator",
            time=T0,
            server_id="w-1",
            incarnation=agent.incarnation,
            streams=tuple(streams),
            fenced=fenced,
            seq=seq,
            epoch=1,
        )
    )


@pytest.fixture
async def agent() -> AsyncIterator[tuple[WorkerAgent, Bus]]:
    settings = WorkerSettings(
        server_id="w-1",
        max_streams=5,
        heartbeat_interval=0.05,
        reconcile_interval=0.02,
        health_check_interval=0.05,
        demo_tick_interval=0.01,
        demo_fail_streams=("poison",),
        start_retry_base=10.0,
    )
    bus = Bus()
    worker = WorkerAgent(settings, DemoHandler(settings), transport=bus)
    task = asyncio.create_task(worker.run())
    yield worker, bus
    await worker.stop()
    await task


async def until(check: Callable[[], bool], seconds: float = 10.0) -> None:
    async with asyncio.timeout(seconds):
        while not check():  # noqa: ASYNC110 (polling the agent is the point)
            await asyncio.sleep(0.02)


async def test_the_metrics_follow_the_agent(agent: tuple[WorkerAgent, Bus]) -> None:
    worker, bus = agent
    registry = worker.metrics.registry

    def value(name: str, **labels: str) -> float | None:
        return registry.get_sample_value(name, labels)

    bus.inbox.append(desired(worker, ["a", "b", "poison"], seq=1))
    await until(lambda: value("streamplane_worker_streams_running") == 2)
    assert value("streamplane_worker_streams_desired") == 3
    assert value("streamplane_worker_reconcile_actions_total", action="started") == 2
    assert value("streamplane_worker_reconcile_actions_total", action="failed") == 1
    assert value("streamplane_worker_mode", mode="connected") == 1
    assert value("streamplane_worker_mode", mode="local") == 0
    assert value("streamplane_worker_breaker_state", direction="produce", state="closed") == 1
    await until(lambda: (value("streamplane_worker_heartbeats_sent_total") or 0) > 0)

    bus.produce_up = False  # heartbeats fail: the produce breaker opens, mode goes partial
    await until(lambda: (value("streamplane_worker_heartbeat_failures_total") or 0) > 0)
    await until(lambda: value("streamplane_worker_mode", mode="partial") == 1)
    assert value("streamplane_worker_breaker_state", direction="produce", state="open") == 1

    bus.inbox.append(desired(worker, [], seq=2, fenced=True))
    await until(lambda: value("streamplane_worker_fenced_total") == 1)
    assert value("streamplane_worker_reconcile_actions_total", action="stopped") == 2
    assert value("streamplane_worker_streams_running") == 0
    assert value("streamplane_event_loop_lag_seconds") is not None


async def test_a_busy_metrics_address_stops_the_worker_before_it_starts() -> None:
    bus = Bus()
    sent: list[bytes] = []

    async def send_heartbeat(key: bytes, value: bytes, incarnation: str) -> None:
        sent.append(value)

    bus.send_heartbeat = send_heartbeat  # type: ignore[method-assign]
    with MetricsServer(process_registry()) as taken:
        host, port = taken.start("127.0.0.1:0")
        settings = WorkerSettings(server_id="w-1", metrics_address=f"{host}:{port}")
        worker = WorkerAgent(settings, DemoHandler(settings), transport=bus)
        with pytest.raises(MetricsAddressError, match="metrics_address"):
            await worker.run()
        async with asyncio.timeout(1):
            await worker.stop()  # returns: run() has ended
    assert sent == [], "no heartbeat (not even a goodbye) from a worker that never started"


def test_samples_of_a_snapshot() -> None:
    snapshot = WorkerSnapshot(
        running=3,
        desired=4,
        mode="local",
        breakers={"produce": "open", "consume": "half_open"},
        started=5,
        stopped=2,
        start_failures=1,
        heartbeats_sent=10,
        heartbeat_failures=4,
        fenced=0,
        lease_expired=2,
    )
    samples = worker_samples(snapshot)
    assert samples["streamplane_worker_lease_expired"] == 2
    assert samples["streamplane_worker_mode"] == {
        ("connected",): 0.0,
        ("partial",): 0.0,
        ("local",): 1.0,
    }
    breakers = samples["streamplane_worker_breaker_state"]
    assert isinstance(breakers, dict)
    assert {k for k, v in breakers.items() if v == 1} == {
        ("consume", "half_open"),
        ("produce", "open"),
    }
    assert len(breakers) == 6
    assert samples["streamplane_worker_reconcile_actions"] == {
        ("started",): 5,
        ("stopped",): 2,
        ("failed",): 1,
    }
