"""What the orchestrator's metrics cost per cycle, next to the decision they count.

    .venv/bin/python bench/metrics_overhead.py [--cycles 300] [--commands 100] [--workers 4]

In one process, no Kafka: the pure ``decide`` is driven as the leader drives it under the
load of ``bench/latency.py`` (each cycle: ``--commands`` new ``RegisterStream`` commands,
and a heartbeat from every worker reporting what it was told to run, so the streams placed
a cycle earlier become ``StreamStarted``), and each cycle's events go through
``OrchestratorMetrics.committed`` as the service does after its transaction. Both are timed
in the same loop (``time.process_time``), so machine noise hits them alike: the ratio is the
share the instrumentation adds to ``decide`` alone (a real cycle also decodes heartbeats,
encodes events and runs a Kafka transaction, which only make the share smaller). A scrape of
the registry is timed too. The last line is one JSON object.
"""

from __future__ import annotations

import argparse
import itertools
import time
from datetime import UTC, datetime, timedelta
from ipaddress import IPv4Address
from typing import Any

import _common as c
from prometheus_client import generate_latest

from control_plane.decide import Inputs, begin_term, decide
from control_plane.decide.config import DecideConfig
from control_plane.decide.liveness import Liveness
from control_plane.orchestrator.metrics import OrchestratorMetrics, Seen
from events import commands as cmd
from events.heartbeat import Heartbeat, StreamReport, StreamRunState
from projections.fold import apply
from projections.fold.state import ClusterState

START = datetime(2026, 12, 1, tzinfo=UTC)


def _args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--cycles", type=int, default=300)
    p.add_argument("--commands", type=int, default=100, help="RegisterStream per cycle")
    p.add_argument("--workers", type=int, default=4)
    return p.parse_args()


def _heartbeat(server: str, state: ClusterState, n: int, now: datetime) -> Heartbeat:
    running = tuple(
        StreamReport(stream_id=sid, state=StreamRunState.RUNNING)
        for sid in sorted(state.held.get(server, ()))
    )
    return Heartbeat(
        id=f"hb-{server}-{n}",
        source="bench",
        time=now,
        server_id=server,
        incarnation=f"{server}-1",
        ip=IPv4Address("127.0.0.1"),
        port=9000,
        max_streams=1_000_000,
        streams=running,
    )


def main(args: argparse.Namespace) -> dict[str, Any]:
    ids = (f"id-{i}" for i in itertools.count())
    workers = [f"w{i}" for i in range(args.workers)]
    now = START
    liveness = Liveness(watch_started_at=START - timedelta(hours=1))
    term = begin_term(ClusterState(), leader_id="l", now=now, new_id=ids.__next__, source="b")
    state = apply(ClusterState(), term)
    metrics = OrchestratorMetrics(
        lambda: Seen(True, 0.0, 0, 0), failover_horizon=timedelta(hours=1)
    )
    cfg = DecideConfig(auto_rebalance=False)
    spent = {"decide": 0.0, "metrics": 0.0}
    events = 0
    for n in range(args.cycles):
        now += timedelta(seconds=0.1)
        heartbeats = [_heartbeat(w, state, n, now) for w in workers]
        for hb in heartbeats:
            liveness.observe(hb, now)
        commands = [
            cmd.RegisterStream(id=next(ids), source="bench", time=now, command_id=next(ids),
                               stream_id=f"s{n}-{k}")
            for k in range(args.commands)
        ]  # fmt: skip
        t0 = time.process_time()
        d = decide(state, liveness.view(), Inputs(heartbeats, commands), now=now,
                   new_id=ids.__next__, config=cfg)  # fmt: skip
        t1 = time.process_time()
        metrics.committed(d.events, before=state, after=d.state, liveness=liveness,
                          commands=commands, committed_at=now)  # fmt: skip
        t2 = time.process_time()
        spent["decide"] += t1 - t0
        spent["metrics"] += t2 - t1
        events += len(d.events)
        state = d.state
    t0 = time.process_time()
    for _ in range(20):
        generate_latest(metrics.registry)
    scrape_ms = (time.process_time() - t0) / 20 * 1000
    return {
        "cycles": args.cycles,
        "events": events,
        "streams": len(state.streams),
        "decide_us_per_event": round(spent["decide"] / events * 1e6, 2),
        "metrics_us_per_event": round(spent["metrics"] / events * 1e6, 2),
        "metrics_share_of_decide_pct": round(spent["metrics"] / spent["decide"] * 100, 2),
        "scrape_ms": round(scrape_ms, 2),
        "date": c.utc_now_text(),
        "load_avg_1m": round(c.load_average(), 2),
    }


if __name__ == "__main__":
    result = main(_args())
    print(
        f"{result['events']} events in {result['cycles']} cycles ({result['streams']} streams): "
        f"decide {result['decide_us_per_event']} us/event, metrics "
        f"{result['metrics_us_per_event']} us/event = {result['metrics_share_of_decide_pct']}% "
        f"of decide; a scrape {result['scrape_ms']} ms"
    )
    c.emit(result)
