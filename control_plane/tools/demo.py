"""``streamplane demo``: a whole control plane on this machine, with a live status view.

Brings up Kafka (or uses the configured one), two orchestrators (active + hot standby) and
N workers with the ``demo`` handler as child processes, registers M streams, then shows the
state, refreshed, until Ctrl-C or ``--duration``. ``--kill-worker-after`` and
``--kill-leader-after`` (and the keys k/l/a/q on a terminal) show failover happening.

The view follows the control log incrementally (one consumer, each new event folded with
:func:`projections.fold.apply`) and the heartbeats topic. The building blocks
(:class:`Children`, :class:`LogFollower`, :class:`HeartbeatWatcher`) are reused by the
benchmarks in ``bench/``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import os
import random
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any, TextIO

import typer
from aiokafka import AIOKafkaConsumer, TopicPartition
from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from control_plane.tools.demo_view import Header, RecentEvents, render
from events import commands as cmd
from events.base import ControlEvent
from events.codec import decode_event, decode_heartbeat, encode
from events.errors import EventError
from events.heartbeat import Heartbeat
from events.topics import HEARTBEATS, Topics
from projections.fold import apply
from projections.fold.state import ClusterState, InstanceStatus
from projections.io.kafka import ensure_topics, make_consumer, make_producer, started

#: how the children are started: the CLI without relying on the console script being on PATH
CLI = (sys.executable, "-c", "from control_plane.cli import main; main()")


class DemoSettings(BaseSettings):
    """Timings of the demo (env prefix ``STREAMPLANE_``); Kafka comes from the same env."""

    model_config = SettingsConfigDict(env_prefix="STREAMPLANE_", frozen=True, extra="ignore")

    #: None: start the local infrastructure (``control_plane.tools.infra.ensure_up``)
    kafka_bootstrap: str | None = None
    demo_refresh_s: float = Field(default=1.0, gt=0, description="terminal redraw period")
    demo_snapshot_s: float = Field(default=5.0, gt=0, description="plain snapshot period")
    demo_setup_timeout_s: float = Field(default=90.0, gt=0)
    demo_stop_grace_s: float = Field(default=10.0, gt=0, description="SIGTERM -> SIGKILL")
    demo_kafka_timeout_s: float = Field(default=30.0, gt=0)
    #: CPU burnt per stream tick by the demo handler (kept small: all shares one machine)
    demo_cpu_ms: float = Field(default=0.2, ge=0)


# --- child processes ------------------------------------------------------------------------


@dataclass(slots=True)
class Child:
    name: str
    kind: str  # "orchestrator" or "worker"
    proc: subprocess.Popen[bytes]
    log_path: Path
    killed: bool = False

    @property
    def pid(self) -> int:
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc.poll() is None


@dataclass(slots=True)
class Children:
    """Child processes, each in its own session (so a terminal's Ctrl-C reaches only us),
    logging to ``log_dir``; stopped with SIGTERM, then SIGKILL after a grace period."""

    log_dir: Path
    env: dict[str, str]
    all: list[Child] = field(default_factory=list)

    def spawn(self, name: str, kind: str, args: Sequence[str], **env: str) -> Child:
        self.log_dir.mkdir(parents=True, exist_ok=True)
        log_path = self.log_dir / f"{name}.log"
        with log_path.open("ab") as log:
            proc = subprocess.Popen(
                list(args),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=self.env | env,
                start_new_session=True,
            )
        child = Child(name, kind, proc, log_path)
        self.all.append(child)
        return child

    def alive(self, kind: str | None = None) -> list[Child]:
        return [c for c in self.all if c.alive() and (kind is None or c.kind == kind)]

    def signal(self, child: Child, sig: int) -> None:
        # Our child leads its own process group: signal the group (its own children too).
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(child.pid, sig)
        if sig == signal.SIGKILL:
            child.killed = True

    def stop_all(self, grace: float) -> list[Child]:
        """SIGTERM every live child, SIGKILL what is left after ``grace`` seconds, reap all;
        returns the children that needed SIGKILL."""
        for c in self.alive():
            self.signal(c, signal.SIGTERM)
        deadline = time.monotonic() + grace
        while self.alive() and time.monotonic() < deadline:
            time.sleep(0.1)
        stubborn = self.alive()
        for c in stubborn:
            self.signal(c, signal.SIGKILL)
        for c in self.all:
            with contextlib.suppress(subprocess.TimeoutExpired):
                c.proc.wait(timeout=5)
        return stubborn


def orchestrator_args(node_id: str) -> list[str]:
    return [*CLI, "orchestrator", "--node-id", node_id]


def worker_args(server_id: str, max_streams: int) -> list[str]:
    return [*CLI, "worker", "--server-id", server_id, "--max-streams", str(max_streams)]


def child_env(bootstrap: str, prefix: str, **extra: str) -> dict[str, str]:
    """The environment of every child: this one plus Kafka, the topic prefix and ``extra``
    (names without the ``STREAMPLANE_`` prefix, e.g. ``FAIL_AFTER="3"``)."""
    env = dict(os.environ)
    env["STREAMPLANE_KAFKA_BOOTSTRAP"] = bootstrap
    env["STREAMPLANE_TOPIC_PREFIX"] = prefix
    env.update({f"STREAMPLANE_{k.upper()}": v for k, v in extra.items()})
    return env


# --- following the log and the heartbeats ---------------------------------------------------


class LogFollower:
    """Reads the control log from the start and folds each new event into ``state``."""

    def __init__(self, bootstrap: str, topics: Topics, *, kafka_timeout: float = 30.0):
        self.state = ClusterState()
        self.topics = topics
        self._tp = TopicPartition(topics.events, 0)
        self._timeout = kafka_timeout
        self._consumer = make_consumer(bootstrap, auto_offset_reset="earliest")
        self._stack = contextlib.AsyncExitStack()

    async def __aenter__(self) -> LogFollower:
        await self._stack.enter_async_context(started(self._consumer, what="log follower"))
        self._consumer.assign([self._tp])
        async with asyncio.timeout(self._timeout):
            await self._consumer.seek_to_beginning(self._tp)
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self._stack.aclose()

    async def poll(self, timeout_ms: int = 200, max_records: int = 20_000) -> list[ControlEvent]:
        """New events since the last call (already folded into ``state``)."""
        async with asyncio.timeout(self._timeout + timeout_ms / 1000):
            batch = await self._consumer.getmany(
                self._tp, timeout_ms=timeout_ms, max_records=max_records
            )
        out: list[ControlEvent] = []
        for r in batch.get(self._tp, []):
            try:
                event = decode_event(r.value)
            except EventError:
                continue  # the orchestrator dead-letters it; nothing to show
            self.state = apply(self.state, event)
            out.append(event)
        return out


class HeartbeatWatcher:
    """The latest heartbeat per server_id, from every partition of the heartbeats topic."""

    def __init__(
        self,
        bootstrap: str,
        topics: Topics,
        *,
        from_start: bool = False,
        kafka_timeout: float = 30.0,
    ):
        self.latest: dict[str, Heartbeat] = {}
        self._tps = [TopicPartition(topics.heartbeats, p) for p in range(HEARTBEATS.partitions)]
        self._from_start = from_start
        self._timeout = kafka_timeout
        self._consumer: AIOKafkaConsumer = make_consumer(bootstrap, auto_offset_reset="latest")
        self._stack = contextlib.AsyncExitStack()

    async def __aenter__(self) -> HeartbeatWatcher:
        await self._stack.enter_async_context(started(self._consumer, what="heartbeat watcher"))
        self._consumer.assign(self._tps)
        async with asyncio.timeout(self._timeout):
            if self._from_start:
                await self._consumer.seek_to_beginning(*self._tps)
            else:
                await self._consumer.seek_to_end(*self._tps)
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self._stack.aclose()

    async def poll(self, timeout_ms: int = 0, max_records: int = 20_000) -> list[Heartbeat]:
        """New heartbeats since the last call (``latest`` updated)."""
        async with asyncio.timeout(self._timeout + timeout_ms / 1000):
            batches = await self._consumer.getmany(timeout_ms=timeout_ms, max_records=max_records)
        out: list[Heartbeat] = []
        for records in batches.values():
            for r in records:
                try:
                    hb = decode_heartbeat(r.value)
                except EventError:
                    continue
                self.latest[hb.server_id] = hb
                out.append(hb)
        return out


# --- the demo -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class DemoOptions:
    workers: int = 4
    streams: int = 40
    standby: bool = True
    kill_worker_after: float | None = None
    kill_leader_after: float | None = None
    duration: float | None = None
    topic_prefix: str | None = None
    bootstrap: str | None = None
    capacity: int | None = None


def stream_specs(count: int) -> list[dict[str, Any]]:
    """``count`` streams with weights and priorities varied a little (every 5th weighs 2)."""
    width = len(str(count))
    return [
        {"stream_id": f"stream-{i + 1:0{width}d}", "weight": 2 if i % 5 == 4 else 1,
         "priority": i % 3}
        for i in range(count)
    ]  # fmt: skip


def capacity_for(specs: Sequence[dict[str, Any]], workers: int) -> int:
    """Room for every stream even after one worker is lost, plus one."""
    total = sum(int(s["weight"]) for s in specs)
    return math.ceil(total / max(1, workers - 1)) + 1


def registrations(specs: Sequence[dict[str, Any]], source: str) -> Iterator[cmd.RegisterStream]:
    for spec in specs:
        yield cmd.RegisterStream(
            id=uuid.uuid4().hex,
            source=source,
            time=datetime.now(UTC),
            command_id=uuid.uuid4().hex,
            **spec,
        )


async def send_commands(
    bootstrap: str, topic: str, commands: Sequence[Any], *, kafka_timeout: float = 30.0
) -> None:
    """Produce ``commands`` (keyed by command_id) and wait for every acknowledgement."""
    async with started(make_producer(bootstrap), what="command sender") as producer:
        async with asyncio.timeout(kafka_timeout):
            futures = [
                await producer.send(topic, encode(c), key=c.command_id.encode()) for c in commands
            ]
            await asyncio.gather(*futures)


def default_prefix() -> str:
    return f"demo-{datetime.now(UTC):%Y%m%d-%H%M%S}-{uuid.uuid4().hex[:4]}"


class Demo:
    """One run of the demo; see the module docstring."""

    def __init__(self, opts: DemoOptions, settings: DemoSettings, out: TextIO = sys.stdout):
        from control_plane.tools.infra.config import cache_dir

        self.opts, self.settings, self.out = opts, settings, out
        self.prefix = opts.topic_prefix or default_prefix()
        self.topics = Topics(self.prefix)
        self.log_dir = cache_dir() / "demo" / self.prefix
        self.specs = stream_specs(opts.streams)
        self.capacity = opts.capacity or capacity_for(self.specs, opts.workers)
        self.recent = RecentEvents()
        self.notes: list[str] = []
        self.tty = out.isatty()
        self.keys = self.tty and sys.stdin.isatty()
        self._stop = asyncio.Event()
        self._keys: asyncio.Queue[str] = asyncio.Queue(maxsize=16)
        self._orch_count = 0
        self._standby_after_epoch: int | None = None
        self._worker_count = 0
        self._rand = random.Random()

    def say(self, text: str) -> None:
        print(text, file=self.out, flush=True)

    def note(self, text: str) -> None:
        self.notes.append(f"{datetime.now(UTC):%H:%M:%S} {text}")
        if not self.tty:
            self.say(f"note: {text}")

    # --- children --------------------------------------------------------------------------

    def start_orchestrator(self) -> Child:
        self._orch_count += 1
        name = f"orch-{chr(ord('a') + self._orch_count - 1)}"
        child = self.children.spawn(name, "orchestrator", orchestrator_args(name))
        self.note(f"started orchestrator {name} (pid {child.pid}), log {child.log_path}")
        return child

    def start_worker(self) -> Child:
        self._worker_count += 1
        name = f"worker-{self._worker_count}"
        child = self.children.spawn(name, "worker", worker_args(name, self.capacity))
        self.note(f"started worker {name} (pid {child.pid}, capacity {self.capacity})")
        return child

    def kill_worker(self) -> None:
        workers = self.children.alive("worker")
        if not workers:
            self.note("no live worker to kill")
            return
        victim = self._rand.choice(workers)
        self.children.signal(victim, signal.SIGKILL)
        self.note(f"kill -9 {victim.name} (pid {victim.pid}): watch it fail and its streams move")

    def kill_leader(self) -> None:
        leader = self.follower.state.leader_id
        victims = [c for c in self.children.alive("orchestrator") if c.name == leader]
        if not victims:
            self.note(f"the leader {leader!r} is not one of our live orchestrators")
            return
        self.children.signal(victims[0], signal.SIGKILL)
        self.note(f"kill -9 leader {leader} (pid {victims[0].pid}): the standby takes over")
        # A new standby only once the old one has taken over: started at once, it would be
        # a candidate in the same group rebalance and might win instead.
        self._standby_after_epoch = self.follower.state.epoch

    def _replace_standby(self) -> None:
        epoch = self._standby_after_epoch
        if epoch is not None and self.follower.state.epoch > epoch:
            self._standby_after_epoch = None
            self.note(f"{self.follower.state.leader_id} took over; starting a new standby")
            self.start_orchestrator()

    # --- phases ----------------------------------------------------------------------------

    async def run(self, bootstrap: str) -> int:
        t = self.settings
        await ensure_topics(bootstrap, self.topics, kafka_timeout=t.demo_kafka_timeout_s)
        extra = {"DEMO_CPU_MS": str(t.demo_cpu_ms), "HANDLER": "demo"}
        self.children = Children(self.log_dir, child_env(bootstrap, self.prefix, **extra))
        self.say(f"streamplane demo: Kafka {bootstrap}, topic prefix {self.prefix}")
        self.say(f"logs of every process in {self.log_dir}")
        try:
            async with (
                LogFollower(bootstrap, self.topics) as self.follower,
                HeartbeatWatcher(bootstrap, self.topics) as self.heartbeats,
            ):
                await self._setup(bootstrap)
                self._print_final(await self._live())
        finally:
            stubborn = await asyncio.to_thread(self.children.stop_all, t.demo_stop_grace_s)
            for c in stubborn:
                self.say(f"{c.name} (pid {c.pid}) ignored SIGTERM: killed")
            self.say(f"stopped {len(self.children.all)} child processes; logs in {self.log_dir}")
        return 0

    async def _wait_for(self, what: str, done: Any) -> None:
        async with asyncio.timeout(self.settings.demo_setup_timeout_s):
            while not done(self.follower.state):
                self.recent.record(await self.follower.poll(timeout_ms=200))
                if self._stop.is_set():
                    return  # Ctrl-C during setup: the live view ends at once
        self.note(what)

    async def _setup(self, bootstrap: str) -> None:
        self.start_orchestrator()
        await self._wait_for("an orchestrator is the leader", lambda s: s.leader_id is not None)
        if self.opts.standby:
            self.start_orchestrator()
        for _ in range(self.opts.workers):
            self.start_worker()
        n = self.opts.workers
        await self._wait_for(
            f"{n} workers registered",
            lambda s: sum(i.status is InstanceStatus.ACTIVE for i in s.instances.values()) >= n,
        )
        commands = list(registrations(self.specs, f"streamplane/demo/{os.getpid()}"))
        await send_commands(
            bootstrap,
            self.topics.commands,
            commands,
            kafka_timeout=self.settings.demo_kafka_timeout_s,
        )
        self.note(f"sent {len(commands)} RegisterStream commands")

    async def _live(self) -> float:
        """The refreshing view until Ctrl-C, 'q' or ``--duration``; returns its length."""
        o = self.opts
        start = time.monotonic()
        kills = {"worker": o.kill_worker_after, "leader": o.kill_leader_after}
        period = self.settings.demo_refresh_s if self.tty else self.settings.demo_snapshot_s
        next_draw = start
        while not self._stop.is_set():
            elapsed = time.monotonic() - start
            if o.duration is not None and elapsed >= o.duration:
                break
            self.recent.record(await self.follower.poll(timeout_ms=200))
            await self.heartbeats.poll()
            self._replace_standby()
            for what, after in list(kills.items()):
                if after is not None and elapsed >= after:
                    del kills[what]
                    self.kill_worker() if what == "worker" else self.kill_leader()
            while not self._keys.empty():
                self._on_key(self._keys.get_nowait())
            if time.monotonic() >= next_draw:
                next_draw += period
                self._draw(elapsed)
        return time.monotonic() - start

    def _on_key(self, key: str) -> None:
        actions = {"k": self.kill_worker, "l": self.kill_leader, "a": self.start_worker,
                   "q": self._stop.set}  # fmt: skip
        action = actions.get(key.lower())
        if action is not None:
            action()

    def _screen(self, elapsed: float) -> list[str]:
        header = Header(self.prefix, elapsed, str(self.log_dir), tuple(self.notes), self.keys)
        now = datetime.now(UTC)
        return render(self.follower.state, self.heartbeats.latest, self.recent, header, now=now)

    def _draw(self, elapsed: float) -> None:
        lines = self._screen(elapsed)
        if self.tty:
            self.out.write("\x1b[H\x1b[J" + "\n".join(lines) + "\n")
            self.out.flush()
        else:
            self.say(f"--- snapshot at {elapsed:.0f}s ---")
            self.say("\n".join(lines))

    def _print_final(self, elapsed: float) -> None:
        self.say("=== final status ===")
        self.say("\n".join(self._screen(elapsed)))

    # --- signals and keys ------------------------------------------------------------------

    def install(self, loop: asyncio.AbstractEventLoop) -> None:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, self._stop.set)
        if self.keys:
            loop.add_reader(sys.stdin.fileno(), self._read_key)

    def _read_key(self) -> None:
        key = os.read(sys.stdin.fileno(), 1).decode(errors="ignore")
        with contextlib.suppress(asyncio.QueueFull):
            self._keys.put_nowait(key)


def _bootstrap(opts: DemoOptions, settings: DemoSettings) -> str:
    if opts.bootstrap or settings.kafka_bootstrap:
        return str(opts.bootstrap or settings.kafka_bootstrap)
    from control_plane.tools.infra import ensure_up

    address = ensure_up(brokers=1, postgres=False).kafka_bootstrap
    assert address is not None
    return address


async def _main(demo: Demo, bootstrap: str) -> int:
    demo.install(asyncio.get_running_loop())
    return await demo.run(bootstrap)


@contextlib.contextmanager
def _cbreak(enabled: bool) -> Iterator[None]:
    """Single key presses without Enter on a terminal; the mode is always restored."""
    if not enabled:
        yield
        return
    import termios
    import tty

    fd = sys.stdin.fileno()
    saved = termios.tcgetattr(fd)
    try:
        tty.setcbreak(fd)
        yield
    finally:
        termios.tcsetattr(fd, termios.TCSADRAIN, saved)


Seconds = Annotated[float | None, typer.Option(help="Seconds after the live view starts.")]


def demo(
    workers: Annotated[int, typer.Option(min=1, help="Worker processes.")] = 4,
    streams: Annotated[int, typer.Option(min=0, help="Streams to register.")] = 40,
    standby: Annotated[bool, typer.Option(help="Also run a hot-standby orchestrator.")] = True,
    kill_worker_after: Seconds = None,
    kill_leader_after: Seconds = None,
    duration: Annotated[
        float | None, typer.Option(help="Exit after this many seconds of live view.")
    ] = None,
    topic_prefix: Annotated[
        str | None, typer.Option(help="Topic prefix (default: a fresh demo-<time>).")
    ] = None,
    bootstrap: Annotated[
        str | None, typer.Option(help="Kafka bootstrap (env STREAMPLANE_KAFKA_BOOTSTRAP).")
    ] = None,
    capacity: Annotated[
        int | None, typer.Option(help="Streams per worker (default: room to lose one).")
    ] = None,
) -> None:
    """Run a whole control plane here and watch it: orchestrators, workers, streams, failover.

    Keys on a terminal: k kill a worker, l kill the leader, a add a worker, q quit."""
    opts = DemoOptions(
        workers, streams, standby, kill_worker_after, kill_leader_after, duration,
        topic_prefix, bootstrap, capacity,
    )  # fmt: skip
    # aiokafka warns about transient metadata while fresh topics get leaders: not news here
    logging.getLogger("aiokafka").setLevel(logging.ERROR)
    settings = DemoSettings()
    address = _bootstrap(opts, settings)
    d = Demo(opts, settings)
    with _cbreak(d.keys):
        code = asyncio.run(_main(d, address))
    raise typer.Exit(code)
