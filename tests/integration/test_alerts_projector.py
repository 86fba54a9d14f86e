"""A frozen Faust projector (SIGSTOP) while events flow makes ``projection_lag_growing`` fire
(its consumer group's committed offset stands still while the log grows), and it resolves
once the projector runs again and catches up."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from support.alerts import free_port, monitor_signal, start_monitor, watching_alerts
from support.cluster import Cluster, open_cluster

from control_plane.tools.harness import CLI
from events import commands as cmd

pytestmark = [pytest.mark.integration, pytest.mark.slow]

LAG_BOUND = 10


@pytest.fixture
async def cluster(
    request: pytest.FixtureRequest, kafka_bootstrap: str, topic_prefix: str, tmp_path: Path
) -> AsyncIterator[Cluster]:
    env = {"STREAMPLANE_PROJECTOR_DATA_DIR": str(tmp_path / "faust")}
    async with open_cluster(request, kafka_bootstrap, topic_prefix, tmp_path, **env) as c:
        yield c


async def test_a_frozen_projector_fires_lag_and_resolves_when_it_runs_again(
    cluster: Cluster,
) -> None:
    c = cluster
    c.start_orchestrator("o1")
    await c.wait_until(lambda: c.leader() is not None, 30, "a leader")
    projector = c.children.spawn("projector", "projector", [*CLI, "projector"])
    port = free_port()
    start_monitor(
        c, STREAMPLANE_ALERT_LAG_BOUND=str(LAG_BOUND), STREAMPLANE_METRICS_ADDRESS=f":{port}"
    )
    key = "projection_lag_growing:cluster"

    def lag() -> float | str:
        return monitor_signal(port, "projection_lag_seq")

    await c.command(cmd.RegisterStream, stream_id="first")  # the group commits an offset
    await c.wait_until(lambda: lag() == 0.0 or f"lag {lag()}", 90, "the projector caught up")
    async with watching_alerts(c) as seen:
        c.pause(projector)
        for i in range(LAG_BOUND + 5):
            await c.command(cmd.RegisterStream, stream_id=f"s{i}")
        await c.wait_until(
            lambda: seen.status(key) == "firing" or f"{key}: {seen.status(key)}, lag {lag()}",
            30,
            "projection lag alert",
        )
        (alert,) = seen.fired(key)
        assert float(alert.evidence["value"]) > LAG_BOUND and alert.evidence["cause"] == "bound"
        c.resume(projector)
        await c.wait_until(lambda: seen.status(key) == "resolved" or lag(), 90, "lag resolved")
        await c.wait_until(lambda: lag() == 0.0 or f"lag {lag()}", 60, "caught up again")
