"""Worker agent lifecycle with a real orchestrator (issue 4): SIGTERM moves the streams at
once, without waiting for failure detection; a worker frozen past ``fail_after`` is fenced
when it wakes up, stops everything and registers as a new incarnation."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from support.cluster import Cluster, open_cluster

from events import commands as cmd
from events.control import (
    InstanceDeregistered,
    InstanceFailed,
    InstanceRegistered,
    InstanceSuspected,
)
from projections.fold.state import InstanceStatus

pytestmark = [pytest.mark.chaos, pytest.mark.slow]

WORKERS = ("w1", "w2", "w3")
STREAMS = [f"s{i}" for i in range(9)]


async def start(c: Cluster) -> None:
    c.start_orchestrator("o1")
    for w in WORKERS:
        c.start_worker(w, max_streams=10)
    await c.wait_until(
        lambda: set(WORKERS) <= set(c.fold().instances) or "workers not registered",
        30,
        "workers registered",
    )
    await c.send([c.new_command(cmd.RegisterStream, stream_id=s) for s in STREAMS])
    await c.wait_until(lambda: c.running_once(STREAMS), 30, "streams run once each")


class TestGracefulLeave:
    FAIL_AFTER = 15.0  # long, so that a move by failure detection cannot pass for a leave

    @pytest.fixture
    async def cluster(
        self,
        request: pytest.FixtureRequest,
        kafka_bootstrap: str,
        topic_prefix: str,
        tmp_path: Path,
    ) -> AsyncIterator[Cluster]:
        async with open_cluster(
            request,
            kafka_bootstrap,
            topic_prefix,
            tmp_path,
            STREAMPLANE_SUSPECT_AFTER="10",
            STREAMPLANE_FAIL_AFTER=str(self.FAIL_AFTER),
        ) as c:
            yield c

    async def test_sigterm_moves_the_streams_without_waiting_for_failure_detection(
        self, cluster: Cluster
    ) -> None:
        c = cluster
        await start(c)
        leaver = c.procs["w1"]
        held = c.streams_on("w1")
        assert held
        incarnation = c.fold().instances["w1"].incarnation
        mark = len(c.log.events)
        code = await c.terminate(leaver, within=20)
        assert code == 0, f"a graceful leave exits 0, got {code}"
        took = await c.wait_until(
            lambda: c.running_once(STREAMS), self.FAIL_AFTER, "streams run on w2 and w3"
        )
        print(f"{len(held)} streams moved {took:.1f}s after w1 exited")
        assert took < self.FAIL_AFTER / 3, f"took {took:.1f}s: that is failure detection"
        left = c.log.of(InstanceDeregistered, since=mark)
        assert [(e.server_id, e.incarnation, e.reason) for e in left] == [
            ("w1", incarnation, "instance_left")
        ]
        assert not c.log.of(InstanceFailed, since=mark)
        assert not c.log.of(InstanceSuspected, since=mark)
        state = await c.read_state()
        assert state.instances["w1"].status is InstanceStatus.LEFT
        assert not state.held.get("w1") and state.finding_count == 0
        assert {state.streams[s].server_id for s in held} <= {"w2", "w3"}


class TestFencing:
    FAIL_AFTER = 5.0

    @pytest.fixture
    async def cluster(
        self,
        request: pytest.FixtureRequest,
        kafka_bootstrap: str,
        topic_prefix: str,
        tmp_path: Path,
    ) -> AsyncIterator[Cluster]:
        async with open_cluster(
            request,
            kafka_bootstrap,
            topic_prefix,
            tmp_path,
            STREAMPLANE_FAIL_AFTER=str(self.FAIL_AFTER),
        ) as c:
            yield c

    async def test_a_worker_frozen_past_fail_after_is_fenced_and_registers_anew(
        self, cluster: Cluster
    ) -> None:
        c = cluster
        await start(c)
        frozen = c.procs["w1"]
        held = c.streams_on("w1")
        assert held
        old = c.fold().instances["w1"].incarnation
        mark = len(c.log.events)
        c.pause(frozen)
        await c.wait_until(
            lambda: (
                [e.incarnation for e in c.log.of(InstanceFailed, since=mark)] == [old]
                or "w1 not failed"
            ),
            self.FAIL_AFTER + 10,
            "w1 failed",
        )
        await c.wait_until(lambda: c.running_once(STREAMS), 10, "streams run on w2 and w3")
        c.resume(frozen)

        def registered_anew() -> str:
            again = [e for e in c.log.of(InstanceRegistered, since=mark) if e.server_id == "w1"]
            return "" if again and again[-1].incarnation != old else "w1 not registered anew"

        await c.wait_until(registered_anew, 15, "w1 registers as a new incarnation")
        new = c.log.of(InstanceRegistered, since=mark)[-1].incarnation
        text = frozen.log_text()
        fenced_at = text.index(f"incarnation {old} fenced")
        after = text[fenced_at:]
        for sid in held:
            assert f"stopped stream {sid}" in after, f"{sid} not stopped after the fence"
        assert f"new incarnation {new}" in after
        first = c.heartbeats.first[("w1", new)]
        assert first.streams == (), "the new incarnation starts with nothing"
        assert c.heartbeats.incarnations["w1"] == [old, new]
        await c.wait_until(lambda: c.running_once(STREAMS), 30, "streams run once each")
        await asyncio.sleep(0.5)
        state = await c.read_state()
        assert state.instances["w1"].incarnation == new
        assert state.instances["w1"].status is InstanceStatus.ACTIVE
        assert state.finding_count == 0, state.findings
        running = c.running_by_stream()
        assert all(running[s] == [state.streams[s].server_id] for s in STREAMS), running
