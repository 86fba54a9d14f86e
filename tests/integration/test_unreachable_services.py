"""A broker that is down: clear errors for the CLI, patient retries for the daemon."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

STREAMPLANE = str(Path(sys.executable).parent / "streamplane")


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])  # nothing listens once the socket is closed


def _env(port: int) -> dict[str, str]:
    env = dict(os.environ)
    env["STREAMPLANE_KAFKA_BOOTSTRAP"] = f"127.0.0.1:{port}"
    env["STREAMPLANE_TOPIC_PREFIX"] = "t-unreachable"
    return env


@pytest.mark.slow
def test_cli_reports_an_unreachable_kafka_in_one_line_and_exits_3() -> None:
    done = subprocess.run(
        [STREAMPLANE, "streams", "list"],
        env=_env(_closed_port()),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 3, done.stderr
    assert "error:" in done.stderr and "Unable to bootstrap" in done.stderr
    assert "Traceback" not in done.stderr and "─" not in done.stderr


@pytest.mark.slow
def test_orchestrator_retries_while_kafka_is_down_and_stops_cleanly() -> None:
    proc = subprocess.Popen(
        [STREAMPLANE, "orchestrator", "--node-id", "o-down"],
        env=_env(_closed_port()),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        time.sleep(4)
        assert proc.poll() is None, "the orchestrator died instead of retrying"
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, out[-2000:]
    assert "Kafka unavailable" in out and "retrying in" in out
    assert "Traceback" not in out
