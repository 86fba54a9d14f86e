"""The agent shell against an in-memory transport whose two directions can fail on demand.

Kafka itself is exercised in tests/integration/test_worker_kafka.py; here the point is the
agent's behaviour when the bus misbehaves: local mode, partial connectivity, fencing.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import UTC, datetime

import pytest

from events.codec import decode_heartbeat, encode
from events.heartbeat import DesiredSet, Heartbeat, StreamRunState
from worker_agent.agent import WorkerAgent
from worker_agent.connectivity import Mode
from worker_agent.errors import TransportError
from worker_agent.handlers.demo import DemoHandler
from worker_agent.settings import WorkerSettings

T0 = datetime(2026, 11, 28, 20, 0, tzinfo=UTC)


class MemoryTransport:
    """The Transport protocol over lists; ``produce_up``/``consume_up`` simulate outages."""

    def __init__(self) -> None:
        self.produce_up = True
        self.consume_up = True
        self.sent: list[Heartbeat] = []
        self.inbox: asyncio.Queue[bytes] = asyncio.Queue(maxsize=100)
        self.closed = False

    async def send_heartbeat(self, key: bytes, value: bytes, incarnation: str) -> None:
        if not self.produce_up:
            raise TransportError("produce down")
        self.sent.append(decode_heartbeat(value))

    async def poll_desired(self) -> list[bytes]:
        await asyncio.sleep(0.01)
        if not self.consume_up:
            raise TransportError("consume down")
        out = []
        while not self.inbox.empty():
            out.append(self.inbox.get_nowait())
        return out

    async def check_consume(self) -> None:
        if not self.consume_up:
            raise TransportError("consume down")

    async def close(self) -> None:
        self.closed = True


def desired(agent: WorkerAgent, streams, *, seq: int, fenced=False, incarnation=None) -> bytes:
    return encode(
        DesiredSet(
            id=f"d{seq}",
            source="streamplane/orchestrator",
            time=T0,
            server_id="w-1",
            incarnation=incarnation or agent.incarnation,
            streams=tuple(streams),
            fenced=fenced,
            seq=seq,
            epoch=1,
        )
    )


@pytest.fixture
async def started():
    settings = WorkerSettings(
        server_id="w-1",
        max_streams=5,
        heartbeat_interval=0.1,
        reconcile_interval=0.05,
        health_check_interval=0.05,
        self_check_interval=0.1,
        connect_retry_base=0.01,
        connect_retry_cap=0.05,
        start_retry_base=0.05,
        start_retry_cap=0.1,
        demo_tick_interval=0.01,
        demo_fail_streams=("poison",),
    )
    transport = MemoryTransport()
    agent = WorkerAgent(settings, DemoHandler(settings), transport=transport)
    task = asyncio.create_task(agent.run())
    yield agent, transport
    await agent.stop()
    await task


async def until(predicate: Callable[[], bool], seconds: float = 10.0) -> None:
    async with asyncio.timeout(seconds):
        while not predicate():  # noqa: ASYNC110 (polling the agent is the point)
            await asyncio.sleep(0.02)


async def test_runs_exactly_the_desired_set_and_reports_it(started):
    agent, bus = started
    await bus.inbox.put(desired(agent, ["a", "b", "poison"], seq=3))
    await until(lambda: agent.running_streams == {"a", "b"})
    await until(
        lambda: any(
            {r.stream_id: r.state for r in hb.streams}
            == {
                "a": StreamRunState.RUNNING,
                "b": StreamRunState.RUNNING,
                "poison": StreamRunState.FAILED,
            }
            for hb in bus.sent
        )
    )
    last = bus.sent[-1]
    assert last.desired_seq == 3 and last.desired_mismatch == ("poison",)
    poison = next(r for r in last.streams if r.stream_id == "poison")
    assert "poison stream" in (poison.error or "")
    await bus.inbox.put(desired(agent, ["b"], seq=4))
    await until(lambda: agent.running_streams == {"b"})


async def test_ignores_other_incarnations_and_skips_malformed_records(started):
    agent, bus = started
    await bus.inbox.put(b"not json")
    await bus.inbox.put(desired(agent, ["x"], seq=9, incarnation="someone-else"))
    await bus.inbox.put(desired(agent, ["a"], seq=2))
    await until(lambda: agent.running_streams == {"a"})
    assert "x" not in agent.running_streams


async def test_local_mode_keeps_streams_and_obeys_a_fence_found_on_reconnect(started):
    agent, bus = started
    await bus.inbox.put(desired(agent, ["a", "b"], seq=1))
    await until(lambda: agent.running_streams == {"a", "b"})
    bus.produce_up = bus.consume_up = False
    await until(lambda: agent.mode is Mode.LOCAL)
    sent_before = len(bus.sent)
    await asyncio.sleep(0.5)
    assert agent.running_streams == {"a", "b"}  # never drop work while the bus is away
    assert len(bus.sent) == sent_before
    assert agent.last_heartbeat is not None  # only the latest is kept
    old = agent.incarnation
    await bus.inbox.put(desired(agent, ["a", "b"], seq=2, fenced=True))
    bus.produce_up = bus.consume_up = True
    await until(lambda: agent.incarnation != old)
    assert agent.running_streams == frozenset()
    await until(lambda: agent.mode is Mode.CONNECTED)
    await until(lambda: bus.sent[-1].incarnation == agent.incarnation)
    assert bus.sent[-1].streams == ()


async def test_partial_connectivity_is_reported(started):
    agent, bus = started
    bus.produce_up = False
    await until(lambda: agent.mode is Mode.PARTIAL)
    assert agent.partial == "cannot produce"
    bus.produce_up, bus.consume_up = True, False
    await until(lambda: agent.partial == "cannot consume")
    bus.consume_up = True
    await until(lambda: agent.mode is Mode.CONNECTED)
    assert agent.partial is None


async def test_stop_announces_leaving_then_stops_streams(started):
    agent, bus = started
    await bus.inbox.put(desired(agent, ["a"], seq=1))
    await until(lambda: agent.running_streams == {"a"})
    await agent.stop()
    leaving = [hb for hb in bus.sent if hb.leaving]
    assert leaving[0].streams and leaving[0].streams[0].stream_id == "a"
    assert leaving[-1].streams == ()
    assert agent.running_streams == frozenset() and bus.closed


async def test_a_lease_stops_the_streams_when_no_heartbeat_gets_through():
    """heartbeat_lease: cut off from the brokers (here only the producing side) for longer
    than the lease, the worker stops every stream and takes a new incarnation; reconnected,
    it reports the new incarnation with nothing running."""
    settings = WorkerSettings(
        server_id="w-1", max_streams=5, heartbeat_interval=0.1, reconcile_interval=0.05,
        health_check_interval=0.05, connect_retry_base=0.01, connect_retry_cap=0.05,
        demo_tick_interval=0.01, heartbeat_lease=0.6,
    )  # fmt: skip
    bus = MemoryTransport()
    agent = WorkerAgent(settings, DemoHandler(settings), transport=bus)
    task = asyncio.create_task(agent.run())
    try:
        await bus.inbox.put(desired(agent, ["a", "b"], seq=1))
        await until(lambda: agent.running_streams == {"a", "b"})
        await asyncio.sleep(1.0)  # heartbeats go through: the lease holds
        assert agent.running_streams == {"a", "b"} and agent.lease_expiries == 0
        old, cut = agent.incarnation, asyncio.get_running_loop().time()
        bus.produce_up = False
        await until(lambda: agent.running_streams == frozenset())
        stopped_after = asyncio.get_running_loop().time() - cut
        assert 0.6 < stopped_after < 1.5, stopped_after
        assert agent.incarnation != old and agent.lease_expiries == 1
        assert agent.metrics_snapshot().lease_expired == 1
        await asyncio.sleep(0.5)
        assert agent.lease_expiries == 1, "nothing left to stop: once"
        bus.produce_up = True
        await until(lambda: bool(bus.sent) and bus.sent[-1].incarnation == agent.incarnation)
        assert bus.sent[-1].streams == ()
    finally:
        await agent.stop()
        await task


def test_a_lease_shorter_than_two_heartbeats_is_refused():
    with pytest.raises(ValueError, match="heartbeat_lease"):
        WorkerSettings(heartbeat_interval=1.0, heartbeat_lease=1.5)
    assert WorkerSettings(heartbeat_interval=1.0, heartbeat_lease=4).heartbeat_lease == 4
