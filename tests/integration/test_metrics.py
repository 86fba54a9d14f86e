"""The orchestrator's and the workers' ``/metrics`` endpoints, scraped from real processes on
a real Kafka and checked against what the control log and the heartbeats say: after a
worker is killed (instances by status, failovers, the failover time, every stream running)
and after a drain (migrations started and completed, the instance draining)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import datetime
from pathlib import Path

import pytest
from support.cluster import Cluster, Proc, open_cluster
from support.scrape import Scrape, scrape

from events import commands as cmd
from events.control import (
    InstanceDrained,
    InstanceFailed,
    MigrationCompleted,
    StreamStarted,
)
from telemetry.metrics import free_address

pytestmark = [pytest.mark.integration, pytest.mark.slow]

FAIL_AFTER = 5.0
STREAMS = [f"m{i:02d}" for i in range(12)]


class Metered:
    """A cluster whose processes serve ``/metrics`` on free loopback ports."""

    def __init__(self, cluster: Cluster) -> None:
        self.c = cluster
        self.ports: dict[str, int] = {}

    def _address(self, name: str) -> str:
        address = free_address()
        self.ports[name] = int(address.rsplit(":", 1)[1])
        return address

    def orchestrator(self, name: str) -> Proc:
        return self.c.start_orchestrator(name, STREAMPLANE_METRICS_ADDRESS=self._address(name))

    def worker(self, name: str, max_streams: int) -> Proc:
        address = self._address(name)
        return self.c.start_worker(
            name, max_streams=max_streams, STREAMPLANE_METRICS_ADDRESS=address
        )

    async def scrape(self, name: str) -> Scrape:
        return await scrape(self.ports[name])

    async def until(self, name: str, check: object, within: float, what: str) -> Scrape:
        """Scrape ``name`` until ``check(scrape)`` returns "" (or True); the last scrape."""
        last: list[Scrape] = []

        async def probe() -> str | bool:
            try:
                last[:] = [await self.scrape(name)]
            except OSError as exc:  # not listening yet
                return f"{name} /metrics: {exc}"
            return check(last[0])  # type: ignore[operator,no-any-return]

        await self.c.wait_until(probe, within, what, interval=0.5)
        return last[0]


@pytest.fixture
async def metered(
    request: pytest.FixtureRequest, kafka_bootstrap: str, topic_prefix: str, tmp_path: Path
) -> AsyncIterator[Metered]:
    async with open_cluster(
        request, kafka_bootstrap, topic_prefix, tmp_path, STREAMPLANE_FAIL_AFTER=str(FAIL_AFTER)
    ) as c:
        yield Metered(c)


async def start(m: Metered, workers: list[str], capacity: int) -> None:
    """An orchestrator and ``workers``, and every stream of STREAMS running once."""
    c = m.c
    m.orchestrator("o1")
    for w in workers:
        m.worker(w, capacity)
    await c.wait_until(
        lambda: set(workers) <= set(c.fold().instances) or "not all registered", 30, "registered"
    )
    await c.send([c.new_command(cmd.RegisterStream, stream_id=s) for s in STREAMS])
    await c.wait_until(lambda: c.running_once(STREAMS), 30, "every stream runs once")


def expect(s: Scrape, wanted: dict[tuple[str, tuple[tuple[str, str], ...]], float]) -> str:
    """ "" when every ``(name, labels) -> value`` holds, else what differs."""
    wrong = {
        f"{name}{dict(labels)}": (s.value(name, **dict(labels)), value)
        for (name, labels), value in wanted.items()
        if s.value(name, **dict(labels)) != value
    }
    return f"(got, wanted): {wrong}" if wrong else ""


async def test_metrics_after_a_worker_is_killed(metered: Metered) -> None:
    m, c = metered, metered.c
    await start(m, ["w1", "w2", "w3"], capacity=10)
    n = float(len(STREAMS))
    steady = {
        ("streamplane_instances", (("status", "active"),)): 3.0,
        ("streamplane_streams", (("status", "running"),)): n,
        ("streamplane_is_leader", ()): 1.0,
        ("streamplane_failovers_total", ()): 0.0,
    }
    s = await m.until("o1", lambda s: expect(s, steady), 15, "the steady state in /metrics")
    assert s.num("streamplane_leader_epoch") == c.fold().epoch >= 1
    assert s.num("streamplane_control_log_seq") >= c.fold().seq
    assert s.num("process_resident_memory_bytes") > 0
    assert s.num("streamplane_event_loop_lag_seconds") >= 0
    assert s.num("streamplane_heartbeats_received_total") > 0

    victim = max(c.workers(), key=lambda p: len(c.streams_on(p.name)))
    lost = c.streams_on(victim.name)
    w = await m.scrape(victim.name)
    assert w.num("streamplane_worker_streams_running") == len(lost)
    assert w.num("streamplane_worker_mode", mode="connected") == 1
    assert w.num("streamplane_worker_breaker_state", direction="produce", state="closed") == 1
    assert w.num("streamplane_worker_reconcile_actions_total", action="started") >= len(lost)
    assert w.num("streamplane_worker_heartbeats_sent_total") > 0

    mark = len(c.log.events)
    c.kill(victim)
    await c.wait_until(lambda: c.running_once(STREAMS), FAIL_AFTER + 20, "streams run again")
    after = {
        ("streamplane_instances", (("status", "active"),)): 2.0,
        ("streamplane_instances", (("status", "failed"),)): 1.0,
        ("streamplane_streams", (("status", "running"),)): n,
        ("streamplane_failovers_total", ()): 1.0,
        ("streamplane_failover_seconds_count", ()): 1.0,
    }
    s = await m.until("o1", lambda s: expect(s, after), 20, "the failover in /metrics")

    # the sample is the log's last start of a lost stream minus the victim's last heartbeat
    # as received; the harness knows when that heartbeat was sent (<= received)
    (failed,) = c.log.of(InstanceFailed, since=mark)
    assert failed.server_id == victim.name
    starts = [
        e.time
        for e in c.log.events[mark:]
        if isinstance(e, StreamStarted | MigrationCompleted) and e.stream_id in lost
    ]
    sent: datetime = c.heartbeats.latest[victim.name].heartbeat.time
    upper = (max(starts) - sent).total_seconds()
    took = s.num("streamplane_failover_seconds_sum")
    assert upper - 1.0 <= took <= upper, (took, upper)
    assert took >= 1.0, "a failover cannot beat the silence it waits for"


async def test_metrics_after_a_drain(metered: Metered) -> None:
    m, c = metered, metered.c
    await start(m, ["w1", "w2"], capacity=20)
    moving = c.streams_on("w1")
    assert moving, c.running_by_stream()
    outcome, _ = await c.command(cmd.DrainInstance, server_id="w1")
    await c.wait_until(
        lambda: bool(c.log.of(InstanceDrained)) or "w1 not drained yet", 60, "w1 drained"
    )
    await c.wait_until(lambda: c.running_once(STREAMS), 30, "every stream runs once")
    k = float(len(moving))
    after = {
        ("streamplane_migrations_started_total", (("reason", "drain"),)): k,
        ("streamplane_migrations_in_flight", ()): 0.0,
        ("streamplane_instances_draining", ()): 1.0,
        ("streamplane_streams", (("status", "running"),)): float(len(STREAMS)),
    }
    s = await m.until("o1", lambda s: expect(s, after), 20, "the drain in /metrics")
    # every migration started (the drain's, and any rebalance before it) has completed
    started = s.total("streamplane_migrations_started_total")
    assert s.num("streamplane_migrations_completed_total") == started >= k
    assert s.total("streamplane_migrations_aborted_total") == 0
    assert s.num("streamplane_command_decision_seconds_count", outcome="completed") >= 1
    assert s.num("streamplane_decision_transaction_seconds_count") >= 1
    drained = await m.scrape("w1")
    assert drained.num("streamplane_worker_streams_running") == 0
    assert drained.num("streamplane_worker_reconcile_actions_total", action="stopped") >= k
    assert outcome.type == "CommandCompleted"
