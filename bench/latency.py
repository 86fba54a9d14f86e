"""Command latency benchmark: RegisterStream sent -> StreamStarted, at 1,000 commands/s.

    .venv/bin/python bench/latency.py [--rate 1000] [--seconds 10] [--workers 4]
        [--capacity 3000] [--bootstrap HOST:PORT] [--profile]

One orchestrator and ``--workers`` ``streamplane worker`` processes (``demo`` handler, no CPU
per tick) with room for every stream. One producer sends ``RegisterStream`` commands on a
fixed schedule (``--rate`` per second for ``--seconds``); each command's send time is taken
just before it is handed to the producer. The control log is followed in this process:
for each stream, the arrival of ``StreamRegistered`` (the orchestrator took the command),
``StreamAssigned`` (placed, desired set written in the same transaction) and
``StreamStarted`` (the worker's heartbeat reported it running) gives where the time goes.
Latency is measured to the event's *arrival* here (same host clock as the send time).

``--profile`` runs the orchestrator under pyinstrument (``pip install pyinstrument``) and
writes its report beside the logs. Human-readable lines first; the last line is one JSON
object (``p50_ms``, ``p99_ms`` of command -> StreamStarted, ``rate`` actually sent per second).
"""

from __future__ import annotations

import argparse
import asyncio
import time
import uuid
from datetime import UTC, datetime
from typing import Any

import _common as c

from events import commands as cmd
from events import control as ev
from events.codec import encode
from events.topics import Topics
from projections.io.kafka import ensure_topics, make_producer, started

STAGES = ("registered", "assigned", "started")


def _args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--rate", type=float, default=1000.0, help="commands per second")
    p.add_argument("--seconds", type=float, default=10.0, help="how long to send")
    p.add_argument("--workers", type=int, default=4)
    p.add_argument("--capacity", type=int, default=3000, help="max_streams of each worker")
    p.add_argument("--drain-timeout", type=float, default=120.0, help="seconds after sending")
    p.add_argument("--profile", action="store_true", help="orchestrator under pyinstrument")
    p.add_argument("--bootstrap", default=None)
    return p.parse_args()


async def _send(
    kafka: str, topic: str, rate: float, seconds: float, sent: dict[str, float]
) -> float:
    """Send on schedule; returns the achieved rate (commands per second)."""
    total = int(rate * seconds)
    async with started(make_producer(kafka), what="command producer") as producer:
        began = time.monotonic()
        pending = []
        for k in range(total):
            delay = began + k / rate - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            sid = f"lat-{k:06d}"
            command = cmd.RegisterStream(
                id=uuid.uuid4().hex,
                source="bench/latency",
                time=datetime.now(UTC),
                command_id=uuid.uuid4().hex,
                stream_id=sid,
            )
            sent[sid] = time.time()
            pending.append(await producer.send(topic, encode(command), key=sid.encode()))
        last = time.monotonic()
        async with asyncio.timeout(c.NET):
            await asyncio.gather(*pending)
    return total / max(last - began, 1e-9)


def _track(seen: dict[str, dict[str, float]]) -> Any:
    kinds: dict[type, str] = {ev.StreamRegistered: "registered", ev.StreamAssigned: "assigned",
             ev.StreamStarted: "started"}  # fmt: skip

    def on_events(events: list[Any], arrived: float) -> None:
        for e in events:
            stage = kinds.get(type(e))
            if stage is not None:
                seen[stage].setdefault(e.stream_id, arrived)

    return on_events


async def main(args: argparse.Namespace) -> dict[str, Any]:
    kafka = c.bootstrap(args.bootstrap)
    prefix = c.fresh_prefix("latency")
    topics = Topics(prefix)
    await ensure_topics(kafka, topics)
    sent: dict[str, float] = {}
    seen: dict[str, dict[str, float]] = {s: {} for s in STAGES}
    track = _track(seen)
    env = {"DEMO_CPU_MS": "0", "DEMO_TICK_INTERVAL": "10"}
    with c.fleet("latency", prefix, kafka, env) as children:
        async with c.log_follower(kafka, topics) as f:
            c.start_orchestrator(children, profile=args.profile)
            await c.wait_state(f, lambda s: s.leader_id is not None, limit_s=60, what="a leader")
            for i in range(args.workers):
                c.start_worker(children, f"worker-{i + 1:02d}", args.capacity)
            n = args.workers
            await c.wait_state(f, lambda s: c.active_count(s) >= n, limit_s=120, what="workers")
            orch = children.all[0].pid
            cpu0, t0 = c.cpu_seconds(orch), time.monotonic()
            sender = asyncio.create_task(
                _send(kafka, topics.commands, args.rate, args.seconds, sent)
            )
            while not sender.done():
                track(await f.poll(timeout_ms=50), time.time())
            rate = await sender
            total = len(sent)
            try:
                await c.wait_state(
                    f,
                    lambda s: len(seen["started"]) >= total,
                    limit_s=args.drain_timeout,
                    what="every stream started",
                    on_events=track,
                )
            except TimeoutError as exc:
                print(f"# {exc}", flush=True)
            busy = (c.cpu_seconds(orch) - cpu0) / (time.monotonic() - t0)
    return _result(args, sent, seen, rate, busy)


def _result(
    args: argparse.Namespace,
    sent: dict[str, float],
    seen: dict[str, dict[str, float]],
    rate: float,
    busy: float,
) -> dict[str, Any]:
    lat = {s: [(seen[s][k] - sent[k]) * 1000 for k in seen[s] if k in sent] for s in STAGES}
    started_times = sorted(seen["started"].values())
    span = started_times[-1] - min(sent.values()) if started_times else 0.0
    out: dict[str, Any] = {
        "p50_ms": round(c.percentile(lat["started"], 50), 1),
        "p99_ms": round(c.percentile(lat["started"], 99), 1),
        "max_ms": round(max(lat["started"], default=float("nan")), 1),
        "rate": round(rate, 1),
        "target_rate": args.rate,
        "sent": len(sent),
        "started": len(seen["started"]),
        "started_per_s": round(len(started_times) / span, 1) if span else None,
        "orchestrator_cpu": round(busy, 2),
        "workers": args.workers,
        "date": c.utc_now_text(),
        "load_avg_1m": round(c.load_average(), 2),
    }
    for s in ("registered", "assigned"):
        out[f"{s}_p50_ms"] = round(c.percentile(lat[s], 50), 1)
        out[f"{s}_p99_ms"] = round(c.percentile(lat[s], 99), 1)
    return out


if __name__ == "__main__":
    arguments = _args()
    result = asyncio.run(main(arguments))
    print(
        f"sent {result['sent']} RegisterStream at {result['rate']:.0f}/s "
        f"(target {arguments.rate:.0f}/s); {result['started']} started; "
        f"command -> StreamRegistered p50 {result['registered_p50_ms']:.0f} ms, "
        f"-> StreamAssigned p50 {result['assigned_p50_ms']:.0f} ms, "
        f"-> StreamStarted p50 {result['p50_ms']:.0f} ms p99 {result['p99_ms']:.0f} ms; "
        f"orchestrator CPU {result['orchestrator_cpu']:.0%} of a core"
    )
    c.emit(result)
