"""projections.io.prefetch's failure paths, without a broker: the child's Kafka error reaches
the parent as the same error class, a child that dies is an error, not a hang, and frames
written while the writer is stopped and continued arrive whole."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import struct
import subprocess
import sys
import threading
import time
import zlib

import pytest

from projections.errors import KafkaIOError, KafkaUnavailableError
from projections.io.prefetch import ChildSpec, prefetched


def _spec(bootstrap: str, timeout: float = 3.0) -> ChildSpec:
    return ChildSpec(
        bootstrap=bootstrap,
        topic="nowhere.events",
        partition=0,
        start=0,
        stop=10,
        consumer={"auto_offset_reset": "none", "request_timeout_ms": 2000},
        kafka_timeout=timeout,
        poll_timeout_ms=100,
        max_records=10,
    )


async def test_the_childs_kafka_error_is_raised_in_the_parent() -> None:
    async with prefetched(_spec("127.0.0.1:9")) as reader:  # nothing listens on port 9
        with pytest.raises(KafkaIOError) as caught:
            await reader.next(30)
    assert "replay reader" in str(caught.value)


async def test_a_child_that_dies_is_an_error_not_a_hang() -> None:
    async with prefetched(_spec("127.0.0.1:9", timeout=60)) as reader:
        reader._process.kill()
        with pytest.raises(KafkaUnavailableError, match="exited"):
            await asyncio.wait_for(reader.next(30), 40)


WRITER = r"""
import struct, sys, zlib
from projections.io.prefetch import _write_all
for i in range(int(sys.argv[1])):
    body = bytes([i % 251]) * (2_000_000 + i)
    _write_all(1, struct.pack("!QI", len(body), zlib.crc32(body)) + body)
"""


def test_frames_survive_the_writer_being_stopped_and_continued() -> None:
    """SIGSTOP/SIGCONT (a debugger, a profiler, a cgroup freezer, Ctrl-Z) interrupt large
    pipe writes; each frame must still arrive whole and in order. (CPython 3.11's buffered
    ``sys.stdout.buffer.write`` corrupted this stream within a few frames.)"""
    frames = 40
    process = subprocess.Popen([sys.executable, "-c", WRITER, str(frames)], stdout=subprocess.PIPE)
    stop = threading.Event()

    def storm() -> None:
        while not stop.is_set() and process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(process.pid, signal.SIGSTOP)
                time.sleep(0.002)
                os.kill(process.pid, signal.SIGCONT)
            time.sleep(0.004)

    stormer = threading.Thread(target=storm, daemon=True)
    stormer.start()
    assert process.stdout is not None
    try:
        for i in range(frames):
            size, crc = struct.unpack("!QI", process.stdout.read(12))
            assert size == 2_000_000 + i, f"frame {i}: a corrupt header"
            body = process.stdout.read(size)
            assert zlib.crc32(body) == crc and body[:1] == bytes([i % 251]), f"frame {i}"
        assert process.stdout.read() == b""
    finally:
        stop.set()
        stormer.join()
        with contextlib.suppress(ProcessLookupError):
            os.kill(process.pid, signal.SIGCONT)
        process.kill()
        process.wait(10)
