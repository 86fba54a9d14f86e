"""A cluster for the end-to-end and chaos tests: real ``streamplane orchestrator`` and
``streamplane worker`` processes on a real Kafka, under a topic prefix unique to the test.

    async with open_cluster(request, kafka_bootstrap, topic_prefix, tmp_path) as c:
        c.start_orchestrator("o1")
        c.start_worker("w1", max_streams=10)
        await c.command(RegisterStream, stream_id="s1")
        await c.wait_until(lambda: c.running_once(["s1"]), 20, "s1 runs exactly once")

The processes run under the project's process harness (:mod:`control_plane.tools.harness`):
each logs to a file under the test's ``tmp_path``; when the test failed, the tail of each log
is written to the terminal. Every process is killed on exit, whatever happened.

Two background readers (:mod:`projections.io.follow`) follow the topics while the test runs:
:attr:`Cluster.log` holds every committed control event in order and their fold,
:attr:`Cluster.heartbeats` the latest heartbeat of each server. Checks given to
:meth:`Cluster.wait_until` return a problem description (``""`` when all is well) so that a
timeout says what was still wrong.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping, Sequence
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any

import pytest

from control_plane.client import read_state, send_command
from control_plane.tools.harness import Child, Children, orchestrator_args, worker_args
from events import encode
from events.base import Command, ControlEvent
from events.control import CommandCompleted, CommandRejected, LeaderElected
from events.heartbeat import StreamRunState
from events.topics import Topics
from kafka_auth import Brokers, as_access
from projections.fold.state import ClusterState
from projections.io.follow import HeartbeatWatcher, LogFollower, skip_undecodable
from projections.io.kafka import make_producer, started
from projections.io.topics import ensure_topics
from support.observed import HeartbeatsSeen, LogWatcher, holds_commands

#: settings every process of a test cluster gets unless the test overrides them
DEFAULT_ENV: dict[str, str] = {
    "STREAMPLANE_SESSION_TIMEOUT_MS": "6000",
    "STREAMPLANE_HEARTBEAT_INTERVAL_MS": "1000",  # orchestrator: consumer-group heartbeat
    "STREAMPLANE_SUSPECT_AFTER": "2.5",
    "STREAMPLANE_FAIL_AFTER": "5",
    "STREAMPLANE_HEARTBEAT_INTERVAL": "1.0",  # worker: seconds between heartbeats
    "STREAMPLANE_DEMO_CPU_MS": "0.2",  # keep the simulated work cheap on a 2-core machine
    # the tests' workers are not enrolled; tests/integration/test_enrollment.py turns it off
    "STREAMPLANE_OPEN_ENROLLMENT": "true",
}
#: seconds any single Kafka call of the harness may take
NET = 30.0
LOG_TAIL = 80

#: a check returns "" or True when satisfied, else a description of what is wrong
Check = Callable[[], Any]
#: one orchestrator or worker process (the process harness's child)
Proc = Child


class Cluster:
    """Orchestrators and workers of one test; see the module docstring."""

    def __init__(
        self,
        bootstrap: Brokers,
        prefix: str,
        log_dir: Path,
        env: dict[str, str],
        credentials: Mapping[str, Mapping[str, str]] | None = None,
    ):
        self.bootstrap = bootstrap
        #: kind ("orchestrator", "worker") -> the STREAMPLANE_KAFKA_* settings of its principal
        self.credentials = dict(credentials or {})
        self.topics = Topics(prefix)
        self.log_dir = log_dir
        self.env = {**DEFAULT_ENV, **env}
        # the test's settings only: none of this shell's STREAMPLANE_* variables
        base = {k: v for k, v in os.environ.items() if not k.startswith("STREAMPLANE_")}
        base |= self.env | {
            "STREAMPLANE_KAFKA_BOOTSTRAP": as_access(bootstrap).bootstrap,
            "STREAMPLANE_TOPIC_PREFIX": prefix,
        }
        self.children = Children(log_dir, base)
        self.log = LogWatcher()
        self.heartbeats = HeartbeatsSeen()
        self._tasks: list[asyncio.Task[None]] = []

    @property
    def procs(self) -> dict[str, Proc]:
        """name -> the latest process started under that name."""
        return self.children.by_name

    # --- lifecycle ----------------------------------------------------------------------

    async def start(self, *, create_topics: bool = True) -> None:
        """Create the topics and start following the control log and the heartbeats
        (``create_topics=False``: neither; call :meth:`follow` once the topics exist)."""
        if create_topics:
            await ensure_topics(self.bootstrap, self.topics, kafka_timeout=NET)
            self.follow()

    def follow(self) -> None:
        """Start the readers of the control log and the heartbeats."""
        self._tasks = [
            asyncio.create_task(self._follow_log(), name="harness:log"),
            asyncio.create_task(self._follow_heartbeats(), name="harness:heartbeats"),
        ]

    async def close(self) -> None:
        """Kill every process still running and stop the readers."""
        await asyncio.to_thread(self.children.stop_all, 0)
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task

    def _check_readers(self) -> None:
        for task in self._tasks:
            if task.done() and not task.cancelled() and task.exception() is not None:
                raise AssertionError(f"harness reader {task.get_name()} died") from task.exception()

    # --- processes ----------------------------------------------------------------------

    def start_orchestrator(self, name: str, **env: str) -> Proc:
        """``streamplane orchestrator --node-id NAME`` (``env``: extra STREAMPLANE_* values)."""
        env = {**self.credentials.get("orchestrator", {}), **env}
        return self.children.spawn(name, "orchestrator", orchestrator_args(name), env)

    def start_worker(
        self, server_id: str, *, max_streams: int, args: Sequence[str] = (), **env: str
    ) -> Proc:
        """``streamplane worker --server-id ID --max-streams N --handler demo [args]``."""
        argv = worker_args(server_id, max_streams, "--handler", "demo", *args)
        env = {**self.credentials.get("worker", {}), **env}
        return self.children.spawn(server_id, "worker", argv, env)

    async def start_orchestrator_pair(self, *names: str) -> tuple[Proc, list[Proc]]:
        """Start orchestrators until all are group members; returns (active, standbys).

        The first is elected alone; each other one joins the group (which may hand it the
        commands partition); we wait until the member holding the partition has opened
        its term in the log."""
        first, *others = names or ("o1", "o2")
        procs = [self.start_orchestrator(first)]
        await self.wait_until(lambda: self.leader() is procs[0], 30, f"{first} elected")
        for name in others:
            proc = self.start_orchestrator(name)
            procs.append(proc)
            await self.wait_for_log_line(proc, "Successfully synced group", 30)

        def holder() -> Proc | None:
            owning = [p for p in procs if holds_commands(p.log_text())]
            return owning[0] if len(owning) == 1 else None

        await self.wait_until(
            lambda: (holder() is not None and self.leader() is holder()) or "not settled",
            30,
            "the member holding the commands partition leads",
        )
        active = self.leader()
        assert active is not None
        return active, [p for p in procs if p is not active]

    def kill(self, proc: Proc) -> None:
        """SIGKILL (kill -9) and reap."""
        self.children.kill(proc)

    async def terminate(self, proc: Proc, within: float = 30.0) -> int:
        """SIGTERM and wait for the exit code (without blocking the event loop)."""
        self.children.signal(proc, signal.SIGTERM)
        code = await proc.wait(within)
        assert code is not None, f"{proc.name} ignored SIGTERM for {within}s"
        return code

    def pause(self, proc: Proc) -> None:
        """SIGSTOP: the process freezes (no heartbeats, no group membership, no writes)."""
        self.children.pause(proc)

    def resume(self, proc: Proc) -> None:
        """SIGCONT."""
        self.children.resume(proc)

    def signal(self, proc: Proc, sig: signal.Signals) -> None:
        self.children.signal(proc, sig)

    def workers(self) -> list[Proc]:
        return self.children.of_kind("worker")

    def orchestrators(self) -> list[Proc]:
        return self.children.of_kind("orchestrator")

    # --- the control log ----------------------------------------------------------------

    async def _follow_log(self) -> None:
        # an undecodable record kills this reader (the default), which fails the test
        follower = LogFollower(
            self.bootstrap, self.topics, kafka_timeout=NET, max_records=5000, what="harness log"
        )
        async with follower:
            while True:
                events = await follower.poll(timeout_ms=200)
                self.log.events += events
                self.log.state = follower.state

    def leader(self) -> Proc | None:
        """The orchestrator process named by the latest ``LeaderElected``."""
        elected = self.log.of(LeaderElected)
        return self.procs.get(elected[-1].leader_id) if elected else None

    def fold(self) -> ClusterState:
        """The fold of what the log reader has seen so far."""
        return self.log.state

    async def read_log(self) -> list[ControlEvent]:
        """An independent read of the whole control log, to its current end."""
        events: list[ControlEvent] = []
        follower = LogFollower(self.bootstrap, self.topics, kafka_timeout=NET, what="harness read")
        async with asyncio.timeout(NET), follower:
            await follower.catch_up(timeout_ms=500, into=events)
        return events

    async def read_state(self) -> ClusterState:
        """The whole log folded by ``control_plane.client.read_state`` (what the CLI shows)."""
        result = await read_state(self.bootstrap, self.topics)
        assert result.rejected == 0, f"undecodable records in the log: {result.rejections}"
        return result.state

    # --- heartbeats ---------------------------------------------------------------------

    async def _follow_heartbeats(self) -> None:
        # the workers' own tests check the heartbeat format; here only what they report
        watcher = HeartbeatWatcher(
            self.bootstrap,
            self.topics,
            from_start=True,
            on_undecodable=skip_undecodable,
            kafka_timeout=NET,
            max_records=5000,
            what="harness heartbeats",
        )
        async with watcher:
            while True:
                for hb in await watcher.poll(timeout_ms=200):
                    self.heartbeats.observe(hb)

    def running_by_stream(self) -> dict[str, list[str]]:
        """stream_id -> the servers running it, by the latest heartbeat of every worker
        process that is alive and not paused (a dead process's last report is history)."""
        out: dict[str, list[str]] = {}
        for proc in self.workers():
            seen = self.heartbeats.latest.get(proc.name)
            if not proc.serving or seen is None or seen.heartbeat.leaving:
                continue
            for report in seen.heartbeat.streams:
                if report.state is StreamRunState.RUNNING:
                    out.setdefault(report.stream_id, []).append(proc.name)
        return out

    def running_once(self, stream_ids: Iterable[str]) -> str:
        """ "" when each stream runs on exactly one live worker and nothing else runs;
        otherwise what is missing, doubled or unexpected."""
        wanted = set(stream_ids)
        running = self.running_by_stream()
        missing = sorted(wanted - set(running))
        doubled = {s: servers for s, servers in running.items() if len(servers) > 1}
        extra = sorted(set(running) - wanted)
        problems = []
        if missing:
            problems.append(f"{len(missing)} not running: {missing[:10]}")
        if doubled:
            problems.append(f"running twice: {doubled}")
        if extra:
            problems.append(f"unexpected: {extra[:10]}")
        return "; ".join(problems)

    def streams_on(self, server_id: str) -> set[str]:
        """What the latest heartbeat of ``server_id`` reports (any state)."""
        seen = self.heartbeats.latest.get(server_id)
        return {r.stream_id for r in seen.heartbeat.streams} if seen else set()

    # --- commands -----------------------------------------------------------------------

    @staticmethod
    def new_command(cls: type[Command], command_id: str | None = None, **fields: Any) -> Command:
        """A command as the CLI would build it; ``command_id`` fixed for resends."""
        return cls(
            id=uuid.uuid4().hex,
            source="streamplane/tests",
            time=datetime.now(UTC),
            command_id=command_id or uuid.uuid4().hex,
            **fields,
        )

    async def send(self, commands: Iterable[Command]) -> None:
        """Put commands on the commands topic (acks=all) without waiting for outcomes."""
        producer = make_producer(self.bootstrap, linger_ms=0)
        async with started(producer, kafka_timeout=NET, what="harness command sender"):
            async with asyncio.timeout(NET):
                for c in commands:
                    await producer.send_and_wait(
                        self.topics.commands, encode(c), key=c.command_id.encode()
                    )

    async def command(
        self, cls: type[Command], *, wait_s: float = 30.0, **fields: Any
    ) -> tuple[ControlEvent, list[ControlEvent]]:
        """Send a command and wait for its outcome (``control_plane.client.send_command``)."""
        return await send_command(self.bootstrap, self.topics, cls, wait_s=wait_s, **fields)

    def outcomes(self) -> dict[str, list[ControlEvent]]:
        """command_id -> its outcome events (CommandCompleted / CommandRejected) in the log."""
        out: dict[str, list[ControlEvent]] = {}
        for e in self.log.events:
            if isinstance(e, CommandCompleted | CommandRejected):
                out.setdefault(e.command_id, []).append(e)
        return out

    # --- waiting ------------------------------------------------------------------------

    async def wait_until(
        self, check: Check, within: float, what: str, interval: float = 0.1
    ) -> float:
        """Poll ``check`` until it returns ``""`` or ``True``; returns the seconds it took.

        Raises AssertionError naming ``what`` and the last problem after ``within`` seconds."""
        began = time.monotonic()
        problem: str | bool = "never checked"
        while True:
            self._check_readers()
            result = check()
            problem = await result if isinstance(result, Awaitable) else result
            if problem is True or problem == "":
                return time.monotonic() - began
            if time.monotonic() - began > within:
                raise AssertionError(f"{what}: still not the case after {within:.0f}s: {problem}")
            await asyncio.sleep(interval)

    async def wait_for_log_line(self, proc: Proc, text: str, within: float) -> float:
        """Wait until ``text`` appears in the process's log."""
        return await self.wait_until(
            lambda: text in proc.log_text() or f"no {text!r} in {proc.log_path.name}",
            within,
            f"{proc.name} logs {text!r}",
        )

    def dump(self, write: Callable[[str], None]) -> None:
        """Write the tail of every process log (used when a test failed)."""
        for proc in self.children.all:
            write(f"----- {proc.describe()}")
            for line in proc.log_tail(LOG_TAIL):
                write(line)


@contextlib.asynccontextmanager
async def open_cluster(
    request: pytest.FixtureRequest,
    bootstrap: Brokers,
    prefix: str,
    tmp_path: Path,
    *,
    create_topics: bool = True,
    credentials: Mapping[str, Mapping[str, str]] | None = None,
    **env: str,
) -> AsyncIterator[Cluster]:
    """A :class:`Cluster` for one test; logs shown on failure, every process killed after.
    ``create_topics=False`` leaves the topics to the processes (see :meth:`Cluster.start`);
    on a secure cluster ``bootstrap`` carries the harness's own credentials and
    ``credentials`` each kind of process's (:attr:`Cluster.credentials`)."""
    log_dir = tmp_path / "logs"
    log_dir.mkdir(parents=True, exist_ok=True)
    cluster = Cluster(bootstrap, prefix, log_dir, env, credentials)
    failed_before = request.session.testsfailed
    try:
        await cluster.start(create_topics=create_topics)
        yield cluster
    finally:
        await cluster.close()
        if request.session.testsfailed > failed_before:  # the process logs, in the report
            reporter = request.config.pluginmanager.get_plugin("terminalreporter")
            write = partial(print, file=sys.stderr) if reporter is None else reporter.write_line
            write(f"\n===== process logs of {request.node.nodeid} =====")
            cluster.dump(write)
