"""Topics cannot be misconfigured (issue 11, section 1), on a real broker with real processes.

Whatever the broker's ``auto.create.topics.enable``: a worker started before anything else
names no topic (it waits until the control plane created them, with the contract's
partitions), a reader started first creates no control log with the broker's retention, and
a process pointed at a control log with a finite retention refuses to start, saying which
setting is wrong and how to fix it.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType
from support.cli_walk import one_error_line, run
from support.cluster import open_cluster

from control_plane.client import read_state
from control_plane.tools.harness import Children, child_env, orchestrator_args
from events.topics import HEARTBEATS, Topics
from projections.errors import UnknownTopicError
from projections.io.kafka import make_admin, started
from projections.io.read_store import ReadModelSettings
from projections.read_model import ReadModelProjector

pytestmark = [pytest.mark.integration, pytest.mark.slow]

WEEK_MS = "604800000"


async def _topics_of(bootstrap: str, prefix: str) -> dict[str, Any]:
    """name -> description of every topic under ``prefix``."""
    async with started(make_admin(bootstrap)) as admin:
        names = [n for n in await admin.list_topics() if n.startswith(prefix + ".")]
        return {t["topic"]: t for t in await admin.describe_topics(names)} if names else {}


async def _config(bootstrap: str, topic: str, key: str) -> str:
    async with started(make_admin(bootstrap)) as admin:
        [response] = await admin.describe_configs(
            [ConfigResource(ConfigResourceType.TOPIC, topic, {key: None})]
        )
    entries = response.resources[0][4]
    return str(next(e[1] for e in entries if e[0] == key))


async def test_a_worker_started_before_the_topics_waits_for_the_control_plane(
    request: pytest.FixtureRequest, kafka_bootstrap: str, topic_prefix: str, tmp_path: Path
) -> None:
    topics = Topics(topic_prefix)
    async with open_cluster(
        request, kafka_bootstrap, topic_prefix, tmp_path, create_topics=False
    ) as c:
        worker = c.start_worker("w1", max_streams=4)
        await c.wait_for_log_line(worker, f"topic {topics.heartbeats} does not exist yet", 30)
        assert await _topics_of(kafka_bootstrap, topic_prefix) == {}, "the worker made a topic"

        orchestrator = c.start_orchestrator("o1")
        await c.wait_for_log_line(orchestrator, "o1 is the leader", 60)
        described = await _topics_of(kafka_bootstrap, topic_prefix)
        assert len(described[topics.heartbeats]["partitions"]) == HEARTBEATS.partitions
        c.follow()
        await c.wait_until(lambda: "w1" in c.fold().instances, 30, "w1 registered")
        assert orchestrator.serving, "the orchestrator stopped"


async def test_a_reader_started_first_creates_no_control_log_with_a_finite_retention(
    kafka_bootstrap: str, topic_prefix: str, database_url: str, pg_schema: str
) -> None:
    topics = Topics(topic_prefix)
    with pytest.raises(UnknownTopicError):
        await read_state(kafka_bootstrap, topics)  # what `streamplane status` & co. read
    assert topics.events not in await _topics_of(kafka_bootstrap, topic_prefix)

    settings = ReadModelSettings(
        kafka_bootstrap=kafka_bootstrap, topic_prefix=topic_prefix, read_model_dead_letters=False
    )
    async with ReadModelProjector(database_url, schema=pg_schema, settings=settings):
        pass  # the read model, the first process to start, sets up the log as documented
    assert await _config(kafka_bootstrap, topics.events, "retention.ms") == "-1"


async def test_a_control_log_with_a_finite_retention_stops_every_process_at_start(
    kafka_bootstrap: str, topic_prefix: str, tmp_path: Path, create_topic: Any
) -> None:
    topics = Topics(topic_prefix)
    await create_topic(topics.events, config={"retention.ms": WEEK_MS})

    code, _, err = await asyncio.to_thread(
        run, ["topics", "--bootstrap", kafka_bootstrap, "--topic-prefix", topic_prefix]
    )
    assert code == 1, err
    line = one_error_line(err)
    assert f"topic {topics.events} has retention.ms={WEEK_MS}" in line
    assert f"--entity-name {topics.events} --add-config retention.ms=-1" in line

    children = Children(tmp_path, child_env(kafka_bootstrap, topic_prefix))
    try:
        orchestrator = children.spawn("o1", "orchestrator", orchestrator_args("o1"))
        code = await orchestrator.wait(60)
    finally:
        children.stop_all(5.0)
    assert code == 1, orchestrator.log_text()
    errors = [ln for ln in orchestrator.log_text().splitlines() if ln.startswith("error:")]
    assert len(errors) == 1 and "retention.ms=-1" in errors[0], orchestrator.log_text()
    assert "Traceback" not in orchestrator.log_text()
