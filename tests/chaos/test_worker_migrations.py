"""Gradual, make-before-break migrations with real workers: a drain empties an instance
within ``max_in_flight``; new instances trigger a rebalance with minimal moves; a target that
dies mid-migration leaves no orphan and no double owner."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from support.cluster import Cluster, open_cluster
from support.observed import in_flight_peak

from events import commands as cmd
from events.control import (
    InstanceDrained,
    InstanceFailed,
    MigrationAborted,
    MigrationCompleted,
    MigrationStarted,
    RebalanceCompleted,
    RebalancePlanned,
)
from projections.fold.state import AssignmentStatus

pytestmark = [pytest.mark.chaos, pytest.mark.slow]

MAX_IN_FLIGHT = 2
START_DELAY = "1.5"  # seconds a demo stream reports "starting": keeps migrations in flight


@pytest.fixture
async def cluster(
    request: pytest.FixtureRequest, kafka_bootstrap: str, topic_prefix: str, tmp_path: Path
) -> AsyncIterator[Cluster]:
    async with open_cluster(
        request,
        kafka_bootstrap,
        topic_prefix,
        tmp_path,
        STREAMPLANE_MAX_IN_FLIGHT=str(MAX_IN_FLIGHT),
        STREAMPLANE_MIGRATION_TIMEOUT="60",
    ) as c:
        yield c


async def start_with_streams(
    c: Cluster, workers: dict[str, int], streams: list[str], *worker_args: str
) -> None:
    """An orchestrator, the workers (server_id -> capacity), the streams running once."""
    c.start_orchestrator("o1")
    for w, capacity in workers.items():
        c.start_worker(w, max_streams=capacity, args=worker_args)
    await c.wait_until(
        lambda: set(workers) <= set(c.fold().instances) or "workers not registered",
        30,
        "workers registered",
    )
    commands = [c.new_command(cmd.RegisterStream, stream_id=s) for s in streams]
    await c.send(commands)
    await c.wait_until(lambda: c.running_once(streams), 30, "streams run once each")


def settled(c: Cluster, streams: list[str]) -> str:
    """Every stream RUNNING in the fold with no migration, and running once on the workers."""
    state = c.fold()
    busy = [s.stream_id for s in state.streams.values() if s.status is not AssignmentStatus.RUNNING]
    if busy or state.in_flight:
        return f"not settled in the log: {busy} in flight {list(state.in_flight)}"
    return c.running_once(streams)


def owners_agree(c: Cluster, streams: list[str]) -> None:
    """The fold's owner of each stream is the one worker that reports it running."""
    state = c.fold()
    running = c.running_by_stream()
    assert state.finding_count == 0, state.findings
    for sid in streams:
        assert running.get(sid) == [state.streams[sid].server_id], (sid, running.get(sid))


async def test_drain_empties_an_instance_gradually_within_max_in_flight(cluster: Cluster) -> None:
    c = cluster
    streams = [f"s{i:02d}" for i in range(12)]
    await start_with_streams(
        c, {"w1": 10, "w2": 10, "w3": 10}, streams, "--demo-start-delay", START_DELAY
    )
    held = c.streams_on("w1")
    assert len(held) > MAX_IN_FLIGHT, f"w1 must hold more than {MAX_IN_FLIGHT}: {held}"
    mark = len(c.log.events)
    await c.command(cmd.DrainInstance, server_id="w1")
    await c.wait_until(
        lambda: bool(c.log.of(InstanceDrained, since=mark)) or "no InstanceDrained",
        30,
        "w1 drained",
    )
    await c.wait_until(lambda: settled(c, streams), 15, "streams settled")

    tail = c.log.events[mark:]
    started = [e for e in tail if isinstance(e, MigrationStarted)]
    assert {e.stream_id for e in started} == held and len(started) == len(held)
    assert all(e.from_server == "w1" and e.reason == "drain" for e in started)
    peak = in_flight_peak(tail)
    print(f"drain of {len(held)} streams, peak in flight {peak}")
    assert peak == MAX_IN_FLIGHT, "gradual: never more than max_in_flight, and it is the bound"
    assert len(c.log.of(MigrationCompleted, since=mark)) == len(held)
    assert not c.log.of(MigrationAborted, since=mark)
    assert not c.streams_on("w1"), "w1 runs nothing any more"
    owners_agree(c, streams)
    state = await c.read_state()
    assert state.instances["w1"].draining and state.instances["w1"].load == 0


async def test_new_instances_trigger_a_rebalance_with_minimal_moves(cluster: Cluster) -> None:
    c = cluster
    streams = [f"s{i:02d}" for i in range(12)]
    await start_with_streams(c, {"w1": 12, "w2": 12}, streams)
    mark = len(c.log.events)
    for w in ("w3", "w4"):
        c.start_worker(w, max_streams=12)

    def balanced() -> str:
        loads = {w: len(c.streams_on(w)) for w in ("w1", "w2", "w3", "w4")}
        if max(loads.values()) - min(loads.values()) > 1:
            return f"unbalanced: {loads}"
        return settled(c, streams)

    await c.wait_until(balanced, 45, "balanced within one stream over four workers")
    await asyncio.sleep(1.0)  # no further plan follows a balanced cluster
    tail = c.log.events[mark:]
    plans = [e for e in tail if isinstance(e, RebalancePlanned) and not e.dry_run]
    assert plans, "adding instances must trigger a rebalance"
    done = {e.plan_id: e for e in tail if isinstance(e, RebalanceCompleted)}
    for plan in plans:
        moves = [e for e in tail if isinstance(e, MigrationStarted) and e.plan_id == plan.plan_id]
        print(f"plan {plan.reason}: {len(moves)} moves, lower bound {plan.lower_bound}")
        assert len(moves) == len(plan.moves) == plan.lower_bound, "minimal moves (uniform)"
        assert max(Counter(m.stream_id for m in moves).values()) == 1, "a stream moved twice"
        assert {m.from_server for m in moves} <= {"w1", "w2", "w3"}
        assert done[plan.plan_id].completed == plan.lower_bound
        assert done[plan.plan_id].aborted == 0
    owners_agree(c, streams)


async def test_a_target_dying_mid_migration_leaves_no_orphan_no_double_owner(
    cluster: Cluster,
) -> None:
    c = cluster
    streams = [f"s{i:02d}" for i in range(12)]  # 6 + 6; a third worker's target is 4
    await start_with_streams(c, {"w1": 12, "w2": 12}, streams)
    mark = len(c.log.events)
    # the newcomer attracts a rebalance but never finishes starting anything
    target = c.start_worker("w3", max_streams=12, args=["--demo-start-delay", "120"])
    doubles: list[dict[str, list[str]]] = []

    async def watch_for_double_owners() -> None:
        while True:
            twice = {s: ws for s, ws in c.running_by_stream().items() if len(ws) > 1}
            if twice:
                doubles.append(twice)
            await asyncio.sleep(0.05)

    watcher = asyncio.create_task(watch_for_double_owners())
    try:

        def target_starting() -> str:
            moving = {e.stream_id for e in c.log.of(MigrationStarted, since=mark)}
            if not moving:
                return "no migration towards w3 yet"
            return "" if moving <= c.streams_on("w3") else f"w3 not yet starting {moving}"

        await c.wait_until(target_starting, 30, "migrations to w3 in flight, w3 starting them")
        moving = {e.stream_id for e in c.log.of(MigrationStarted, since=mark)}
        assert not c.log.of(MigrationCompleted, since=mark)
        c.kill(target)
        await c.wait_until(
            lambda: bool(c.log.of(InstanceFailed, since=mark)) or "w3 not failed yet",
            15,
            "w3 failed",
        )
        await c.wait_until(lambda: settled(c, streams), 15, "streams settled on w1 and w2")
    finally:
        watcher.cancel()
    assert not doubles, f"a stream ran on two workers: {doubles[:3]}"
    aborted = {e.stream_id for e in c.log.of(MigrationAborted, since=mark)}
    assert aborted == moving, "every migration to the dead target aborted, the source kept it"
    assert not c.log.of(MigrationCompleted, since=mark)
    owners_agree(c, streams)
    state = await c.read_state()
    assert not state.held.get("w3") and not state.in_flight and not state.unplaced
    assert {s.server_id for s in state.streams.values()} <= {"w1", "w2"}
