"""``streamplane check`` compares the Faust projector's tables too (issue 12): a real
orchestrator, a real worker and a real ``streamplane projector``. An entry of its
``assignments`` table, then one of its ``instances`` table, is dropped for real (a tombstone
in the table's changelog topic, which is the table's durable state); the check names exactly
it (exit 1), ``--repair`` logs a ``ConsistencyDivergenceRepaired`` that the projector carries
out by writing the entry again from its fold of the log, and the check after it is clean
(exit 0)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from support.cluster import Cluster, open_cluster
from typer.testing import CliRunner

from control_plane.checker_run import CheckSettings, faust_changelog
from control_plane.cli.main import app
from control_plane.drift_io import read_faust_table
from control_plane.tools.harness import CLI
from events import commands as cmd
from events import control as ev
from projections.fold.assignments import TABLE_REPAIR_REASON
from projections.io.kafka import make_producer, started

pytestmark = [pytest.mark.integration, pytest.mark.slow]

STREAMS = [f"t{i}" for i in range(4)]
NET = 30.0


@pytest.fixture
async def cluster(
    request: pytest.FixtureRequest, kafka_bootstrap: str, topic_prefix: str, tmp_path: Path
) -> AsyncIterator[Cluster]:
    async with open_cluster(request, kafka_bootstrap, topic_prefix, tmp_path) as c:
        yield c


async def _check(c: Cluster, *extra: str) -> tuple[int, dict[str, Any]]:
    args = ["check", "--bootstrap", c.bootstrap, "--topic-prefix", c.topics.prefix]
    args += ["--no-read-model", "--json", *extra]
    env = {"STREAMPLANE_CHECK_COMMAND_WAIT": "30"}
    result = await asyncio.to_thread(CliRunner().invoke, app, args, env=env)
    assert result.exit_code in (0, 1), result.output
    return result.exit_code, json.loads(result.stdout)


async def _table(c: Cluster, table: str = "assignments") -> dict[str, Any]:
    topic = faust_changelog(c.topics, CheckSettings(), table)
    view = await read_faust_table(c.bootstrap, topic, kafka_timeout=NET)
    return {} if view is None else {k: v for k, v in view.latest.items() if v is not None}


async def test_a_dropped_table_entry_is_named_and_written_again_by_the_projector(
    cluster: Cluster,
) -> None:
    c = cluster
    c.start_orchestrator("o1")
    c.start_worker("w1", max_streams=10)
    await c.wait_until(lambda: "w1" in c.fold().instances or "w1 unknown", 40, "w1 joins")
    c.children.spawn("projector", "projector", [*CLI, "projector"], {})
    await c.send([c.new_command(cmd.RegisterStream, stream_id=s) for s in STREAMS])
    await c.wait_until(lambda: c.running_once(STREAMS), 40, "every stream runs once")

    async def tabled() -> str:
        missing = sorted(set(STREAMS) - set(await _table(c)))
        return f"not in the table yet: {missing}" if missing else ""

    await c.wait_until(tabled, 60, "the projector's table holds every stream")
    code, out = await _check(c)
    assert code == 0 and out["report"]["counts"] == {}, out["report"]
    assert out["report"]["checked"].get("faust_tables", 0) >= len(STREAMS), out["report"]

    # drop t0 from the table: a tombstone in its changelog (Faust's keys are JSON there)
    victim = STREAMS[0]
    async with started(make_producer(c.bootstrap, linger_ms=0)) as producer:
        topic = faust_changelog(c.topics, CheckSettings())
        await producer.send_and_wait(topic, None, key=orjson.dumps(victim))
    assert victim not in await _table(c)

    code, out = await _check(c)
    found = [d for ds in out["report"]["examples"].values() for d in ds]
    assert (code, out["report"]["counts"]) == (1, {"projection_drift": 1}), found
    assert (found[0]["view"], found[0]["stream_id"]) == ("faust_tables", victim), found

    code, out = await _check(c, "--repair")
    assert code == 0 and out["clean"], out
    assert out["after"]["counts"] == {}, out["after"]
    assert [(r["kind"], r["stream_id"], r["action"]) for r in out["repairs"]] == [
        ("projection_drift", victim, ev.PROJECTOR_REWRITE)
    ]
    entry = (await _table(c))[victim]
    assert entry["reason"] == TABLE_REPAIR_REASON and entry["stream_id"] == victim, entry
    repaired = [e for e in c.log.of(ev.ConsistencyDivergenceRepaired) if e.stream_id == victim]
    assert [e.action for e in repaired] == [ev.PROJECTOR_REWRITE]

    # the same for the instances table: w1's entry dropped, named by server, written again
    async with started(make_producer(c.bootstrap, linger_ms=0)) as producer:
        topic = faust_changelog(c.topics, CheckSettings(), "instances")
        await producer.send_and_wait(topic, None, key=orjson.dumps("w1"))
    assert "w1" not in await _table(c, "instances")
    code, out = await _check(c)
    found = [d for ds in out["report"]["examples"].values() for d in ds]
    assert (code, out["report"]["counts"]) == (1, {"projection_drift": 1}), found
    assert (found[0]["view"], found[0]["server_id"], found[0]["key"]) == (
        "faust_tables",
        "w1",
        "instances:w1",
    ), found
    code, out = await _check(c, "--repair")
    assert code == 0 and out["clean"], out
    assert [(r["server_id"], r["action"]) for r in out["repairs"]] == [("w1", ev.PROJECTOR_REWRITE)]
    assert (await _table(c, "instances"))["w1"]["server_id"] == "w1"
