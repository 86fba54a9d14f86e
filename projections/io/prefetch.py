"""Read a partition in a child process, so a long replay folds while the next batch is read.

A replay is CPU-bound on one core: aiokafka's fetch and record parsing (~2 us a record)
run in the same interpreter as the decode and the fold. :func:`prefetched` moves the
reading to a child process, ``python -m projections.io.prefetch``, that ships each fetched
batch to the parent over its stdout as one pickled :class:`Columns` (four plain lists:
offsets, timestamps, keys, values); unpickling them costs the folding process ~0.3 us a
record. The pipe is the bound: when the folder falls behind, the parent's stream reader
stops reading, the child blocks on ``write`` and stops fetching.

Why a plain subprocess rather than ``multiprocessing``: with ``spawn`` the child re-runs
the parent's ``__main__`` module (a script without an ``if __name__ == "__main__"`` guard
would replay itself recursively), and ``fork`` would copy a running event loop.

The child reads exactly what the in-process replay reads (same consumer settings,
read_committed, from ``start`` to ``stop``) and reports Kafka failures as errors of
:mod:`projections.errors`, which the parent raises. The parent kills the child on every
exit path of the ``async with``; the child also stops when the parent closes the pipe.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import json
import os
import pickle
import queue
import struct
import sys
import threading
from collections.abc import AsyncIterator
from typing import Any, NamedTuple

from aiokafka import TopicPartition

from events.codec import pack_events
from kafka_auth import Brokers
from projections import errors as perr
from projections.errors import KafkaIOError, KafkaUnavailableError
from projections.io.kafka import fetch_batch, make_consumer, started
from projections.io.replay_batch import Columns

#: seconds to wait for the child to exit once told to
EXIT_TIMEOUT = 5.0
#: batches the child may hold fetched but not yet written (back-pressure: then it waits)
AHEAD = 3
#: seconds between the child's checks for room in its write queue
WRITER_POLL = 0.002
#: bytes the parent buffers from the child before it stops reading the pipe (back-pressure)
PIPE_BUFFER = 16 * 1024 * 1024
_FRAME = struct.Struct("!Q")  # each message: its length, then the pickle


def pack_chunks(values: list[bytes | None], size: int) -> list[bytes | list[bytes | None]]:
    """``values`` by chunks of ``size``, each packed if every record in it can be."""
    chunks: list[bytes | list[bytes | None]] = []
    for i in range(0, len(values), size):
        chunk = values[i : i + size]
        packed = None if None in chunk else pack_events(chunk)  # type: ignore[arg-type]
        chunks.append(chunk if packed is None else packed)
    return chunks


class ChildSpec(NamedTuple):
    """What the child needs (sent as JSON): where to read and how."""

    bootstrap: Brokers
    topic: str
    partition: int
    start: int
    stop: int
    consumer: dict[str, Any]
    kafka_timeout: float
    poll_timeout_ms: int
    max_records: int
    #: records per packed chunk (0: send the raw values, the parent decodes them all)
    pack_chunk: int = 0


# --- the child --------------------------------------------------------------------------


def _frame(message: object) -> bytes:
    payload = pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)
    return _FRAME.pack(len(payload)) + payload


class _Writer:
    """Writes frames to the pipe from its own thread, at most ``AHEAD`` batches behind.

    The parent drains the pipe only between its batches (while it folds one, its event loop
    does not run), so a write blocks for a whole batch. In a thread, that blocking write
    leaves the child's event loop free to fetch the next batches meanwhile."""

    def __init__(self, out: int) -> None:
        self._out = out
        self._queue: queue.Queue[bytes | None] = queue.Queue(maxsize=AHEAD)
        self.broken = False
        self._thread = threading.Thread(target=self._run, name="frame-writer", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while (frame := self._queue.get()) is not None:
            try:
                _write_all(self._out, frame)
            except (BrokenPipeError, ValueError, OSError):
                self.broken = True  # the parent went away: stop
                return

    async def send(self, message: object) -> None:
        frame = _frame(message)
        while not self.broken:
            try:
                self._queue.put_nowait(frame)
                return
            except queue.Full:
                await asyncio.sleep(WRITER_POLL)  # bounded: at most AHEAD batches buffered
        raise BrokenPipeError("the parent closed the pipe")

    async def close(self) -> None:
        """Wait until every frame is written (or the pipe broke)."""
        while not self.broken:
            try:
                self._queue.put_nowait(None)
                break
            except queue.Full:
                await asyncio.sleep(WRITER_POLL)
        await asyncio.get_running_loop().run_in_executor(None, self._thread.join)


def _write_all(fd: int, data: bytes) -> None:
    """Write all of ``data`` to ``fd``, a pipe, with ``os.write`` until none is left.

    Not through ``sys.stdout.buffer``: a write interrupted by a stop signal (SIGSTOP and
    SIGCONT: a debugger, a profiler, a cgroup freezer, a terminal's Ctrl-Z) returns short,
    and the buffered writer then corrupted the frame stream
    (``tests/unit/test_prefetch.py`` stops and continues the reader to prove it does not)."""
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


async def _child(out: int, spec: ChildSpec) -> None:
    writer = _Writer(out)
    try:
        await _read(writer, spec)
    except perr.ProjectionError as exc:
        await writer.send(("error", type(exc).__name__, str(exc), exc.retriable))
    finally:
        await writer.close()


async def _read(writer: _Writer, spec: ChildSpec) -> None:
    tp = TopicPartition(spec.topic, spec.partition)
    consumer = make_consumer(spec.bootstrap, **spec.consumer)
    async with started(consumer, kafka_timeout=spec.kafka_timeout, what="replay reader"):
        consumer.assign([tp])
        consumer.seek(tp, spec.start)
        position = spec.start
        while position < spec.stop:
            records, position = await fetch_batch(
                consumer,
                tp,
                kafka_timeout=spec.kafka_timeout,
                poll_timeout_ms=spec.poll_timeout_ms,
                max_records=spec.max_records,
                where=f"fetch {tp.topic}[{tp.partition}] at {position}",
            )
            values = [r.value for r in records]
            chunks = _packed(values, spec.pack_chunk) if spec.pack_chunk else []
            # keys and timestamps only serve dead letters, which only raw records can be
            raw = not chunks or not all(isinstance(chunk, bytes) for chunk in chunks)
            # a plain tuple: run as ``-m``, this module's classes live in ``__main__``
            await writer.send(
                (
                    "batch",
                    position,
                    [r.offset for r in records],
                    [r.timestamp for r in records] if raw else [],
                    [r.key for r in records] if raw else [],
                    [] if chunks else values,
                    chunks,
                )
            )


def _packed(values: list[bytes | None], size: int) -> list[bytes | list[bytes | None]]:
    """:func:`pack_chunks` with the cyclic GC paused (as the folding process does): it
    makes many short-lived acyclic objects, and nothing else runs meanwhile."""
    paused = gc.isenabled()
    gc.disable()
    try:
        return pack_chunks(values, size)
    finally:
        if paused:
            gc.enable()


def main(argv: list[str] | None = None) -> int:
    """``python -m projections.io.prefetch SPEC_JSON``: read as told, write frames to stdout."""
    args = sys.argv[1:] if argv is None else argv
    spec = ChildSpec(**json.loads(args[0]))
    sys.stdout.flush()
    out = sys.stdout.fileno()
    sys.stdout = sys.stderr  # nothing else may write into the frame stream
    try:
        asyncio.run(_child(out, spec))
    except (BrokenPipeError, KeyboardInterrupt):
        return 0  # the parent went away or stopped us: nothing left to tell
    return 0


# --- the parent -------------------------------------------------------------------------


def _rebuild(name: str, message: str, retriable: bool) -> perr.ProjectionError:
    """The child's error as the same class of :mod:`projections.errors` in this process."""
    cls = getattr(perr, name, None)
    if cls is KafkaIOError or not (isinstance(cls, type) and issubclass(cls, KafkaIOError)):
        return KafkaIOError(message, retriable=retriable)
    try:
        error: perr.ProjectionError = cls(message)
    except TypeError:
        return KafkaIOError(message, retriable=retriable)
    return error


class Reader:
    """The parent's end: ``await reader.next(patience)`` -> the next :class:`Columns`."""

    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self._process = process
        assert process.stdout is not None
        self._stdout = process.stdout

    async def next(self, patience: float) -> Columns:
        """The next batch; raises the child's error, or :class:`KafkaUnavailableError`
        when nothing arrives within ``patience`` seconds or the child died."""
        try:
            async with asyncio.timeout(patience):
                (size,) = _FRAME.unpack(await self._stdout.readexactly(_FRAME.size))
                payload = await self._stdout.readexactly(size)
        except TimeoutError as exc:
            raise KafkaUnavailableError(f"replay reader sent nothing for {patience:.0f}s") from exc
        except asyncio.IncompleteReadError as exc:
            code = await _exit_code(self._process)
            raise KafkaUnavailableError(f"replay reader exited (code {code})") from exc
        message = pickle.loads(payload)  # our own child, over our own pipe
        if message[0] == "batch":
            return Columns(*message[1:])
        _, name, text, retriable = message
        raise _rebuild(name, text, retriable)


async def _exit_code(process: asyncio.subprocess.Process) -> int | None:
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(EXIT_TIMEOUT):
            return await process.wait()
    return process.returncode


@contextlib.asynccontextmanager
async def prefetched(spec: ChildSpec) -> AsyncIterator[Reader]:
    """``async with prefetched(spec) as reader:`` a child process reading ``spec``'s
    partition; it is stopped (terminated, then killed) when the block exits."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "projections.io.prefetch",
        json.dumps(spec._asdict()),
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        limit=PIPE_BUFFER,  # the default 64 KiB would pause the pipe ~100 times per batch
    )
    try:
        yield Reader(process)
    finally:
        await _stop(process)


async def _stop(process: asyncio.subprocess.Process) -> None:
    if process.returncode is None:
        with contextlib.suppress(ProcessLookupError):
            process.terminate()
        if await _exit_code(process) is None:
            with contextlib.suppress(ProcessLookupError):
                process.kill()
            await _exit_code(process)


if __name__ == "__main__":
    sys.exit(main())
