"""docs/contract.md on a real run: the log an orchestrator and real workers write on Kafka
(streams waiting for capacity, a worker killed with SIGKILL, a newcomer taking the waiting
streams, a rebalance and a drain), read back record by record, folds to the same state with
``examples/reference_fold.py`` (no streamplane code) as with ``projections.fold``; and the log
says when each stream began to wait, once per wait.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from aiokafka import TopicPartition
from support.cluster import NET, Cluster, open_cluster
from support.reference_fold import assert_agree

from events import commands as cmd
from events.control import (
    InstanceDrained,
    InstanceFailed,
    RebalanceCompleted,
    StreamAssigned,
    StreamUnassigned,
    StreamWaiting,
)
from projections.io.kafka import make_consumer, started

pytestmark = [pytest.mark.integration, pytest.mark.slow]

STREAMS = [f"s{i}" for i in range(8)]


@pytest.fixture
async def cluster(
    request: pytest.FixtureRequest, kafka_bootstrap: str, topic_prefix: str, tmp_path: Path
) -> AsyncIterator[Cluster]:
    async with open_cluster(request, kafka_bootstrap, topic_prefix, tmp_path) as c:
        yield c


async def raw_log(c: Cluster) -> list[str]:
    """Every committed record of the control log, as the bytes on the wire (read_committed)."""
    tp = TopicPartition(c.topics.events, 0)
    consumer = make_consumer(c.bootstrap, auto_offset_reset="earliest")
    lines: list[str] = []
    async with started(consumer, kafka_timeout=NET, what="raw log reader"):
        async with asyncio.timeout(NET):
            consumer.assign([tp])
            end = (await consumer.end_offsets([tp]))[tp]
            consumer.seek(tp, 0)
            while await consumer.position(tp) < end:
                batch = await consumer.getmany(tp, timeout_ms=500)
                lines += [r.value.decode() for r in batch.get(tp, []) if r.value is not None]
    return lines


def answered(c: Cluster, commands: list[Any]) -> str:
    missing = {x.command_id for x in commands} - set(c.outcomes())
    return f"{len(missing)} commands without outcome" if missing else ""


def settled(c: Cluster) -> str:
    state = c.fold()
    if state.in_flight or state.rebalance is not None:
        return f"in flight {sorted(state.in_flight)}, plan {state.rebalance}"
    return c.running_once(STREAMS)


def waits_once(c: Cluster) -> None:
    """Each StreamWaiting names a stream that was placed, or never waited, since the last one."""
    waiting: set[str] = set()
    for e in c.log.events:
        if isinstance(e, StreamWaiting):
            assert e.stream_id not in waiting, f"{e.stream_id} said to wait twice: seq {e.seq}"
            assert e.reason == "no_capacity"
            waiting.add(e.stream_id)
        elif isinstance(e, StreamAssigned):
            waiting.discard(e.stream_id)


async def test_a_real_run_folds_alike_with_the_reference_fold(
    cluster: Cluster, tmp_path: Path
) -> None:
    c = cluster
    c.start_orchestrator("o1")
    c.start_worker("w1", max_streams=3)
    c.start_worker("w2", max_streams=3)
    await c.wait_until(
        lambda: {"w1", "w2"} <= set(c.fold().instances) or "workers not registered", 30, "w1, w2"
    )
    # eight streams on room for six: two wait, and the log says so
    commands = [c.new_command(cmd.RegisterStream, stream_id=s) for s in STREAMS]
    await c.send(commands)
    await c.wait_until(lambda: answered(c, commands), 30, "every RegisterStream answered")
    await c.wait_until(
        lambda: len(c.log.of(StreamWaiting)) == 2 or f"{c.log.of(StreamWaiting)}", 10, "two wait"
    )
    first_waits = {e.stream_id for e in c.log.of(StreamWaiting)}
    await c.wait_until(lambda: c.running_once(set(STREAMS) - first_waits), 30, "six run")

    # w2 dies: w1 is full, so its three streams are let go and wait too
    w2_streams = c.streams_on("w2")
    assert len(w2_streams) == 3, w2_streams
    mark = len(c.log.events)
    c.kill(c.procs["w2"])
    await c.wait_until(
        lambda: len(c.log.of(StreamWaiting, since=mark)) == len(w2_streams) or "not yet",
        30,
        "w2 failed and its streams wait",
    )
    assert len(c.log.of(InstanceFailed, since=mark)) == 1
    let_go = {e.stream_id for e in c.log.of(StreamUnassigned, since=mark)}
    assert let_go == w2_streams
    assert {e.stream_id for e in c.log.of(StreamWaiting, since=mark)} == let_go

    # a newcomer takes every waiting stream; then a rebalance, and w1 is drained
    c.start_worker("w3", max_streams=10)
    await c.wait_until(lambda: c.running_once(STREAMS), 30, "all eight run once")
    rebalance = c.new_command(cmd.RequestRebalance, dry_run=False)
    await c.send([rebalance])
    await c.wait_until(lambda: bool(c.log.of(RebalanceCompleted)), 30, "a rebalance completed")
    await c.command(cmd.DrainInstance, server_id="w1")
    await c.wait_until(lambda: bool(c.log.of(InstanceDrained)), 30, "w1 drained")
    await c.wait_until(lambda: settled(c), 30, "all eight run once, nothing in flight")
    waits_once(c)

    lines = await raw_log(c)
    (tmp_path / "control-log.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    ours = assert_agree(lines)
    assert ours["finding_count"] == 0 and ours["undecodable"] == 0
    assert ours["instances"]["w1"]["draining"] and ours["instances"]["w1"]["load"] == 0
    assert ours["instances"]["w2"]["status"] == "failed"
    assert {s["status"] for s in ours["streams"].values()} == {"running"}
    completed = [orjson.loads(x) for x in lines if '"RebalanceCompleted"' in x]
    assert completed and all(r["schemaversion"] == 2 and "skipped" in r["data"] for r in completed)
