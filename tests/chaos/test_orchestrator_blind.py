"""Mass-failure guard: when the orchestrator stops consuming heartbeats (SIGUSR1, its fault
injection switch) it must blame itself, enter maintenance mode and fail no one; when it
consumes again (SIGUSR1) it leaves maintenance mode and nothing has moved."""

from __future__ import annotations

import asyncio
import signal
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from support.cluster import Cluster, open_cluster

from events import commands as cmd
from events.control import (
    InstanceFailed,
    MaintenanceModeEntered,
    MaintenanceModeLeft,
    MigrationStarted,
    StreamAssigned,
    StreamUnassigned,
)
from projections.fold.state import InstanceStatus

pytestmark = [pytest.mark.chaos, pytest.mark.slow]

FAIL_AFTER = 5.0


@pytest.fixture
async def cluster(
    request: pytest.FixtureRequest, kafka_bootstrap: str, topic_prefix: str, tmp_path: Path
) -> AsyncIterator[Cluster]:
    async with open_cluster(
        request, kafka_bootstrap, topic_prefix, tmp_path, STREAMPLANE_FAIL_AFTER=str(FAIL_AFTER)
    ) as c:
        yield c


async def test_a_blind_orchestrator_freezes_failovers_instead_of_moving_everything(
    cluster: Cluster,
) -> None:
    c = cluster
    orchestrator = c.start_orchestrator("o1")
    workers = ("w1", "w2", "w3")
    for w in workers:
        c.start_worker(w, max_streams=10)
    await c.wait_until(
        lambda: set(workers) <= set(c.fold().instances) or "workers not registered",
        30,
        "workers registered",
    )
    streams = [f"s{i}" for i in range(9)]
    await c.send([c.new_command(cmd.RegisterStream, stream_id=s) for s in streams])
    await c.wait_until(lambda: c.running_once(streams), 30, "streams run once each")
    placement = c.running_by_stream()
    incarnations = {w: c.fold().instances[w].incarnation for w in workers}

    mark = len(c.log.events)
    blinded_at = time.monotonic()
    c.signal(orchestrator, signal.SIGUSR1)  # stop consuming heartbeats
    await c.wait_until(
        lambda: bool(c.log.of(MaintenanceModeEntered, since=mark)) or "not in maintenance",
        FAIL_AFTER,
        "maintenance mode entered",
    )
    # stay blind well past fail_after: without the guard every instance would fail now
    await asyncio.sleep(max(0.0, 2 * FAIL_AFTER - (time.monotonic() - blinded_at)))
    assert not c.log.of(InstanceFailed, since=mark)
    resumed_at = len(c.log.events)
    c.signal(orchestrator, signal.SIGUSR1)
    await c.wait_until(
        lambda: bool(c.log.of(MaintenanceModeLeft, since=resumed_at)) or "still in maintenance",
        10,
        "maintenance mode left",
    )
    await c.wait_until(
        lambda: (
            all(i.status is InstanceStatus.ACTIVE for i in c.fold().instances.values())
            or "not all active"
        ),
        10,
        "every instance active again",
    )
    await asyncio.sleep(FAIL_AFTER / 2)  # a late failover would show up now

    entered = c.log.of(MaintenanceModeEntered, since=mark)
    assert len(entered) == 1 and entered[0].reason == "mass_failure", entered
    for kind in (InstanceFailed, StreamAssigned, StreamUnassigned, MigrationStarted):
        assert not c.log.of(kind, since=mark), f"{kind.__name__} while the observer was blind"
    assert c.running_by_stream() == placement, "every stream still runs where it ran"
    state = await c.read_state()
    assert not state.maintenance and state.finding_count == 0
    assert {w: state.instances[w].incarnation for w in workers} == incarnations
    assert "heartbeat consumption paused" in orchestrator.log_text()
