"""``command``: one OS process per stream, from a template, supervised.

The template (setting ``command_template``) is split with :func:`shlex.split` first and each
argument is then formatted with the stream's params plus ``stream_id``: a param value with
spaces or quotes stays one argument and can never inject another (no shell is involved
unless the template itself calls one). Example::

    ffmpeg -nostdin -i {url} -f null -

A process that exits is restarted with exponential back-off and full jitter; the exit code
and the tail of its stderr are reported as the stream's error meanwhile. ``stop`` sends
SIGTERM to the process group, then SIGKILL after ``command_stop_timeout``.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import shlex
import signal
import time
from collections.abc import Mapping, Sequence

from events.heartbeat import StreamPerformance, StreamRunState
from resilience.backoff import Backoff
from worker_agent.errors import ConfigError, StreamStartError
from worker_agent.handlers import StreamHealth
from worker_agent.settings import WorkerSettings

_READ_CHUNK = 4096


def build_argv(template: str, stream_id: str, params: Mapping[str, str]) -> list[str]:
    """Split ``template`` and fill each argument; a missing placeholder names the key."""
    try:
        parts = shlex.split(template)
    except ValueError as exc:
        raise ConfigError(f"command_template cannot be split: {exc}") from exc
    if not parts:
        raise ConfigError("command_template is empty; set STREAMPLANE_COMMAND_TEMPLATE")
    values = {**params, "stream_id": stream_id}
    try:
        return [part.format_map(values) for part in parts]
    except KeyError as exc:
        raise StreamStartError(
            f"command template needs param {exc.args[0]!r}, stream {stream_id} lacks it",
            stream_id=stream_id,
        ) from exc
    except (ValueError, IndexError) as exc:
        raise ConfigError(f"command_template has a bad placeholder: {exc}") from exc


class _Proc:
    def __init__(self, argv: Sequence[str]) -> None:
        self.argv = list(argv)
        self.process: asyncio.subprocess.Process | None = None
        self.supervisor: asyncio.Task[None] | None = None
        self.stopping = False
        self.restarts = 0
        self.error: str | None = None
        self.started_at = time.monotonic()
        self.tail = b""


class CommandHandler:
    """Runs and supervises one OS process per stream."""

    def __init__(self, settings: WorkerSettings, *, rand: random.Random | None = None):
        self.template = settings.command_template
        self.stop_timeout = settings.command_stop_timeout
        self.stable_after = settings.command_stable_after
        self.tail_bytes = settings.command_stderr_tail
        self.backoff = Backoff(settings.command_restart_base, settings.command_restart_cap)
        self._rand = (rand or random.Random()).random
        self._procs: dict[str, _Proc] = {}

    async def start(self, stream_id: str, params: Mapping[str, str]) -> None:
        """Spawn the process; raise :class:`StreamStartError` if it cannot even be spawned."""
        await self.stop(stream_id)
        proc = _Proc(build_argv(self.template, stream_id, params))
        try:
            await self._spawn(proc)
        except OSError as exc:
            message = f"cannot run {proc.argv[0]!r}: {exc}"
            raise StreamStartError(message, stream_id=stream_id) from exc
        self._procs[stream_id] = proc
        proc.supervisor = asyncio.create_task(self._supervise(proc), name=f"cmd:{stream_id}")

    async def _spawn(self, proc: _Proc) -> None:
        proc.process = await asyncio.create_subprocess_exec(
            *proc.argv,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE,
            # Its own process group, so stop() also reaches children of `sh -c ...`.
            start_new_session=True,
        )
        proc.started_at = time.monotonic()
        proc.tail = b""

    async def _supervise(self, proc: _Proc) -> None:
        attempt = 0
        while not proc.stopping:
            code = await self._wait(proc)
            if proc.stopping:
                return
            tail = proc.tail.decode("utf-8", "replace").strip()
            proc.error = f"exit code {code}" + (f": {tail}" if tail else "")
            proc.restarts += 1
            if time.monotonic() - proc.started_at >= self.stable_after:
                attempt = 0  # it ran well for a while: this is a fresh failure, not a loop
            await asyncio.sleep(self.backoff.delay(attempt, self._rand))
            attempt += 1
            if proc.stopping:
                return
            try:
                await self._spawn(proc)
            except OSError as exc:
                proc.error = f"cannot run {proc.argv[0]!r}: {exc}"
                proc.process = None

    async def _wait(self, proc: _Proc) -> int | None:
        process = proc.process
        if process is None:
            return None
        if process.stderr is not None:
            # Keep only the tail: a chatty process must not grow our memory.
            while chunk := await process.stderr.read(_READ_CHUNK):
                proc.tail = (proc.tail + chunk)[-self.tail_bytes :] if self.tail_bytes else b""
        return await process.wait()

    async def stop(self, stream_id: str) -> None:
        """SIGTERM the process group, SIGKILL after the timeout; unknown ids are ignored."""
        proc = self._procs.pop(stream_id, None)
        if proc is None:
            return
        proc.stopping = True
        process = proc.process
        if process is not None and process.returncode is None:
            _signal_group(process.pid, signal.SIGTERM)
            try:
                async with asyncio.timeout(self.stop_timeout):
                    await process.wait()
            except TimeoutError:
                _signal_group(process.pid, signal.SIGKILL)
                await process.wait()
        if proc.supervisor is not None:
            proc.supervisor.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await proc.supervisor

    async def health(self, stream_id: str) -> StreamHealth:
        """``running`` while the process lives, else ``failed`` with exit code and stderr."""
        proc = self._procs.get(stream_id)
        if proc is None:
            return StreamHealth(StreamRunState.FAILED, "not running")
        perf = StreamPerformance(restarts=proc.restarts)
        process = proc.process
        if process is not None and process.returncode is None:
            return StreamHealth(StreamRunState.RUNNING, None, perf)
        return StreamHealth(StreamRunState.FAILED, proc.error or "exited", perf)

    def pid(self, stream_id: str) -> int | None:
        """The current process id of a stream (for diagnosis and tests)."""
        proc = self._procs.get(stream_id)
        return None if proc is None or proc.process is None else proc.process.pid


def _signal_group(pid: int, sig: signal.Signals) -> None:
    # The group may already be gone between the returncode check and the kill.
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, sig)
