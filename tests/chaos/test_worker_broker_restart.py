"""A restart of every Kafka broker does not stop running streams (issue 4): the workers keep
their streams in local mode, reconnect, and report the same incarnation and streams; the
orchestrator does not fail anyone for the silence Kafka caused."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from support.cluster import Cluster, open_cluster

from control_plane.tools.infra import ensure_up
from events import commands as cmd
from events.control import InstanceFailed, StreamAssigned

pytestmark = [pytest.mark.chaos, pytest.mark.slow]

WORKERS = ("w1", "w2", "w3")
STREAMS = [f"s{i}" for i in range(6)]
OUTAGE_S = 4.0


@pytest.fixture
async def cluster(
    request: pytest.FixtureRequest, three_broker_cluster: object, topic_prefix: str, tmp_path: Path
) -> AsyncIterator[Cluster]:
    bootstrap = three_broker_cluster.bootstrap  # type: ignore[attr-defined]
    async with open_cluster(request, bootstrap, topic_prefix, tmp_path) as c:
        yield c


async def test_restarting_every_broker_stops_no_stream_and_workers_reconnect(
    cluster: Cluster, three_broker_cluster: object
) -> None:
    c = cluster
    brokers = three_broker_cluster
    c.start_orchestrator("o1")
    for w in WORKERS:
        c.start_worker(w, max_streams=10)
    await c.wait_until(
        lambda: set(WORKERS) <= set(c.fold().instances) or "workers not registered",
        60,
        "workers registered",
    )
    await c.send([c.new_command(cmd.RegisterStream, stream_id=s) for s in STREAMS])
    await c.wait_until(lambda: c.running_once(STREAMS), 30, "streams run once each")
    placement = c.running_by_stream()
    incarnations = {w: c.heartbeats.latest[w].heartbeat.incarnation for w in WORKERS}
    mark = len(c.log.events)

    for node in brokers.node_ids:  # type: ignore[attr-defined]
        brokers.kill(node)  # type: ignore[attr-defined]
    down_at = time.monotonic()
    await asyncio.sleep(OUTAGE_S)
    await asyncio.to_thread(ensure_up, brokers=3, postgres=False)
    print(f"Kafka was down for {time.monotonic() - down_at:.1f}s")
    back = time.monotonic()

    def reconnected() -> str:
        stale = [w for w in WORKERS if c.heartbeats.latest[w].at < back]
        return f"no heartbeat since the restart from {stale}" if stale else ""

    took = await c.wait_until(reconnected, 60, "every worker heartbeats again")
    print(f"workers reconnected {took:.1f}s after the brokers were back")
    await c.wait_until(lambda: c.running_once(STREAMS), 10, "streams run once each")
    assert c.running_by_stream() == placement, "every stream runs where it ran"
    for w in WORKERS:
        assert c.heartbeats.latest[w].heartbeat.incarnation == incarnations[w]
        text = c.procs[w].log_text()
        assert "stopped stream" not in text, f"{w} stopped a stream"
        assert "fenced" not in text
        assert c.procs[w].alive
    await asyncio.sleep(5.0)  # the orchestrator has had time to judge the silence
    assert not c.log.of(InstanceFailed, since=mark), "failed for Kafka's silence"
    assert not c.log.of(StreamAssigned, since=mark)
    state = await c.read_state()
    assert state.finding_count == 0, state.findings
    assert {s: [state.streams[s].server_id] for s in STREAMS} == placement
