"""The projector's RocksDB table store (``STREAMPLANE_PROJECTOR_STORE=rocksdb``) on the
three-broker cluster: stopped and restarted, it finds its tables on disk equal to the
replay of the log (its takeover writes nothing, to the tables or the topic), then folds each
new event exactly once; the changelogs are replicated 3 times."""

from __future__ import annotations

import asyncio
from collections import Counter
from pathlib import Path
from typing import Any

import orjson
import pytest
from support.projector import ProjectorProc, append, as_of_seq_problems, latest, outputs_match
from support.scrape import Scrape

from events.topics import ALL_TOPICS, Topics
from projections.fold import apply, fold
from projections.fold.assignments import RESYNC_REASON, changes
from projections.io.kafka import make_admin, started
from projections.io.topics import ensure_topics
from projections.projector.app import ProjectorSettings
from projections.testing.synthetic import generate_history

pytestmark = pytest.mark.integration

WAIT = 90.0
WRITES = "streamplane_projector_resync_writes_total"


def _counted(records: list[tuple[str, Any]]) -> Counter[bytes]:
    return Counter(orjson.dumps([key, value]) for key, value in records)


def _changed_streams(before: list[Any], events: list[Any]) -> int:
    """How many assignment records folding ``events`` after ``before`` publishes."""
    state, count = fold(before), 0
    for event in events:
        after = apply(state, event)
        count += len(changes(state, after, event).streams)
        state = after
    return count


async def _converges(proc: ProjectorProc, settings: ProjectorSettings, events: list[Any]) -> None:
    state, seen = fold(events), ()
    try:
        async with asyncio.timeout(WAIT):
            while not all(seen := await outputs_match(settings, state)):
                assert proc.running(), proc.output()
                await asyncio.sleep(1.0)
    except TimeoutError:
        raise AssertionError(f"(topic, table, instances) = {seen}\n{proc.output()}") from None


async def _holding(proc: ProjectorProc) -> Scrape:
    """Its metrics once it holds the log."""
    async with asyncio.timeout(WAIT):
        while True:
            s = await proc.metrics()
            if s is not None and s.value("streamplane_projector_active") == 1:
                return s
            assert proc.running(), proc.output()
            await asyncio.sleep(0.5)


async def test_a_restarted_rocksdb_projector_finds_its_tables_and_applies_each_event_once(
    three_broker_cluster: Any, topic_prefix: str, tmp_path: Path
) -> None:
    bootstrap = three_broker_cluster.bootstrap
    history = generate_history(1800, seed=11, instances=6, streams=40)
    head, middle, tail = history[:900], history[900:1400], history[1400:]
    settings = ProjectorSettings(kafka_bootstrap=bootstrap, topic_prefix=topic_prefix)
    topics = Topics(topic_prefix)
    txn = f"{topic_prefix}-writer"
    await ensure_topics(bootstrap, topics, ALL_TOPICS)
    await append(bootstrap, topics.events, head, txn)
    proc = ProjectorProc("p1", settings, tmp_path, STREAMPLANE_PROJECTOR_STORE="rocksdb")
    try:
        await proc.start()
        await _holding(proc)
        await _converges(proc, settings, head)
        await append(bootstrap, topics.events, middle, txn)
        await _converges(proc, settings, head + middle)
        assert await proc.stop() == 0, proc.output()
        _, before_restart = await latest(bootstrap, topics.assignments)
        # the tables are RocksDB databases in the process's data directory
        databases = [p.name for p in proc.data_dir.rglob("*.db") if p.is_dir()]
        assert any("assignments" in name for name in databases), (databases, proc.output())

        await proc.start()
        restarted = await _holding(proc)
        for target in ("topic", "instances", "assignments"):
            # equal to the replay as found on disk: nothing to write anywhere
            assert restarted.num(WRITES, target=target) == 0, (target, proc.output())
        assert restarted.num("streamplane_projector_events_folded_total") == 0

        await append(bootstrap, topics.events, tail, txn)
        await _converges(proc, settings, history)
        final = await proc.metrics()
        assert final is not None
        assert final.num("streamplane_projector_events_folded_total") == len(tail)
        assert final.num("streamplane_projector_applied_seq") == fold(history).seq
    finally:
        await proc.stop()

    _, records = await latest(bootstrap, topics.assignments)
    assert not as_of_seq_problems(records)
    # after the restart: one record per stream each tail event changed, and nothing else
    # (the topic has several partitions: records are told apart by content, not position)
    after = list((_counted(records) - _counted(before_restart)).elements())
    assert len(after) == len(records) - len(before_restart)
    assert len(after) == _changed_streams(head + middle, tail), after[:5]
    assert all(v is None or v["reason"] != RESYNC_REASON for _, v in map(orjson.loads, after))
    changelogs = [settings.changelog_topic(t) for t in ("instances", "assignments", "liveness")]
    admin = make_admin(bootstrap)
    async with started(admin):
        described = await admin.describe_topics(changelogs)
    assert {min(len(p["replicas"]) for p in t["partitions"]) for t in described} == {3}
