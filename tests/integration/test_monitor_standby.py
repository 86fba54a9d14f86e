"""Two monitors on a real cluster: one publishes, the other stands by; kill -9 the publisher
and the standby takes over, reads the alerts topic back and goes on judging: an alert that
fired before fires once, and resolves. A monitor started again stands by, and a publisher
frozen past its session (SIGSTOP) is fenced: it stands by when it wakes, having published
nothing more (control_plane.monitor.leadership)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from support.alerts import start_monitor, watching_alerts
from support.cluster import Cluster, open_cluster

from control_plane.errors import CommandRejectedError
from events import commands as cmd

pytestmark = [pytest.mark.integration, pytest.mark.slow]

KEY = "command_rejected:DrainInstance"
MONITOR = {
    "STREAMPLANE_MONITOR_SESSION_TIMEOUT_MS": "6000",
    "STREAMPLANE_ALERT_REJECT_WINDOW": "20",
}


@pytest.fixture
async def cluster(
    request: pytest.FixtureRequest, kafka_bootstrap: str, topic_prefix: str, tmp_path: Path
) -> AsyncIterator[Cluster]:
    async with open_cluster(request, kafka_bootstrap, topic_prefix, tmp_path) as c:
        yield c


async def _reject(c: Cluster, times: int) -> None:
    for _ in range(times):
        with pytest.raises(CommandRejectedError):
            await c.command(cmd.DrainInstance, server_id="nobody")


async def test_a_standby_monitor_takes_over_and_nothing_fires_twice(cluster: Cluster) -> None:
    c = cluster
    c.start_orchestrator("o1")
    await c.wait_until(lambda: c.leader() is not None, 30, "a leader")
    first = start_monitor(c, "m1", **MONITOR)
    await c.wait_for_log_line(first, "as the topic says", 30)
    second = start_monitor(c, "m2", **MONITOR)
    await c.wait_for_log_line(second, "standing by", 30)
    async with watching_alerts(c) as seen:
        await _reject(c, 3)
        await c.wait_until(lambda: bool(seen.fired(KEY)) or "not fired", 30, "fired")
        c.kill(first)
        await c.wait_for_log_line(second, "1 alert(s) firing as the topic says", 30)
        await asyncio.sleep(3)  # six evaluations of the new publisher
        assert len(seen.fired(KEY)) == 1 and not seen.resolved(KEY), seen.of(KEY)
        await c.wait_until(lambda: bool(seen.resolved(KEY)) or "not resolved", 40, "resolved")
        assert "alert resolved: command_rejected:DrainInstance" in second.log_text()

        # the old publisher, started again, stands by
        again = start_monitor(c, "m1", **MONITOR)
        await c.wait_for_log_line(again, "standing by", 30)
        assert "as the topic says" not in again.log_text()

        # the publisher frozen past its session: the standby takes over; woken, it is fenced
        c.pause(second)
        await c.wait_for_log_line(again, "as the topic says", 30)
        before = len(seen.records)
        await _reject(c, 3)
        await c.wait_until(lambda: len(seen.fired(KEY)) == 2 or "not fired again", 30, "again")
        c.resume(second)
        await c.wait_until(
            lambda: (
                "standing by" in second.log_text().split("as the topic says")[-1]
                or "m2 has not stood by"
            ),
            30,
            "the woken monitor stands by",
        )
        await asyncio.sleep(8)  # its session over, it rejoined the group: it stays a standby
        assert "standing by" in second.log_text().split("as the topic says")[-1]
        assert "standing by" not in again.log_text().split("as the topic says")[-1]
        assert [r.key for r in seen.records[before:]] == [KEY], seen.records[before:]
