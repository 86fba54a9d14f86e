"""Failover benchmark: kill -9 a worker; how long until all its streams run elsewhere?

    .venv/bin/python bench/failover.py [--workers 20] [--streams-per-worker 200]
        [--capacity 220] [--runs 10] [--fail-after 5] [--bootstrap HOST:PORT]

Real processes: one orchestrator and ``--workers`` ``streamplane worker`` processes with the
``demo`` handler made nearly free (no CPU burnt per tick, a tick every 10 s), so that many
share one machine. ``workers x streams-per-worker`` streams are registered and placed; then,
``--runs`` times: SIGKILL a worker (a different one each run), take the streams the control
log says it owned, and time from the kill until every one of them is reported ``running`` by
another worker's heartbeat (read from the heartbeats topic, not from the log). The killed
worker is restarted (same server_id, a new incarnation) before the next run, so capacity
stays the same. Automatic rebalancing is off by default (``--auto-rebalance`` turns it on):
the restarted, empty worker would otherwise pull ~200 streams back through gradual
migrations between runs, which measures the balancer, not failover.

Target: p50 <= fail_after + 1 s. Human-readable lines first; the last line is one JSON object.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import statistics
import time
from typing import Any

import _common as c

from control_plane.orchestrator.settings import OrchestratorSettings
from control_plane.tools.harness import Children
from control_plane.tools.workload import registrations, send_commands
from events import control as ev
from events.heartbeat import StreamRunState
from events.topics import Topics
from projections.io.follow import HeartbeatWatcher, LogFollower
from projections.io.topics import ensure_topics


def _args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--workers", type=int, default=20)
    p.add_argument("--streams-per-worker", type=int, default=200)
    p.add_argument("--capacity", type=int, default=220, help="max_streams of each worker")
    p.add_argument("--runs", type=int, default=10)
    p.add_argument("--fail-after", type=float, default=OrchestratorSettings().fail_after)
    p.add_argument("--auto-rebalance", action="store_true")
    p.add_argument("--setup-timeout", type=float, default=240.0, help="seconds")
    p.add_argument("--run-timeout", type=float, default=60.0, help="seconds per kill")
    p.add_argument("--bootstrap", default=None)
    return p.parse_args()


async def _setup(args: argparse.Namespace, kafka: str, children: Children, f: LogFollower) -> int:
    c.start_orchestrator(children)
    await c.wait_state(f, lambda s: s.leader_id is not None, limit_s=60, what="a leader")
    for i in range(args.workers):
        c.start_worker(children, f"worker-{i + 1:02d}", args.capacity)
    await c.wait_state(
        f,
        lambda s: c.active_count(s) >= args.workers,
        limit_s=args.setup_timeout,
        what=f"{args.workers} workers registered",
    )
    total: int = args.workers * args.streams_per_worker
    specs = [{"stream_id": f"s-{i:05d}"} for i in range(total)]
    await send_commands(kafka, f.topics.commands, list(registrations(specs, "bench/failover")))
    took = await c.wait_state(
        f,
        lambda s: c.steady(s, total),
        limit_s=args.setup_timeout,
        what=f"{total} streams running",
    )
    print(f"# {total} streams running on {args.workers} workers after {took:.1f}s", flush=True)
    return total


async def _one_run(
    victim: str,
    children: Children,
    f: LogFollower,
    hb: HeartbeatWatcher,
    limit_s: float,
) -> dict[str, Any]:
    owned = {s.stream_id for s in f.state.streams.values() if s.server_id == victim}
    child = next(ch for ch in children.alive("worker") if ch.name == victim)
    await hb.poll()  # drop what arrived before the kill
    children.signal(child, signal.SIGKILL)
    killed_at = time.monotonic()
    pending = set(owned)
    detected: float | None = None
    async with asyncio.timeout(limit_s):
        while pending:
            for beat in await hb.poll(timeout_ms=50):
                if beat.server_id == victim:
                    continue
                for r in beat.streams:
                    if r.state is StreamRunState.RUNNING:
                        pending.discard(r.stream_id)
            for e in await f.poll(timeout_ms=0):
                if isinstance(e, ev.InstanceFailed) and e.server_id == victim:
                    detected = time.monotonic() - killed_at
    moved_s = time.monotonic() - killed_at
    while detected is None and time.monotonic() - killed_at < limit_s:
        for e in await f.poll(timeout_ms=200):
            if isinstance(e, ev.InstanceFailed) and e.server_id == victim:
                detected = e.time.timestamp() - (time.time() - (time.monotonic() - killed_at))
    return {"victim": victim, "streams": len(owned), "moved_s": moved_s, "detected_s": detected}


async def _restart(
    args: argparse.Namespace, victim: str, children: Children, f: LogFollower, total: int
) -> None:
    inc = f.state.instances[victim].incarnation
    c.start_worker(children, victim, args.capacity)
    await c.wait_state(
        f,
        lambda s: s.instances[victim].incarnation != inc and c.steady(s, total),
        limit_s=args.run_timeout * 3,
        what=f"{victim} back and every stream running",
    )


async def main(args: argparse.Namespace) -> dict[str, Any]:
    kafka = c.bootstrap(args.bootstrap)
    prefix = c.fresh_prefix("failover")
    topics = Topics(prefix)
    await ensure_topics(kafka, topics)
    env = {
        "FAIL_AFTER": str(args.fail_after),
        "AUTO_REBALANCE": str(args.auto_rebalance).lower(),
        "DEMO_CPU_MS": "0",
        "DEMO_TICK_INTERVAL": "10",
    }
    runs: list[dict[str, Any]] = []
    with c.fleet("failover", prefix, kafka, env) as children:
        async with c.log_follower(kafka, topics) as f, c.heartbeat_watcher(kafka, topics) as hb:
            total = await _setup(args, kafka, children, f)
            for i in range(args.runs):
                victim = f"worker-{i % args.workers + 1:02d}"
                r = await _one_run(victim, children, f, hb, args.run_timeout)
                runs.append(r)
                det = r["detected_s"]
                print(
                    f"run {i + 1}: kill -9 {victim} ({r['streams']} streams): all running "
                    f"elsewhere after {r['moved_s']:.2f}s (InstanceFailed seen after "
                    f"{'-' if det is None else f'{det:.2f}'}s)",
                    flush=True,
                )
                if i + 1 < args.runs:
                    await _restart(args, victim, children, f, total)
    return _result(args, runs, total)


def _result(args: argparse.Namespace, runs: list[dict[str, Any]], total: int) -> dict[str, Any]:
    moved = [r["moved_s"] for r in runs]
    detected = [r["detected_s"] for r in runs if r["detected_s"] is not None]
    p50 = statistics.median(moved)
    return {
        "fail_after_s": args.fail_after,
        "p50_s": round(p50, 3),
        "max_s": round(max(moved), 3),
        "min_s": round(min(moved), 3),
        "detect_p50_s": round(statistics.median(detected), 3) if detected else None,
        "streams_moved": sum(r["streams"] for r in runs),
        "streams_per_run": [r["streams"] for r in runs],
        "runs": len(runs),
        "workers": args.workers,
        "streams": total,
        "capacity": args.capacity,
        "auto_rebalance": args.auto_rebalance,
        "target_met": p50 <= args.fail_after + 1.0,
        "date": c.utc_now_text(),
        "load_avg_1m": round(c.load_average(), 2),
    }


if __name__ == "__main__":
    arguments = _args()
    result = asyncio.run(main(arguments))
    print(
        f"p50 {result['p50_s']:.2f}s, max {result['max_s']:.2f}s over {result['runs']} runs "
        f"(target p50 <= {arguments.fail_after + 1:.1f}s: "
        f"{'met' if result['target_met'] else 'NOT met'})"
    )
    c.emit(result)
