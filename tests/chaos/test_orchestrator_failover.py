"""Kill -9 the active orchestrator while commands stream in: a standby takes over, every
command gets exactly one outcome (none lost, none applied twice), ``seq`` stays gapless."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from support.cluster import Cluster, open_cluster

from events import commands as cmd
from events.base import Command
from events.control import (
    CommandCompleted,
    CommandRejected,
    LeaderElected,
    StreamAssigned,
    StreamRegistered,
)

pytestmark = [pytest.mark.chaos, pytest.mark.slow]

SESSION_TIMEOUT_S = 6.0
COMMANDS = 60
RATE = 10.0  # commands per second
KILL_AFTER = 15  # commands sent before the leader dies
RESEND_EVERY = 4  # every 4th command is sent twice in a row with the same command_id


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


def resend(c: Cluster, original: Command) -> Command:
    """The same command (same command_id), as a client retrying would send it again."""
    fields = original.model_dump(exclude={"id", "time", "source", "command_id", "type"})
    return c.new_command(type(original), command_id=original.command_id, **fields)


async def stream_commands(c: Cluster, commands: list[Command], killed: asyncio.Event) -> int:
    """Send at a steady rate, resending some; returns how many sends in all."""
    sends = 0
    for i, command in enumerate(commands):
        batch = [command, resend(c, command)] if i % RESEND_EVERY == 0 else [command]
        await c.send(batch)
        sends += len(batch)
        if i + 1 == KILL_AFTER:
            killed.set()
        await asyncio.sleep(1 / RATE)
    # a client that timed out during the take-over retries its first commands
    await c.send([resend(c, x) for x in commands[:5]])
    return sends + 5


async def test_kill_9_of_the_leader_loses_and_duplicates_no_command(cluster: Cluster) -> None:
    c = cluster
    active, standbys = await c.start_orchestrator_pair("o1", "o2")
    for w in ("w1", "w2"):
        c.start_worker(w, max_streams=40)
    await c.wait_until(
        lambda: {"w1", "w2"} <= set(c.fold().instances) or "workers not registered",
        30,
        "workers registered",
    )
    epoch = c.log.of(LeaderElected)[-1].epoch
    commands = [c.new_command(cmd.RegisterStream, stream_id=f"s{i:02d}") for i in range(COMMANDS)]
    killed = asyncio.Event()
    sender = asyncio.create_task(stream_commands(c, commands, killed))
    await killed.wait()
    c.kill(active)
    sends = await sender
    assert sends > COMMANDS

    ids = {x.command_id for x in commands}
    await c.wait_until(
        lambda: f"{len(ids - set(c.outcomes()))} unanswered" if ids - set(c.outcomes()) else "",
        SESSION_TIMEOUT_S + 30,
        "every command answered",
    )
    await asyncio.sleep(1.0)  # time for a wrong second outcome to show up, if any

    events = await c.read_log()
    seqs = [e.seq for e in events]
    assert seqs == list(range(1, len(events) + 1)), "seq must be gapless and never repeat"
    elected = [e for e in events if isinstance(e, LeaderElected)]
    assert [e.leader_id for e in elected][-1] == standbys[0].name
    assert elected[-1].epoch == epoch + 1
    outcomes = Counter(
        e.command_id for e in events if isinstance(e, CommandCompleted | CommandRejected)
    )
    assert set(outcomes) == ids, "an outcome for every command, and only for them"
    assert max(outcomes.values()) == 1, {k: n for k, n in outcomes.items() if n > 1}
    assert not [e for e in events if isinstance(e, CommandRejected)]
    by_epoch = Counter(e.epoch for e in events if isinstance(e, CommandCompleted))
    assert by_epoch[epoch] and by_epoch[epoch + 1], f"commands span the take-over: {by_epoch}"
    registered = Counter(e.stream_id for e in events if isinstance(e, StreamRegistered))
    assert sorted(registered) == sorted(x.stream_id for x in commands)  # type: ignore[attr-defined]
    assert max(registered.values()) == 1
    first_assignments = Counter(e.stream_id for e in events if isinstance(e, StreamAssigned))
    assert max(first_assignments.values()) == 1, "a stream placed twice"

    state = await c.read_state()
    assert state.finding_count == 0, state.findings
    assert state.epoch == epoch + 1 and len(state.streams) == COMMANDS
    assert set(state.processed_commands.keys()) == ids
    stream_ids = [f"s{i:02d}" for i in range(COMMANDS)]
    await c.wait_until(lambda: c.running_once(stream_ids), 20, "every stream runs once")
