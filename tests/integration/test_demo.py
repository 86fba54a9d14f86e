"""``streamplane demo`` end to end: real Kafka, real orchestrator and worker processes.

Runs the README's non-interactive demo with a worker killed on the way and checks the
printed final status, the failover in the printed events, and that no child outlives it.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time

import pytest

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def _parse_summary(text: str) -> dict[str, str]:
    lines = [line for line in text.splitlines() if line.startswith("summary: ")]
    assert lines, "the demo printed no summary line"
    return dict(part.split("=", 1) for part in lines[-1].removeprefix("summary: ").split())


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # a zombie is dead for our purpose (only its parent's wait is missing)
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def test_demo_shows_failover_and_cleans_up(kafka_bootstrap: str, topic_prefix: str) -> None:
    env = os.environ | {"STREAMPLANE_KAFKA_BOOTSTRAP": kafka_bootstrap}
    args = ["--duration", "25", "--workers", "3", "--streams", "12", "--kill-worker-after", "8"]
    started = time.monotonic()
    proc = subprocess.run(
        [sys.executable, "-c", "from control_plane.cli import main; main()", "demo", *args,
         "--topic-prefix", topic_prefix],
        env=env, capture_output=True, text=True, timeout=240, check=False,
    )  # fmt: skip
    out = proc.stdout
    assert proc.returncode == 0, f"exit {proc.returncode}\n{out}\n{proc.stderr}"
    assert time.monotonic() - started >= 25, "the demo ended before --duration"

    final = out.split("=== final status ===", 1)[1]
    summary = _parse_summary(final)
    assert summary["streams"] == "12" and summary["running"] == "12", summary
    assert summary["active_instances"] == "2" and summary["failed_instances"] == "1", summary
    active = re.findall(r"^\s+(worker-\d+)\s+active\s+\[[#.]+\]\s+(\d+)/", final, re.M)
    assert len(active) == 2 and sum(int(n) for _, n in active) == 12, active

    killed = re.search(r"kill -9 (worker-\d+)", out)
    assert killed is not None, out
    assert re.search(rf"InstanceFailed {killed.group(1)}\b", final), final
    assert killed.group(1) not in {name for name, _ in active}

    pids = [int(p) for p in re.findall(r"\(pid (\d+)", out)]
    assert len(pids) >= 5, f"expected 2 orchestrators + 3 workers, saw pids {pids}"
    survivors = [p for p in pids if _alive(p)]
    assert not survivors, f"child processes still alive after the demo: {survivors}"
