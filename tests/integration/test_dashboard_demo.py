"""``streamplane demo`` serves the dashboard (alone: the demo runs no PostgreSQL) and prints
its URL; the page at that URL shows the demo's workers; the dashboard stops with the demo."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time

import httpx
import pytest

pytestmark = [pytest.mark.integration, pytest.mark.slow]

WORKERS = 2


def _snapshot(url: str, within: float) -> dict[str, object]:
    """The dashboard's snapshot once it shows every worker active."""
    deadline = time.monotonic() + within
    seen: object = None
    while time.monotonic() < deadline:
        seen = httpx.get(f"{url}dashboard/snapshot", timeout=10).json()
        instances = seen["instances"]  # type: ignore[index]
        if sum(i["status"] == "active" for i in instances.values()) == WORKERS:
            return seen  # type: ignore[return-value]
        time.sleep(0.5)
    raise AssertionError(f"the dashboard did not show {WORKERS} active workers: {seen}")


def test_the_demo_prints_the_dashboard_url_and_serves_it(
    kafka_bootstrap: str, topic_prefix: str
) -> None:
    env = os.environ | {
        "STREAMPLANE_KAFKA_BOOTSTRAP": kafka_bootstrap,
        "STREAMPLANE_DEMO_DASHBOARD_PORT": "0",  # any free port: tests run side by side
    }
    args = ["demo", "--duration", "20", "--workers", str(WORKERS), "--streams", "4",
            "--no-standby", "--topic-prefix", topic_prefix]  # fmt: skip
    cli = [sys.executable, "-c", "from control_plane.cli import main; main()"]
    proc = subprocess.Popen(
        [*cli, *args], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    try:
        out: list[str] = []
        assert proc.stdout is not None
        for line in proc.stdout:
            out.append(line)
            if line.startswith("dashboard: http"):
                break
        found = re.match(r"dashboard: (http://\S+/)", out[-1] if out else "")
        assert found, "".join(out)
        page = httpx.get(found.group(1), timeout=10)
        assert page.status_code == 200 and "streamplane" in page.text
        snapshot = _snapshot(found.group(1), 30)
        assert snapshot["connected"] is True and snapshot["leader"] is not None
        rest, _ = proc.communicate(timeout=120)
    finally:
        proc.kill()
        proc.wait()
    assert proc.returncode == 0, "".join(out) + rest
    pid = re.search(r"started the dashboard \(pid (\d+)\)", "".join(out))
    assert pid, "".join(out)
    with pytest.raises(ProcessLookupError):  # stopped and reaped with the demo
        os.kill(int(pid.group(1)), 0)
    with pytest.raises(httpx.ConnectError):
        httpx.get(found.group(1), timeout=5)
