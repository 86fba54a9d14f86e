"""``streamplane demo``: a whole control plane on this machine, with a live status view.

Brings up Kafka (or uses the configured one), two orchestrators (active + hot standby) and
N workers with the ``demo`` handler as child processes, registers M streams, then shows the
state, refreshed, until Ctrl-C or ``--duration``. ``--kill-worker-after`` and
``--kill-leader-after`` (and the keys k/l/a/q on a terminal) show failover happening.
It also serves the live dashboard and prints its URL (:mod:`control_plane.tools.demo_dashboard`).

The children run under the process harness (:mod:`control_plane.tools.harness`). The view
follows the control log incrementally (each new event folded into the previous state, never
a replay from the start) and the heartbeats topic, with the shared readers of
:mod:`projections.io.follow`. The benchmarks in ``bench/`` use the same pieces.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import random
import signal
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated, Any, TextIO

import typer
from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from control_plane.tools import demo_dashboard
from control_plane.tools.demo_view import Header, RecentEvents, render
from control_plane.tools.harness import (
    CLI,
    Child,
    Children,
    child_env,
    orchestrator_args,
    worker_args,
)
from control_plane.tools.options import LogFormatOption, LogLevelOption
from control_plane.tools.workload import capacity_for, registrations, send_commands, stream_specs
from events.topics import Topics
from projections.fold.state import InstanceStatus
from projections.io.follow import HeartbeatWatcher, LogFollower, skip_undecodable
from projections.io.topics import ensure_topics
from telemetry.logs import setup_logging
from telemetry.metrics import free_address


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
    #: the dashboard's port on 127.0.0.1 (any free one when it is taken; 0: any)
    demo_dashboard_port: int = Field(default=8080, ge=0, le=65535)
    demo_dashboard_wait_s: float = Field(default=20.0, gt=0, description="until it listens")


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
    dashboard: bool = True


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
        self.dashboard_url: str | None = None

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
        metrics = {"STREAMPLANE_METRICS_ADDRESS": free_address()}  # docs/metrics.md
        # the demo's workers are not enrolled: the orchestrator says so in a WARNING line
        env = metrics | {"STREAMPLANE_OPEN_ENROLLMENT": "true"}
        child = self.children.spawn(name, "orchestrator", orchestrator_args(name), env)
        self.note(f"started orchestrator {name} (pid {child.pid}), log {child.log_path}")
        self.note(f"{name} metrics: http://{metrics['STREAMPLANE_METRICS_ADDRESS']}/metrics")
        return child

    def start_worker(self) -> Child:
        self._worker_count += 1
        name = f"worker-{self._worker_count}"
        metrics = {"STREAMPLANE_METRICS_ADDRESS": free_address()}  # docs/metrics.md
        child = self.children.spawn(name, "worker", worker_args(name, self.capacity), metrics)
        where = f"metrics http://{metrics['STREAMPLANE_METRICS_ADDRESS']}/metrics"
        self.note(f"started worker {name} (pid {child.pid}, capacity {self.capacity}), {where}")
        return child

    def start_dashboard(self) -> Child:
        child = demo_dashboard.start(self.children, self.settings.demo_dashboard_port)
        self.note(f"started the dashboard (pid {child.pid}), log {child.log_path}")
        self.note("the dashboard reads without a token (anonymous reads on, loopback only)")
        return child

    async def _show_dashboard(self, child: Child) -> None:
        """Print the dashboard's URL once it listens (the demo goes on without it if not)."""
        self.dashboard_url = await demo_dashboard.url_of(child, self.settings.demo_dashboard_wait_s)
        if self.dashboard_url is None:
            self.note(f"the dashboard did not start; see {child.log_path}")
        else:
            self.say(f"dashboard: {self.dashboard_url}  (open it in a browser)")

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
        dashboard = self.start_dashboard() if self.opts.dashboard else None
        # undecodable records: the orchestrator dead-letters them; the view has nothing to show
        skip, net = skip_undecodable, t.demo_kafka_timeout_s
        try:
            async with (
                LogFollower(
                    bootstrap, self.topics, on_undecodable=skip, kafka_timeout=net
                ) as self.follower,
                HeartbeatWatcher(
                    bootstrap, self.topics, on_undecodable=skip, kafka_timeout=net
                ) as self.heartbeats,
            ):
                await self._setup(bootstrap)
                if dashboard is not None:
                    await self._show_dashboard(dashboard)
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
        monitor = self.children.spawn("monitor", "monitor", [*CLI, "monitor"])  # docs/alerts.md
        alerts = f"streamplane alerts --topic-prefix {self.prefix}"
        self.note(f"started the monitor (pid {monitor.pid}): `{alerts}` lists its alerts")
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
        notes = tuple(self.notes)
        if self.dashboard_url is not None:  # always on screen (the view shows the last notes)
            notes = (*notes[-3:], f"dashboard {self.dashboard_url}")
        header = Header(self.prefix, elapsed, str(self.log_dir), notes, self.keys)
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
    dashboard: Annotated[
        bool, typer.Option(help="Serve the live dashboard (env STREAMPLANE_DEMO_DASHBOARD_PORT).")
    ] = True,
    log_level: LogLevelOption = None,
    log_format: LogFormatOption = None,
) -> None:
    """Run a whole control plane here and watch it: orchestrators, workers, streams, failover.

    Keys on a terminal: k kill a worker, l kill the leader, a add a worker, q quit. The live
    dashboard's URL is printed once it listens."""
    opts = DemoOptions(
        workers, streams, standby, kill_worker_after, kill_leader_after, duration,
        topic_prefix, bootstrap, capacity, dashboard,
    )  # fmt: skip
    logs = setup_logging(level=log_level, fmt=log_format, default_level="WARNING")
    # aiokafka warns about transient metadata while fresh topics get leaders: not news here
    logging.getLogger("aiokafka").setLevel(logging.ERROR)
    settings = DemoSettings()
    address = _bootstrap(opts, settings)
    os.environ["STREAMPLANE_LOG_FORMAT"] = logs.log_format  # the children log the same way
    d = Demo(opts, settings)
    with _cbreak(d.keys):
        code = asyncio.run(_main(d, address))
    raise typer.Exit(code)
