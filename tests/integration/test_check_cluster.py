"""``streamplane check`` on a real cluster (issue 12): an orchestrator, three real workers,
a PostgreSQL read model. Each divergence is injected for real, one at a time; the check must
name exactly it (exit 1), ``--repair`` must put it right with events and the check after it
must be clean (exit 0):

- a read-model row altered by hand (projection drift; rebuilt from the log);
- a stale desired set published for a worker (desired drift; re-sent);
- a worker reporting a stream it does not own (duplicate; its desired set re-sent);
- a worker killed with -9 while the mass-failure guard holds (orphans; placed again);
- an event written with a stale epoch and one repeating a seq (log findings; acknowledged).

One cluster serves every step: the steps run in order and each starts from a clean check.
The leader's periodic check (incremental and full, on short periods here) runs throughout
and ends clean, as its metrics say.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from support.cluster import Cluster, open_cluster
from support.scrape import scrape
from typer.testing import CliRunner

from control_plane.checker_io import read_desired
from control_plane.cli.main import app
from events import commands as cmd
from events import control as ev
from events import encode
from events.heartbeat import StreamReport, StreamRunState
from projections.io.kafka import make_producer, started
from projections.io.read_store import ReadModelSettings
from projections.read_model import ReadModelProjector
from telemetry.metrics import free_address

pytestmark = [pytest.mark.integration, pytest.mark.slow]

STREAMS = [f"s{i}" for i in range(6)]
#: the checker's bounds for this test (the CLI reads them from the environment)
CHECK_ENV = {
    "STREAMPLANE_CHECK_SILENT_AFTER": "8",
    "STREAMPLANE_CHECK_HEARTBEAT_FRESH": "4",
    "STREAMPLANE_CHECK_COMMAND_WAIT": "30",
}


#: where the orchestrator serves its metrics (the periodic check's)
METRICS = free_address()


@pytest.fixture
async def cluster(
    request: pytest.FixtureRequest, kafka_bootstrap: str, topic_prefix: str, tmp_path: Path
) -> AsyncIterator[Cluster]:
    # the guard holds as soon as one worker of three is silent: nobody is ever failed
    async with open_cluster(
        request,
        kafka_bootstrap,
        topic_prefix,
        tmp_path,
        STREAMPLANE_MASS_FAILURE_MIN="1",
        STREAMPLANE_MASS_FAILURE_SHARE="0.3",
        STREAMPLANE_CONSISTENCY_CHECK_INTERVAL="2",
        STREAMPLANE_CONSISTENCY_FULL_INTERVAL="5",
        STREAMPLANE_CHECK='{"silent_after": 8, "heartbeat_fresh": 4}',
    ) as c:
        yield c


class Check:
    """Runs ``streamplane check`` in-process (a thread: it calls ``asyncio.run``)."""

    def __init__(self, c: Cluster, database_url: str, schema: str) -> None:
        self.c = c
        self.settings = ReadModelSettings(
            kafka_bootstrap=c.bootstrap,
            topic_prefix=c.topics.prefix,
            database_url=database_url,
            database_schema=schema,
            read_model_dead_letters=False,
        )
        self.args = ["--bootstrap", c.bootstrap, "--topic-prefix", c.topics.prefix]
        self.args += ["--database-url", database_url, "--schema", schema, "--no-assignments"]

    async def project(self) -> None:
        """Bring the read model up to the log (the read-model process's job)."""
        async with ReadModelProjector(settings=self.settings) as projector:
            await projector.catch_up()

    async def run(self, *extra: str) -> tuple[int, dict[str, Any]]:
        result = await asyncio.to_thread(
            CliRunner().invoke, app, ["check", *self.args, "--json", *extra], env=CHECK_ENV
        )
        assert result.exit_code in (0, 1), result.output
        return result.exit_code, json.loads(result.stdout)

    async def names(self) -> tuple[int, dict[str, int], list[dict[str, Any]]]:
        code, out = await self.run()
        report = out["report"]
        found = [d for ds in report["examples"].values() for d in ds]
        return code, report["counts"], found

    async def repair_is_clean(self) -> dict[str, Any]:
        code, out = await self.run("--repair")
        assert code == 0 and out["clean"], out
        assert out["after"]["counts"] == {}, out["after"]
        return out


async def _register(c: Cluster) -> None:
    commands = [c.new_command(cmd.RegisterStream, stream_id=s) for s in STREAMS]
    await c.send(commands)
    await c.wait_until(lambda: c.running_once(STREAMS), 40, "every stream runs once")


async def _produce(c: Cluster, topic: str, value: bytes, key: str | None = None) -> None:
    async with started(make_producer(c.bootstrap, linger_ms=0)) as producer:
        await producer.send_and_wait(topic, value, key=key.encode() if key else None)


async def test_check_names_each_injected_divergence_and_repairs_it(
    cluster: Cluster, database_url: str, pg_schema: str
) -> None:
    c = cluster
    c.start_orchestrator("o1", STREAMPLANE_METRICS_ADDRESS=METRICS)
    for w in ("w1", "w2", "w3"):
        c.start_worker(w, max_streams=4)
    await c.wait_until(
        lambda: len(c.fold().instances) == 3 or "not all registered", 30, "three workers"
    )
    await _register(c)
    check = Check(c, database_url, pg_schema)
    await check.project()
    code, counts, _ = await check.names()
    assert (code, counts) == (0, {})
    live = await asyncio.to_thread(
        CliRunner().invoke, app, ["check", "--live", *check.args[:4]], env=CHECK_ENV
    )
    assert live.exit_code == 0 and "0 divergences found" in live.stdout, live.output

    # 1. a read-model row altered by hand
    victim = STREAMS[0]
    conn = await asyncpg.connect(database_url, server_settings={"search_path": pg_schema})
    try:
        await conn.execute("UPDATE streams SET weight = 7 WHERE stream_id = $1", victim)
    finally:
        await conn.close()
    code, counts, found = await check.names()
    assert (code, counts) == (1, {"projection_drift": 1})
    assert found[0]["key"] == f"streams:{victim}" and found[0]["view"] == "read_model"
    out = await check.repair_is_clean()
    assert [r["kind"] for r in out["repairs"]] == ["projection_drift"]
    assert "rebuilt from the log" in out["repairs"][0]["action"]

    # 2. a stale desired set for w1 (the worker ignores an older seq; the topic holds it)
    latest = (await read_desired(c.bootstrap, c.topics, kafka_timeout=30))["w1"]
    stale = latest.model_copy(update={"streams": (), "params": {}, "seq": 1, "id": "stale-1"})
    await _produce(c, c.topics.desired, encode(stale), key="w1")
    code, counts, found = await check.names()
    assert (code, counts) == (1, {"desired_drift": 1}) and found[0]["server_id"] == "w1"
    out = await check.repair_is_clean()
    assert [(r["kind"], r["server_id"]) for r in out["repairs"]] == [("desired_drift", "w1")]

    # 3. w2 reports a stream of another worker's (frozen, so that its own heartbeat does
    #    not overwrite the report; the guard keeps it from being failed meanwhile)
    stolen = sorted(c.streams_on("w1") or c.streams_on("w3"))[0]
    w2 = c.procs["w2"]
    c.pause(w2)
    real = c.heartbeats.latest["w2"].heartbeat
    forged = real.model_copy(
        update={
            "id": "forged-1",
            "time": datetime.now(UTC),
            "streams": (
                *real.streams,
                StreamReport(stream_id=stolen, state=StreamRunState.RUNNING),
            ),
        }
    )
    await _produce(c, c.topics.heartbeats, encode(forged), key="w2")
    try:
        code, counts, found = await check.names()
        assert (code, counts) == (1, {"duplicated": 1}), found
        assert (found[0]["stream_id"], found[0]["server_id"]) == (stolen, "w2")
        out = await check.repair_is_clean()
        assert [(r["kind"], r["server_id"]) for r in out["repairs"]] == [("duplicated", "w2")]
    finally:
        c.resume(w2)
    await c.wait_until(lambda: c.running_once(STREAMS), 30, "every stream runs once again")

    # 4. kill -9 of a worker while the guard holds: its streams are orphaned
    victim_worker = max(c.workers(), key=lambda p: len(c.streams_on(p.name)))
    lost = c.streams_on(victim_worker.name)
    assert lost
    c.kill(victim_worker)
    await c.wait_until(lambda: c.fold().maintenance or "no maintenance yet", 20, "guard holds")
    await asyncio.sleep(9)  # > STREAMPLANE_CHECK_SILENT_AFTER
    code, counts, found = await check.names()
    assert (code, counts) == (1, {"orphaned": len(lost)}), found
    assert {d["stream_id"] for d in found} == lost
    out = await check.repair_is_clean()
    assert {r["stream_id"] for r in out["repairs"]} == lost
    assert all(r["action"].startswith("placed again on") for r in out["repairs"]), out
    moved = [e for e in c.log.of(ev.StreamAssigned) if e.stream_id in lost]
    assert {e.reason for e in moved[-len(lost) :]} == {"consistency_repair"}
    await c.wait_until(lambda: c.running_once(STREAMS), 30, "the orphans run again")

    # 5. a stale-epoch event (a fenced leader's) and a repeated seq, written by hand
    state = await c.read_state()
    zombie = ev.StreamDeregistered(
        id="zombie-1", source="zombie", time=datetime.now(UTC),
        seq=state.seq + 1, epoch=state.epoch - 1, stream_id=STREAMS[1],
    )  # fmt: skip
    repeat = ev.StreamDeregistered(
        id="repeat-1", source="zombie", time=datetime.now(UTC),
        seq=state.seq, epoch=state.epoch, stream_id=STREAMS[1],
    )  # fmt: skip
    for e in (zombie, repeat):
        await _produce(c, c.topics.events, encode(e))
    code, counts, found = await check.names()
    assert (code, counts) == (1, {"seq_repeat": 1, "stale_epoch": 1}), found
    assert {d["key"] for d in found} == {"zombie-1", "repeat-1"}
    out = await check.repair_is_clean()
    assert sorted(r["kind"] for r in out["repairs"]) == ["seq_repeat", "stale_epoch"]
    code, counts, _ = await check.names()
    assert (code, counts) == (0, {})

    # the leader's periodic check ran both ways meanwhile, and its last one is clean
    port = int(METRICS.rsplit(":", 1)[1])

    async def periodic() -> str:
        m = await scrape(port)
        full = m.value("streamplane_consistency_checks_total", mode="full") or 0
        if full < 2:
            return f"{full} full checks"
        if m.num("streamplane_consistency_score") != 1.0:
            return f"score {m.num('streamplane_consistency_score')}"
        return ""

    await c.wait_until(periodic, 30, "a clean periodic check")
