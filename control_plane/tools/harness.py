"""The process harness: real ``streamplane`` processes started, watched, signalled, stopped.

One harness for everything that runs a cluster of processes on this machine: ``streamplane
demo``, the benchmarks in ``bench/`` and the end-to-end and chaos tests
(``tests/support/cluster.py``). What they need is the same, so it is written once:

- **start**: :meth:`Children.spawn` runs a child in its own session (a terminal's Ctrl-C,
  or pytest's, reaches only the parent, which then stops the children in order), with its
  own environment and its own log file (stdout and stderr; a restart under the same name
  gets ``name.1.log``, ``name.2.log`` ... so that each run's log is whole);
- **watch**: :attr:`Child.alive`, :attr:`Child.returncode`, :meth:`Child.log_text`,
  :meth:`Child.log_tail`;
- **signal**: :meth:`Children.kill` (kill -9, reaped), :meth:`Children.terminate` (SIGTERM,
  SIGKILL after a grace), :meth:`Children.pause` / :meth:`Children.resume` (SIGSTOP /
  SIGCONT), :meth:`Children.signal` for anything else (SIGUSR1 ...). A child leads its own
  process group and the group is signalled: whatever it started goes with it;
- **stop all**: :meth:`Children.stop_all`: SIGTERM to every live child, SIGKILL to what
  still runs after the grace, and every child reaped (no zombie outlives the harness).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

#: how children are started: the CLI of this interpreter, without relying on the console
#: script being on PATH (and in a form a profiler can wrap, see ``bench/_common.py``)
CLI = (sys.executable, "-c", "from control_plane.cli import main; main()")
#: seconds to wait for a killed child to be reaped
REAP_TIMEOUT = 10.0


def orchestrator_args(node_id: str) -> list[str]:
    """``streamplane orchestrator --node-id NODE_ID``."""
    return [*CLI, "orchestrator", "--node-id", node_id]


def worker_args(server_id: str, max_streams: int, *extra: str) -> list[str]:
    """``streamplane worker --server-id ID --max-streams N [extra]``."""
    return [*CLI, "worker", "--server-id", server_id, "--max-streams", str(max_streams), *extra]


def child_env(bootstrap: str, prefix: str, **settings: str) -> dict[str, str]:
    """The environment of a child: this one plus Kafka, the topic prefix and ``settings``
    (names without the ``STREAMPLANE_`` prefix, e.g. ``FAIL_AFTER="3"``)."""
    env = dict(os.environ)
    env["STREAMPLANE_KAFKA_BOOTSTRAP"] = bootstrap
    env["STREAMPLANE_TOPIC_PREFIX"] = prefix
    env.update({f"STREAMPLANE_{k.upper()}": v for k, v in settings.items()})
    return env


@dataclass(slots=True)
class Child:
    """One child process and what the harness knows about it."""

    name: str
    kind: str  # "orchestrator", "worker", or what the caller says
    proc: subprocess.Popen[bytes]
    log_path: Path
    #: SIGSTOPped and not resumed since
    paused: bool = False
    #: was sent SIGKILL by the harness
    killed: bool = False

    @property
    def pid(self) -> int:
        return self.proc.pid

    @property
    def alive(self) -> bool:
        """Not exited yet (a paused child is alive)."""
        return self.proc.poll() is None

    @property
    def serving(self) -> bool:
        """Alive and not paused: what it last reported describes what it does."""
        return self.alive and not self.paused

    @property
    def returncode(self) -> int | None:
        """The exit code (``-N``: killed by signal N); ``None`` while it runs."""
        return self.proc.poll()

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def log_tail(self, lines: int = 80) -> list[str]:
        return self.log_text().splitlines()[-lines:]

    def describe(self) -> str:
        """``name (kind, pid N, running|exited C): log path``."""
        state = "running" if self.alive else f"exited {self.returncode}"
        return f"{self.name} ({self.kind}, pid {self.pid}, {state}): {self.log_path}"

    async def wait(self, within: float) -> int | None:
        """The exit code once it exits, without blocking the event loop; ``None`` if it
        still runs after ``within`` seconds."""
        deadline = time.monotonic() + within
        while self.proc.poll() is None:
            if time.monotonic() >= deadline:
                return None
            await asyncio.sleep(0.05)
        return self.proc.returncode


@dataclass(slots=True)
class Children:
    """The child processes of one run (see the module docstring); ``env`` is the base
    environment of every child, ``log_dir`` where their logs go."""

    log_dir: Path
    env: Mapping[str, str]
    all: list[Child] = field(default_factory=list)
    #: the latest child started under each name
    by_name: dict[str, Child] = field(default_factory=dict)

    def spawn(
        self, name: str, kind: str, args: Sequence[str], env: Mapping[str, str] | None = None
    ) -> Child:
        """Start ``args`` as ``name`` with the base environment updated by ``env``."""
        previous = self.by_name.get(name)
        if previous is not None and previous.alive:
            raise ValueError(f"a child named {name!r} still runs (pid {previous.pid})")
        self.log_dir.mkdir(parents=True, exist_ok=True)
        runs = sum(1 for c in self.all if c.name == name)
        log_path = self.log_dir / (f"{name}.{runs}.log" if runs else f"{name}.log")
        with log_path.open("wb") as log:
            proc = subprocess.Popen(
                list(args),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env={**self.env, **(env or {}), "PYTHONUNBUFFERED": "1"},
                start_new_session=True,
            )
        child = Child(name, kind, proc, log_path)
        self.all.append(child)
        self.by_name[name] = child
        return child

    def alive(self, kind: str | None = None) -> list[Child]:
        """The live children (of ``kind``), in the order they were started."""
        return [c for c in self.all if c.alive and (kind is None or c.kind == kind)]

    def of_kind(self, kind: str) -> list[Child]:
        """The latest child of each name of ``kind``, live or not."""
        return [c for c in self.by_name.values() if c.kind == kind]

    def signal(self, child: Child, sig: int) -> None:
        """Send ``sig`` to the child's process group (nothing once it has been reaped)."""
        if child.proc.returncode is not None:
            return  # reaped: its pid (and group id) may belong to someone else by now
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(child.pid, sig)
        if sig == signal.SIGKILL:
            child.killed = True
            child.paused = False
        elif sig == signal.SIGSTOP:
            child.paused = True
        elif sig == signal.SIGCONT:
            child.paused = False

    def kill(self, child: Child) -> int | None:
        """kill -9, then reap; returns the exit code."""
        self.signal(child, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            child.proc.wait(timeout=REAP_TIMEOUT)
        return child.returncode

    def pause(self, child: Child) -> None:
        """SIGSTOP: the child freezes (no heartbeats, no group membership, no writes)."""
        self.signal(child, signal.SIGSTOP)

    def resume(self, child: Child) -> None:
        """SIGCONT."""
        self.signal(child, signal.SIGCONT)

    async def terminate(self, child: Child, grace: float) -> int | None:
        """SIGTERM (and SIGCONT, should it be paused); SIGKILL if it still runs after
        ``grace`` seconds. Returns the exit code; ``None`` if even SIGKILL did not end it."""
        self._sigterm(child)
        code = await child.wait(grace)
        if code is None:
            self.kill(child)
        return child.returncode

    def stop_all(self, grace: float) -> list[Child]:
        """SIGTERM every live child, SIGKILL what still runs after ``grace`` seconds
        (``grace <= 0``: SIGKILL at once), reap all; returns those that needed SIGKILL.
        Blocking: from an event loop, run it in a thread."""
        if grace > 0:
            for c in self.alive():
                self._sigterm(c)
            deadline = time.monotonic() + grace
            while self.alive() and time.monotonic() < deadline:
                time.sleep(0.05)
        stubborn = self.alive()
        for c in stubborn:
            self.signal(c, signal.SIGKILL)
        for c in self.all:
            with contextlib.suppress(subprocess.TimeoutExpired):
                c.proc.wait(timeout=REAP_TIMEOUT)
        return stubborn

    def _sigterm(self, child: Child) -> None:
        self.signal(child, signal.SIGTERM)
        if child.paused:  # a stopped process handles SIGTERM only once continued
            self.signal(child, signal.SIGCONT)
