"""The process harness (``control_plane.tools.harness``) on real child processes: small
Python programs, no Kafka. Each test stops what it started, whatever happens."""

from __future__ import annotations

import os
import signal
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from control_plane.tools.harness import Child, Children

#: a child that says it is ready (its handlers are set) and then sleeps
SLEEPER = "import time; print('ready', flush=True); time.sleep(60)"
STUBBORN = (
    "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
    "print('ready', flush=True); time.sleep(60)"
)
#: starts a grandchild in the same process group and prints its pid
PARENT = (
    "import subprocess, sys, time; "
    "p = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)']); "
    "print('grandchild', p.pid, flush=True); print('ready', flush=True); time.sleep(60)"
)


@pytest.fixture
def children(tmp_path: Path) -> Iterator[Children]:
    c = Children(tmp_path / "logs", {**os.environ, "HARNESS_TEST": "base"})
    try:
        yield c
    finally:
        c.stop_all(0)


def start(children: Children, name: str, code: str, **env: str) -> Child:
    child = children.spawn(name, "test", [sys.executable, "-c", code], env)
    deadline = time.monotonic() + 20
    while "ready" not in child.log_text():
        assert child.alive, f"{name} exited early: {child.log_text()}"
        assert time.monotonic() < deadline, f"{name} never got ready"
        time.sleep(0.02)
    return child


def proc_state(pid: int) -> str:
    """The one-letter state of /proc/<pid>/stat ("" once it is gone)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return ""


def test_a_child_runs_in_its_own_session_with_its_env_and_log(children: Children) -> None:
    code = "import os; print(os.environ['HARNESS_TEST'], os.environ['EXTRA']); " + SLEEPER
    child = start(children, "one", code, EXTRA="given")
    assert os.getsid(child.pid) == child.pid != os.getsid(0)
    assert child.log_path == children.log_dir / "one.log"
    assert child.log_tail(2) == ["base given", "ready"]
    assert child.alive and child.serving and child.returncode is None
    assert children.alive() == [child] and children.by_name["one"] is child


def test_a_restart_under_the_same_name_gets_its_own_log(children: Children) -> None:
    first = start(children, "w", SLEEPER)
    with pytest.raises(ValueError, match="still runs"):
        children.spawn("w", "test", [sys.executable, "-c", SLEEPER])
    children.kill(first)
    second = start(children, "w", SLEEPER)
    assert (first.log_path.name, second.log_path.name) == ("w.log", "w.1.log")
    assert children.by_name["w"] is second and children.all == [first, second]
    assert children.of_kind("test") == [second]


def test_kill_is_kill_9_and_reaps(children: Children) -> None:
    child = start(children, "victim", STUBBORN)
    assert children.kill(child) == -signal.SIGKILL
    assert child.killed and not child.alive and child.proc.returncode == -signal.SIGKILL


def test_pause_and_resume(children: Children) -> None:
    child = start(children, "frozen", SLEEPER)
    children.pause(child)
    deadline = time.monotonic() + 5
    while proc_state(child.pid) != "T":
        assert time.monotonic() < deadline, proc_state(child.pid)
        time.sleep(0.01)
    assert child.paused and child.alive and not child.serving
    children.resume(child)
    while proc_state(child.pid) == "T":
        assert time.monotonic() < deadline
        time.sleep(0.01)
    assert not child.paused and child.serving


def test_the_whole_process_group_is_signalled(children: Children) -> None:
    child = start(children, "parent", PARENT)
    grandchild = int(child.log_text().split("grandchild ", 1)[1].split()[0])
    assert os.getpgid(grandchild) == child.pid
    children.kill(child)
    deadline = time.monotonic() + 5
    while proc_state(grandchild) not in ("", "Z"):
        assert time.monotonic() < deadline, "the grandchild survived kill -9 of its group"
        time.sleep(0.01)


async def test_terminate_waits_for_the_exit_and_kills_after_the_grace(
    children: Children,
) -> None:
    polite = start(children, "polite", SLEEPER)
    stubborn = start(children, "stubborn", STUBBORN)
    assert await children.terminate(polite, grace=10) == -signal.SIGTERM
    began = time.monotonic()
    assert await children.terminate(stubborn, grace=0.5) == -signal.SIGKILL
    assert 0.5 <= time.monotonic() - began < 5
    assert not polite.killed and stubborn.killed
    assert await polite.wait(0) == -signal.SIGTERM


def test_stop_all_terms_then_kills_the_stubborn_and_reaps_all(children: Children) -> None:
    polite = start(children, "polite", SLEEPER)
    stubborn = start(children, "stubborn", STUBBORN)
    paused = start(children, "paused", SLEEPER)
    children.pause(paused)
    began = time.monotonic()
    assert children.stop_all(grace=1.0) == [stubborn]
    assert 1.0 <= time.monotonic() - began < 10
    assert polite.returncode == paused.returncode == -signal.SIGTERM
    assert stubborn.returncode == -signal.SIGKILL
    assert children.alive() == []
    assert all(proc_state(c.pid) == "" for c in children.all), "a zombie is left"


def test_stop_all_with_no_grace_kills_at_once(children: Children) -> None:
    polite = start(children, "polite", SLEEPER)
    assert children.stop_all(grace=0) == [polite]
    assert polite.returncode == -signal.SIGKILL
    assert "exited -9" in polite.describe()
