"""Shared helpers of the process-level benchmarks (failover, latency, heartbeats).

They start real orchestrator and worker processes with the process harness
(:class:`control_plane.tools.harness.Children`: each in its own session, SIGTERM then SIGKILL
on exit, logs in the cache directory) and watch the control log with
:class:`projections.io.follow.LogFollower` (incremental fold), as the demo and the tests do.
"""

from __future__ import annotations

import asyncio
import json
import math
import os
import sys
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, NamedTuple

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from control_plane.tools.harness import (
    CLI,
    Child,
    Children,
    child_env,
    orchestrator_args,
    worker_args,
)
from control_plane.tools.infra.config import cache_dir
from events.base import ControlEvent
from events.topics import Topics
from kafka_auth import Brokers
from projections.fold.state import ClusterState, InstanceStatus
from projections.io.follow import HeartbeatWatcher, LogFollower

#: seconds any single Kafka operation of a benchmark may take
NET = 60.0


def bootstrap(arg: str | None) -> str:
    """``--bootstrap``, else ``STREAMPLANE_KAFKA_BOOTSTRAP``, else the local infrastructure."""
    if arg:
        return arg
    if env := os.environ.get("STREAMPLANE_KAFKA_BOOTSTRAP"):
        return env
    from control_plane.tools.infra import ensure_up

    address = ensure_up(brokers=1, postgres=False).kafka_bootstrap
    assert address is not None
    return address


class Principals(NamedTuple):
    """Who each part of a benchmark is to Kafka: everyone the same plaintext address, or the
    secure cluster's principals (``--security secure``)."""

    bootstrap: str
    observer: Brokers  # the benchmark's own reader of the log (the admin when secure)
    operator: Brokers  # sends commands
    worker: Brokers  # sends heartbeats
    orchestrator_env: dict[str, str]
    worker_env: dict[str, str]


def principals(arg: str | None, prefix: str, secure_mode: bool) -> Principals:
    """Plaintext: ``bootstrap(arg)`` for all. Secure: the local SASL/SCRAM cluster (started
    when missing, ``streamplane infra up --secure``) with the roles' ACLs on ``prefix``."""
    if not secure_mode:
        kafka = bootstrap(arg)
        return Principals(kafka, kafka, kafka, kafka, {}, {})
    from control_plane.tools.infra import ensure_up, kafka_cluster, secure

    ensure_up(brokers=1, postgres=False, secure_mode=True, topic_prefix=prefix)
    cluster = kafka_cluster(1, secure=True)
    return Principals(
        cluster.bootstrap,
        secure.access(cluster, secure.ADMIN),
        secure.access(cluster, "operator"),
        secure.access(cluster, "worker"),
        secure.role_env(cluster, "orchestrator"),
        secure.role_env(cluster, "worker"),
    )


def fresh_prefix(name: str) -> str:
    """A topic prefix of its own per run, so runs never mix."""
    return f"bench-{name}-{datetime.now(UTC):%Y%m%d-%H%M%S}-{uuid.uuid4().hex[:4]}"


def utc_now_text() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def load_average() -> float:
    return os.getloadavg()[0]


def percentile(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100); NaN for no values."""
    if not values:
        return math.nan
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[rank - 1]


def emit(result: dict[str, Any]) -> None:
    """The last line of every benchmark: one JSON object."""
    print(json.dumps(result, sort_keys=True), flush=True)


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a live process (Linux /proc); NaN when gone."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except (FileNotFoundError, ProcessLookupError):
        return math.nan
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@contextmanager
def fleet(
    name: str, prefix: str, kafka: str, env: dict[str, str], *, grace: float = 15.0
) -> Iterator[Children]:
    """Children (with ``env``, names without ``STREAMPLANE_``) whose logs go to
    ``<cache>/bench/<name>/<prefix>``; all stopped on exit. Enrollment is open unless ``env``
    says otherwise (the benchmarks' workers and simulated agents are not enrolled)."""
    env = {"OPEN_ENROLLMENT": "true", **env}
    children = Children(cache_dir() / "bench" / name / prefix, child_env(kafka, prefix, **env))
    print(f"# logs in {children.log_dir}", flush=True)
    try:
        yield children
    finally:
        stubborn = children.stop_all(grace)
        if stubborn:
            print(f"# {len(stubborn)} children needed SIGKILL", flush=True)


def start_orchestrator(
    children: Children,
    node_id: str = "orch-1",
    *,
    profile: bool = False,
    env: dict[str, str] | None = None,
) -> Child:
    """An orchestrator (``env``: full ``STREAMPLANE_*`` names, e.g. its principal's); with
    ``profile`` it runs under pyinstrument (``pip install pyinstrument``), whose report is
    written to ``<log dir>/<node_id>-profile.txt`` when it stops (SIGTERM at the end of the
    benchmark)."""
    args = orchestrator_args(node_id)
    if not profile:
        return children.spawn(node_id, "orchestrator", args, env)
    out = children.log_dir / f"{node_id}-profile.txt"
    print(f"# pyinstrument report of {node_id}: {out}", flush=True)
    python, flag, code = CLI
    wrapper = [python, "-m", "pyinstrument", "-o", str(out), flag, code]
    return children.spawn(node_id, "orchestrator", [*wrapper, *args[len(CLI) :]], env)


def start_worker(children: Children, server_id: str, capacity: int, **env: str) -> Child:
    args = worker_args(server_id, capacity, "--log-level", "WARNING")
    return children.spawn(server_id, "worker", args, env)


def log_follower(kafka: Brokers, topics: Topics) -> LogFollower:
    """The benchmarks' view of the control log (an undecodable record is an error here)."""
    return LogFollower(kafka, topics, kafka_timeout=NET)


def heartbeat_watcher(kafka: Brokers, topics: Topics) -> HeartbeatWatcher:
    """The latest heartbeat per worker, from now on (an undecodable one is an error here)."""
    return HeartbeatWatcher(kafka, topics, kafka_timeout=NET)


async def wait_state(
    follower: LogFollower,
    done: Callable[[ClusterState], bool],
    *,
    limit_s: float,
    what: str,
    on_events: Callable[[list[ControlEvent], float], None] | None = None,
) -> float:
    """Poll the log until ``done(state)``; returns the seconds it took. Raises TimeoutError
    naming ``what`` after ``limit_s`` seconds."""
    began = time.monotonic()
    try:
        async with asyncio.timeout(limit_s):
            while not done(follower.state):
                events = await follower.poll(timeout_ms=100)
                if on_events is not None and events:
                    on_events(events, time.time())
    except TimeoutError:
        raise TimeoutError(f"timed out after {limit_s:.0f}s waiting for {what}") from None
    return time.monotonic() - began


def active_count(state: ClusterState) -> int:
    return sum(1 for i in state.instances.values() if i.status is InstanceStatus.ACTIVE)


def steady(state: ClusterState, streams: int) -> bool:
    """Every stream running, no migration in flight, no rebalance plan being carried out."""
    if len(state.streams) < streams or state.in_flight or state.rebalance is not None:
        return False
    return all(s.status.value == "running" for s in state.streams.values())
