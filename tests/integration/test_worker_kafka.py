"""The worker agent on a real Kafka broker; the test plays the orchestrator.

It creates the topics, produces DesiredSet records (key server_id, aiokafka's default
partitioner, like the orchestrator) and watches the heartbeats the worker publishes.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from events.codec import decode_heartbeat, encode
from events.heartbeat import DesiredSet, Heartbeat, StreamRunState
from events.topics import Topics
from worker_agent.agent import WorkerAgent
from worker_agent.settings import WorkerSettings

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]


class Orchestrator:
    """Just enough of an orchestrator: publish desired sets, collect heartbeats."""

    def __init__(self, bootstrap: str, prefix: str):
        self.topics = Topics(prefix)
        self.bootstrap = bootstrap
        self.heartbeats: list[Heartbeat] = []
        self.seq = 0
        self._producer = AIOKafkaProducer(
            bootstrap_servers=bootstrap, acks="all", enable_idempotence=True
        )
        self._consumer = AIOKafkaConsumer(
            self.topics.heartbeats,
            bootstrap_servers=bootstrap,
            group_id=None,
            enable_auto_commit=False,
            isolation_level="read_committed",
            auto_offset_reset="earliest",
        )
        self._task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> Orchestrator:
        async with asyncio.timeout(30):
            await self._producer.start()
            await self._consumer.start()
        self._task = asyncio.create_task(self._collect())
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._task is not None
        self._task.cancel()
        await asyncio.gather(self._task, return_exceptions=True)
        await self._consumer.stop()
        await self._producer.stop()

    async def _collect(self) -> None:
        while True:
            batches = await self._consumer.getmany(timeout_ms=200)
            for records in batches.values():
                self.heartbeats.extend(decode_heartbeat(r.value) for r in records)

    async def publish(self, server_id, incarnation, streams, *, fenced=False, params=None):
        self.seq += 1
        message = DesiredSet(
            id=uuid.uuid4().hex,
            source="streamplane/test-orchestrator",
            time=datetime.now(UTC),
            server_id=server_id,
            incarnation=incarnation,
            streams=tuple(streams),
            params=params or {},
            fenced=fenced,
            seq=self.seq,
            epoch=1,
        )
        async with asyncio.timeout(30):
            await self._producer.send_and_wait(
                self.topics.desired, encode(message), key=server_id.encode()
            )

    async def heartbeat(self, predicate: Callable[[Heartbeat], bool], seconds=30.0) -> Heartbeat:
        async with asyncio.timeout(seconds):
            while True:
                for hb in reversed(self.heartbeats):
                    if predicate(hb):
                        return hb
                await asyncio.sleep(0.05)


def running(hb: Heartbeat) -> set[str]:
    return {r.stream_id for r in hb.streams if r.state is StreamRunState.RUNNING}


@pytest.fixture
async def orchestrator(kafka_bootstrap, topic_prefix, create_topic):
    topics = Topics(topic_prefix)
    await create_topic(topics.heartbeats, partitions=6)
    await create_topic(
        topics.desired,
        partitions=6,
        config={"cleanup.policy": "compact", "min.cleanable.dirty.ratio": "0.01"},
    )
    async with Orchestrator(kafka_bootstrap, topic_prefix) as orch:
        yield orch


def worker_settings(bootstrap: str, prefix: str, server_id: str, **kw) -> WorkerSettings:
    return WorkerSettings(
        kafka_bootstrap=bootstrap,
        topic_prefix=prefix,
        server_id=server_id,
        max_streams=10,
        heartbeat_interval=0.5,
        reconcile_interval=0.2,
        demo_tick_interval=0.05,
        **kw,
    )


async def test_worker_runs_exactly_its_assigned_streams(
    orchestrator, kafka_bootstrap, topic_prefix
):
    agent = WorkerAgent(worker_settings(kafka_bootstrap, topic_prefix, "w-assign"))
    task = asyncio.create_task(agent.run())
    try:
        first = await orchestrator.heartbeat(lambda hb: hb.server_id == "w-assign")
        assert first.incarnation == agent.incarnation and first.streams == ()
        # a stale record for an older incarnation is ignored
        await orchestrator.publish("w-assign", "old-incarnation", ["ghost"])
        # another worker's record (maybe on the same partition) is not ours
        await orchestrator.publish("w-other", "x", ["other"])
        await orchestrator.publish("w-assign", first.incarnation, ["s1", "s2", "s3"])
        hb = await orchestrator.heartbeat(lambda h: running(h) == {"s1", "s2", "s3"})
        assert hb.desired_seq == orchestrator.seq and hb.desired_mismatch == ()
        assert agent.running_streams == {"s1", "s2", "s3"}
        await orchestrator.publish("w-assign", first.incarnation, ["s2", "s4"])
        await orchestrator.heartbeat(lambda h: running(h) == {"s2", "s4"})
        assert agent.running_streams == {"s2", "s4"}
        assert all(
            "ghost" not in running(h) and "other" not in running(h) for h in orchestrator.heartbeats
        )
    finally:
        await agent.stop()
        await task


async def test_fenced_incarnation_stops_everything_and_registers_anew(
    orchestrator, kafka_bootstrap, topic_prefix
):
    agent = WorkerAgent(worker_settings(kafka_bootstrap, topic_prefix, "w-fence"))
    task = asyncio.create_task(agent.run())
    try:
        first = await orchestrator.heartbeat(lambda hb: hb.server_id == "w-fence")
        old = first.incarnation
        await orchestrator.publish("w-fence", old, ["a", "b"])
        await orchestrator.heartbeat(lambda h: running(h) == {"a", "b"})
        await orchestrator.publish("w-fence", old, ["a", "b"], fenced=True)
        fresh = await orchestrator.heartbeat(lambda h: h.incarnation != old)
        assert fresh.streams == () and agent.running_streams == frozenset()
        assert agent.incarnation == fresh.incarnation
        # the new incarnation follows its own desired sets
        await orchestrator.publish("w-fence", fresh.incarnation, ["c"])
        await orchestrator.heartbeat(
            lambda h: h.incarnation == fresh.incarnation and running(h) == {"c"}
        )
    finally:
        await agent.stop()
        await task


async def test_sigterm_announces_leaving_and_exits_zero(
    orchestrator, kafka_bootstrap, topic_prefix
):
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "worker_agent",
        "--server-id",
        "w-term",
        "--bootstrap",
        kafka_bootstrap,
        "--topic-prefix",
        topic_prefix,
        "--heartbeat-interval",
        "0.5",
        "--max-streams",
        "4",
        "--tag",
        "gpu",
        "--tag",
        "ssd",
        cwd=REPO,
        env=env,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        first = await orchestrator.heartbeat(lambda hb: hb.server_id == "w-term", seconds=60)
        assert first.tags == ("gpu", "ssd") and first.max_streams == 4 and not first.leaving
        await orchestrator.publish("w-term", first.incarnation, ["m1", "m2"])
        await orchestrator.heartbeat(lambda h: running(h) == {"m1", "m2"})
        proc.send_signal(signal.SIGTERM)
        async with asyncio.timeout(60):
            _, stderr = await proc.communicate()
        assert proc.returncode == 0, stderr.decode()[-2000:]
        leaving = await orchestrator.heartbeat(lambda h: h.leaving, seconds=10)
        assert leaving.incarnation == first.incarnation
        log = stderr.decode()
        assert "started stream m1" in log and "leaving" in log and "stopped stream m1" in log
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()


# A broker outage (streams keep running, the worker reconnects) is tested against a real
# three-broker cluster whose brokers are all killed and restarted:
# tests/chaos/test_worker_broker_restart.py.
