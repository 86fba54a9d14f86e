"""Two projector processes in one Faust group on the three-broker cluster: the standby writes
nothing while the other holds the control log; when the holder is killed -9 mid-stream (the
log keeps growing), the standby takes over from where the log stands: the assignments topic
and both tables (read back from their changelogs) end equal to the replay of the log, no
record of a key ever goes back in ``as_of_seq``, and the changelogs are replicated 3 times.
With either table store."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from support.projector import ProjectorProc, append, as_of_seq_problems, latest, outputs_match

from events.topics import ALL_TOPICS, Topics
from projections.fold import fold
from projections.io.kafka import make_admin, started
from projections.io.topics import ensure_topics
from projections.projector.app import ProjectorSettings
from projections.testing.synthetic import generate_history

pytestmark = pytest.mark.integration

WAIT = 90.0
ACTIVE = "streamplane_projector_active"
TAKEOVERS = "streamplane_projector_takeovers_total"


async def _until(check: Callable[[], Awaitable[Any]], what: str, procs: list[ProjectorProc]) -> Any:
    try:
        async with asyncio.timeout(WAIT):
            while True:
                if result := await check():
                    return result
                await asyncio.sleep(0.5)
    except TimeoutError:
        logs = "\n".join(p.output() for p in procs)
        raise AssertionError(f"timed out: {what}\n{logs}") from None


async def _holder(procs: list[ProjectorProc]) -> ProjectorProc | None:
    """The one process that says it holds the log while every other says it does not."""
    active = []
    for p in procs:
        if not p.running():
            continue
        s = await p.metrics()
        if s is None or s.value(ACTIVE) is None:
            return None
        if s.num(ACTIVE) == 1:
            active.append(p)
    return active[0] if len(active) == 1 else None


async def _joined(proc: ProjectorProc) -> bool:
    """The group gave ``proc`` its share: it holds the log, or says it is a standby."""
    s = await proc.metrics()
    if s is not None and (s.value(TAKEOVERS) or 0) > 0:
        return True
    return "standby: another member holds" in proc.text()


async def _replication(bootstrap: str, topics: list[str]) -> dict[str, int]:
    admin = make_admin(bootstrap)
    async with started(admin):
        described = await admin.describe_topics(topics)
    return {t["topic"]: min(len(p["replicas"]) for p in t["partitions"]) for t in described}


@pytest.mark.parametrize("store", ["memory", "rocksdb"])
async def test_a_standby_takes_the_log_over_when_the_holder_is_killed(
    three_broker_cluster: Any, topic_prefix: str, tmp_path: Path, store: str
) -> None:
    bootstrap = three_broker_cluster.bootstrap
    history = generate_history(3000, seed=7, instances=8, streams=60)
    head, rest = history[:600], history[600:]
    settings = ProjectorSettings(kafka_bootstrap=bootstrap, topic_prefix=topic_prefix)
    topics = Topics(topic_prefix)
    txn = f"{topic_prefix}-writer"
    await ensure_topics(bootstrap, topics, ALL_TOPICS)
    await append(bootstrap, topics.events, head, txn)

    env = {"STREAMPLANE_PROJECTOR_STORE": store}
    first = ProjectorProc("p1", settings, tmp_path, **env)
    second = ProjectorProc("p2", settings, tmp_path, **env)
    procs = [first, second]
    published = len(head)

    async def produce() -> None:  # the orchestrator's pace: small transactions, continuously
        nonlocal published
        for at in range(0, len(rest), 20):
            await append(bootstrap, topics.events, rest[at : at + 20], txn)
            published = len(head) + at + 20
            await asyncio.sleep(0.25)

    try:
        await first.start()
        await _until(lambda: _holder(procs), "p1 holds the log", procs)
        writer = asyncio.create_task(produce())
        await second.start()  # joins while the log grows: its start-up state is soon stale
        await _until(lambda: _joined(second), "p2 is in the group", procs)
        await asyncio.sleep(5)  # the log grows past p2's replay
        holder = await _until(lambda: _holder(procs), "one holder among two", procs)
        standby = second if holder is first else first
        before = await standby.metrics()
        assert before is not None and before.num(ACTIVE) == 0, standby.output()
        taken = before.num(TAKEOVERS)  # 1 if p2 joining took the log away from p1
        assert published < len(history), "the kill must come while the log still grows"

        await holder.kill()
        killed_at = published
        await _until(lambda: _holder([standby]), "the standby holds the log", procs)
        after = await standby.metrics()
        assert after is not None and after.num(TAKEOVERS) == taken + 1
        assert published > killed_at, "the log grew while nobody held it"
        await writer

        state = fold(history)
        await _until(lambda: _all(outputs_match(settings, state)), "outputs = replay", procs)
        _, records = await latest(bootstrap, topics.assignments)
        assert not as_of_seq_problems(records), as_of_seq_problems(records)[:10]
        assert max(v["as_of_seq"] for _, v in records if v is not None) <= state.seq

        changelogs = [settings.changelog_topic(t) for t in ("instances", "assignments")]
        assert set((await _replication(bootstrap, changelogs)).values()) == {3}
    finally:
        for p in procs:
            await p.stop()


async def _all(checks: Awaitable[tuple[bool, ...]]) -> bool:
    return all(await checks)
