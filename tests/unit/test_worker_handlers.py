"""Handlers with real work: the ``command`` handler supervises real OS processes."""

from __future__ import annotations

import asyncio
import os
import random
import time

import pytest

from events.heartbeat import StreamRunState
from worker_agent.errors import ConfigError, StreamStartError
from worker_agent.handlers import StreamHandler, load_handler
from worker_agent.handlers.command import CommandHandler, build_argv
from worker_agent.handlers.demo import DemoHandler
from worker_agent.settings import WorkerSettings


def settings(**kw) -> WorkerSettings:
    return WorkerSettings(server_id="w-test", **kw)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # a zombie still answers kill(0); look at its state
    with open(f"/proc/{pid}/stat") as stat:
        return stat.read().split(")")[-1].split()[0] != "Z"


async def _eventually(predicate, seconds: float = 10.0):
    async with asyncio.timeout(seconds):
        while not await predicate():  # noqa: ASYNC110 (polling a handler)
            await asyncio.sleep(0.05)


def test_build_argv_keeps_each_param_one_argument():
    argv = build_argv("ffmpeg -i {url} -metadata title={stream_id}", "cam-1", {"url": "a b;rm x"})
    assert argv == ["ffmpeg", "-i", "a b;rm x", "-metadata", "title=cam-1"]


def test_build_argv_names_a_missing_param():
    with pytest.raises(StreamStartError, match="'url'"):
        build_argv("ffmpeg -i {url}", "cam-1", {})
    with pytest.raises(ConfigError):
        build_argv("", "cam-1", {})


def test_load_handler_by_short_name_and_import_path():
    s = settings()
    assert isinstance(load_handler("demo", s), DemoHandler)
    assert isinstance(
        load_handler("worker_agent.handlers.command:CommandHandler", s), CommandHandler
    )
    with pytest.raises(ConfigError, match="nope"):
        load_handler("nope", s)
    with pytest.raises(ConfigError):
        load_handler("worker_agent.handlers.demo:Missing", s)


async def test_command_runs_and_stops_a_long_process_with_sigterm():
    handler = CommandHandler(settings(command_template="sleep {seconds}"))
    assert isinstance(handler, StreamHandler)
    await handler.start("s1", {"seconds": "30"})
    pid = handler.pid("s1")
    assert pid is not None and _alive(pid)
    assert (await handler.health("s1")).state is StreamRunState.RUNNING
    began = time.monotonic()
    await handler.stop("s1")
    assert time.monotonic() - began < 3  # SIGTERM suffices for sleep
    assert not _alive(pid)
    assert (await handler.health("s1")).state is StreamRunState.FAILED


async def test_command_escalates_to_sigkill_when_sigterm_is_ignored():
    handler = CommandHandler(
        settings(command_template="sh -c 'trap \"\" TERM; sleep 30'", command_stop_timeout=0.5)
    )
    await handler.start("s1", {})
    pid = handler.pid("s1")
    await asyncio.sleep(0.3)  # let sh install its trap
    began = time.monotonic()
    await handler.stop("s1")
    assert 0.4 < time.monotonic() - began < 5
    assert pid is not None and not _alive(pid)


async def test_command_reports_exit_code_and_stderr_and_restarts_with_back_off():
    handler = CommandHandler(
        settings(
            command_template="sh -c 'echo boom >&2; exit 3'",
            command_restart_base=0.05,
            command_restart_cap=0.2,
        ),
        rand=random.Random(1),
    )
    await handler.start("s1", {})

    async def restarted_twice():
        h = await handler.health("s1")
        return h.performance.restarts >= 2

    await _eventually(restarted_twice)
    health = await handler.health("s1")
    assert health.state is StreamRunState.FAILED
    assert health.error is not None and "exit code 3" in health.error and "boom" in health.error
    await handler.stop("s1")


async def test_command_that_cannot_be_spawned_fails_to_start():
    handler = CommandHandler(settings(command_template="/nonexistent/streamplane-binary {x}"))
    with pytest.raises(StreamStartError, match="cannot run"):
        await handler.start("s1", {"x": "1"})
    assert (await handler.health("s1")).state is StreamRunState.FAILED


async def test_demo_poison_streams_always_fail_to_start():
    handler = DemoHandler(settings(demo_fail_streams=("bad",), demo_tick_interval=0.01))
    for _ in range(3):
        with pytest.raises(StreamStartError, match="poison"):
            await handler.start("bad", {})
    await handler.start("good", {})
    await asyncio.sleep(0.05)
    health = await handler.health("good")
    assert health.state is StreamRunState.RUNNING
    assert health.performance.throughput and health.performance.throughput > 0
    await handler.stop("good")
    assert (await handler.health("good")).state is StreamRunState.FAILED


async def test_demo_failure_probability_uses_the_injected_random_source():
    s = settings(demo_fail_probability=0.5)
    draws = iter([0.4, 0.6, 0.1])
    handler = DemoHandler(s, rand=lambda: next(draws))
    with pytest.raises(StreamStartError):
        await handler.start("a", {})
    await handler.start("b", {})
    with pytest.raises(StreamStartError):
        await handler.start("c", {})
    assert (await handler.health("b")).state is StreamRunState.RUNNING
    await handler.stop("b")


async def test_demo_fail_after_crashes_the_stream_and_reports_why():
    handler = DemoHandler(settings(demo_tick_interval=0.01))
    await handler.start("s", {"fail_after": "0.05"})

    async def failed():
        return (await handler.health("s")).state is StreamRunState.FAILED

    await _eventually(failed, 5)
    assert "injected crash" in ((await handler.health("s")).error or "")
    await handler.stop("s")
