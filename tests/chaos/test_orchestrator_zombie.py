"""Zombie leader: SIGSTOP the active orchestrator past its session timeout, let the standby
take over, SIGCONT the old one. Nothing it writes takes effect, and the log proves it."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from support.cluster import Cluster, open_cluster

from events import commands as cmd
from events.control import CommandCompleted, CommandRejected, LeaderElected
from projections.fold import fold
from projections.fold.state import FindingKind, replace

pytestmark = [pytest.mark.chaos, pytest.mark.slow]

SESSION_TIMEOUT_S = 6.0


@pytest.fixture
async def cluster(
    request: pytest.FixtureRequest, kafka_bootstrap: str, topic_prefix: str, tmp_path: Path
) -> AsyncIterator[Cluster]:
    async with open_cluster(
        request,
        kafka_bootstrap,
        topic_prefix,
        tmp_path,
        STREAMPLANE_SESSION_TIMEOUT_MS=str(int(SESSION_TIMEOUT_S * 1000)),
    ) as c:
        yield c


async def test_a_paused_leader_resumed_after_a_take_over_changes_nothing(cluster: Cluster) -> None:
    c = cluster
    zombie, (heir,) = await c.start_orchestrator_pair("o1", "o2")
    for w in ("w1", "w2", "w3"):
        c.start_worker(w, max_streams=10)
    await c.wait_until(
        lambda: {"w1", "w2", "w3"} <= set(c.fold().instances) or "workers not registered",
        30,
        "workers registered",
    )
    before = [c.new_command(cmd.RegisterStream, stream_id=f"a{i}") for i in range(6)]
    await c.send(before)
    old_epoch = c.log.of(LeaderElected)[-1].epoch

    c.pause(zombie)
    await c.wait_until(
        lambda: c.leader() is heir or "no take-over yet",
        SESSION_TIMEOUT_S + 20,
        f"{heir.name} takes over from the paused {zombie.name}",
    )
    # the zombie now holds heartbeats and commands it has not seen, and a stale view of time
    during = [c.new_command(cmd.RegisterStream, stream_id=f"b{i}") for i in range(3)]
    await c.send(during)
    c.resume(zombie)
    after = [c.new_command(cmd.RegisterStream, stream_id=f"c{i}") for i in range(3)]
    await c.send(after)
    await c.wait_for_log_line(zombie, "steps down", 20)

    ids = {x.command_id for x in before + during + after}
    await c.wait_until(
        lambda: f"{len(ids - set(c.outcomes()))} unanswered" if ids - set(c.outcomes()) else "",
        20,
        "every command answered",
    )
    await asyncio.sleep(2.0)  # whatever the zombie managed to write would be visible by now

    events = await c.read_log()
    terms = [e for e in events if isinstance(e, LeaderElected)]
    takeover = next(e for e in terms if e.epoch == old_epoch + 1)
    assert takeover.leader_id == heir.name
    # Every committed event belongs to the term opened by the latest LeaderElected before
    # it. (The resumed zombie may be elected again later, but only through a new term.)
    term, stale = 0, []
    for e in events:
        if isinstance(e, LeaderElected) and e.epoch > term:
            term = e.epoch
        elif e.epoch != term:
            stale.append(e)
    state = fold(events)
    if stale:  # tolerated only as findings that changed nothing
        kinds = {f.kind for f in state.findings if f.event_id in {e.id for e in stale}}
        assert kinds == {FindingKind.STALE_EPOCH}, state.findings
        clean = fold([e for e in events if e not in stale])
        assert replace(state, findings=(), finding_count=0) == clean
    else:
        assert state.finding_count == 0, state.findings
    assert [e.seq for e in events if e not in stale] == list(range(1, state.seq + 1))

    outcomes = Counter(
        e.command_id for e in events if isinstance(e, CommandCompleted | CommandRejected)
    )
    assert set(outcomes) == ids and max(outcomes.values()) == 1, outcomes
    late = {x.command_id for x in during + after}
    assert all(
        e.epoch > old_epoch
        for e in events
        if isinstance(e, CommandCompleted) and e.command_id in late
    )
    print("zombie:", [ln for ln in zombie.log_text().splitlines() if "steps down" in ln])
    assert zombie.alive, "the old leader goes on as a standby (or leads a later term)"
    # the cluster goes on under the newest term
    done, _ = await c.command(cmd.RegisterStream, stream_id="d0")
    assert done.epoch == c.log.of(LeaderElected)[-1].epoch > old_epoch
