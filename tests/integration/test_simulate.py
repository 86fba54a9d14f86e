"""``streamplane simulate`` on a real run (real orchestrator, workers and Kafka): streams
placed, a worker drained, another killed with kill -9. Replayed with the recorded settings,
the cycle marks make ``decide`` reproduce exactly what the log holds; with a shorter
``--fail-after`` the failover comes sooner and the streams are back sooner."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from support.cluster import Cluster, open_cluster
from typer.testing import CliRunner

from control_plane.cli.main import app
from events import commands as cmd
from events.control import InstanceDrained, InstanceFailed

pytestmark = [pytest.mark.integration, pytest.mark.slow]

STREAMS = [f"s{i}" for i in range(9)]
FAIL_AFTER = 5.0


@pytest.fixture
async def cluster(
    request: pytest.FixtureRequest, kafka_bootstrap: str, topic_prefix: str, tmp_path: Path
) -> AsyncIterator[Cluster]:
    async with open_cluster(
        request, kafka_bootstrap, topic_prefix, tmp_path, STREAMPLANE_FAIL_AFTER=str(FAIL_AFTER)
    ) as c:
        yield c


async def _run_history(c: Cluster) -> tuple[datetime, datetime]:
    """Three workers, nine streams; w1 drained; w2 killed. The window around it all."""
    c.start_orchestrator("o1")
    for w in ("w1", "w2", "w3"):
        c.start_worker(w, max_streams=10)
    await c.wait_until(
        lambda: "" if {"w1", "w2", "w3"} <= set(c.fold().instances) else "not registered",
        30,
        "three workers registered",
    )
    since = datetime.now(UTC)
    for sid in STREAMS:
        await c.command(cmd.RegisterStream, stream_id=sid)
    await c.wait_until(lambda: c.running_once(STREAMS), 30, "nine streams run once each")
    await c.command(cmd.DrainInstance, server_id="w1")
    await c.wait_until(lambda: bool(c.log.of(InstanceDrained)), 30, "w1 drained")
    await c.wait_until(lambda: c.running_once(STREAMS), 30, "nine streams run after the drain")
    victim = next(p for p in c.workers() if p.name == "w2")
    assert c.streams_on("w2"), "w2 runs something to lose"
    c.kill(victim)
    await c.wait_until(lambda: bool(c.log.of(InstanceFailed)), FAIL_AFTER + 10, "w2 failed")
    await c.wait_until(lambda: c.running_once(STREAMS), 20, "nine streams run again")
    await asyncio.sleep(1.0)
    until = datetime.now(UTC)
    await asyncio.sleep(2.5)  # idle cycles' marks are flushed every second
    return since, until


async def _cli(*args: str) -> Any:
    """The command line in a thread (it runs its own event loop)."""
    return await asyncio.to_thread(CliRunner().invoke, app, list(args))


async def _simulate(c: Cluster, since: datetime, until: datetime, *extra: str) -> dict[str, Any]:
    args = ["simulate", "--since", since.isoformat(), "--until", until.isoformat(), "--json"]
    args += ["--bootstrap", c.bootstrap, "--topic-prefix", c.topics.prefix, *extra]
    result = await _cli(*args)
    assert result.exit_code == 0, (result.stdout, result.stderr)
    return json.loads(result.stdout)  # type: ignore[no-any-return]


async def test_the_recorded_run_replays_exactly_and_a_shorter_fail_after_recovers_sooner(
    cluster: Cluster,
) -> None:
    c = cluster
    since, until = await _run_history(c)

    same = await _simulate(c, since, until)
    assert same["cycles"] > 50 and same["workers"] == "recorded" and same["terms"] == 1
    assert same["first_divergence"] is None, same["first_divergence"]
    assert same["simulated"] == same["real"]
    real = same["real"]
    assert real["moves_by_reason"].get("drain", 0) >= 1
    assert real["moves_by_reason"].get("instance_failed", 0) >= 1
    # w2's failure (a slow machine may fail another worker too: then it is counted as well)
    assert real["failures"] >= 1 and real["unrecovered"] == 0
    # the failed worker was silent for fail_after before anyone said so
    assert real["time_to_recover_s"] >= FAIL_AFTER
    assert real["silent_stream_s"] > 0 and real["unowned_stream_s"] > real["silent_stream_s"]
    assert 0 < real["max_load_factor"] <= 1

    quick = await _simulate(c, since, until, "--fail-after", "2")
    assert quick["settings"] == {"fail_after": 2.0} and quick["workers"] == "obedient"
    assert quick["first_divergence"] is not None
    sim = quick["simulated"]
    assert sim["failures"] >= 1 and sim["unrecovered"] == 0
    # detected 3 s sooner; the obedient workers start a stream in the log's median time,
    # seen at their next heartbeat (one a second)
    assert sim["time_to_recover_s"] < real["time_to_recover_s"] - 0.5
    assert sim["silent_stream_s"] < real["silent_stream_s"] * 0.6
    assert sim["moves_by_reason"].get("instance_failed", 0) >= 1
    assert quick["real"] == real  # what really happened does not depend on the what-if

    code = await _cli(
        "simulate", "--since", "2020-01-01T00:00:00", "--until", "2020-01-01T00:01:00",
        "--bootstrap", c.bootstrap, "--topic-prefix", c.topics.prefix,
    )  # fmt: skip
    assert code.exit_code == 1
    assert code.stderr.startswith("error: --since: no recorded leader cycle in the window")


async def test_a_take_over_replays_exactly_across_both_terms(cluster: Cluster) -> None:
    """The leader killed with -9: the standby's term starts from its term mark (what it had
    heard as a standby, by position) and the replay crosses the two terms exactly."""
    c = cluster
    active, (standby,) = await c.start_orchestrator_pair("o1", "o2")
    for w in ("w1", "w2"):
        c.start_worker(w, max_streams=10)
    await c.wait_until(
        lambda: "" if {"w1", "w2"} <= set(c.fold().instances) else "not registered",
        30,
        "two workers registered",
    )
    since = datetime.now(UTC)
    for sid in STREAMS[:4]:
        await c.command(cmd.RegisterStream, stream_id=sid)
    await c.wait_until(lambda: c.running_once(STREAMS[:4]), 30, "four streams run")
    c.kill(active)
    await c.wait_until(
        lambda: c.leader() is standby or "no new term yet", 30, f"{standby.name} leads"
    )
    for sid in STREAMS[4:6]:
        await c.command(cmd.RegisterStream, stream_id=sid)
    await c.wait_until(lambda: c.running_once(STREAMS[:6]), 30, "six streams run")
    await asyncio.sleep(1.0)
    until = datetime.now(UTC)
    await asyncio.sleep(2.5)

    doc = await _simulate(c, since, until)
    assert doc["first_divergence"] is None, doc["first_divergence"]
    assert doc["simulated"] == doc["real"]
    assert doc["real"]["moves"] == 0 and doc["cycles"] > 20 and doc["terms"] == 2
