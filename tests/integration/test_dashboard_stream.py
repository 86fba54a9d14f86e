"""The dashboard's stream against a running stack (real Kafka, orchestrator and worker
processes, the dashboard served by uvicorn as a child process): a snapshot, then deltas as
the log grows, which merged as the page merges them equal the fold of the log at the same
seq; alerts from ``<prefix>.alerts`` appear and go; the snapshot route agrees."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import httpx
import orjson
import pytest
from support.cluster import NET, Cluster, open_cluster
from support.dashboard import PageModel, following, serve_dashboard

from control_plane.api.dashboard.settings import DashboardSettings
from control_plane.api.dashboard.view import DashboardView
from events import commands as cmd
from events import encode
from events.alerts import AlertFired, AlertResolved
from projections.fold import fold
from projections.io.kafka import make_producer, started

pytestmark = [pytest.mark.integration, pytest.mark.slow]

STREAMS = ["cam-1", "cam-2", "cam-3"]


@pytest.fixture
async def cluster(
    request: pytest.FixtureRequest, kafka_bootstrap: str, topic_prefix: str, tmp_path: Path
) -> AsyncIterator[Cluster]:
    async with open_cluster(request, kafka_bootstrap, topic_prefix, tmp_path) as c:
        yield c


def _running_on(page: PageModel, server: str) -> str:
    running = sorted(k for k, s in page.streams.items() if s["status"] == "running")
    inst = page.instances.get(server)
    if inst is None or inst["status"] != "active":
        return f"{server} not shown active: {inst}"
    if running != STREAMS or any(page.streams[s]["server"] != server for s in running):
        return f"streams shown: {page.streams}"
    return "" if page.header["counts"]["running"] == len(STREAMS) else f"{page.header}"


def _as_folded(c: Cluster, seq: int) -> dict[str, object]:
    """The snapshot the server must have sent for the log up to ``seq``."""
    view = DashboardView(DashboardSettings(), fold([e for e in c.log.events if e.seq <= seq]))
    return orjson.loads(orjson.dumps(view.snapshot({})))


async def _alert(c: Cluster, message: AlertFired | AlertResolved) -> None:
    producer = make_producer(c.bootstrap, linger_ms=0)
    async with started(producer, kafka_timeout=NET, what="test alert writer"):
        await producer.send_and_wait(c.topics.alerts, encode(message), key=message.key.encode())


def _alert_message(kind: type[AlertFired | AlertResolved], seq: int) -> AlertFired | AlertResolved:
    return kind(
        id=uuid.uuid4().hex,
        source="streamplane/tests",
        time=datetime.now(UTC),
        key="instance_flapping:w1",
        rule="instance_flapping",
        severity="warning",
        summary="w1 failed 3 times in 10 minutes",
        action="look at w1's host",
        seq=seq,
    )


async def test_the_stream_follows_the_log_and_equals_its_fold(cluster: Cluster) -> None:
    c = cluster
    c.start_orchestrator("o1")
    c.start_worker("w1", max_streams=10)
    url = await serve_dashboard(c)
    async with following(url) as page:
        await c.wait_until(lambda: page.kinds[:1] == ["snapshot"] or page.kinds, 30, "a snapshot")
        await c.wait_until(
            lambda: "w1" in page.instances or f"instances {page.instances}", 30, "w1 shown"
        )
        await c.send([c.new_command(cmd.RegisterStream, stream_id=s) for s in STREAMS])
        await c.wait_until(lambda: _running_on(page, "w1"), 30, "3 streams shown running on w1")
        assert set(page.kinds) <= {"snapshot", "delta", "status"}, page.kinds
        assert page.kinds.count("snapshot") == 1, "the page got one snapshot, then deltas"

        await c.wait_until(lambda: c.fold().seq >= page.seq or "log reader behind", 10, "log")
        expected = _as_folded(c, page.seq)
        assert page.instances == expected["instances"]
        assert page.streams == expected["streams"]
        assert page.header["counts"] == expected["counts"]
        assert [e["seq"] for e in page.feed] == list(range(1, page.seq + 1))
        feed = {e["type"] for e in page.feed}
        assert {"LeaderElected", "InstanceRegistered", "StreamAssigned", "StreamStarted"} <= feed

        async with httpx.AsyncClient(base_url=url, timeout=10) as client:
            snapshot = (await client.get("/dashboard/snapshot")).json()
        assert snapshot["seq"] >= page.seq and snapshot["connected"] is True
        assert snapshot["streams"] == _as_folded(c, snapshot["seq"])["streams"]

        await _alert(c, _alert_message(AlertFired, page.seq))
        await c.wait_until(
            lambda: "instance_flapping:w1" in page.alerts or f"alerts {page.alerts}", 30, "alert"
        )
        shown = page.alerts["instance_flapping:w1"]
        assert shown["severity"] == "warning" and shown["about"] == "w1", shown
        await _alert(c, _alert_message(AlertResolved, page.seq))
        await c.wait_until(lambda: not page.alerts or f"alerts {page.alerts}", 30, "resolved")
