"""A network partition between one worker and Kafka, every other process still connected
(the worker reaches the broker only through a proxy the test cuts: tests/support/partition.py).

The orchestrator stops hearing the worker, fails it after ``fail_after`` and runs its streams
on another worker. What the cut-off worker does meanwhile is seen only in its own log, the
ground truth of what ran where:

- by default it keeps its streams (local mode: it cannot tell this from an outage of Kafka
  itself, when stopping would stop all work): for a while they run twice, until it is back,
  reads its fence and stops them;
- with ``heartbeat_lease`` below ``fail_after`` it stops them before they start elsewhere:
  a stream never runs on two workers at once.

Either way, once healed the worker registers as a new incarnation and the log's fold has no
finding."""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections.abc import AsyncIterator
from datetime import datetime
from pathlib import Path

import pytest
from support.cluster import Cluster, open_cluster
from support.partition import CutBroker, cut_broker

from events import commands as cmd
from events.control import InstanceFailed, InstanceRegistered

pytestmark = [pytest.mark.chaos, pytest.mark.slow]

STREAMS = [f"s{i}" for i in range(6)]
LEASE = 3.0  # fail_after is 5 s (support.cluster.DEFAULT_ENV)
_LINE = re.compile(r"^(\S+ \S+) INFO streamplane\.worker: (started|stopped) stream (\S+)$")


@pytest.fixture
async def broker(tmp_path: Path) -> AsyncIterator[CutBroker]:
    async with cut_broker(tmp_path / "kafka") as b:
        yield b


def _times(c: Cluster, worker: str, what: str, after: datetime) -> dict[str, datetime]:
    """stream -> when ``worker``'s log first says it ``started``/``stopped`` it after ``after``."""
    out: dict[str, datetime] = {}
    for line in c.procs[worker].log_text().splitlines():
        m = _LINE.match(line)
        if m and m.group(2) == what:
            at = datetime.strptime(m.group(1), "%Y-%m-%d %H:%M:%S,%f")
            if at > after:
                out.setdefault(m.group(3), at)
    return out


@contextlib.asynccontextmanager
async def _partition_w1(
    request: pytest.FixtureRequest, broker: CutBroker, tmp_path: Path, **w1_env: str
) -> AsyncIterator[tuple[Cluster, set[str], datetime]]:
    """w1 (through the proxy) and w2 run the streams; w1 is cut off; the log fails w1 and
    its streams run on w2. Yields the cluster, w1's streams and when the cut began."""
    async with open_cluster(request, broker.bootstrap, "partition", tmp_path) as c:
        c.start_orchestrator("o1")
        c.start_worker("w1", max_streams=6, STREAMPLANE_KAFKA_BOOTSTRAP=broker.proxied, **w1_env)
        c.start_worker("w2", max_streams=6)
        await c.wait_until(
            lambda: {"w1", "w2"} <= set(c.fold().instances) or "not registered", 30, "w1, w2"
        )
        for sid in STREAMS:
            await c.command(cmd.RegisterStream, stream_id=sid)
        await c.wait_until(lambda: c.running_once(STREAMS), 30, "every stream runs once")
        lost = c.streams_on("w1")
        assert lost, c.running_by_stream()
        await asyncio.sleep(1.0)
        cut_at = datetime.now()  # the processes log local time
        await broker.proxy.cut()
        await c.wait_until(
            lambda: [e.server_id for e in c.log.of(InstanceFailed)] == ["w1"] or "w1 not failed",
            20,
            "the orchestrator fails the cut-off w1",
        )
        await c.wait_until(
            lambda: lost <= c.streams_on("w2") or f"{lost - c.streams_on('w2')} not on w2",
            20,
            "w1's streams run on w2",
        )
        yield c, lost, cut_at


async def _heal(c: Cluster, broker: CutBroker) -> None:
    """The proxy lets w1 in again: it registers as a new incarnation, nothing is found."""
    registered = len(c.log.of(InstanceRegistered))
    await broker.proxy.heal()
    await c.wait_until(
        lambda: (
            any(e.server_id == "w1" for e in c.log.of(InstanceRegistered)[registered:])
            or "w1 not back"
        ),
        40,
        "w1 registers anew",
    )
    await c.wait_until(lambda: c.running_once(STREAMS), 30, "every stream runs once")
    assert c.fold().finding_count == 0, c.fold().findings


async def test_with_a_lease_the_cut_off_worker_stops_before_its_streams_run_elsewhere(
    request: pytest.FixtureRequest, broker: CutBroker, tmp_path: Path
) -> None:
    async with _partition_w1(request, broker, tmp_path, STREAMPLANE_HEARTBEAT_LEASE=str(LEASE)) as (
        c,
        lost,
        cut_at,
    ):
        stopped = _times(c, "w1", "stopped", cut_at)
        started = _times(c, "w2", "started", cut_at)
        assert lost <= set(stopped), f"w1 still runs {lost - set(stopped)}"
        for sid in lost:  # never on two workers at once
            assert stopped[sid] < started[sid], (sid, stopped[sid], started[sid])
        assert "over heartbeat_lease" in c.procs["w1"].log_text()
        await _heal(c, broker)


async def test_without_a_lease_the_cut_off_worker_keeps_its_streams_until_it_is_back(
    request: pytest.FixtureRequest, broker: CutBroker, tmp_path: Path
) -> None:
    async with _partition_w1(request, broker, tmp_path) as (c, lost, cut_at):
        started = _times(c, "w2", "started", cut_at)
        assert lost <= set(started)
        # w1 knows it is cut off, and still runs them
        await c.wait_for_log_line(c.procs["w1"], "heartbeat not sent", 20)
        assert not set(_times(c, "w1", "stopped", cut_at)) & lost, "stopped without a lease"
        healed_at = datetime.now()
        await _heal(c, broker)
        # the run-twice window ends when w1 reads its fence
        assert lost <= set(_times(c, "w1", "stopped", healed_at))
        assert "fenced" in c.procs["w1"].log_text()
